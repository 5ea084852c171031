"""Per-sample losses that attacks maximise.

Every loss maps logits (N, K) and labels y (N,) to a tensor of shape (N,); a larger value means
the sample is closer to (or further into) the attacker's goal. Targeted versions take the target
classes as a third argument, ``(logits, y, target) -> (N,)``.

- ``"ce"``: cross-entropy CE(z, y) (Goodfellow et al. 2015; Madry et al. 2018).
  Targeted: -CE(z, t), i.e. make the target likely.
- ``"margin"``: Carlini & Wagner (2017) margin max_{j != y} z_j - z_y; positive iff misclassified.
  Targeted: z_t - max_{j != t} z_j; positive iff classified as t.
- ``"dlr"``: difference of logits ratio (Croce & Hein 2020, Eq. 6),
  -(z_y - max_{j != y} z_j) / (z_pi1 - z_pi3 + 1e-12) with z_pi the logits sorted in decreasing
  order; invariant to shifting and rescaling the logits. Needs K >= 3.
  Targeted (Croce & Hein 2020, Eq. 7): -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12).
  Needs K >= 4.

Example::

    loss = get_loss("dlr")(logits, y)                       # (N,)
    loss = get_loss("margin", targeted=True)(logits, y, t)  # (N,)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from rlrobust.errors import ConfigError, UnknownNameError

_DLR_EPS = 1e-12  # the constant of Croce & Hein's reference code


def _label_logit_and_best_other(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """z_y and max_{j != y} z_j, each (N,)."""
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    is_label = torch.zeros_like(logits, dtype=torch.bool).scatter(1, y[:, None], True)
    best_other = logits.masked_fill(is_label, float("-inf")).amax(dim=1)
    return z_y, best_other


def _need_classes(logits: Tensor, minimum: int, loss_name: str) -> None:
    if logits.shape[1] < minimum:
        raise ConfigError(
            f"the {loss_name} loss needs at least {minimum} classes, but the model has "
            f"{logits.shape[1]}; use loss='ce' or loss='margin' instead"
        )


def ce_loss(logits: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def margin_loss(logits: Tensor, y: Tensor) -> Tensor:
    _need_classes(logits, 2, "margin")
    z_y, best_other = _label_logit_and_best_other(logits, y)
    return best_other - z_y


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    _need_classes(logits, 3, "dlr")
    z_y, best_other = _label_logit_and_best_other(logits, y)
    z_sorted = logits.sort(dim=1, descending=True).values
    return -(z_y - best_other) / (z_sorted[:, 0] - z_sorted[:, 2] + _DLR_EPS)


def targeted_ce_loss(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    return -F.cross_entropy(logits, target, reduction="none")


def targeted_margin_loss(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    _need_classes(logits, 2, "targeted margin")
    z_t, best_other = _label_logit_and_best_other(logits, target)
    return z_t - best_other


def targeted_dlr_loss(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    _need_classes(logits, 4, "targeted dlr")
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    z_t = logits.gather(1, target[:, None]).squeeze(1)
    z_sorted = logits.sort(dim=1, descending=True).values
    scale = z_sorted[:, 0] - 0.5 * (z_sorted[:, 2] + z_sorted[:, 3]) + _DLR_EPS
    return -(z_y - z_t) / scale


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "ce": ce_loss,
    "margin": margin_loss,
    "dlr": dlr_loss,
}

TARGETED_LOSSES: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
    "ce": targeted_ce_loss,
    "margin": targeted_margin_loss,
    "dlr": targeted_dlr_loss,
}


def check_loss_name(name: str) -> str:
    if name not in LOSSES:
        raise UnknownNameError(f"unknown attack loss {name!r}; choose one of: {', '.join(LOSSES)}")
    return name


def get_loss(name: str, targeted: bool = False) -> Callable[..., Tensor]:
    """The untargeted ``(logits, y)`` or targeted ``(logits, y, target)`` loss called ``name``."""
    check_loss_name(name)
    return TARGETED_LOSSES[name] if targeted else LOSSES[name]
