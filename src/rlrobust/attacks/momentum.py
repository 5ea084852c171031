"""Momentum PGD: the momentum iterative attack MI-FGSM (Dong et al. 2018, "Boosting adversarial
attacks with momentum", Algorithm 1), with projection onto the eps-ball as in PGD.

The gradient is L1-normalised per sample and accumulated with decay ``mu`` (Dong Eq. 6), and the
step follows the accumulated direction (Dong Eq. 7 for linf; for l2 the normalised-direction
version that Dong et al. give in Sec. 3.1):

    g_{t+1} = mu * g_t + grad L(x_t) / ||grad L(x_t)||_1
    linf:   x_{t+1} = clamp01(P_eps(x_t + step_size * sign(g_{t+1})))
    l2:     x_{t+1} = clamp01(P_eps(x_t + step_size * g_{t+1} / ||g_{t+1}||_2))

With ``mu = 0`` this is exactly PGD (the L1 normalisation does not change the sign, nor the L2
direction). Momentum stabilises the update direction and makes the examples transfer better to
other models (Dong et al. 2018, Sec. 3.1), which is why it is the usual base of transfer attacks.

Defaults follow Dong et al.: ``mu = 1.0``, ``steps = 10``, ``step_size = eps / steps`` (so the
iterates can just reach the boundary of the ball), no random start. Losses, targets and restarts
work as in ``PGD``, and so do ``keep_fooling`` and ``early_exit`` (this class only replaces the
step direction).

Shapes: x (N, ...) float in [0, 1], y (N,) int64; returns x_adv shaped like x.

Example::

    attack = MomentumPGD(eps=16 / 255, steps=10, mu=1.0)
    x_adv = attack(surrogate, x, y)
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import torch
from torch import Tensor

from rlrobust.attacks.base import (
    SAFE_DIVISION,
    _per_sample,
    check_eps,
    check_norm,
    check_positive_int,
    normalize_l2,
)
from rlrobust.attacks.pgd import PGD
from rlrobust.errors import ConfigError


class MomentumPGD(PGD):
    """MI-FGSM with projection; see the module docstring.

    Args:
        eps: ball radius in pixel units (default 8/255 for linf, 0.5 for l2).
        norm: ``"linf"`` or ``"l2"``.
        steps: iterations per restart (default 10, as Dong et al.).
        step_size: default ``eps / steps`` (Dong et al.'s alpha = eps / T).
        mu: momentum decay factor (default 1.0, Dong et al.); 0 gives plain PGD.
        random_start: start from a random point of the ball (default False, as Dong et al.).
        restarts, loss, targeted, target, keep_fooling, early_exit, seed: as in ``PGD``.
    """

    name = "mpgd"

    def __init__(
        self,
        eps: float | None = None,
        norm: str = "linf",
        steps: int = 10,
        step_size: float | None = None,
        mu: float = 1.0,
        random_start: bool = False,
        restarts: int = 1,
        loss: str = "ce",
        targeted: bool = False,
        target: str = "random",
        keep_fooling: bool = False,
        early_exit: bool = False,
        seed: int = 0,
    ) -> None:
        if step_size is None:
            # Resolve eps first so that the default step size follows the default eps.
            resolved_eps = check_eps(eps, check_norm(norm))
            steps = check_positive_int(steps, "steps", minimum=0)
            step_size = resolved_eps / max(steps, 1) if resolved_eps > 0 else 0.0
        super().__init__(
            eps=eps,
            norm=norm,
            steps=steps,
            step_size=step_size,
            random_start=random_start,
            restarts=restarts,
            loss=loss,
            targeted=targeted,
            target=target,
            keep_fooling=keep_fooling,
            early_exit=early_exit,
            seed=seed,
        )
        if isinstance(mu, bool) or not isinstance(mu, Real) or not 0 <= mu < float("inf"):
            raise ConfigError(f"mu must be a finite number >= 0, got {mu!r}; Dong et al. use 1.0")
        self.mu = float(mu)

    def _initial_state(self, x: Tensor) -> Tensor:
        return torch.zeros_like(x)  # the accumulated gradient g_0 = 0

    def _direction(self, grad: Tensor, momentum: Tensor) -> tuple[Tensor, Tensor]:
        # Dong Eq. 6: the L1 normalisation puts every step's gradient on the same scale, so
        # the momentum is an average of directions, not dominated by large early gradients.
        l1 = grad.flatten(1).abs().sum(dim=1)
        momentum = self.mu * momentum + grad / _per_sample(l1 + SAFE_DIVISION, grad)
        direction = momentum.sign() if self.norm == "linf" else normalize_l2(momentum)
        return direction, momentum

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "mu": self.mu}
