"""Undoing needless distortion after a success: RLAB's remove action used as a final pass.

Once an input is misclassified, some distorted patches may not be needed. ``refine`` tries, for
each successful sample, to remove each distorted patch (least useful first: the patch whose
distortion lowered the true-class probability least), then to lower each remaining distortion to
a milder severity of the same filter; a change is kept only if the input stays misclassified.
Every trial is one counted query, and the pass stops for a sample when its budget is spent.
"""

from __future__ import annotations

import torch

from rlrobust.attacks.rlab.env import CLEAN, RLABEnv


def _try(env: RLABEnv, rows: torch.Tensor, patch: torch.Tensor, new_ops: torch.Tensor) -> bool:
    """Query the changed patches; keep each change that leaves its input fooled. Any kept?"""
    applied = env.applied[rows].clone()
    applied[torch.arange(rows.numel()), patch] = new_ops
    probs = env.try_states(rows, applied)
    fooled = probs.argmax(dim=1) != env.y[rows]
    env.commit(rows[fooled], applied[fooled], probs[fooled])
    return bool(fooled.any())


def _candidates(env: RLABEnv, patch_rank: int, order: torch.Tensor):
    rows = (env.success & (env.queries_left() > 0)).nonzero().squeeze(1)
    return rows, order[rows, patch_rank]


def _milder(env: RLABEnv) -> torch.Tensor:
    """(K,) the next milder operation of the same filter, or CLEAN where there is none."""
    out = torch.full((env.num_ops,), CLEAN, dtype=torch.long)
    for k in range(1, env.num_ops):
        if env.ops[k - 1].filter == env.ops[k].filter:
            out[k] = k - 1
    return out.to(env.applied.device)


def refine(env: RLABEnv) -> None:
    """Remove, then soften, the distortions of successful samples while they stay fooled."""
    order = env.last_delta.argsort(dim=1, descending=True)  # least useful patch first
    for rank in range(env.grid.num_patches):
        rows, patch = _candidates(env, rank, order)
        keep = env.applied[rows, patch] != CLEAN
        if keep.any():
            _try(env, rows[keep], patch[keep], torch.full_like(patch[keep], CLEAN))
    milder = _milder(env)
    for _ in range(env.num_ops):  # at most one level lower per pass, as many passes as levels
        changed = False
        for rank in range(env.grid.num_patches):
            rows, patch = _candidates(env, rank, order)
            current = env.applied[rows, patch]
            softer = milder[current.clamp(min=0)]
            keep = (current != CLEAN) & (softer != CLEAN)
            if keep.any():
                changed |= _try(env, rows[keep], patch[keep], softer[keep])
        if not changed:
            break
