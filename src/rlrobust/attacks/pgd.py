"""PGD: projected gradient descent (Madry et al. 2018, "Towards deep learning models resistant
to adversarial attacks"; Kurakin et al. 2016 without the random start).

Iterate ``steps`` times, from x or a random point of the eps-ball:

    linf: x_{k+1} = clamp01(P_eps(x_k + step_size * sign(grad L(x_k))))
    l2:   x_{k+1} = clamp01(P_eps(x_k + step_size * grad L(x_k) / ||grad L(x_k)||_2))

where P_eps projects onto the eps-ball around the clean x and L is the attack loss
(``losses.py``: "ce", "margin", "dlr"; targeted versions with ``targeted=True``).

Defaults: steps = 40; step_size = 0.01 for linf (Kim: eps 0.04, step 0.01, 40 steps) and
2.5 * eps / steps for l2 (Madry et al.'s rule: enough to cross the ball 2.5 times); a random
start (linf: uniform in the cube; l2: random direction, radius uniform in [0, eps]); 1 restart.

Restarts: each restart begins from a fresh random start and runs only on the samples that no
earlier restart has fooled. Per sample, the first restart that fools the model is kept;
otherwise the final iterate with the highest attack loss. Restart 0 draws the same random
numbers as a single-restart run with the same seed, so more restarts never fool fewer samples.

Keeping any fooling iterate (``keep_fooling=True``; AutoAttack's choice, and what the
evaluation protocol uses): per sample, the first iterate x_0 (the start), x_1, ..., x_{steps-1}
whose prediction is already wrong (targeted: already the target) is returned; samples that none
of these fools get the last iterate, as without the setting. A point fooled mid-way therefore
counts as fooled even if later steps would have carried it back, so the attack is never weaker
per sample than the last iterate alone (with one restart). The check costs nothing: the logits
come from the forward pass of the gradient step.

Early exit (``early_exit=True``, needs ``keep_fooling``): fooled samples leave the working batch,
so later steps forward and backward only the samples still unfooled. The returned points are the
same as with ``keep_fooling`` alone (the per-sample computation and the random draws do not
depend on which other samples are in the batch); only fewer forward passes are made.

Finding which samples are fooled is a host sync on a GPU (the size of the set depends on the
values), so it happens only every ``ACTIVE_SET_EVERY`` steps: that is when fooled samples leave
the working batch (early exit) and when the run ends once every sample is fooled. In between, a
fooled sample stays in the batch, but a mask keeps it at its first fooling iterate, so the
returned points are those of a check at every step.

Expectation over Transformation (``eot_samples=k > 1``; Athalye, Carlini & Wagner 2018, Sec. 4,
"Obfuscated gradients give a false sense of security"): for a randomised model f_t (random
noise, random resizing, dropout left on) the attack ascends E_t[L(f_t(x))], whose gradient
E_t[grad L(f_t(x))] is estimated by the mean of k gradients, each from its own forward pass. A
single pass gives one noisy sample of that gradient, which a random defence can make nearly
useless. The "fooled" check of ``keep_fooling`` uses the mean of the k passes' logits, so a
point does not stop on one lucky draw. The model's randomness comes from torch's global RNG:
seed it for a reproducible result (the evaluation protocol seeds it per batch and attack).
With k = 1 (default) nothing changes.

Shapes: x (N, ...) float in [0, 1], y (N,) int64; returns x_adv shaped like x. The batch is
processed at once; the only Python loops are over restarts and steps.

Example::

    attack = PGD(eps=8 / 255, steps=10, step_size=2 / 255, restarts=2, seed=0)
    x_adv = attack(model, x, y)
    robust = model(x_adv).argmax(1) == y
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from rlrobust.attacks.base import (
    Attack,
    LossFn,
    _per_sample,
    check_labels,
    check_positive_float,
    check_positive_int,
    check_target_mode,
    choose_targets,
    clamp01,
    logits_and_input_gradient,
    normalize_l2,
    project,
    random_start,
)
from rlrobust.attacks.losses import check_loss_name, get_loss
from rlrobust.errors import ConfigError

DEFAULT_LINF_STEP_SIZE = 0.01

#: Steps between two reads of which samples are fooled (``keep_fooling``). Each read is a host
#: sync on a GPU, so reading every other step halves them. A longer period keeps fooled samples
#: in the working batch for longer: on the 8- and 10-step attacks of tests/test_fast_paths.py,
#: early exit saves 16 - 43 % of the forward passes when reading every step, 13 - 36 % every
#: 2 steps and only 0 - 26 % every 5, while a forward pass of a large model costs far more
#: than a sync.
ACTIVE_SET_EVERY = 2


class PGD(Attack):
    """Multi-step projected gradient attack; see the module docstring.

    Args:
        eps: ball radius in pixel units (default 8/255 for linf, 0.5 for l2).
        norm: ``"linf"`` or ``"l2"``.
        steps: gradient steps per restart (default 40).
        step_size: default 0.01 (linf) or 2.5 * eps / steps (l2).
        random_start: start each restart from a random point of the ball (default True).
        restarts: independent runs, combined per sample (default 1).
        loss: ``"ce"`` (default), ``"margin"`` or ``"dlr"``.
        targeted: push towards a target class instead of away from the label.
        target: ``"random"`` (drawn from the seed) or ``"least_likely"`` (from the clean logits).
        keep_fooling: per sample, return the first iterate that fools the model (default False:
            the last iterate).
        early_exit: with ``keep_fooling``, stop iterating on fooled samples (same result, fewer
            forward passes; default False).
        eot_samples: forward/backward passes averaged per step for randomised models (EOT,
            module docstring; default 1: plain PGD).
        seed: seeds the private generator (random starts, random targets).
    """

    name = "pgd"

    def __init__(
        self,
        eps: float | None = None,
        norm: str = "linf",
        steps: int = 40,
        step_size: float | None = None,
        random_start: bool = True,
        restarts: int = 1,
        loss: str = "ce",
        targeted: bool = False,
        target: str = "random",
        keep_fooling: bool = False,
        early_exit: bool = False,
        eot_samples: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(eps=eps, norm=norm, seed=seed)
        self.eot_samples = check_positive_int(eot_samples, "eot_samples")
        if early_exit and not keep_fooling:
            raise ConfigError(
                "early_exit=True needs keep_fooling=True: when the last iterate is the answer, "
                "a point fooled mid-way may recover later, so it cannot stop early; pass "
                "keep_fooling=True as well (or early_exit=False)"
            )
        self.keep_fooling = bool(keep_fooling)
        self.early_exit = bool(early_exit)
        self.steps = check_positive_int(steps, "steps", minimum=0)
        if step_size is None:
            step_size = (
                DEFAULT_LINF_STEP_SIZE
                if self.norm == "linf"
                else 2.5 * self.eps / max(self.steps, 1)
            )
        # With eps = 0 every step is projected away, so any step size is harmless.
        self.step_size = (
            check_positive_float(step_size, "step_size") if self.eps > 0 else float(step_size)
        )
        self.random_start = bool(random_start)
        self.restarts = check_positive_int(restarts, "restarts")
        self.loss = check_loss_name(loss)
        self.targeted = bool(targeted)
        self.target = check_target_mode(target)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        generator = self.generator(x.device)
        goal = y  # the label to move away from, or the target to move towards
        if self.targeted:
            with torch.no_grad():
                clean_logits = model(x)
            check_labels(clean_logits, y)
            goal = choose_targets(clean_logits, y, self.target, generator)
        if self.restarts == 1:
            # One run: its last iterate is the answer, so no extra forward pass is needed to
            # compare restarts (the labels are checked inside the first gradient step).
            if self.keep_fooling:
                return self._keep_fooling_run(model, x, y, goal, generator)[0]
            return self._single_run(model, self._loss_fn(goal), x, y, generator)

        best = x.clone()
        best_loss = torch.full((x.shape[0],), float("-inf"), device=x.device)
        fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(self.restarts):
            todo = (~fooled).nonzero().squeeze(1)
            if todo.numel() == 0:
                break
            if self.keep_fooling:
                x_adv, success = self._keep_fooling_run(
                    model, x[todo], y[todo], goal[todo], generator
                )
            else:
                x_adv = self._single_run(
                    model, self._loss_fn(goal[todo]), x[todo], y[todo], generator
                )
                success = torch.zeros(todo.numel(), dtype=torch.bool, device=x.device)
            # The last iterates still need a forward pass (early exit: only the unfooled ones).
            check = (
                (~success).nonzero().squeeze(1)
                if self.early_exit
                else torch.arange(todo.numel(), device=x.device)
            )
            loss = torch.full((todo.numel(),), float("-inf"), device=x.device)
            if check.numel():
                with torch.no_grad():
                    logits = model(x_adv[check])
                    loss[check] = self._loss_fn(goal[todo][check])(logits, y[todo][check]).float()
                success[check] |= self._success(logits, y[todo][check], goal[todo][check])
            # Everything in `todo` is still unfooled, so a success here is the first one.
            keep = success | (loss > best_loss[todo])
            best[todo[keep]] = x_adv[keep]
            best_loss[todo[keep]] = loss[keep]
            fooled[todo] = success
        return best

    def _loss_fn(self, goal: Tensor) -> LossFn:
        loss_fn = get_loss(self.loss, self.targeted)
        return partial(loss_fn, target=goal) if self.targeted else loss_fn

    def _success(self, logits: Tensor, y: Tensor, goal: Tensor) -> Tensor:
        prediction = logits.argmax(dim=1)
        return prediction == goal if self.targeted else prediction != y

    def _initial_state(self, x: Tensor) -> Tensor | None:
        """Per-sample state carried across steps (none for PGD; momentum in ``MomentumPGD``)."""
        return None

    def _direction(self, grad: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The step direction from the gradient, and the updated state."""
        return (grad.sign() if self.norm == "linf" else normalize_l2(grad)), state

    def _single_run(
        self, model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> Tensor:
        x_adv = random_start(x, self.eps, self.norm, generator) if self.random_start else x
        state = self._initial_state(x)
        if self.steps == 0:
            with torch.no_grad():
                check_labels(model(x), y)
        for step in range(self.steps):
            grad = self._gradient(model, loss_fn, x_adv, y, check=step == 0)[1]
            direction, state = self._direction(grad, state)
            x_adv = clamp01(project(x_adv + self.step_size * direction, x, self.eps, self.norm))
        return x_adv

    def _gradient(
        self, model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, check: bool
    ) -> tuple[Tensor, Tensor]:
        """Logits and input gradient; with EOT the means over ``eot_samples`` passes.

        Athalye et al. 2018, Sec. 4: grad E_t[L(f_t(x))] = E_t[grad L(f_t(x))], estimated by
        the sample mean (the sign / L2 direction of the step does not depend on the 1/k).
        """
        logits, grad = logits_and_input_gradient(model, loss_fn, x, y, check=check)
        if self.eot_samples == 1:
            return logits, grad
        logits, grad = logits.float(), grad.clone()
        for _ in range(self.eot_samples - 1):
            more_logits, more_grad = logits_and_input_gradient(model, loss_fn, x, y)
            logits += more_logits.float()
            grad += more_grad
        return logits / self.eot_samples, grad / self.eot_samples

    def _keep_fooling_run(
        self, model: nn.Module, x: Tensor, y: Tensor, goal: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """One run that stops moving a sample at its first fooling iterate.

        Returns ``(x_adv, fooled)``: ``fooled[i]`` says that one of x_0 .. x_{steps-1} fooled
        sample i, and ``x_adv[i]`` is the first such iterate; the other samples get the last
        iterate, which the caller checks. With ``early_exit`` the gradient passes cover only
        the samples unfooled at the last read of the fooled set (every ``ACTIVE_SET_EVERY``
        steps); without it they cover all (the result is the same).
        """
        n = x.shape[0]
        x_adv = random_start(x, self.eps, self.norm, generator) if self.random_start else x.clone()
        state = self._initial_state(x)
        fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
        rows = torch.arange(n, device=x.device)
        if self.steps == 0:
            with torch.no_grad():
                check_labels(model(x), y)
        for step in range(self.steps):
            if step > 0 and step % ACTIVE_SET_EVERY == 0:
                rows = self._unfooled_rows(rows, fooled)
                if rows.numel() == 0:
                    break
            current = x_adv[rows]
            logits, grad = self._gradient(
                model, self._loss_fn(goal[rows]), current, y[rows], check=step == 0
            )
            # The logits belong to the current iterate: a sample it fools stops here.
            fooled[rows] |= self._success(logits, y[rows], goal[rows])
            moving = _per_sample(~fooled[rows], current)
            carried = None if state is None else state[rows]
            direction, carried_on = self._direction(grad, carried)
            stepped = clamp01(
                project(current + self.step_size * direction, x[rows], self.eps, self.norm)
            )
            # A fooled sample keeps its first fooling iterate (and its state).
            x_adv[rows] = torch.where(moving, stepped, current)
            if state is not None:
                state[rows] = torch.where(moving, carried_on, carried)
        return x_adv, fooled

    def _unfooled_rows(self, rows: Tensor, fooled: Tensor) -> Tensor:
        """The working batch after a read of the fooled set (one host sync): the rows still
        unfooled with early exit, else all of them until every sample is fooled."""
        if self.early_exit:
            return rows[~fooled[rows]]
        return rows[:0] if bool(fooled.all()) else rows

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "steps": self.steps,
            "step_size": self.step_size,
            "random_start": self.random_start,
            "restarts": self.restarts,
            "loss": self.loss,
            "targeted": self.targeted,
            "target": self.target,
            "keep_fooling": self.keep_fooling,
            "early_exit": self.early_exit,
            "eot_samples": self.eot_samples,
        }
