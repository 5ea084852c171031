"""Kim's two-stage schedule.

Kim (seed 001, "Datasets and Model"): first warm up with the alternative loss (Eq. 12) with
actions sampled from the policy; once test accuracy passes 80 %, train with the original policy
loss (Eq. 4) "without randomness" (greedy actions). The ablation (Table 4) shows that Eq. 4 alone
does not train at all, which is why the warm-up exists.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TwoStageState:
    """Which objective is active; ``switch_epoch`` is the first (1-based) epoch of the main stage."""

    enabled: bool
    threshold: float
    stage: str = "warmup"
    switch_epoch: int | None = None

    def __post_init__(self) -> None:
        if not self.enabled:
            self.stage = "main"

    def update(self, finished_epoch: int, heldout_accuracy: float) -> bool:
        """Call after 1-based epoch ``finished_epoch``; returns True when the switch happens now."""
        if self.stage == "warmup" and heldout_accuracy >= self.threshold:
            self.stage = "main"
            self.switch_epoch = finished_epoch + 1
            return True
        return False

    def to_dict(self) -> dict:
        return {"stage": self.stage, "switch_epoch": self.switch_epoch}

    def restore(self, record: dict) -> None:
        self.stage = record["stage"]
        self.switch_epoch = record["switch_epoch"]
