"""Training steps: what one batch contributes to the loss.

The epoch loop (``loop.py``) is the same for every method; a *step* decides how a batch becomes
a loss. ``ObjectiveStep`` is plain training (the objective on clean inputs). Adversarial methods
(adversarial training, TRADES, RL-adv, L2L) are steps too, so they share the loop, the
checkpoints and ``--resume``.

A step is called as ``step(model, x, y, objective, epoch=..., generator=...)`` and returns
``(loss, stats)`` like an objective. ``objective`` is the objective active this epoch (Kim's
two-stage schedule may switch it), so an adversarial step applies whichever objective is current.
Steps with state of their own (L2L's attacker network and its optimiser) implement
``checkpoint_state() -> (tensors, meta)`` and ``restore_checkpoint_state(tensors, meta)``.
"""

from __future__ import annotations

import torch


class ObjectiveStep:
    """Plain training: ``objective(model(x), y)``."""

    name = "none"

    def __call__(self, model, x, y, objective, *, epoch: int, generator: torch.Generator | None):
        return objective(model(x), y, generator=generator)

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict]:
        return {}, {}

    def restore_checkpoint_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        return None
