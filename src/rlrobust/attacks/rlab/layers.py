"""What may be done to an already-distorted patch: escalate its severity, or stack a filter on it.

The paper's agent acts "at each step" on patches and filters (Sarkar et al. 2024, Sec. 3); the
issue that asked for this module describes the public code as stacking or escalating
distortions on a patch that is already distorted. ``STACKING`` names the three choices offered:

- ``"none"`` (default, backward compatible): a patch is distorted once; an add acts on a clean
  patch only.
- ``"escalate"``: an add of a *stronger level of the same filter* on a distorted patch replaces
  its level (level 1 -> 2 -> 3, never back down: softening is ``refine``'s job).
- ``"stack"``: escalation as above, and an add of a *different filter* on a distorted patch puts
  that filter on top of the patch's current values (at most one layer on top; neither layer
  changes afterwards, except by a remove).

A remove always restores the patch's clean values exactly, whatever layers it had. Every move is
one-way (clean -> base -> stronger base -> base + top -> removed for good), so no policy can
cycle and an episode ends after a bounded number of steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rlrobust.attacks.rlab.filters import Operation
from rlrobust.errors import ConfigError

STACKING = ("none", "escalate", "stack")


def check_stacking(mode: str) -> str:
    if mode not in STACKING:
        raise ConfigError(f"stacking must be one of {', '.join(STACKING)}, not {mode!r}")
    return mode


def op_tables(ops: Sequence[Operation], device: torch.device) -> tuple[Tensor, Tensor]:
    """(K, K) bool tables ``same[a, b]``: a and b are levels of one filter; ``stronger[a, b]``:
    b is a stronger level of a's filter than a."""
    names = [o.filter for o in ops]
    levels = torch.tensor([o.level for o in ops], dtype=torch.float64)
    same = torch.tensor([[a == b for b in names] for a in names], dtype=torch.bool)
    stronger = same & (levels[None, :] > levels[:, None])
    return same.to(device), stronger.to(device)


def valid_adds(
    mode: str,
    applied: Tensor,
    stacked: Tensor,
    tabu: Tensor,
    same: Tensor,
    stronger: Tensor,
    clean: int,
) -> Tensor:
    """(B, N, K) bool: which add of operation k is allowed on each patch under ``mode``."""
    num_ops = same.shape[0]
    fresh = (applied == clean) & ~tabu
    valid = fresh[..., None].expand(-1, -1, num_ops)
    if mode == "none":
        return valid
    base = applied.clamp(min=0)
    open_top = (applied != clean) & (stacked == clean)  # distorted, nothing on top yet
    valid = valid | (open_top[..., None] & stronger[base])
    if mode == "stack":
        valid = valid | (open_top[..., None] & ~same[base])
    return valid
