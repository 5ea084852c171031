"""RLAB's attack metrics: success rate, queries, and L0 / L2 / Linf distortion.

Only inputs the victim classified correctly before the attack count ("attacked"). Queries (and,
for RLAB, steps: agent actions, the paper's budget unit) are given over successful inputs (the usual black-box convention) and over all attacked inputs
(failures spend the whole budget). Distortions are over successful inputs; L0 counts changed
spatial elements (any channel), also as a fraction of the input's elements.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _stats(values: Tensor) -> dict[str, float]:
    if values.numel() == 0:
        return {"mean": math.nan, "median": math.nan}
    v = values.float()
    return {"mean": float(v.mean()), "median": float(v.median())}


def distortions(x_adv: Tensor, x: Tensor) -> dict[str, Tensor]:
    """Per-input (N,) L0 (changed elements), L0 fraction, L2 and Linf of ``x_adv - x``."""
    delta = (x_adv - x).float()
    changed = delta.abs().amax(dim=1) > 0  # (N, *S): any channel changed
    l0 = changed.flatten(1).sum(dim=1)
    return {
        "l0": l0,
        "l0_fraction": l0.float() / changed[0].numel(),
        "l2": delta.flatten(1).norm(dim=1),
        "linf": delta.flatten(1).abs().amax(dim=1),
    }


def attack_metrics(
    x_adv: Tensor,
    x: Tensor,
    success: Tensor,
    attacked: Tensor,
    queries: Tensor,
    steps: Tensor | None = None,
) -> dict:
    """The summary dict of one attack on inputs ``x`` (N, C, *S); ``steps`` (RLAB's agent
    actions per input, each one query among ``queries``) adds ``steps_success`` / ``steps_all``."""
    n = int(attacked.sum())
    ok = success & attacked
    dist = distortions(x_adv[ok], x[ok]) if ok.any() else None
    out = {
        "n_inputs": int(x.shape[0]),
        "n_attacked": n,
        "n_success": int(ok.sum()),
        "success_rate": float(ok.sum()) / n if n else math.nan,
        "queries_success": _stats(queries[ok.cpu()]),
        "queries_all": _stats(queries[attacked.cpu()]),
    }
    if steps is not None:
        out["steps_success"] = _stats(steps[ok.cpu()])
        out["steps_all"] = _stats(steps[attacked.cpu()])
    for name in ("l0", "l0_fraction", "l2", "linf"):
        out[name] = _stats(dist[name]) if dist else _stats(torch.empty(0))
    return out
