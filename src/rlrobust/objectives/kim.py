"""Kim, "Reinforcement-based Training Approach for Improving Adversarial Robustness without
Sacrificing Accuracy": the reward / penalty policy loss (Eq. 3-4) and its warm-up (Eq. 12-13).

Reward (Eq. 3), for a state s with label y = k and action a:

    r(s, a) = r_k1     if a = y
            = -r_k2    if a != y,          r_k1, r_k2 >= 0,  lambda = r_k2 / r_k1

Policy loss (Eq. 4), with **a** the one-hot vector of the action:

    L_pi = -E_{a ~ pi(s)} [ sum_s r(s, a) **a** . log pi(x) ]                      (Eq. 4)

Warm-up loss (Eq. 12): a correct action is reinforced as in Eq. 4; a wrong action, instead of
being pushed down directly, pushes up the log-probabilities of the other C - 1 classes (Eq. 13),
which spreads probability uniformly over them and keeps the label's gradient alive early on:

    L_pi = -E_{a ~ pi(s)} [ sum_s r_k1 delta(a, y) **a** . log pi(x)
             + r_k2 / (C - 1) (1 - delta(a, y)) ( sum_i^C log pi_i(x) - **a** . log pi(x) ) ]

Kim trains in two stages: Eq. 12 with sampled actions until test accuracy passes 80 %, then
Eq. 4 with greedy actions ("without randomness"). The defaults below are Kim's best CIFAR-10
pair, lambda = (0.75, 1.25) (Tables 1 and 3).

We normalise by the batch size (a mean over states) where Kim writes a sum over states, so the
learning rate does not depend on the batch size.

Example::

    loss, stats = kim_policy_loss(model(x), y, lam=1.5, action="greedy")
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlrobust.errors import ConfigError
from rlrobust.objectives.core import (
    Stats,
    binary_reward_policy_loss,
    binary_rewards,
    check_logits_and_labels,
    choose_actions,
    log_policy,
    policy_stats,
)
from rlrobust.objectives.options import check_choice, check_flag, check_real

ACTIONS = ("sample", "greedy")


def check_kim_policy_options(
    *, lam: float, r_k1: float, action: str, baseline: bool, exact: bool
) -> dict[str, object]:
    """Validate the Eq. 4 options; return them normalised (floats, bools)."""
    name = "kim_policy"
    options = {
        # Eq. 3 needs r_k1, r_k2 >= 0; lambda = r_k2 / r_k1 needs r_k1 > 0.
        "lam": check_real(name, "lam", lam, minimum=0.0),
        "r_k1": check_real(name, "r_k1", r_k1, strictly_positive=True),
        "action": check_choice(name, "action", action, ACTIONS),
        "baseline": check_flag(name, "baseline", baseline),
        "exact": check_flag(name, "exact", exact),
    }
    if exact and action != "sample":
        raise ConfigError(
            f"{name}: exact=True averages over all actions under the softmax, which a greedy "
            "policy does not do; set action='sample' or exact=False"
        )
    return options


def check_kim_warmup_options(*, lam: float, r_k1: float, action: str) -> dict[str, object]:
    """Validate the Eq. 12 options; return them normalised."""
    name = "kim_warmup"
    return {
        "lam": check_real(name, "lam", lam, minimum=0.0),
        "r_k1": check_real(name, "r_k1", r_k1, strictly_positive=True),
        "action": check_choice(name, "action", action, ACTIONS),
    }


def kim_policy_loss(
    logits: Tensor,
    y: Tensor,
    *,
    lam: float = 1.25,
    r_k1: float = 1.0,
    action: str = "greedy",
    baseline: bool = False,
    exact: bool = False,
    generator: torch.Generator | None = None,
    actions: Tensor | None = None,
) -> tuple[Tensor, Stats]:
    """Kim Eq. 4 with the Eq. 3 reward: ``mean_b -r(s_b, a_b) log pi(a_b | s_b)``.

    Args:
        logits: (B, C) model outputs.
        y: (B,) integer labels.
        lam: lambda = r_k2 / r_k1 >= 0, the penalty-to-reward ratio (Kim's lambda_2).
        r_k1: reward of a correct action, > 0; the penalty is r_k2 = lam * r_k1.
        action: "greedy" (argmax, Kim's second stage) or "sample" (a ~ softmax).
        baseline: subtract the batch-mean reward (not in Kim).
        exact: the expectation over all actions instead of one sample (needs action="sample").
        generator: torch.Generator for sampled actions; ``None`` uses the global RNG.
        actions: (B,) actions to score instead of choosing them.

    Returns:
        ``(loss, stats)`` with stats ``reward_mean, action_accuracy, entropy,
        exploration_rate, accuracy``.

    With lam = 0 and a greedy action equal to the label, the gradient is r_k1 times that of
    cross-entropy (Kim Eq. 10); with a wrong action it is +r_k2 grad log pi_a / B, the inverse
    direction of cross-entropy on that action (Eq. 11).
    """
    options = check_kim_policy_options(
        lam=lam, r_k1=r_k1, action=action, baseline=baseline, exact=exact
    )
    if exact and actions is not None:
        raise ConfigError(
            "kim_policy: exact=True averages over all actions, so `actions` cannot be given; "
            "drop `actions` or set exact=False"
        )
    r_k1 = options["r_k1"]
    # binary_reward_policy_loss takes the mean over the batch where Kim sums over states, so
    # the learning rate does not depend on the batch size.
    return binary_reward_policy_loss(
        logits,
        y,
        reward_correct=r_k1,
        reward_wrong=-options["lam"] * r_k1,  # -r_k2 (Eq. 3)
        action=action,
        baseline=baseline,
        exact=exact,
        generator=generator,
        actions=actions,
    )


def kim_warmup_loss(
    logits: Tensor,
    y: Tensor,
    *,
    lam: float = 0.75,
    r_k1: float = 1.0,
    action: str = "sample",
    generator: torch.Generator | None = None,
    actions: Tensor | None = None,
) -> tuple[Tensor, Stats]:
    """Kim Eq. 12-13, the warm-up loss; per sample b with action a_b:

        a_b == y_b:  -r_k1 log pi_a
        a_b != y_b:  -(r_k2 / (C - 1)) (sum_i log pi_i - log pi_a)

    and the loss is the batch mean.

    Args:
        logits: (B, C) model outputs, C >= 2.
        y: (B,) integer labels.
        lam: lambda = r_k2 / r_k1 >= 0 (Kim's lambda_1, the warm-up ratio).
        r_k1: reward of a correct action, > 0; r_k2 = lam * r_k1.
        action: "sample" (Kim: "actions are chosen randomly according to probability") or
            "greedy".
        generator: torch.Generator for sampled actions; ``None`` uses the global RNG.
        actions: (B,) actions to score instead of choosing them.

    Returns:
        ``(loss, stats)``; ``reward_mean`` is the mean Eq. 3 reward of the actions taken.
    """
    options = check_kim_warmup_options(lam=lam, r_k1=r_k1, action=action)
    r_k1 = options["r_k1"]
    r_k2 = options["lam"] * r_k1
    check_logits_and_labels(logits, y, min_classes=2)
    num_classes = logits.shape[1]
    log_probs = log_policy(logits)
    if actions is None:
        actions = choose_actions(logits, action, generator)
    correct = actions == y
    log_pi_a = log_probs.gather(1, actions.long().unsqueeze(1)).squeeze(1)
    # Eq. 13: the log-probabilities of every class except the wrong action.
    others = log_probs.sum(dim=1) - log_pi_a
    per_sample = torch.where(correct, -r_k1 * log_pi_a, -(r_k2 / (num_classes - 1)) * others)
    rewards = binary_rewards(actions, y, r_k1, -r_k2, log_probs.dtype)
    # Mean over the batch where Kim sums over states: the learning rate then does not depend
    # on the batch size.
    return per_sample.mean(), policy_stats(logits, y, actions, rewards, 0.0)
