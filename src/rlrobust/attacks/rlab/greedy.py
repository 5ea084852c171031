"""The greedy patch-sensitivity baseline of RLAB.

RLAB's public code scores patches by sensitivity before acting. By default this agent spends
N x K' queries probing every patch alone with each probed operation (by default the strongest
level of each filter), ranks patches by the fall in true-class probability their best operation
causes, and adds them in that order, one query per step, until the victim is fooled; ``refine``
then removes and softens needless distortions.

With ``reprobe=True`` it re-scores instead at *every* step: from the current input, it queries
each valid move with a probed operation (an add on a clean patch and, with ``stacking``, an
escalation or a stacked filter on a distorted one) and takes the move with the largest fall in
true-class probability. That is one query per candidate move plus one per step, so a step costs
up to N x K' + 1 queries; a sample that cannot afford a full round stops (a failure). It has no
parameters to learn, so it is the baseline a learned policy must beat on queries.
"""

from __future__ import annotations

import torch

from rlrobust.attacks.rlab.env import CLEAN, RLABEnv
from rlrobust.errors import ConfigError


class GreedyAgent:
    name = "greedy"

    def __init__(self, probe_levels: str = "strongest", reprobe: bool = False) -> None:
        if probe_levels not in {"strongest", "all"}:
            raise ConfigError(f"probe_levels must be 'strongest' or 'all', not {probe_levels!r}")
        self.probe_levels, self.reprobe = probe_levels, bool(reprobe)

    def probe_ops(self, env: RLABEnv) -> list[int]:
        if self.probe_levels == "all":
            return list(range(env.num_ops))
        strongest: dict[str, int] = {}
        for k, op in enumerate(env.ops):
            if op.filter not in strongest or op.level > env.ops[strongest[op.filter]].level:
                strongest[op.filter] = k
        return sorted(strongest.values())

    def run(self, env: RLABEnv, generator: torch.Generator | None = None) -> None:
        """Probe, then act in order of sensitivity (deterministic: no generator used)."""
        probes = self.probe_ops(env)
        n = env.grid.num_patches
        needed = n * len(probes) + 2
        if needed > env.budget:
            raise ConfigError(
                f"the greedy agent probes {n} patches x {len(probes)} operations and needs a "
                f"budget of at least {needed} queries (got {env.budget}): raise the budget, use "
                "larger patches or fewer filters"
            )
        if self.reprobe:
            self._run_reprobing(env, probes)
        else:
            self._run_once(env, probes)

    def _run_once(self, env: RLABEnv, probes: list[int]) -> None:
        rows = env.active.nonzero().squeeze(1)
        if rows.numel() == 0:
            return
        n = env.grid.num_patches
        drops = self._probe(env, rows, probes)  # (R, N, K')
        best_drop, best_probe = drops.max(dim=2)
        best_op = torch.tensor(probes, device=drops.device)[best_probe]  # (R, N)
        env.last_delta[rows] = -best_drop
        order = best_drop.argsort(dim=1, descending=True)
        actions = torch.zeros(env.x0.shape[0], dtype=torch.long, device=env.x0.device)
        for rank in range(n):
            if not env.active[rows].any():
                break
            patch = order[:, rank]
            op = best_op[torch.arange(rows.numel()), patch]
            actions[rows] = patch * (env.num_ops + 1) + op
            env.step(actions)

    def _run_reprobing(self, env: RLABEnv, probes: list[int]) -> None:
        """Each step: query every valid probed move from the current input, take the best."""
        k1 = env.num_ops + 1
        probe_ids = torch.tensor(probes, device=env.x0.device)
        while env.active.any():
            valid = env.valid_actions()[:, :, probe_ids]  # (B, N, K'), False for finished rows
            cost = valid.flatten(1).sum(dim=1)
            # no probed move left, or no budget for a full round and the step: the episode ends
            broke = env.active & ((cost == 0) | (cost + 1 > env.queries_left()))
            env.stop(broke.nonzero().squeeze(1))
            valid[broke] = False
            drops = torch.full(valid.shape, -torch.inf, device=env.x0.device)
            for patch in range(env.grid.num_patches):
                for j, k in enumerate(probes):
                    rows = valid[:, patch, j].nonzero().squeeze(1)
                    if rows.numel() == 0:
                        continue
                    p = torch.full_like(rows, patch)
                    probs = env.try_actions(rows, p, torch.full_like(rows, k))
                    p_true = probs.gather(1, env.y[rows, None]).squeeze(1)
                    drops[rows, patch, j] = env.true_prob()[rows] - p_true
            if not env.active.any():
                break
            best = drops.flatten(1).argmax(dim=1)  # ties: the lowest patch, then operation
            patch, j = best // len(probes), best % len(probes)
            env.step(patch * k1 + probe_ids[j])

    @staticmethod
    def _probe(env: RLABEnv, rows: torch.Tensor, probes: list[int]) -> torch.Tensor:
        """Fall of p_y when each patch alone carries each probed operation."""
        r, n = rows.numel(), env.grid.num_patches
        drops = torch.empty(r, n, len(probes), device=env.x0.device)
        op_ids = torch.tensor(probes, device=env.x0.device)
        repeated = rows.repeat(len(probes))  # all probed operations of one patch in one batch
        labels = env.y[repeated]
        for patch in range(n):
            applied = torch.full((repeated.numel(), n), CLEAN, dtype=torch.long, device=rows.device)
            applied[:, patch] = op_ids.repeat_interleave(r)
            probs = env.try_states(repeated, applied)
            p_true = probs.gather(1, labels[:, None]).squeeze(1)
            drops[:, patch] = (env.p_start[repeated] - p_true).view(len(probes), r).T
        return drops
