"""Shared building blocks of the policy-gradient objectives.

A classifier is read as a one-step policy (Gupta 2020, Sec. 3; Kim, "An Analysis of Policy
Loss"): the state is the image, the action is a class index, the policy is the softmax of the
logits, and the reward depends only on whether the action equals the label. Every episode has
one step, so there is no discounting and the return is the reward itself.

The REINFORCE surrogate ``-mean_b R_b * log pi(a_b | s_b)`` has, in expectation over
``a_b ~ pi``, the gradient of minus the expected reward. ``exact_expectation_surrogate`` sums
over all C actions instead of sampling one, which gives that expected gradient without noise;
it is the reference the sampled estimators are tested against.

Shapes: ``logits`` (B, C), ``y`` (B,) int64, ``actions`` (B,) int64, ``rewards`` (B,) float.
Everything is computed in at least float32 even when the logits come from an autocast region,
because log-probabilities of small classes lose most of their digits in float16 / bfloat16.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor

from rlrobust.errors import DataError

#: an objective's stats: python floats, or detached 0-d tensors inside ``stats_on_device``.
Stats = dict[str, float | Tensor]

_STATS_ON_DEVICE: ContextVar[bool] = ContextVar("stats_on_device", default=False)

#: stats that every policy objective returns (see ``policy_stats``).
POLICY_STAT_KEYS: tuple[str, ...] = (
    "reward_mean",
    "action_accuracy",
    "entropy",
    "exploration_rate",
    "accuracy",
)


@contextmanager
def stats_on_device() -> Iterator[None]:
    """Inside the block, objectives and training steps return their stats as detached 0-d
    tensors instead of python floats.

    Reading a value on the host makes it wait for the device to finish its queued work: one
    wait per batch would keep a GPU idle between batches. The training loop runs each batch in
    this block, sums the tensors on the device and reads the sums once per epoch.
    """
    token = _STATS_ON_DEVICE.set(True)
    try:
        yield
    finally:
        _STATS_ON_DEVICE.reset(token)


def stats_from(keys: Sequence[str], values: Sequence[Tensor]) -> Stats:
    """``keys[i] -> values[i]`` (0-d tensors, one dtype after promotion): detached 0-d tensors
    inside ``stats_on_device``, otherwise python floats read in one transfer."""
    values = torch.stack([value.detach() for value in values])
    if _STATS_ON_DEVICE.get():
        return dict(zip(keys, values.unbind(), strict=True))
    return dict(zip(keys, values.cpu().tolist(), strict=True))


def check_logits_and_labels(logits: Tensor, y: Tensor, *, min_classes: int = 1) -> None:
    """Check shapes and dtypes without a device sync (label values are not inspected)."""
    if logits.dim() != 2:
        raise DataError(
            f"logits must have shape (batch, classes), got {tuple(logits.shape)}; "
            "flatten any extra dimensions before the objective"
        )
    if not logits.is_floating_point():
        raise DataError(f"logits must be a float tensor, got {logits.dtype}; pass the model output")
    if y.dim() != 1 or y.shape[0] != logits.shape[0]:
        raise DataError(
            f"labels must have shape ({logits.shape[0]},) to match the logits, got "
            f"{tuple(y.shape)}; pass class indices, not one-hot vectors"
        )
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise DataError(f"labels must be integer class indices, got {y.dtype}; use y.long()")
    if logits.shape[1] < min_classes:
        raise DataError(
            f"this objective needs at least {min_classes} classes, got {logits.shape[1]}; "
            "check the model's output layer"
        )


def _at_least_float32(t: Tensor) -> Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def log_policy(logits: Tensor) -> Tensor:
    """log pi(. | s), (B, C): log-softmax of the logits, in float32 or better."""
    return _at_least_float32(logits).log_softmax(dim=1)


def _on_generator_device(t: Tensor, generator: torch.Generator | None) -> Tensor:
    # A CPU generator can drive a run on any device: draw on the generator's device, move back.
    if generator is not None and t.device != generator.device:
        return t.to(generator.device)
    return t


def sample_actions(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Draw one action per row from softmax(logits): a (B,) int64 tensor on the logits' device.

    With ``generator=None`` the global torch RNG is used; pass a ``torch.Generator`` (for example
    ``rlrobust.seeding.make_generator(seed)``) for a reproducible, private stream.
    """
    probs = _on_generator_device(_at_least_float32(logits.detach()).softmax(dim=1), generator)
    actions = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return actions.to(logits.device)


def greedy_actions(logits: Tensor) -> Tensor:
    """The argmax action of every row, (B,) int64: how a policy-trained classifier acts at test."""
    return logits.detach().argmax(dim=1)


def choose_actions(logits: Tensor, action: str, generator: torch.Generator | None = None) -> Tensor:
    """``action="sample"``: a ~ softmax(logits); ``action="greedy"``: the argmax."""
    return sample_actions(logits, generator) if action == "sample" else greedy_actions(logits)


def uniform_draws(n: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
    """``n`` draws from U[0, 1) on ``device``, using ``generator`` when one is given."""
    if generator is None:
        return torch.rand(n, device=device)
    return torch.rand(n, generator=generator, device=generator.device).to(device)


def uniform_actions(
    n: int, num_classes: int, device: torch.device, generator: torch.Generator | None = None
) -> Tensor:
    """``n`` actions drawn uniformly from {0, ..., C - 1} (exploration moves)."""
    if generator is None:
        return torch.randint(0, num_classes, (n,), device=device)
    draws = torch.randint(0, num_classes, (n,), generator=generator, device=generator.device)
    return draws.to(device)


def _select(mask: Tensor, if_true: float, if_false: float, dtype: torch.dtype) -> Tensor:
    # torch.where on two python floats would round them to float32 before any cast.
    options = torch.tensor([if_false, if_true], dtype=dtype, device=mask.device)
    return options[mask.long()]


def binary_rewards(
    actions: Tensor,
    y: Tensor,
    reward_correct: float,
    reward_wrong: float,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Per-sample reward: ``reward_correct`` where the action equals the label, else
    ``reward_wrong`` (Gupta Sec. 3: +1 / -1; Kim Eq. 3: r_k1 / -r_k2; Zou: 1 / 0).

    ``dtype`` should be that of the log-probabilities, so float64 runs stay float64."""
    return _select(actions == y, reward_correct, reward_wrong, dtype)


def reward_table(
    y: Tensor,
    num_classes: int,
    reward_correct: float,
    reward_wrong: float,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """r(a, y_b) for every action a: a (B, C) tensor used by the exact-expectation surrogate."""
    is_label = torch.nn.functional.one_hot(y.long(), num_classes).bool()
    return _select(is_label, reward_correct, reward_wrong, dtype)


def apply_baseline(rewards: Tensor) -> Tensor:
    """Subtract the batch-mean reward, so the centred rewards have mean zero.

    A baseline lowers the variance of the REINFORCE estimate. The batch mean includes each
    sample's own reward, so the expected gradient is scaled by (1 - 1/B); the direction is
    unchanged, and for the batch sizes used in training the factor is negligible.
    """
    return rewards - rewards.mean()


def policy_surrogate(log_probs: Tensor, actions: Tensor, rewards: Tensor) -> Tensor:
    """REINFORCE surrogate ``mean_b(-R_b * log pi(a_b | s_b))`` (Gupta Eq. 1, Kim Eq. 4).

    Rewards are constants of the environment: they are detached so that no gradient flows
    through them, whatever the caller computed them from.
    """
    chosen = log_probs.gather(1, actions.long().unsqueeze(1)).squeeze(1)
    return (-rewards.detach() * chosen).mean()


def exact_expectation_surrogate(log_probs: Tensor, table: Tensor) -> Tensor:
    """``mean_b -sum_a stopgrad(pi_a) * r(a, y_b) * log pi_a``: the expectation of the
    REINFORCE surrogate over every action instead of one sample.

    Its gradient is ``-mean_b sum_a pi_a r(a, y_b) grad log pi_a = -grad mean_b E_pi[r]``, the
    exact policy gradient, so it is a noise-free reference for the sampled estimators.
    """
    weights = log_probs.detach().exp() * table.detach()
    return (-(weights * log_probs).sum(dim=1)).mean()


def expected_rewards(log_probs: Tensor, table: Tensor) -> Tensor:
    """``E_{a ~ pi}[r(a, y_b)]`` for every sample, (B,), detached."""
    return (log_probs.detach().exp() * table).sum(dim=1)


def predictive_entropy(logits: Tensor) -> Tensor:
    """Mean entropy of softmax(logits) in nats (log C for uniform logits), detached scalar."""
    log_probs = log_policy(logits.detach())
    # log_softmax of finite logits is finite, so p * log p is 0 (not NaN) where p underflows.
    return -(log_probs.exp() * log_probs).sum(dim=1).mean()


def policy_stats(
    logits: Tensor,
    y: Tensor,
    actions: Tensor | None,
    rewards: Tensor,
    exploration_rate: float | Tensor = 0.0,
) -> Stats:
    """The scalars a training loop logs for a policy objective (python floats, or 0-d tensors
    inside ``stats_on_device``).

    - ``reward_mean``: mean reward of the actions taken (before any baseline).
    - ``action_accuracy``: fraction of actions equal to the label. With ``actions=None`` (exact
      expectation, no action is taken) it is the expected value, mean pi(y | s).
    - ``entropy``: mean predictive entropy of the softmax, nats.
    - ``exploration_rate``: fraction of samples whose action was an exploration move.
    - ``accuracy``: accuracy of the greedy (argmax) action, i.e. of the classifier at test time.
    """
    logits = logits.detach()
    if actions is None:
        action_accuracy = log_policy(logits).gather(1, y.long().unsqueeze(1)).exp().mean()
    else:
        action_accuracy = (actions == y).float().mean()
    values = [
        rewards.detach().float().mean(),
        action_accuracy.float(),
        predictive_entropy(logits).float(),
        torch.as_tensor(exploration_rate, dtype=torch.float32, device=logits.device),
        (greedy_actions(logits) == y).float().mean(),
    ]
    return stats_from(POLICY_STAT_KEYS, values)


def binary_reward_policy_loss(
    logits: Tensor,
    y: Tensor,
    *,
    reward_correct: float,
    reward_wrong: float,
    action: str,
    baseline: bool,
    exact: bool,
    generator: torch.Generator | None,
    actions: Tensor | None,
) -> tuple[Tensor, Stats]:
    """The REINFORCE loss with a correct / wrong reward, shared by Gupta Eq. 1 and Kim Eq. 4.

    ``action`` is "sample" (a ~ softmax) or "greedy" (argmax); ``actions``, when given,
    overrides both (for tests and custom exploration). ``exact`` replaces the one sampled
    action by the expectation over all actions. Options are validated by the callers.
    """
    check_logits_and_labels(logits, y)
    log_probs = log_policy(logits)
    if exact:
        table = reward_table(y, logits.shape[1], reward_correct, reward_wrong, log_probs.dtype)
        raw = expected_rewards(log_probs, table)
        if baseline:
            # A constant shift of r(., y) leaves the exact gradient unchanged (sum_a grad pi_a
            # = 0); it is applied for symmetry with the sampled loss and changes only the value.
            table = table - raw.mean()
        loss = exact_expectation_surrogate(log_probs, table)
        return loss, policy_stats(logits, y, None, raw, 0.0)
    if actions is None:
        actions = choose_actions(logits, action, generator)
    raw = binary_rewards(actions, y, reward_correct, reward_wrong, log_probs.dtype)
    rewards = apply_baseline(raw) if baseline else raw
    loss = policy_surrogate(log_probs, actions, rewards)
    return loss, policy_stats(logits, y, actions, raw, 0.0)
