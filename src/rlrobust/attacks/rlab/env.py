"""RLAB's environment: a batch of episodes with dual add / remove actions (Sarkar et al. 2024).

State of one episode: the clean input x0, the operation applied to each patch (or none), an
optional second operation stacked on top of it (``layers.py``), and the victim's probabilities
for the current input. An action either *adds* operation k (a filter at one severity) to a patch
or *removes* the distortion of a distorted patch, restoring its clean values exactly; the agent
can thereby undo needless distortion. With ``stacking="none"`` (the default) an add acts on a
clean patch only; ``"escalate"`` and ``"stack"`` also let it raise a distorted patch's severity or
put a second filter on top. A removed patch is not distorted again in the same episode, so no
policy can cycle and every episode ends after a bounded number of steps (2 N without stacking).

Reward of a step (the paper's objective, fall in true-class probability with a distortion cost):

    r_t = (p_y(x_t) - p_y(x_{t+1})) - penalty * (||x_{t+1} - x0||_2 - ||x_t - x0||_2)

An episode ends when the victim misclassifies the input (success), when the query budget or the
step budget is spent, or when no action is left (failure). The paper's budget is in steps ("until
the model misclassifies the data or until the budget for the number of maximum allowed steps is
reached"); a step is one agent action and costs one query. Every probability the environment
reads goes through the ``QueryOracle``, which counts it (probes and ``refine`` trials included),
so both budgets can be reported; the query budget includes the first query.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rlrobust.attacks.rlab.filters import Operation, distorted_candidates
from rlrobust.attacks.rlab.layers import check_stacking, op_tables, valid_adds
from rlrobust.attacks.rlab.oracle import QueryOracle
from rlrobust.attacks.rlab.patches import PatchGrid
from rlrobust.errors import ConfigError

CLEAN = -1  # ``applied`` / ``stacked`` value of an undistorted patch (layer)


class RLABEnv:
    """Episodes on ``x`` (B, C, *spatial) in [0, 1] with labels ``y`` (B,)."""

    def __init__(
        self,
        oracle: QueryOracle,
        x: Tensor,
        y: Tensor,
        grid: PatchGrid,
        ops: Sequence[Operation],
        budget: int,
        penalty: float,
        generator: torch.Generator,
        max_steps: int | None = None,
        stacking: str = "none",
    ) -> None:
        if x.dim() != 2 + len(grid.spatial_shape) or tuple(x.shape[2:]) != grid.spatial_shape:
            raise ConfigError(
                f"input shape {tuple(x.shape)} does not match the patch grid's spatial shape "
                f"{grid.spatial_shape}; build the PatchGrid from x.shape[2:]"
            )
        if budget < 2:
            raise ConfigError(f"the query budget must be at least 2 (got {budget})")
        if max_steps is not None and max_steps < 1:
            raise ConfigError(f"the step budget must be at least 1 step (got {max_steps})")
        b, n = x.shape[0], grid.num_patches
        self.oracle, self.grid, self.ops = oracle, grid, list(ops)
        self.budget, self.penalty = int(budget), float(penalty)
        self.max_steps = None if max_steps is None else int(max_steps)
        self.stacking = check_stacking(stacking)
        self.generator = generator
        self.x0, self.y = x.detach(), y
        self.num_ops = len(self.ops)
        self.same_filter, self.stronger = op_tables(self.ops, x.device)
        self.candidates = distorted_candidates(self.x0, self.ops, generator)  # (B, K, C, *S)
        self.applied = torch.full((b, n), CLEAN, dtype=torch.long, device=x.device)
        self.stacked = torch.full((b, n), CLEAN, dtype=torch.long, device=x.device)
        self.tabu = torch.zeros(b, n, dtype=torch.bool, device=x.device)
        self.last_delta = torch.zeros(b, n, device=x.device)  # observed change of p_y per patch
        self.steps = torch.zeros(b, dtype=torch.long)
        self.x = self.x0.clone()
        # stack mode: the values of the top layer, and each filter applied to the current input
        # (what a stacked filter sees), recomputed lazily after the input changed
        self.top = self.x0.clone() if self.stacking == "stack" else None
        self._on_current: Tensor | None = None
        self._on_current_fresh = torch.zeros(b, dtype=torch.bool, device=x.device)
        self.probs = oracle.probabilities(self.x)
        self.p_start = self.true_prob()
        self.correct_at_start = self.predictions() == y
        self.success = torch.zeros(b, dtype=torch.bool, device=x.device)
        self.done = ~self.correct_at_start  # already-wrong inputs are not attacked
        self.distortion = torch.zeros(b, device=x.device)
        self._done_if_stuck()

    # --- what the agent may read -----------------------------------------------------------

    def true_prob(self) -> Tensor:
        return self.probs.gather(1, self.y[:, None]).squeeze(1)

    def predictions(self) -> Tensor:
        return self.probs.argmax(dim=1)

    def runner_up_prob(self) -> Tensor:
        """The largest probability of a wrong class."""
        return self.probs.scatter(1, self.y[:, None], -1.0).max(dim=1).values

    def queries_left(self) -> Tensor:
        return self.budget - self.oracle.queries.to(self.x.device)

    def valid_actions(self) -> Tensor:
        """(B, N, K + 1) bool: adds (k < K) allowed by the stacking mode (always on clean,
        never-removed patches); remove (k = K) on distorted ones; nothing for finished episodes."""
        adds = valid_adds(
            self.stacking,
            self.applied,
            self.stacked,
            self.tabu,
            self.same_filter,
            self.stronger,
            CLEAN,
        )
        valid = torch.cat([adds, (self.applied != CLEAN)[..., None]], dim=2)
        return valid & ~self.done[:, None, None]

    @property
    def active(self) -> Tensor:
        return ~self.done

    # --- inputs -------------------------------------------------------------------------------

    def compose(self, applied: Tensor, rows: Tensor, stacked: Tensor | None = None) -> Tensor:
        """The inputs of samples ``rows`` with operation ``applied[i, p]`` on patch p (and the
        stored top layer where ``stacked[i, p]`` is set)."""
        ids = self.grid.patch_ids.to(applied.device).flatten()
        x0 = self.x0[rows].flatten(2)
        per_element = applied[:, ids]  # (R, S)
        cand = self.candidates[rows].flatten(3)  # (R, K, C, S)
        out = x0
        for k in range(self.num_ops):
            out = torch.where((per_element == k)[:, None, :], cand[:, k], out)
        if stacked is not None and self.top is not None:
            on_top = (stacked[:, ids] != CLEAN)[:, None, :]
            out = torch.where(on_top, self.top[rows].flatten(2), out)
        return out.view_as(self.x0[rows])

    def on_current(self, rows: Tensor) -> Tensor:
        """(R, K, C, *S): every operation applied to the *current* inputs of ``rows``, the values
        a stacked filter puts on top (cached until the row's input changes)."""
        if self._on_current is None:
            self._on_current = torch.empty_like(self.candidates)
        stale = rows[~self._on_current_fresh[rows]]
        if stale.numel():
            self._on_current[stale] = distorted_candidates(self.x[stale], self.ops, self.generator)
            self._on_current_fresh[stale] = True
        return self._on_current[rows]

    def action_inputs(self, rows: Tensor, patch: Tensor, op: Tensor) -> Tensor:
        """The inputs of ``rows`` after action (``patch``, ``op``) each, without acting; ``op``
        = K removes. Only the patch changes: to its clean values (remove), to operation ``op``
        on the clean input (add or escalate) or to ``op`` on the current input (stack).

        A stacked filter is valid with ``stacking="stack"`` only (``step`` and ``try_actions``
        refuse it otherwise), so only that mode looks for one: a host sync on a GPU."""
        removing, stacking = self._kinds(rows, patch, op)
        opc = op.clamp(max=self.num_ops - 1)
        source = torch.where(
            removing.view(-1, *[1] * (self.x0.dim() - 1)),
            self.x0[rows],
            self.candidates[rows, opc],
        )
        if self.stacking == "stack" and stacking.any():
            s = stacking.nonzero().squeeze(1)
            source[s] = self.on_current(rows[s])[torch.arange(s.numel()), opc[s]]
        region = self.grid.patch_ids.to(patch.device).flatten()[None, :] == patch[:, None]
        region = region.view(-1, 1, *self.grid.spatial_shape)
        return torch.where(region, source, self.x[rows])

    def _kinds(self, rows: Tensor, patch: Tensor, op: Tensor) -> tuple[Tensor, Tensor]:
        """(removing, stacking) bool per action; the rest add to or escalate the base layer."""
        base = self.applied[rows, patch]
        removing = op == self.num_ops
        same = self.same_filter[base.clamp(min=0), op.clamp(max=self.num_ops - 1)]
        return removing, ~removing & (base != CLEAN) & ~same

    def try_actions(self, rows: Tensor, patch: Tensor, op: Tensor) -> Tensor:
        """Query the inputs after each action without acting; (R, classes) probabilities."""
        if self.stacking != "stack" and self._kinds(rows, patch, op)[1].any():
            raise ValueError("a stacked filter is only valid with stacking='stack'")
        return self.oracle.probabilities(self.action_inputs(rows, patch, op), rows.cpu())

    def try_states(self, rows: Tensor, applied: Tensor, stacked: Tensor | None = None) -> Tensor:
        """Query candidate patch assignments without committing; (R, classes) probabilities."""
        return self.oracle.probabilities(self.compose(applied, rows, stacked), rows.cpu())

    # --- acting -----------------------------------------------------------------------------

    def step(self, actions: Tensor) -> Tensor:
        """Apply one action per active sample (``actions`` (B,), flat index p * (K + 1) + k;
        ignored for finished samples). Returns the (B,) rewards (0 for finished samples).

        The step reads the device once (see ``_read_step``); the query and step counters,
        which live on the host, are charged through the host copy of the active rows."""
        charged, all_valid = self._read_step(actions)
        rewards = torch.zeros(self.x0.shape[0], device=self.x0.device)
        if charged.numel() == 0:
            return rewards
        if not all_valid:
            raise ValueError("an action is not valid in its state; mask with valid_actions()")
        rows = charged.to(self.x0.device)
        a = actions[rows]
        patch, op = a // (self.num_ops + 1), a % (self.num_ops + 1)
        x_new = self.action_inputs(rows, patch, op)
        removing, stacking = self._kinds(rows, patch, op)
        on_base = ~removing & ~stacking
        r = torch.arange(rows.numel(), device=rows.device)
        applied, stacked = self.applied[rows].clone(), self.stacked[rows].clone()
        applied[r, patch] = torch.where(
            removing, CLEAN, torch.where(on_base, op, applied[r, patch])
        )
        stacked[r, patch] = torch.where(
            stacking, op, torch.where(removing, CLEAN, stacked[r, patch])
        )
        if self.top is not None:
            self.top[rows] = torch.where(self._region(patch, stacking), x_new, self.top[rows])
        self.tabu[rows, patch] |= removing
        old_p, old_d = self.true_prob()[rows], self.distortion[rows]
        probs = self.oracle.probabilities(x_new, charged)
        self._set_state(rows, applied, probs, stacked, x_new)
        new_p, new_d = self.true_prob()[rows], self.distortion[rows]
        self.last_delta[rows, patch] = new_p - old_p
        self.steps[charged] += 1
        rewards[rows] = (old_p - new_p) - self.penalty * (new_d - old_d)
        self._finish(rows, charged)
        return rewards

    def _read_step(self, actions: Tensor) -> tuple[Tensor, bool]:
        """The rows of the active episodes, on the host, and whether each of them has a valid
        action, read from the device in one transfer: on a GPU every read makes the host wait
        for the device, and the rows decide what the step queries and charges."""
        valid = self.valid_actions().flatten(1)
        index = actions.long()
        in_range = (index >= 0) & (index < valid.shape[1])
        chosen = valid.gather(1, index.clamp(0, valid.shape[1] - 1)[:, None]).squeeze(1)
        allowed = (in_range & chosen) | self.done
        *active, all_valid = torch.cat([self.active, allowed.all()[None]]).tolist()
        rows = torch.tensor([i for i, on in enumerate(active) if on], dtype=torch.long)
        return rows, all_valid

    def _region(self, patch: Tensor, keep: Tensor) -> Tensor:
        """(R, 1, *S) bool: the elements of ``patch[i]`` where ``keep[i]``."""
        ids = self.grid.patch_ids.to(patch.device).flatten()[None, :]
        region = (ids == patch[:, None]) & keep[:, None]
        return region.view(-1, 1, *self.grid.spatial_shape)

    def _set_state(
        self,
        rows: Tensor,
        applied: Tensor,
        probs: Tensor,
        stacked: Tensor | None = None,
        x: Tensor | None = None,
    ) -> None:
        """Adopt the patch assignments of ``rows`` and the victim's (already queried) answer."""
        if stacked is None:
            stacked = self.stacked[rows]
        if x is None:
            x = self.compose(applied, rows, stacked)
        self.applied[rows] = applied
        self.stacked[rows] = stacked
        self.x[rows] = x
        self._on_current_fresh[rows] = False
        self.probs[rows] = probs
        self.distortion[rows] = (x - self.x0[rows]).flatten(1).norm(dim=1)

    def commit(
        self, rows: Tensor, applied: Tensor, probs: Tensor, stacked: Tensor | None = None
    ) -> None:
        """Adopt states already queried with ``try_states`` (no further query)."""
        if rows.numel():
            self._set_state(rows, applied, probs, stacked)

    def stop(self, rows: Tensor) -> None:
        """End the episodes of ``rows`` now (an agent that cannot afford its next move)."""
        self.done[rows] = True

    def _finish(self, rows: Tensor, charged: Tensor) -> None:
        """End the episodes of ``rows`` (``charged``: the same rows on the host) that are
        fooled, out of queries or out of steps, and those with no action left."""
        fooled = self.predictions()[rows] != self.y[rows]
        self.success[rows] |= fooled
        out_of_steps = torch.zeros_like(fooled)
        if self.max_steps is not None:
            out_of_steps = self.steps[charged].to(fooled.device) >= self.max_steps
        self.done[rows] |= fooled | (self.queries_left()[rows] <= 0) | out_of_steps
        self._done_if_stuck()

    def _done_if_stuck(self) -> None:
        self.done |= ~self.valid_actions().flatten(1).any(dim=1)

    # --- results ----------------------------------------------------------------------------

    def patch_masks(self) -> Tensor:
        """(B, N) bool: the patches distorted now."""
        return self.applied != CLEAN

    def element_masks(self) -> Tensor:
        """(B, *spatial) bool: the localisation mask, the union of distorted patches."""
        return self.grid.masks(self.patch_masks())
