"""Constraint audit: did every adversarial example stay inside the threat model?

A result whose examples leave the eps-ball, leave [0, 1] or contain NaN is not a robustness
number, so the audit is stored in every result record and a failed audit is printed loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

TOLERANCE = 1e-5  # float32 rounding after projection and clamping


def perturbation_norms(x_adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    delta = (x_adv - x).flatten(1)
    return delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)


@dataclass
class AuditAccumulator:
    """Collects, batch by batch, the worst case of each constraint for one attack."""

    eps: float
    norm: str
    max_perturbation: float = 0.0
    min_value: float = float("inf")
    max_value: float = float("-inf")
    nan_count: int = 0
    outside_ball: int = 0
    checked: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, x_adv: torch.Tensor, x: torch.Tensor) -> None:
        if x_adv.numel() == 0:
            return
        nan_rows = torch.isnan(x_adv.flatten(1)).any(dim=1)
        self.nan_count += int(nan_rows.sum())
        finite = x_adv[~nan_rows]
        if finite.numel():
            norms = perturbation_norms(finite, x[~nan_rows], self.norm)
            self.max_perturbation = max(self.max_perturbation, float(norms.max()))
            self.outside_ball += int((norms > self.eps + TOLERANCE).sum())
            self.min_value = min(self.min_value, float(finite.min()))
            self.max_value = max(self.max_value, float(finite.max()))
        self.checked += len(x_adv)

    def result(self) -> dict:
        problems = []
        if self.nan_count:
            problems.append(f"{self.nan_count} adversarial examples contain NaN")
        if self.outside_ball:
            problems.append(
                f"{self.outside_ball} examples leave the {self.norm} ball of radius {self.eps} "
                f"(max perturbation {self.max_perturbation:.6g})"
            )
        if self.checked and (self.min_value < -TOLERANCE or self.max_value > 1 + TOLERANCE):
            problems.append(
                f"pixel values outside [0, 1]: min {self.min_value:.6g}, max {self.max_value:.6g}"
            )
        return {
            "checked": self.checked,
            "norm": self.norm,
            "eps": self.eps,
            "max_perturbation": self.max_perturbation,
            "min_value": self.min_value if self.checked else None,
            "max_value": self.max_value if self.checked else None,
            "nan_count": self.nan_count,
            "outside_ball": self.outside_ball,
            "passed": not problems,
            "problems": problems,
        }
