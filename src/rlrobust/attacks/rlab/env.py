"""RLAB's environment: a batch of episodes with dual add / remove actions (Sarkar et al. 2024).

State of one episode: the clean input x0, the operation applied to each patch (or none), and the
victim's probabilities for the current input. An action either *adds* operation k (a filter at
one severity) to a clean patch or *removes* the distortion of a distorted patch, restoring its
clean values exactly; the agent can thereby undo needless distortion. A removed patch is not
distorted again in the same episode, so no policy can cycle and every episode ends after at most
2 N steps.

Reward of a step (the paper's objective, fall in true-class probability with a distortion cost):

    r_t = (p_y(x_t) - p_y(x_{t+1})) - penalty * (||x_{t+1} - x0||_2 - ||x_t - x0||_2)

An episode ends when the victim misclassifies the input (success), when the query budget is
spent, or when no action is left (failure). Every probability the environment reads goes through
the ``QueryOracle``, which counts it; the budget is in queries, including the first one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rlrobust.attacks.rlab.filters import Operation, distorted_candidates
from rlrobust.attacks.rlab.oracle import QueryOracle
from rlrobust.attacks.rlab.patches import PatchGrid
from rlrobust.errors import ConfigError

CLEAN = -1  # ``applied`` value of an undistorted patch


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
    ) -> None:
        if x.dim() != 2 + len(grid.spatial_shape) or tuple(x.shape[2:]) != grid.spatial_shape:
            raise ConfigError(
                f"input shape {tuple(x.shape)} does not match the patch grid's spatial shape "
                f"{grid.spatial_shape}; build the PatchGrid from x.shape[2:]"
            )
        if budget < 2:
            raise ConfigError(f"the query budget must be at least 2 (got {budget})")
        b, n = x.shape[0], grid.num_patches
        self.oracle, self.grid, self.ops = oracle, grid, list(ops)
        self.budget, self.penalty = int(budget), float(penalty)
        self.x0, self.y = x.detach(), y
        self.num_ops = len(self.ops)
        self.candidates = distorted_candidates(self.x0, self.ops, generator)  # (B, K, C, *S)
        self.applied = torch.full((b, n), CLEAN, dtype=torch.long, device=x.device)
        self.tabu = torch.zeros(b, n, dtype=torch.bool, device=x.device)
        self.last_delta = torch.zeros(b, n, device=x.device)  # observed change of p_y per patch
        self.steps = torch.zeros(b, dtype=torch.long)
        self.x = self.x0.clone()
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
        """(B, N, K + 1) bool: adds (k < K) on clean, never-removed patches; remove (k = K) on
        distorted ones; nothing for finished episodes."""
        clean = (self.applied == CLEAN) & ~self.tabu
        valid = torch.cat(
            [clean[..., None].expand(-1, -1, self.num_ops), (self.applied != CLEAN)[..., None]],
            dim=2,
        )
        return valid & ~self.done[:, None, None]

    @property
    def active(self) -> Tensor:
        return ~self.done

    # --- acting -----------------------------------------------------------------------------

    def compose(self, applied: Tensor, rows: Tensor) -> Tensor:
        """The inputs of samples ``rows`` with operation ``applied[i, p]`` on patch p."""
        x0 = self.x0[rows].flatten(2)
        per_element = applied[:, self.grid.patch_ids.to(applied.device).flatten()]  # (R, S)
        cand = self.candidates[rows].flatten(3)  # (R, K, C, S)
        out = x0
        for k in range(self.num_ops):
            out = torch.where((per_element == k)[:, None, :], cand[:, k], out)
        return out.view_as(self.x0[rows])

    def step(self, actions: Tensor) -> Tensor:
        """Apply one action per active sample (``actions`` (B,), flat index p * (K + 1) + k;
        ignored for finished samples). Returns the (B,) rewards (0 for finished samples)."""
        rows = self.active.nonzero().squeeze(1)
        rewards = torch.zeros(self.x0.shape[0], device=self.x0.device)
        if rows.numel() == 0:
            return rewards
        a = actions[rows]
        patch, op = a // (self.num_ops + 1), a % (self.num_ops + 1)
        if not self.valid_actions().flatten(1)[rows, a].all():
            raise ValueError("an action is not valid in its state; mask with valid_actions()")
        removing = op == self.num_ops
        applied = self.applied[rows].clone()
        applied[torch.arange(rows.numel()), patch] = torch.where(removing, CLEAN, op)
        self.tabu[rows[removing], patch[removing]] = True
        old_p, old_d = self.true_prob()[rows], self.distortion[rows]
        self._set_state(rows, applied)
        new_p, new_d = self.true_prob()[rows], self.distortion[rows]
        self.last_delta[rows, patch] = new_p - old_p
        self.steps[rows.cpu()] += 1
        rewards[rows] = (old_p - new_p) - self.penalty * (new_d - old_d)
        self._finish(rows)
        return rewards

    def try_states(self, rows: Tensor, applied: Tensor) -> Tensor:
        """Query candidate patch assignments without committing; (R, classes) probabilities."""
        return self.oracle.probabilities(self.compose(applied, rows), rows.cpu())

    def _set_state(self, rows: Tensor, applied: Tensor, probs: Tensor | None = None) -> None:
        x = self.compose(applied, rows)
        self.applied[rows] = applied
        self.x[rows] = x
        if probs is None:
            probs = self.oracle.probabilities(x, rows.cpu())
        self.probs[rows] = probs
        self.distortion[rows] = (x - self.x0[rows]).flatten(1).norm(dim=1)

    def commit(self, rows: Tensor, applied: Tensor, probs: Tensor) -> None:
        """Adopt states already queried with ``try_states`` (no further query)."""
        if rows.numel():
            self._set_state(rows, applied, probs)

    def _finish(self, rows: Tensor) -> None:
        fooled = self.predictions()[rows] != self.y[rows]
        self.success[rows] |= fooled
        self.done[rows] |= fooled | (self.queries_left()[rows] <= 0)
        self._done_if_stuck()

    def _done_if_stuck(self) -> None:
        clean = (self.applied == CLEAN) & ~self.tabu
        can_act = clean.any(dim=1) | (self.applied != CLEAN).any(dim=1)
        self.done |= ~can_act

    # --- results ----------------------------------------------------------------------------

    def patch_masks(self) -> Tensor:
        """(B, N) bool: the patches distorted now."""
        return self.applied != CLEAN

    def element_masks(self) -> Tensor:
        """(B, *spatial) bool: the localisation mask, the union of distorted patches."""
        return self.grid.masks(self.patch_masks())
