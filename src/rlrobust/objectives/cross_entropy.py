"""Cross-entropy, the supervised baseline every paper compares against (Gupta Table 1, Kim
Table 3, Zou et al.'s "SL" models).

Example::

    loss, stats = cross_entropy_loss(model(x), y)   # stats: accuracy, entropy
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from rlrobust.objectives.core import (
    Stats,
    check_logits_and_labels,
    greedy_actions,
    log_policy,
    predictive_entropy,
    stats_from,
)

#: stats returned by ``cross_entropy_loss``.
CROSS_ENTROPY_STAT_KEYS: tuple[str, ...] = ("accuracy", "entropy")


def cross_entropy_loss(logits: Tensor, y: Tensor) -> tuple[Tensor, Stats]:
    """Mean cross-entropy ``-mean_b log softmax(logits_b)[y_b]``.

    Args:
        logits: (B, C) model outputs (computed in at least float32, even under autocast).
        y: (B,) integer labels.

    Returns:
        ``(loss, stats)``: a scalar loss with grad, and ``accuracy`` (argmax accuracy) and
        ``entropy`` (mean predictive entropy, nats): python floats, or 0-d tensors inside
        ``stats_on_device``.
    """
    check_logits_and_labels(logits, y)
    loss = F.nll_loss(log_policy(logits), y.long())
    detached = logits.detach()
    values = [(greedy_actions(detached) == y).float().mean(), predictive_entropy(detached).float()]
    return loss, stats_from(CROSS_ENTROPY_STAT_KEYS, values)


#: the name used in the design notes; the same function.
cross_entropy = cross_entropy_loss
