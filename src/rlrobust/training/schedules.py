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

    def update(
        self, finished_epoch: int, heldout_accuracy: float, at_epoch: int | None = None
    ) -> bool:
        """Call after 1-based epoch ``finished_epoch``; returns True when the switch happens now.

        With ``at_epoch`` the switch happens after that epoch whatever the accuracy (Kim, Table 6:
        TRADES with cross-entropy for 75 epochs, then Eq. 4 with greedy actions).
        """
        due = heldout_accuracy >= self.threshold if at_epoch is None else finished_epoch >= at_epoch
        if self.stage == "warmup" and due:
            self.stage = "main"
            self.switch_epoch = finished_epoch + 1
            return True
        return False

    def to_dict(self) -> dict:
        return {"stage": self.stage, "switch_epoch": self.switch_epoch}

    def restore(self, record: dict) -> None:
        self.stage = record["stage"]
        self.switch_epoch = record["switch_epoch"]
