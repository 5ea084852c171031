"""Robust accuracy against eps: one evaluation per budget, same points, same attack settings.

A curve that does not fall towards 0 as eps grows is a classic sign of gradient masking
(Athalye et al. 2018): at eps = 1 (linf) every image can be turned into any other.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlrobust.data import ImageData
from rlrobust.evaluation.protocol import evaluate


def robustness_curve(
    model: torch.nn.Module,
    data: ImageData,
    eps_values: Sequence[float],
    *,
    attack: str = "pgd",
    norm: str = "linf",
    settings: dict | None = None,
    batch_size: int = 500,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict:
    """Worst-case accuracy of ``attack`` at each eps; returns a JSON-able record."""
    settings = dict(settings or {})
    points = []
    clean = None
    for eps in eps_values:
        spec = {"name": attack, "settings": {**settings, "eps": float(eps), "norm": norm}}
        if attack == "pgd" and "step_size" not in settings:
            steps = settings.get("steps", 40)
            # A step of 2.5 eps / steps reaches the ball's boundary from any start (Madry et al.).
            spec["settings"]["step_size"] = max(2.5 * float(eps) / steps, 1e-6)
        record = evaluate(
            model, data, [spec], batch_size=batch_size, device=device, progress=progress
        )
        clean = record["clean_accuracy"]
        points.append(
            {
                "eps": float(eps),
                "accuracy": record["robust_accuracy"],
                "audit_passed": record["audit_passed"],
            }
        )
    return {
        "attack": attack,
        "norm": norm,
        "settings": settings,
        "clean_accuracy": clean,
        "n_examples": len(data),
        "points": points,
    }
