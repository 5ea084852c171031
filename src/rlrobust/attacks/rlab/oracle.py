"""A query-only view of the victim: probabilities out, no gradients, every query counted.

RLAB is a black-box attack (Sarkar et al. 2024): the agent may only submit inputs and read the
victim's output probabilities. ``QueryOracle`` enforces that: it runs the victim under
``torch.no_grad``, refuses inputs that require gradients, returns detached probabilities, and
counts one query per submitted input, per sample, so reported query counts are exact.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rlrobust.errors import RLRobustError


class GradientAccessError(RLRobustError):
    """Raised when black-box code asks the oracle for gradients."""


class QueryOracle:
    """Wraps ``model``; ``probabilities(x, index)`` answers queries for samples ``index``."""

    def __init__(self, model: nn.Module, batch_size: int) -> None:
        self.__model = model  # name-mangled: black-box code has no handle on the victim
        self.queries = torch.zeros(batch_size, dtype=torch.long)

    def probabilities(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        """Softmax outputs for ``x`` (one query per row, charged to samples ``index``)."""
        if x.requires_grad:
            raise GradientAccessError(
                "the RLAB oracle is query-only: submit inputs that do not require gradients "
                "(call .detach() first); black-box attacks never see gradients"
            )
        if index is None:
            index = torch.arange(x.shape[0])
        if index.numel() != x.shape[0]:
            raise ValueError(f"{x.shape[0]} inputs but {index.numel()} sample indices")
        # The counter lives on the host, and the environment passes host indices: no copy.
        charged = index.to(self.queries.device)
        self.queries.index_add_(0, charged, torch.ones(index.numel(), dtype=torch.long))
        model = self.__model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                probs = torch.softmax(model(x).float(), dim=1)
        finally:
            model.train(was_training)
        return probs

    def gradient(self, *args, **kwargs):
        raise GradientAccessError(
            "the RLAB oracle gives probabilities only; a gradient-based attack (PGD, AutoAttack) "
            "is the tool for white-box gradients"
        )

    @property
    def total_queries(self) -> int:
        return int(self.queries.sum())
