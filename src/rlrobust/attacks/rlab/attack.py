"""``rlab_attack``: run an RLAB agent on a data set batch by batch and collect the results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from rlrobust.attacks.rlab.env import CLEAN, RLABEnv
from rlrobust.attacks.rlab.filters import FILTERS, Operation, operations
from rlrobust.attacks.rlab.layers import check_stacking
from rlrobust.attacks.rlab.oracle import QueryOracle
from rlrobust.attacks.rlab.patches import PatchGrid
from rlrobust.attacks.rlab.refine import refine
from rlrobust.errors import ConfigError


@dataclass
class RLABSettings:
    """The attack's knobs; the defaults suit 28 x 28 MNIST-like images."""

    patch_size: int | tuple[int, ...] = 4
    filters: list[str] = field(default_factory=lambda: list(FILTERS)[:4])
    levels: str = "all"  # every severity level, or only the strongest
    budget: int = 1000  # queries per input, the first one included
    max_steps: int | None = None  # agent actions per input (the paper's budget); None: no cap
    stacking: str = "none"  # on a distorted patch: none, escalate (level up) or stack (layers.py)
    reprobe: bool = False  # greedy agent: re-score every patch after each step (N x F queries)
    penalty: float = 0.01  # reward's weight on the growth of ||x - x0||_2
    refine: bool = True  # after success, remove and soften needless distortions
    seed: int = 0
    batch_size: int = 256

    def check(self) -> None:
        if self.budget < 2:
            raise ConfigError(f"the RLAB budget must be at least 2 queries (got {self.budget})")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(
                f"the RLAB step budget must be at least 1 step (got {self.max_steps}); leave it "
                "unset for no step cap"
            )
        check_stacking(self.stacking)
        if self.penalty < 0:
            raise ConfigError(f"the distortion penalty must be >= 0 (got {self.penalty})")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be positive (got {self.batch_size})")

    def operations(self) -> list[Operation]:
        return operations(self.filters, self.levels)


@dataclass
class RLABResult:
    x_adv: Tensor  # (N, C, *S) final inputs (clean where the victim was already wrong)
    success: Tensor  # (N,) bool: misclassified at the end, among inputs correct at the start
    attacked: Tensor  # (N,) bool: inputs the victim classified correctly before the attack
    queries: Tensor  # (N,) long: oracle queries spent on each input (probes and refine included)
    steps: Tensor  # (N,) long: agent actions taken on each input (each also one query)
    patch_masks: Tensor  # (N, P) bool: distorted patches
    masks: Tensor  # (N, *S) bool: localisation masks (union of distorted patches)
    applied: Tensor  # (N, P) long: operation index per patch, -1 where clean
    stacked: Tensor  # (N, P) long: operation stacked on top of ``applied``, -1 where none
    ops: list[Operation]


def make_env(
    model: nn.Module, x: Tensor, y: Tensor, settings: RLABSettings, generator: torch.Generator
) -> RLABEnv:
    grid = PatchGrid(x.shape[2:], settings.patch_size)
    oracle = QueryOracle(model, x.shape[0])
    return RLABEnv(
        oracle,
        x,
        y,
        grid,
        settings.operations(),
        settings.budget,
        settings.penalty,
        generator,
        max_steps=settings.max_steps,
        stacking=settings.stacking,
    )


def rlab_attack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    agent,
    settings: RLABSettings,
    progress: Callable[[int], None] | None = None,
) -> RLABResult:
    """Attack every input of ``x`` (N, C, *S) with labels ``y`` using ``agent`` (greedy or learned)."""
    settings.check()
    if getattr(agent, "reprobe", settings.reprobe) != settings.reprobe:
        raise ConfigError(
            f"settings.reprobe is {settings.reprobe} but the greedy agent was built with "
            f"reprobe={agent.reprobe}; build GreedyAgent(reprobe=settings.reprobe) so the record "
            "says what ran"
        )
    generator = torch.Generator(device=x.device).manual_seed(settings.seed)
    parts: dict[str, list[Tensor]] = {k: [] for k in RLABResult.__dataclass_fields__ if k != "ops"}
    for start in range(0, x.shape[0], settings.batch_size):
        xb, yb = x[start : start + settings.batch_size], y[start : start + settings.batch_size]
        env = make_env(model, xb, yb, settings, generator)
        agent.run(env, generator)
        if settings.refine:
            refine(env)
        parts["x_adv"].append(env.x.detach())
        parts["success"].append(env.success & env.correct_at_start)
        parts["attacked"].append(env.correct_at_start)
        parts["queries"].append(env.oracle.queries.clone())
        parts["steps"].append(env.steps.clone())
        parts["patch_masks"].append(env.applied != CLEAN)
        parts["masks"].append(env.element_masks())
        parts["applied"].append(env.applied.clone())
        parts["stacked"].append(env.stacked.clone())
        if progress is not None:
            progress(xb.shape[0])
    return RLABResult(**{k: torch.cat(v) for k, v in parts.items()}, ops=settings.operations())
