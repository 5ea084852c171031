"""The PC loss with logit constraints (Li et al., AAAI 2021) against its formula in slow loops."""

from __future__ import annotations

import math

import pytest
import torch

from rlrobust.errors import ConfigError, DataError
from rlrobust.objectives import pc_loss
from rlrobust.registry import OBJECTIVES


def slow_pc_loss(logits, y, margin, logit_weight, normalise):
    """The module docstring's formulas, one sample and one class at a time, in python floats."""
    n, c = len(logits), len(logits[0])
    pc_total = lc_total = 0.0
    for row, label in zip(logits, y, strict=True):
        exps = [math.exp(v - max(row)) for v in row]
        p = [e / sum(exps) for e in exps]
        false = [j for j in range(c) if j != label]
        false_exps = [math.exp(row[j] - max(row[k] for k in false)) for j in false]
        w = {j: e / sum(false_exps) for j, e in zip(false, false_exps, strict=True)}
        for j in false:
            pc_total += max(0.0, p[j] - p[label] + margin)
            lc_total += w[j] * max(0.0, row[label] - row[j])
    pc_term = pc_total / n / ((c - 1) if normalise == "code" else 1)
    return pc_term + logit_weight * lc_total / n, pc_term, lc_total / n


@pytest.mark.parametrize(
    ("margin", "logit_weight", "normalise"),
    [(0.995, 0.05, "paper"), (0.8, 0.05, "code"), (0.3, 1.0, "paper"), (0.0, 0.0, "paper")],
)
def test_matches_the_formula_computed_by_a_slow_loop(margin, logit_weight, normalise):
    generator = torch.Generator().manual_seed(3)
    logits = 3 * torch.randn(9, 5, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 5, (9,), generator=generator)
    loss, stats = pc_loss(logits, y, margin=margin, logit_weight=logit_weight, normalise=normalise)
    expected, pc_term, logit_term = slow_pc_loss(
        logits.tolist(), y.tolist(), margin, logit_weight, normalise
    )
    assert loss.item() == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert stats["pc_term"] == pytest.approx(pc_term, rel=1e-12, abs=1e-15)
    assert stats["logit_term"] == pytest.approx(logit_term, rel=1e-12, abs=1e-15)
    probs = logits.softmax(1)
    gap = [
        float(probs[b, y[b]] - max(probs[b, j] for j in range(5) if j != y[b])) for b in range(9)
    ]
    assert stats["probability_gap"] == pytest.approx(sum(gap) / 9, rel=1e-12)


def test_planted_errors_are_caught_by_the_slow_loop():
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=generator)
    expected, _, _ = slow_pc_loss(logits.tolist(), y.tolist(), 0.9, 0.05, "paper")
    # Counting the label's own term adds margin per sample; the code normalisation divides.
    with_label_term = expected + 0.9
    assert pc_loss(logits, y, margin=0.9)[0].item() != pytest.approx(with_label_term)
    code = pc_loss(logits, y, margin=0.9, normalise="code")[0].item()
    assert code != pytest.approx(expected)


def test_gradients_are_finite_and_push_the_label_up():
    logits = torch.tensor(
        [[2.0, 1.0, -1.0], [0.0, 0.0, 0.0], [300.0, -300.0, 5.0], [-1e4, 1e4, 0.0]],
        dtype=torch.float32,
        requires_grad=True,
    )
    y = torch.tensor([1, 2, 0, 0])
    loss, stats = pc_loss(logits, y)
    (gradient,) = torch.autograd.grad(loss, logits)
    assert torch.isfinite(loss) and torch.isfinite(gradient).all()
    assert all(math.isfinite(v) for v in stats.values())
    # Descent raises the label's logit where the sample is not saturated (rows 0 and 1).
    assert gradient[0, 1] < 0 and gradient[1, 2] < 0


def test_logit_constraint_penalises_large_true_minus_false_logits():
    y = torch.tensor([0])
    small = pc_loss(torch.tensor([[2.0, 0.0, 0.0]]), y, margin=0.0, logit_weight=1.0)[1]
    large = pc_loss(torch.tensor([[20.0, 0.0, 0.0]]), y, margin=0.0, logit_weight=1.0)[1]
    assert small["logit_term"] == pytest.approx(2.0) and large["logit_term"] == pytest.approx(20)
    assert small["pc_term"] == 0.0 == large["pc_term"]  # both gaps exceed a zero margin


def test_low_precision_logits_are_scored_in_float32():
    logits = torch.randn(6, 5).bfloat16().requires_grad_(True)
    loss, _ = pc_loss(logits, torch.tensor([0, 1, 2, 3, 4, 0]))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"margin": 1.5}, "'margin'"),
        ({"margin": -0.1}, "'margin'"),
        ({"logit_weight": -1.0}, "'logit_weight'"),
        ({"normalise": "mean"}, "'paper', 'code'"),
        ({"xi": 0.5}, "valid options are: margin, logit_weight, normalise"),
    ],
)
def test_bad_options_raise_config_error(options, match):
    with pytest.raises(ConfigError, match=match):
        OBJECTIVES.create("pc_loss", **options)


def test_one_class_is_refused():
    with pytest.raises(DataError):
        pc_loss(torch.zeros(2, 1), torch.tensor([0, 0]))


def test_registry_entry_is_deterministic_and_takes_a_generator():
    objective = OBJECTIVES.create("pc_loss", margin=0.5)
    logits = torch.randn(8, 10, generator=torch.Generator().manual_seed(1))
    y = torch.arange(8)
    first = objective(logits, y, generator=torch.Generator().manual_seed(0))
    second = objective(logits, y)
    assert first[0].item() == second[0].item() and first[1] == second[1]
    assert objective.options == {"margin": 0.5, "logit_weight": 0.05, "normalise": "paper"}
