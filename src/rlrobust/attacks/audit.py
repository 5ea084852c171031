"""Constraint audit: did every adversarial example stay inside the threat model?

It lives with the attacks (whose outputs it checks) so that both the evaluation protocol and the
``saved`` attack (which replays examples someone else made) can use it.

A result whose examples leave the eps-ball, leave [0, 1] or contain NaN, or whose model answers
with NaN or inf logits, is not a robustness number, so the audit is stored in every result
record and a failed audit is printed loudly.
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
    nonfinite_outputs: int = 0
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

    def add_outputs(self, logits: torch.Tensor) -> None:
        """Count the inputs whose logits hold NaN or inf: their verdict (an argmax over NaN)
        means nothing, and a model that outputs NaN would otherwise look perfectly robust."""
        if logits.numel():
            self.nonfinite_outputs += int((~torch.isfinite(logits.flatten(1))).any(dim=1).sum())

    def result(self) -> dict:
        problems = []
        if self.nonfinite_outputs:
            problems.append(
                f"the model returned NaN or inf logits for {self.nonfinite_outputs} adversarial "
                "inputs; their verdicts mean nothing: fix the model (or its weights) first"
            )
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
            "nonfinite_outputs": self.nonfinite_outputs,
            "passed": not problems,
            "problems": problems,
        }
