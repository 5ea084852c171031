"""Undoing needless distortion after a success: RLAB's remove action used as a final pass.

Once an input is misclassified, some distorted patches may not be needed. ``refine`` tries, for
each successful sample, to remove each distorted patch (least useful first: the patch whose
last action lowered the true-class probability least), then to drop each stacked top layer, then
to lower each remaining single-layer distortion to a milder severity of the same filter; a change
is kept only if the input stays misclassified. Every trial is one counted query (not a step: it
is our post-processing, not an agent action), and the pass stops for a sample when its query
budget is spent.
"""

from __future__ import annotations

import torch

from rlrobust.attacks.rlab.env import CLEAN, RLABEnv


def _try(
    env: RLABEnv,
    rows: torch.Tensor,
    patch: torch.Tensor,
    new_base: torch.Tensor,
    new_top: torch.Tensor,
) -> bool:
    """Query the changed patches; keep each change that leaves its input fooled. Any kept?"""
    r = torch.arange(rows.numel(), device=rows.device)
    applied, stacked = env.applied[rows].clone(), env.stacked[rows].clone()
    applied[r, patch], stacked[r, patch] = new_base, new_top
    probs = env.try_states(rows, applied, stacked)
    fooled = probs.argmax(dim=1) != env.y[rows]
    env.commit(rows[fooled], applied[fooled], probs[fooled], stacked[fooled])
    return bool(fooled.any())


def _candidates(env: RLABEnv, patch_rank: int, order: torch.Tensor):
    rows = (env.success & (env.queries_left() > 0)).nonzero().squeeze(1)
    return rows, order[rows, patch_rank]


def _milder(env: RLABEnv) -> torch.Tensor:
    """(K,) the next milder operation of the same filter, or CLEAN where there is none."""
    out = torch.full((env.num_ops,), CLEAN, dtype=torch.long)
    levels = [op.level for op in env.ops]
    for k, op in enumerate(env.ops):
        milder = [j for j, o in enumerate(env.ops) if o.filter == op.filter and o.level < op.level]
        if milder:
            out[k] = max(milder, key=lambda j: levels[j])
    return out.to(env.applied.device)


def refine(env: RLABEnv) -> None:
    """Remove, then strip top layers, then soften, while the successful samples stay fooled."""
    order = env.last_delta.argsort(dim=1, descending=True)  # least useful patch first
    for rank in range(env.grid.num_patches):
        rows, patch = _candidates(env, rank, order)
        keep = env.applied[rows, patch] != CLEAN
        if keep.any():
            clean = torch.full_like(patch[keep], CLEAN)
            _try(env, rows[keep], patch[keep], clean, clean)
    for rank in range(env.grid.num_patches):
        rows, patch = _candidates(env, rank, order)
        keep = env.stacked[rows, patch] != CLEAN
        if keep.any():
            base = env.applied[rows[keep], patch[keep]]
            _try(env, rows[keep], patch[keep], base, torch.full_like(base, CLEAN))
    milder = _milder(env)
    for _ in range(env.num_ops):  # at most one level lower per pass, as many passes as levels
        changed = False
        for rank in range(env.grid.num_patches):
            rows, patch = _candidates(env, rank, order)
            current = env.applied[rows, patch]
            softer = milder[current.clamp(min=0)]
            single = env.stacked[rows, patch] == CLEAN  # a top layer hides the base's level
            keep = (current != CLEAN) & (softer != CLEAN) & single
            if keep.any():
                top = torch.full_like(softer[keep], CLEAN)
                changed |= _try(env, rows[keep], patch[keep], softer[keep], top)
        if not changed:
            break
