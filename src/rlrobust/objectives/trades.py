"""TRADES (Zhang et al. 2019, "Theoretically Principled Trade-off between Robustness and
Accuracy", Eq. 5): the natural loss plus beta times the KL divergence between the predictions
on the clean and on the adversarial input,

    L = L_nat(f(x), y) + beta * (1/B) sum_b KL( p(x_b) || p(x_adv_b) ),    p = softmax(f(.))

The reference code computes the KL with ``KLDivLoss(size_average=False)(log_softmax(f(x_adv)),
softmax(f(x)))`` divided by the batch size; ``trades_kl`` is that quantity. Gradients flow
through both arguments, as in the reference (the clean prediction is not detached).

``L_nat`` is cross-entropy in Zhang et al.; in rlrobust it is the current training objective,
which lets Kim's Table 6 replace it by the policy loss (Eq. 4) after epoch 75.

Example::

    kl = trades_kl(model(x), model(x_adv))                       # scalar
    loss, stats = trades_loss(model(x), model(x_adv), y, beta=6.0)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rlrobust.errors import ConfigError
from rlrobust.objectives.core import Stats, check_logits_and_labels, log_policy, stats_from
from rlrobust.objectives.cross_entropy import cross_entropy_loss

REDUCTIONS = ("batchmean", "none")


def trades_kl(logits_natural: Tensor, logits_adv: Tensor, reduction: str = "batchmean") -> Tensor:
    """KL(softmax(logits_natural) || softmax(logits_adv)) per sample, averaged over the batch.

    Args:
        logits_natural: (B, C) logits on the clean inputs.
        logits_adv: (B, C) logits on the perturbed inputs.
        reduction: ``"batchmean"`` (scalar, the TRADES term) or ``"none"`` ((B,) per sample).

    Computed from log-softmax in at least float32: p * (log p - log q) is 0, not NaN, where p
    underflows, because log-softmax of finite logits is finite.
    """
    if reduction not in REDUCTIONS:
        raise ConfigError(
            f"unknown reduction {reduction!r}; choose one of: {', '.join(REDUCTIONS)}"
        )
    if logits_natural.shape != logits_adv.shape or logits_natural.dim() != 2:
        raise ConfigError(
            f"trades_kl needs two (B, C) logit tensors of the same shape, got "
            f"{tuple(logits_natural.shape)} and {tuple(logits_adv.shape)}; pass model(x) and "
            "model(x_adv)"
        )
    log_p = log_policy(logits_natural)
    log_q = log_policy(logits_adv)
    per_sample = (log_p.exp() * (log_p - log_q)).sum(dim=1)
    return per_sample.mean() if reduction == "batchmean" else per_sample


def trades_loss(
    logits_natural: Tensor,
    logits_adv: Tensor,
    y: Tensor,
    *,
    beta: float = 6.0,
    natural: Callable[..., tuple[Tensor, Stats]] = cross_entropy_loss,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Stats]:
    """``natural(logits_natural, y) + beta * trades_kl(...)``; stats of the natural loss plus
    ``natural_loss`` and ``kl``.

    ``natural`` is any objective; a stochastic one receives ``generator``.
    """
    check_logits_and_labels(logits_natural, y)
    if beta < 0:
        raise ConfigError(f"TRADES beta must be >= 0, got {beta}; Zhang et al. use 6.0")
    if natural is cross_entropy_loss:
        natural_loss, stats = natural(logits_natural, y)
    else:
        natural_loss, stats = natural(logits_natural, y, generator=generator)
    kl = trades_kl(logits_natural, logits_adv)
    terms = stats_from(("natural_loss", "kl"), (natural_loss, kl))
    return natural_loss + beta * kl, {**stats, **terms}
