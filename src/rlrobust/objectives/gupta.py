"""Gupta (2020), "Reinforcement Based Learning on Classification Task Could Yield Better
Generalization and Adversarial Accuracy" (arXiv 2012.04353), Eq. 1: vanilla policy gradient.

The state s_t is the image, the action a_t ~ softmax(logits) is a class, and the reward is
R_t = +1 if a_t = y_t and -1 otherwise. The loss over a batch of size B is

    L = sum_t^B -(1/B) log P(a_t | s_t) * R_t                                     (Eq. 1)

Example::

    loss, stats = gupta_vpg_loss(model(x), y, generator=make_generator(0))
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlrobust.errors import ConfigError
from rlrobust.objectives.core import Stats, binary_reward_policy_loss
from rlrobust.objectives.options import check_flag, check_real

NAME = "gupta_vpg"


def check_gupta_options(
    *, reward_correct: float, reward_wrong: float, baseline: bool, exact: bool
) -> dict[str, object]:
    """Validate Gupta options; return them normalised (floats, bools)."""
    options = {
        "reward_correct": check_real(NAME, "reward_correct", reward_correct),
        "reward_wrong": check_real(NAME, "reward_wrong", reward_wrong),
        "baseline": check_flag(NAME, "baseline", baseline),
        "exact": check_flag(NAME, "exact", exact),
    }
    if options["reward_correct"] <= options["reward_wrong"]:
        raise ConfigError(
            f"{NAME}: reward_correct ({reward_correct}) must exceed reward_wrong ({reward_wrong}), "
            "otherwise the objective rewards wrong answers; Gupta uses +1 and -1"
        )
    return options


def gupta_vpg_loss(
    logits: Tensor,
    y: Tensor,
    *,
    reward_correct: float = 1.0,
    reward_wrong: float = -1.0,
    baseline: bool = False,
    exact: bool = False,
    generator: torch.Generator | None = None,
    actions: Tensor | None = None,
) -> tuple[Tensor, Stats]:
    """Gupta Eq. 1: ``-(1/B) sum_t log pi(a_t | s_t) R_t`` with a_t sampled from the softmax.

    Args:
        logits: (B, C) model outputs.
        y: (B,) integer labels.
        reward_correct: R when the action equals the label (Gupta: +1).
        reward_wrong: R otherwise (Gupta: -1).
        baseline: subtract the batch-mean reward (not in Gupta; a variance-reduction option).
        exact: replace the one sampled action per image by the expectation over all C actions
            (the expected gradient of Eq. 1, without sampling noise).
        generator: torch.Generator for the action draws; ``None`` uses the global RNG.
        actions: (B,) actions to score instead of sampling (tests, custom exploration).

    Returns:
        ``(loss, stats)`` with stats ``reward_mean, action_accuracy, entropy,
        exploration_rate, accuracy`` (see ``core.policy_stats``).
    """
    options = check_gupta_options(
        reward_correct=reward_correct, reward_wrong=reward_wrong, baseline=baseline, exact=exact
    )
    if exact and actions is not None:
        raise ConfigError(f"{NAME}: exact=True averages over all actions; drop `actions` or exact")
    return binary_reward_policy_loss(
        logits, y, action="sample", generator=generator, actions=actions, **options
    )
