"""Training objectives: cross-entropy and the policy-gradient losses of the seed papers.

Every objective is a pure function ``(logits, y, ...) -> (loss, stats)``; ``stats`` is a dict
of python floats that the training loop logs under those names (inside ``stats_on_device()``,
as the training loop calls them, detached 0-d tensors, so that no batch waits for the device).
Use the plain functions as drop-in losses in any training loop::

    from rlrobust.objectives import kim_policy_loss
    loss, stats = kim_policy_loss(logits, y, lam=1.5, action="greedy")

or build a configured objective by name (configs, CLI)::

    from rlrobust.registry import OBJECTIVES
    objective = OBJECTIVES.create("zou_pg", epsilon=0.1)
    loss, stats = objective(logits, y, generator=generator)

| name          | paper                          | stats                                   |
| ------------- | ------------------------------ | --------------------------------------- |
| cross_entropy | supervised baseline            | accuracy, entropy                       |
| gupta_vpg     | Gupta 2020, Eq. 1              | reward_mean, action_accuracy, entropy,  |
| kim_policy    | Kim, Eq. 3-4                   | exploration_rate, accuracy              |
| kim_warmup    | Kim, Eq. 12-13                 |   (same for every policy objective)     |
| zou_pg        | Zou et al. 2026, eps-greedy    |                                         |
| pc_loss       | Li et al. 2021 (AAAI), PC loss | accuracy, entropy, pc_term, logit_term, |
|               | with logit constraints         | probability_gap                         |
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlrobust.objectives.core import (
    POLICY_STAT_KEYS,
    apply_baseline,
    exact_expectation_surrogate,
    greedy_actions,
    policy_stats,
    policy_surrogate,
    predictive_entropy,
    sample_actions,
    stats_on_device,
)
from rlrobust.objectives.cross_entropy import (
    CROSS_ENTROPY_STAT_KEYS,
    cross_entropy,
    cross_entropy_loss,
)
from rlrobust.objectives.gupta import check_gupta_options, gupta_vpg_loss
from rlrobust.objectives.kim import (
    check_kim_policy_options,
    check_kim_warmup_options,
    kim_policy_loss,
    kim_warmup_loss,
)
from rlrobust.objectives.options import ConfiguredObjective, check_option_keys, option_defaults
from rlrobust.objectives.pc_loss import PC_STAT_KEYS, check_pc_options, pc_loss
from rlrobust.objectives.zou import check_zou_options, epsilon_greedy_actions, zou_pg_loss
from rlrobust.registry import OBJECTIVES

__all__ = [
    "CROSS_ENTROPY_STAT_KEYS",
    "PC_STAT_KEYS",
    "POLICY_STAT_KEYS",
    "ConfiguredObjective",
    "apply_baseline",
    "cross_entropy",
    "cross_entropy_loss",
    "epsilon_greedy_actions",
    "exact_expectation_surrogate",
    "greedy_actions",
    "gupta_vpg_loss",
    "kim_policy_loss",
    "kim_warmup_loss",
    "pc_loss",
    "policy_stats",
    "policy_surrogate",
    "predictive_entropy",
    "sample_actions",
    "stats_on_device",
    "zou_pg_loss",
]


def _configure(
    name: str,
    function: Callable[..., Any],
    check: Callable[..., dict[str, Any]] | None,
    stat_keys: tuple[str, ...],
    options: dict[str, Any],
    *,
    stochastic: bool,
) -> ConfiguredObjective:
    """Check option names and values now, so a bad config fails before training starts."""
    defaults = option_defaults(function)
    check_option_keys(name, options, defaults)
    merged = {**defaults, **options}
    if check is not None:
        merged = check(**merged)
    return ConfiguredObjective(name, function, merged, stat_keys, stochastic=stochastic)


@OBJECTIVES.register("cross_entropy")
def make_cross_entropy(**options: Any) -> ConfiguredObjective:
    """Cross-entropy (no options)."""
    return _configure(
        "cross_entropy",
        cross_entropy_loss,
        None,
        CROSS_ENTROPY_STAT_KEYS,
        options,
        stochastic=False,
    )


@OBJECTIVES.register("gupta_vpg")
def make_gupta_vpg(**options: Any) -> ConfiguredObjective:
    """Gupta Eq. 1; options: reward_correct, reward_wrong, baseline, exact."""
    return _configure(
        "gupta_vpg",
        gupta_vpg_loss,
        check_gupta_options,
        POLICY_STAT_KEYS,
        options,
        stochastic=True,
    )


@OBJECTIVES.register("kim_policy")
def make_kim_policy(**options: Any) -> ConfiguredObjective:
    """Kim Eq. 4; options: lam, r_k1, action, baseline, exact."""
    return _configure(
        "kim_policy",
        kim_policy_loss,
        check_kim_policy_options,
        POLICY_STAT_KEYS,
        options,
        stochastic=True,
    )


@OBJECTIVES.register("kim_warmup")
def make_kim_warmup(**options: Any) -> ConfiguredObjective:
    """Kim Eq. 12; options: lam, r_k1, action."""
    return _configure(
        "kim_warmup",
        kim_warmup_loss,
        check_kim_warmup_options,
        POLICY_STAT_KEYS,
        options,
        stochastic=True,
    )


@OBJECTIVES.register("zou_pg")
def make_zou_pg(**options: Any) -> ConfiguredObjective:
    """Zou et al. epsilon-greedy policy gradient; options: epsilon, exploration, exploit,
    reward_correct, reward_wrong, baseline."""
    return _configure(
        "zou_pg", zou_pg_loss, check_zou_options, POLICY_STAT_KEYS, options, stochastic=True
    )


@OBJECTIVES.register("pc_loss")
def make_pc_loss(**options: Any) -> ConfiguredObjective:
    """Li et al. (AAAI 2021) PC loss with logit constraints; options: margin, logit_weight,
    normalise."""
    return _configure("pc_loss", pc_loss, check_pc_options, PC_STAT_KEYS, options, stochastic=False)
