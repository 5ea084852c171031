"""FGSM: the fast gradient sign method (Goodfellow et al. 2015, "Explaining and harnessing
adversarial examples"; Kim Eq. 29).

One gradient step of the attack loss L (see ``losses.py``), in the threat model's steepest
ascent direction:

    linf: x_adv = clamp01(x + eps * sign(grad_x L))
    l2:   x_adv = clamp01(x + eps * grad_x L / ||grad_x L||_2)

Targeted: L is the targeted loss (e.g. -CE(target)), which the step increases, moving the
prediction towards the target.

Random start (Wong, Rice & Kolter 2020, "Fast is better than free"): start at a random point of
the ball, take one step of size ``alpha`` (default 1.25 * eps) from there, and project back onto
the eps-ball.

Shapes: x (N, ...) float in [0, 1], y (N,) int64; returns x_adv shaped like x.

Example::

    attack = FGSM(eps=8 / 255)                        # Goodfellow et al.
    fast_at = FGSM(eps=8 / 255, random_start=True)    # Wong et al. FGSM-RS, alpha = 10/255
    x_adv = attack(model, x, y)
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from rlrobust.attacks.base import (
    Attack,
    check_labels,
    check_positive_float,
    check_target_mode,
    choose_targets,
    clamp01,
    input_gradient,
    normalize_l2,
    project,
    random_start,
)
from rlrobust.attacks.losses import check_loss_name, get_loss


class FGSM(Attack):
    """Single-step attack; see the module docstring.

    Args:
        eps: ball radius in pixel units (default 8/255 for linf, 0.5 for l2).
        norm: ``"linf"`` (sign step) or ``"l2"`` (normalised-gradient step).
        loss: ``"ce"`` (default), ``"margin"`` or ``"dlr"``.
        targeted: step towards a target class instead of away from the label.
        target: ``"random"`` (drawn from the seed) or ``"least_likely"`` (from the clean logits).
        random_start: start from a uniform point of the ball (Wong et al. 2020). Default False.
        alpha: step size; default 1.25 * eps with a random start, eps without.
        seed: seeds the private generator (random start, random targets).
    """

    name = "fgsm"

    def __init__(
        self,
        eps: float | None = None,
        norm: str = "linf",
        loss: str = "ce",
        targeted: bool = False,
        target: str = "random",
        random_start: bool = False,
        alpha: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(eps=eps, norm=norm, seed=seed)
        self.loss = check_loss_name(loss)
        self.targeted = bool(targeted)
        self.target = check_target_mode(target)
        self.random_start = bool(random_start)
        if alpha is None:
            alpha = 1.25 * self.eps if self.random_start else self.eps
        self.alpha = check_positive_float(alpha, "alpha") if self.eps > 0 else float(alpha)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        generator = self.generator(x.device)
        loss_fn = get_loss(self.loss, self.targeted)
        if self.targeted:
            with torch.no_grad():
                clean_logits = model(x)
            check_labels(clean_logits, y)
            targets = choose_targets(clean_logits, y, self.target, generator)
            loss_fn = partial(loss_fn, target=targets)

        start = random_start(x, self.eps, self.norm, generator) if self.random_start else x
        # Without a targeted clean pass, validate labels on the gradient pass (one forward only).
        grad = input_gradient(model, loss_fn, start, y, check=not self.targeted)
        direction = grad.sign() if self.norm == "linf" else normalize_l2(grad)
        x_adv = start + self.alpha * direction
        # A step of length <= eps from x itself stays in the ball; projecting anyway would only
        # add rounding, so project only when the step can leave it.
        if self.random_start or self.alpha > self.eps:
            x_adv = project(x_adv, x, self.eps, self.norm)
        return clamp01(x_adv)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "loss": self.loss,
            "targeted": self.targeted,
            "target": self.target,
            "random_start": self.random_start,
            "alpha": self.alpha,
        }
