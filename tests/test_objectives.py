"""Tests of the training objectives against analytic gradients and independent references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rlrobust.errors import ConfigError, DataError
from rlrobust.objectives import (
    apply_baseline,
    cross_entropy_loss,
    epsilon_greedy_actions,
    exact_expectation_surrogate,
    gupta_vpg_loss,
    kim_policy_loss,
    kim_warmup_loss,
    predictive_entropy,
    sample_actions,
    zou_pg_loss,
)
from rlrobust.registry import OBJECTIVES
from rlrobust.seeding import make_generator

C = 4


def leaf_logits(batch: int, classes: int = C, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, classes, generator=generator, dtype=dtype).requires_grad_(True)


def grad_of(loss: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
    (gradient,) = torch.autograd.grad(loss, leaf)
    return gradient


# ---------------------------------------------------------------- Kim Eq. 4, analytic gradients


def test_kim_greedy_correct_action_without_penalty_is_scaled_cross_entropy():
    logits = leaf_logits(8, 5)
    y = logits.detach().argmax(dim=1)  # every greedy action is correct
    r_k1 = 2.5
    loss, stats = kim_policy_loss(logits, y, lam=0.0, r_k1=r_k1, action="greedy")
    reference = r_k1 * F.cross_entropy(logits, y)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-12)
    torch.testing.assert_close(
        grad_of(loss, logits), grad_of(reference, logits), rtol=1e-12, atol=1e-14
    )
    assert stats["action_accuracy"] == 1.0 and stats["reward_mean"] == pytest.approx(r_k1)


def test_kim_greedy_wrong_action_pushes_that_logit_down():
    logits = leaf_logits(6, 5, seed=1)
    actions = logits.detach().argmax(dim=1)
    y = (actions + 1) % 5  # every greedy action is wrong
    r_k1, lam = 0.7, 1.5
    r_k2 = lam * r_k1
    loss, _ = kim_policy_loss(logits, y, lam=lam, r_k1=r_k1, action="greedy")
    gradient = grad_of(loss, logits)

    # grad_z log pi_a = onehot(a) - softmax(z); the loss is +r_k2 log pi_a averaged over B.
    probs = logits.detach().softmax(dim=1)
    grad_log_pi_a = F.one_hot(actions, 5).double() - probs
    torch.testing.assert_close(gradient, r_k2 * grad_log_pi_a / 6, rtol=1e-12, atol=1e-14)

    rows = torch.arange(6)
    assert (gradient[rows, actions] > 0).all()  # descent lowers the wrong action's logit
    stepped = logits.detach() - 0.1 * gradient
    assert (stepped[rows, actions] < logits.detach()[rows, actions]).all()


# -------------------------------------------------- sampled estimators vs the exact expectation


def _reward_pair(name: str, options: dict) -> tuple[float, float]:
    if name == "gupta_vpg":
        return 1.0, -1.0
    return options["r_k1"], -options["lam"] * options["r_k1"]


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("gupta_vpg", {}),
        ("kim_policy", {"action": "sample", "lam": 1.5, "r_k1": 0.8}),
    ],
)
def test_sampled_gradient_matches_exact_expectation(name, options):
    batch, repeats = 3, 20000
    logits = leaf_logits(batch, C, seed=3, dtype=torch.float32)
    y = torch.tensor([0, 2, 3])
    objective = OBJECTIVES.create(name, **options)

    # One call on the batch repeated `repeats` times: the mean of `repeats` independent
    # single-sample gradients, each scaled by 1 / batch as in the exact loss.
    sampled, _ = objective(logits.repeat(repeats, 1), y.repeat(repeats), make_generator(7))
    sampled_grad = grad_of(sampled, logits).double()
    exact, _ = objective.function(logits, y, **{**objective.options, "exact": True})
    exact_grad = grad_of(exact, logits).double()

    # The exact per-sample variance of the single-sample gradient -r(a) (e_a - pi) / batch.
    correct, wrong = _reward_pair(name, objective.options)
    probs = logits.detach().double().softmax(dim=1)
    eye = torch.eye(C, dtype=torch.float64)
    second_moment = torch.zeros(batch, C, dtype=torch.float64)
    for b in range(batch):
        for a in range(C):
            reward = correct if a == y[b] else wrong
            g = -reward * (eye[a] - probs[b]) / batch
            second_moment[b] += probs[b, a] * g**2
    standard_error = ((second_moment - exact_grad**2).clamp_min(0) / repeats).sqrt()
    assert (sampled_grad - exact_grad).abs().max() > 0  # it really sampled
    assert ((sampled_grad - exact_grad).abs() <= 5 * standard_error + 1e-6).all(), (
        sampled_grad,
        exact_grad,
        standard_error,
    )


def test_exact_surrogate_gradient_is_gradient_of_expected_reward():
    logits = leaf_logits(5, C, seed=4)
    y = torch.tensor([0, 1, 2, 3, 1])
    table = torch.where(F.one_hot(y, C).bool(), 1.3, -0.4).double()
    surrogate = exact_expectation_surrogate(logits.log_softmax(dim=1), table)
    expected_reward = (logits.softmax(dim=1) * table).sum(dim=1).mean()
    torch.testing.assert_close(
        grad_of(surrogate, logits), -grad_of(expected_reward, logits), rtol=1e-10, atol=1e-12
    )


# ------------------------------------------------------------------------- Kim Eq. 12, slow loop


def kim_eq12_loop(logits, y, actions, lam, r_k1):
    """Eq. 12 written out one sample and one class at a time."""
    r_k2 = lam * r_k1
    batch, classes = logits.shape
    total = 0.0
    for b in range(batch):
        normaliser = sum(torch.exp(logits[b, j]) for j in range(classes))
        log_pi = [logits[b, i] - torch.log(normaliser) for i in range(classes)]
        a = int(actions[b])
        if a == int(y[b]):
            total = total + (-r_k1 * log_pi[a])
        else:
            others = sum(log_pi[i] for i in range(classes) if i != a)
            total = total + (-(r_k2 / (classes - 1)) * others)
    return total / batch


@pytest.mark.parametrize(("lam", "r_k1"), [(0.75, 1.0), (1.5, 0.4), (0.0, 2.0)])
def test_kim_warmup_matches_per_sample_loop(lam, r_k1):
    logits = leaf_logits(6, 5, seed=5)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    actions = torch.tensor([0, 3, 2, 0, 4, 4])  # three correct, three wrong
    loss, stats = kim_warmup_loss(logits, y, lam=lam, r_k1=r_k1, actions=actions)
    reference = kim_eq12_loop(logits, y, actions, lam, r_k1)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-12, abs=1e-14)
    torch.testing.assert_close(
        grad_of(loss, logits), grad_of(reference, logits), rtol=1e-10, atol=1e-12
    )
    assert stats["action_accuracy"] == pytest.approx(0.5)
    assert stats["reward_mean"] == pytest.approx(0.5 * r_k1 - 0.5 * lam * r_k1)


def test_kim_warmup_penalty_spreads_probability_away_from_wrong_action():
    logits = torch.zeros(1, 4, requires_grad=True)
    loss, _ = kim_warmup_loss(logits, torch.tensor([0]), lam=1.0, actions=torch.tensor([2]))
    gradient = grad_of(loss, logits)[0]
    assert gradient[2] > 0  # descent lowers the wrong action
    assert torch.allclose(gradient[[0, 1, 3]], gradient[0].expand(3))  # others raised equally
    assert (gradient[[0, 1, 3]] < 0).all()


def test_kim_warmup_needs_two_classes():
    with pytest.raises(DataError, match="at least 2 classes"):
        kim_warmup_loss(torch.zeros(3, 1), torch.zeros(3, dtype=torch.long))


# -------------------------------------------------------------------------------- Zou et al.


def test_zou_epsilon_zero_is_greedy():
    logits = leaf_logits(64, 6, seed=6, dtype=torch.float32)
    y = torch.randint(0, 6, (64,), generator=torch.Generator().manual_seed(0))
    actions, explored = epsilon_greedy_actions(logits, 0.0, exploration="sample")
    assert torch.equal(actions, logits.detach().argmax(dim=1)) and not explored.any()

    loss, stats = zou_pg_loss(logits, y, epsilon=0.0, generator=make_generator(1))
    greedy = logits.detach().argmax(dim=1)
    correct = (greedy == y).float()
    reference = -(correct * logits.log_softmax(dim=1)[torch.arange(64), greedy]).mean()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-6)
    assert stats["exploration_rate"] == 0.0
    # Reward 1 / 0: the mean reward is the fraction of correct actions.
    assert stats["reward_mean"] == pytest.approx(correct.mean().item())
    assert stats["action_accuracy"] == pytest.approx(correct.mean().item())


def test_zou_epsilon_one_per_batch_is_uniform():
    classes, batch = 5, 20000
    logits = torch.zeros(batch, classes)
    logits[:, 0] = 10.0  # the greedy and the softmax policy would both pick class 0
    actions, explored = epsilon_greedy_actions(
        logits, 1.0, exploration="batch", generator=make_generator(2)
    )
    assert explored.all()
    counts = torch.bincount(actions, minlength=classes).double()
    expected = batch / classes
    chi_square = ((counts - expected) ** 2 / expected).sum().item()
    assert chi_square < 18.47, counts  # 0.999 quantile of chi-square with 4 dof

    y = torch.zeros(batch, dtype=torch.long)
    _, stats = zou_pg_loss(logits, y, epsilon=1.0, generator=make_generator(3))
    assert stats["exploration_rate"] == 1.0
    assert stats["action_accuracy"] == pytest.approx(1 / classes, abs=5 * math.sqrt(0.16 / batch))


def test_zou_per_sample_exploration_rate_is_near_epsilon():
    batch, epsilon = 20000, 0.3
    logits = torch.randn(batch, 4, generator=torch.Generator().manual_seed(8))
    y = torch.zeros(batch, dtype=torch.long)
    _, stats = zou_pg_loss(
        logits, y, epsilon=epsilon, exploration="sample", generator=make_generator(4)
    )
    tolerance = 5 * math.sqrt(epsilon * (1 - epsilon) / batch)
    assert stats["exploration_rate"] == pytest.approx(epsilon, abs=tolerance)


def test_zou_per_batch_exploration_is_all_or_nothing():
    logits = torch.randn(8, 4, generator=torch.Generator().manual_seed(9))
    y = torch.zeros(8, dtype=torch.long)
    generator = make_generator(5)
    rates = [
        zou_pg_loss(logits, y, epsilon=0.5, generator=generator)[1]["exploration_rate"]
        for _ in range(400)
    ]
    assert set(rates) <= {0.0, 1.0}
    assert sum(rates) / len(rates) == pytest.approx(0.5, abs=5 * math.sqrt(0.25 / 400))


# ------------------------------------------------------------- baselines, stats, reproducibility


def test_baseline_centres_rewards():
    rewards = torch.tensor([1.0, -1.0, -1.0, 1.0, 1.0])
    centred = apply_baseline(rewards)
    assert centred.mean().abs().item() < 1e-7
    torch.testing.assert_close(centred, rewards - 0.2)


def test_gupta_baseline_uses_centred_rewards():
    logits = leaf_logits(5, C, seed=10)
    y = torch.tensor([0, 1, 2, 3, 0])
    actions = torch.tensor([0, 2, 2, 1, 0])  # rewards +1, -1, +1, -1, +1
    loss, stats = gupta_vpg_loss(logits, y, baseline=True, actions=actions)
    rewards = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0], dtype=torch.float64)
    log_pi_a = logits.log_softmax(dim=1)[torch.arange(5), actions]
    reference = -((rewards - rewards.mean()) * log_pi_a).mean()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-12)
    assert stats["reward_mean"] == pytest.approx(0.2)  # logged before the baseline


def test_sample_actions_follow_the_softmax_and_the_seed():
    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0]]).repeat(20000, 1)
    actions = sample_actions(logits, make_generator(11))
    counts = torch.bincount(actions, minlength=4).double()
    expected = logits[0].softmax(dim=0).double() * 20000
    assert ((counts - expected) ** 2 / expected).sum().item() < 16.27  # chi2(3) 0.999
    assert torch.equal(actions, sample_actions(logits, make_generator(11)))
    torch.manual_seed(12)
    first = sample_actions(logits[:50])
    torch.manual_seed(12)
    assert torch.equal(first, sample_actions(logits[:50]))  # generator=None: the global RNG


def test_entropy_of_uniform_logits_is_log_c():
    assert predictive_entropy(torch.zeros(3, 7)).item() == pytest.approx(math.log(7), rel=1e-6)
    _, stats = cross_entropy_loss(torch.zeros(3, 7), torch.tensor([0, 1, 2]))
    assert stats["entropy"] == pytest.approx(math.log(7), rel=1e-6)


def test_cross_entropy_matches_manual_formula():
    logits = leaf_logits(4, 3, seed=13)
    y = torch.tensor([0, 2, 1, 1])
    loss, stats = cross_entropy_loss(logits, y)
    manual = -sum(logits[b, y[b]] - torch.log(torch.exp(logits[b]).sum()) for b in range(4)) / 4
    assert loss.item() == pytest.approx(manual.item(), rel=1e-12)
    assert stats["accuracy"] == pytest.approx((logits.argmax(1) == y).double().mean().item())


def test_low_precision_logits_are_scored_in_float32():
    logits = torch.randn(6, 5).bfloat16().requires_grad_(True)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    loss, _ = kim_policy_loss(logits, y, action="sample", generator=make_generator(0))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert grad_of(loss, logits).dtype == torch.bfloat16


STOCHASTIC_OPTIONS = {
    "gupta_vpg": {},
    "kim_policy": {"action": "sample"},
    "kim_warmup": {},
    "zou_pg": {"epsilon": 0.5, "exploration": "sample", "exploit": "sample"},
}


@pytest.mark.parametrize("name", sorted(STOCHASTIC_OPTIONS))
def test_fixed_seed_gives_identical_loss(name):
    objective = OBJECTIVES.create(name, **STOCHASTIC_OPTIONS[name])
    logits = torch.randn(64, 10, generator=torch.Generator().manual_seed(14))
    y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(15))
    first = objective(logits, y, make_generator(21))
    second = objective(logits, y, make_generator(21))
    other = objective(logits, y, make_generator(22))
    assert first[0].item() == second[0].item() and first[1] == second[1]
    assert first[0].item() != other[0].item()


# ------------------------------------------------------------------------------- bad options


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("kim_policy", {"lamda": 1.0}, "valid options are: lam, r_k1, action"),
        ("kim_policy", {"lam": -0.5}, "'lam'"),
        ("kim_policy", {"r_k1": 0.0}, "'r_k1'"),
        ("kim_policy", {"action": "argmax"}, "'sample', 'greedy'"),
        ("kim_policy", {"action": "greedy", "exact": True}, "action='sample'"),
        ("kim_policy", {"baseline": "yes"}, "true or false"),
        ("kim_warmup", {"lam": float("nan")}, "'lam'"),
        ("kim_warmup", {"exact": True}, "valid options are: lam, r_k1, action"),
        ("zou_pg", {"epsilon": 1.5}, r"\[0, 1\]"),
        ("zou_pg", {"epsilon": -0.1}, r"\[0, 1\]"),
        ("zou_pg", {"exploration": "episode"}, "'batch', 'sample'"),
        ("zou_pg", {"exploit": "random"}, "'greedy', 'sample'"),
        ("zou_pg", {"reward_correct": 0.0, "reward_wrong": 1.0}, "must exceed"),
        ("gupta_vpg", {"reward_correct": -1.0, "reward_wrong": 1.0}, "must exceed"),
        ("gupta_vpg", {"reward_correct": "1"}, "must be a number"),
        ("cross_entropy", {"label_smoothing": 0.1}, "takes no options"),
    ],
)
def test_bad_options_raise_config_error(name, options, match):
    with pytest.raises(ConfigError, match=match):
        OBJECTIVES.create(name, **options)


def test_plain_functions_check_options_too():
    logits, y = torch.zeros(2, 3), torch.tensor([0, 1])
    with pytest.raises(ConfigError, match="'lam'"):
        kim_policy_loss(logits, y, lam=-1.0)
    with pytest.raises(ConfigError, match="'epsilon'"):
        zou_pg_loss(logits, y, epsilon=2.0)
    with pytest.raises(DataError, match="class indices"):
        cross_entropy_loss(logits, F.one_hot(y, 3))


# ------------------------------------------------------------- contract over every registry entry


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_registry_entry_contract(name):
    objective = OBJECTIVES.create(name)
    logits = torch.randn(16, 10, generator=torch.Generator().manual_seed(16)).requires_grad_(True)
    y = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(17))
    loss, stats = objective(logits, y, generator=make_generator(0))
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.requires_grad
    gradient = grad_of(loss, logits)
    assert torch.isfinite(gradient).all()
    assert set(stats) == set(objective.stat_keys)
    assert all(type(value) is float and math.isfinite(value) for value in stats.values())
    for key in ("accuracy", "action_accuracy", "exploration_rate"):
        if key in stats:
            assert 0.0 <= stats[key] <= 1.0
    assert 0.0 <= stats["entropy"] <= math.log(10) + 1e-6
    assert objective(logits, y)[0].dim() == 0  # generator=None falls back to the global RNG
