"""Zou et al. (2026), "Reinforcement Learning Disrupts Gradient-Based Adversarial Optimization":
policy-gradient training of a classifier with epsilon-greedy exploration.

As in the authors' code: the reward is 1 for a correct action and 0 otherwise, there is no
baseline, and exploration is decided per batch (with probability epsilon the whole batch acts
uniformly at random; otherwise it acts greedily). The loss is the REINFORCE surrogate

    L = -(1/B) sum_b r(a_b, y_b) log pi(a_b | s_b),

scored on the action actually taken, exploring or not (no importance weights). With the 0 / 1
reward only correct actions contribute, so a greedy step is cross-entropy restricted to the
images the model already classifies correctly, and exploration occasionally reinforces a label
the argmax would not have chosen.

Example::

    loss, stats = zou_pg_loss(model(x), y, epsilon=0.1, generator=make_generator(0))
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlrobust.errors import ConfigError
from rlrobust.objectives.core import (
    Stats,
    apply_baseline,
    binary_rewards,
    check_logits_and_labels,
    choose_actions,
    log_policy,
    policy_stats,
    policy_surrogate,
    uniform_actions,
    uniform_draws,
)
from rlrobust.objectives.options import check_choice, check_flag, check_real

NAME = "zou_pg"
EXPLORATION_MODES = ("batch", "sample")
EXPLOIT_MODES = ("greedy", "sample")


def check_zou_options(
    *,
    epsilon: float,
    exploration: str,
    exploit: str,
    reward_correct: float,
    reward_wrong: float,
    baseline: bool,
) -> dict[str, object]:
    """Validate the options of ``zou_pg_loss``; return them normalised."""
    options = {
        "epsilon": check_real(NAME, "epsilon", epsilon, minimum=0.0, maximum=1.0),
        "exploration": check_choice(NAME, "exploration", exploration, EXPLORATION_MODES),
        "exploit": check_choice(NAME, "exploit", exploit, EXPLOIT_MODES),
        "reward_correct": check_real(NAME, "reward_correct", reward_correct),
        "reward_wrong": check_real(NAME, "reward_wrong", reward_wrong),
        "baseline": check_flag(NAME, "baseline", baseline),
    }
    if options["reward_correct"] <= options["reward_wrong"]:
        raise ConfigError(
            f"{NAME}: reward_correct ({reward_correct}) must exceed reward_wrong "
            f"({reward_wrong}), otherwise wrong answers are reinforced; Zou et al. use 1 and 0"
        )
    return options


def epsilon_greedy_actions(
    logits: Tensor,
    epsilon: float,
    *,
    exploration: str = "batch",
    exploit: str = "greedy",
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Choose actions epsilon-greedily.

    Args:
        logits: (B, C) model outputs.
        epsilon: exploration probability in [0, 1].
        exploration: "batch" (one coin for the whole batch, as in Zou et al.'s code) or
            "sample" (one coin per image).
        exploit: how a non-exploring image acts: "greedy" (argmax) or "sample" (a ~ softmax).
        generator: torch.Generator for every draw; ``None`` uses the global RNG.

    Returns:
        ``(actions, explored)``: (B,) int64 actions and a (B,) bool mask of exploration moves.
    """
    batch, num_classes = logits.shape
    device = logits.device
    exploiting = choose_actions(logits, exploit, generator)
    coins = uniform_draws(1 if exploration == "batch" else batch, device, generator)
    # U[0, 1) < epsilon: never true for epsilon = 0, always true for epsilon = 1.
    explored = (coins < epsilon).expand(batch)
    # Random actions are drawn even when unused, so the stream a generator yields does not
    # depend on the coin and runs stay comparable across epsilon values; no host sync either.
    random = uniform_actions(batch, num_classes, device, generator)
    return torch.where(explored, random, exploiting), explored


def zou_pg_loss(
    logits: Tensor,
    y: Tensor,
    *,
    epsilon: float = 0.1,
    exploration: str = "batch",
    exploit: str = "greedy",
    reward_correct: float = 1.0,
    reward_wrong: float = 0.0,
    baseline: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Stats]:
    """Zou et al.'s epsilon-greedy policy gradient: ``mean_b -r(a_b, y_b) log pi(a_b | s_b)``.

    Args:
        logits: (B, C) model outputs.
        y: (B,) integer labels.
        epsilon: exploration probability in [0, 1] (Zou et al.: 0.1).
        exploration: "batch" (Zou et al.'s code) or "sample" (independent per image).
        exploit: "greedy" (argmax, default) or "sample" for the non-exploring actions.
        reward_correct: reward of a correct action (Zou et al.: 1).
        reward_wrong: reward of a wrong action (Zou et al.: 0); must be below reward_correct.
        baseline: subtract the batch-mean reward (Zou et al.: no baseline).
        generator: torch.Generator for every draw; ``None`` uses the global RNG.

    Returns:
        ``(loss, stats)``; ``exploration_rate`` is the realised fraction of images that
        explored in this batch (0 or 1 in "batch" mode).
    """
    options = check_zou_options(
        epsilon=epsilon,
        exploration=exploration,
        exploit=exploit,
        reward_correct=reward_correct,
        reward_wrong=reward_wrong,
        baseline=baseline,
    )
    check_logits_and_labels(logits, y)

    actions, explored = epsilon_greedy_actions(
        logits, options["epsilon"], exploration=exploration, exploit=exploit, generator=generator
    )
    log_probs = log_policy(logits)
    raw = binary_rewards(
        actions, y, options["reward_correct"], options["reward_wrong"], log_probs.dtype
    )
    rewards = apply_baseline(raw) if baseline else raw
    loss = policy_surrogate(log_probs, actions, rewards)
    return loss, policy_stats(logits, y, actions, raw, explored.float().mean())
