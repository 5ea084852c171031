"""The TRADES training step (Zhang et al. 2019; ``objectives/trades.py`` has the loss).

Per batch, as in the reference implementation:

1. With the model in eval mode, start at x + 0.001 * N(0, 1) and take ``steps`` sign-gradient
   ascent steps of size ``step_size`` on KL(p(x) || p(x_adv)), projecting onto the Linf
   eps-ball and [0, 1] after each (the start is projected and clamped too, so every point
   respects the threat model).
2. With the model back in train mode: natural loss on x + beta * KL(p(x) || p(x_adv)).

The natural loss is the *current objective*: cross-entropy by default; with
``two_stage.warmup_objective = cross_entropy`` and ``two_stage.switch_epoch = 75`` it becomes
Kim's Eq. 4 with greedy actions after epoch 75: "TRADES then policy fine-tuning" (Kim Table 6,
see docs/defences.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlrobust.attacks.base import clamp01, input_gradient, model_frozen, project
from rlrobust.objectives.core import stats_from
from rlrobust.objectives.trades import trades_kl
from rlrobust.seeding import make_generator
from rlrobust.training.adversarial import AdversarialStep, draw_seed

#: the scale of the reference implementation's random start, x + 0.001 * N(0, 1).
START_NOISE = 0.001


def trades_adversarial(
    model: nn.Module,
    x: Tensor,
    *,
    eps: float,
    steps: int,
    step_size: float,
    generator: torch.Generator,
) -> Tensor:
    """x_adv maximising KL(p(x) || p(x_adv)) over the Linf eps-ball (model frozen, eval mode)."""
    with model_frozen(model):
        with torch.no_grad():
            logits_natural = model(x)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_adv = clamp01(project(x + START_NOISE * noise, x, eps, "linf"))

        def kl_loss(logits: Tensor, _y: Tensor) -> Tensor:
            return trades_kl(logits_natural, logits, reduction="none")

        for _ in range(steps):
            grad = input_gradient(model, kl_loss, x_adv, logits_natural)
            x_adv = clamp01(project(x_adv + step_size * grad.sign(), x, eps, "linf"))
    return x_adv.detach()


class TradesStep(AdversarialStep):
    """``trades``: natural loss (the current objective) + beta * KL(p(x) || p(x_adv))."""

    name = "trades"

    def adversarial_loss(self, model, x, y, objective, *, epoch, generator):
        eps = self.eps_at(epoch)
        noise = make_generator(draw_seed(generator), x.device)
        x_adv = trades_adversarial(
            model,
            x,
            eps=eps,
            steps=self.settings.steps,
            step_size=self.settings.step_size * self.scale(epoch),
            generator=noise,
        )
        # Two forward passes, as the reference: each batch gets its own BatchNorm statistics.
        logits_natural = model(x)
        logits_adv = model(x_adv)
        natural_loss, stats = objective(logits_natural, y, generator=generator)
        kl = trades_kl(logits_natural, logits_adv)
        loss = natural_loss + self.settings.beta * kl
        return loss, {
            **stats,
            **stats_from(("natural_loss", "kl"), (natural_loss, kl)),
            **self.checked(x, x_adv, eps),
        }
