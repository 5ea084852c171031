"""Tests for rlrobust.diagnostics.gradients: analytic input gradients of linear models, zero
gradients, sign agreement, the PGD trajectory against rlrobust.attacks.PGD and against the
analytic crossing step, determinism, model state, and the gradient plots."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlrobust.attacks import PGD
from rlrobust.diagnostics.gradients import (
    dynamic_indicators,
    gradient_noise_stability,
    gradient_norms,
    gradient_sign_agreement,
    input_gradients,
    pgd_trajectory,
    resolve_loss,
    static_indicators,
    summarize,
)
from rlrobust.diagnostics.plots import (
    plot_gradient_agreement,
    plot_gradient_norms,
    plot_trajectory,
)
from rlrobust.errors import ConfigError

# Tiny tensors: one torch thread avoids start-up and contention costs (see conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class Linear(nn.Module):
    """z = W flatten(x) + b: input gradients of CE are W^T (softmax(z) - onehot(y))."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.fc = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(weight)
            self.fc.bias.copy_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class SineFeatures(nn.Module):
    """z = W sin(k x): the input gradient changes sign every pi / k, an unstable direction."""

    def __init__(self, dim: int, classes: int, k: float) -> None:
        super().__init__()
        self.k = k
        self.fc = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.sin(self.k * x.flatten(1)))


def linear_model(classes: int = 4, dim: int = 12, seed: int = 0) -> Linear:
    g = torch.Generator().manual_seed(seed)
    return Linear(torch.randn(classes, dim, generator=g), torch.randn(classes, generator=g))


def data(n: int = 10, dim: int = 12, classes: int = 4, seed: int = 1, low: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    x = low + (1 - 2 * low) * torch.rand(n, 1, 3, dim // 3, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


def analytic_ce_gradient(model: Linear, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    w, b = model.fc.weight.detach().double(), model.fc.bias.detach().double()
    z = x.flatten(1).double() @ w.T + b
    residual = z.softmax(dim=1) - F.one_hot(y, w.shape[0]).double()
    return residual @ w  # row n: W^T (p_n - e_{y_n})


def test_input_gradient_of_linear_model_matches_analytic():
    model, (x, y) = linear_model(), data()
    expected = analytic_ce_gradient(model, x, y)
    got = input_gradients(model, x, y).flatten(1).double()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_gradient_norms_match_analytic_norms():
    model, (x, y) = linear_model(), data()
    expected = analytic_ce_gradient(model, x, y)
    record = gradient_norms(model, x, y, batch_size=3)  # batching must not change anything
    for name, values in {
        "l1": expected.abs().sum(1),
        "l2": expected.norm(dim=1),
        "linf": expected.abs().amax(1),
    }.items():
        torch.testing.assert_close(
            torch.tensor(record[name]["per_sample"], dtype=torch.float64),
            values,
            rtol=1e-5,
            atol=1e-7,
        )
        assert record[name]["summary"]["median"] == pytest.approx(float(values.quantile(0.5)), 1e-5)
    assert record["zero_fraction_samples"] == 0.0
    assert record["n"] == 10
    json.dumps(record, allow_nan=False)


def test_identical_rows_give_zero_gradients():
    # With all rows of W equal, W^T (p - e_y) = w * sum_c (p_c - e_c) = 0 for every input.
    row = torch.randn(12)
    model = Linear(row.expand(4, 12).clone(), torch.arange(4.0))
    x, y = data()
    record = gradient_norms(model, x, y, zero_threshold=1e-6)
    assert record["zero_fraction_samples"] == 1.0
    assert record["zero_fraction_coordinates"] == 1.0
    generic = gradient_norms(linear_model(), x, y, zero_threshold=1e-6)
    assert generic["zero_fraction_samples"] == 0.0


def test_summarize_quantiles():
    s = summarize(torch.arange(101.0))
    assert (s["count"], s["mean"], s["median"], s["q05"], s["q95"]) == (101, 50.0, 50.0, 5.0, 95.0)
    assert summarize([])["count"] == 0 and summarize([])["mean"] is None


def test_two_class_linear_model_has_perfectly_stable_gradients():
    # Binary CE: grad = p_other (w_other - w_y), always the same direction for a given label.
    model, (x, y) = linear_model(classes=2), data(classes=2)
    agreement = gradient_sign_agreement(model, x, y, radius=0.05, draws=3)
    stability = gradient_noise_stability(model, x, y, sigma=0.05, draws=3)
    for record in (agreement, stability):
        assert min(record["cosine"]["per_sample"]) == pytest.approx(1.0, abs=1e-6)
        assert min(record["sign_agreement"]["per_sample"]) == 1.0


def test_oscillating_gradients_are_flagged_as_unstable():
    torch.manual_seed(0)
    model, (x, y) = SineFeatures(12, 4, k=3000.0), data()
    record = gradient_noise_stability(model, x, y, sigma=0.05, draws=4)
    assert abs(record["cosine"]["summary"]["mean"]) < 0.3
    assert record["sign_agreement"]["summary"]["mean"] < 0.7


def test_trajectory_ends_where_pgd_ends():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4))
    x, y = data(n=16)
    settings = {"eps": 0.1, "norm": "linf", "steps": 7, "step_size": 0.03}
    record = pgd_trajectory(model, x, y, **settings)
    x_adv = PGD(**settings, random_start=False)(model, x, y)
    with torch.no_grad():
        final_loss = F.cross_entropy(model(x_adv), y, reduction="none")
        fooled = (model(x_adv).argmax(1) != y).double().mean()
    final = torch.tensor([row[-1] for row in record["loss_per_sample"]], dtype=torch.float32)
    torch.testing.assert_close(final, final_loss, rtol=1e-5, atol=1e-6)
    assert record["success_rate"] == pytest.approx(float(fooled))
    assert len(record["loss"]) == 8 and len(record["cosine"]) == 7
    assert record["final_distance"] <= 0.1 + 1e-6
    json.dumps(record, allow_nan=False)


def test_trajectory_prediction_change_matches_analytic_step():
    # Two classes, linear model, x far from the [0, 1] borders: each linf step lowers the margin
    # m = (w_y - w_o) . x + (b_y - b_o) by exactly step * ||w_y - w_o||_1, so the prediction
    # first changes at k = floor(m / (step ||dw||_1)) + 1 and never changes back.
    model = linear_model(classes=2, seed=3)
    x, _ = data(n=20, classes=2, low=0.4)
    with torch.no_grad():
        y = model(x).argmax(1)  # every point correct, so margins are positive
    step, steps = 0.002, 25
    w, b = model.fc.weight.detach().double(), model.fc.bias.detach().double()
    dw = w[y] - w[1 - y]
    margin = (dw * x.flatten(1).double()).sum(1) + b[y] - b[1 - y]
    k_cross = torch.floor(margin / (step * dw.abs().sum(1))).long() + 1
    expected = torch.where(k_cross <= steps, k_cross, torch.full_like(k_cross, -1))
    record = pgd_trajectory(model, x, y, eps=0.1, steps=steps, step_size=step)
    assert record["first_change"] == expected.tolist()
    assert record["flips"] == (expected > 0).long().tolist()
    assert min(record["cosine_per_sample"][0]) == pytest.approx(1.0, abs=1e-6)
    assert (expected > 0).any() and (expected < 0).any()  # both cases are exercised
    # The loss rises monotonically along the attack.
    assert all(b >= a for a, b in zip(record["loss"], record["loss"][1:], strict=False))


def test_records_are_deterministic_under_a_seed():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 4))
    x, y = data(n=8)

    def run(seed: int) -> tuple[dict, dict]:
        static = static_indicators(model, x, y, radius=0.05, draws=2, seed=seed)
        dynamic = dynamic_indicators(model, x, y, eps=0.1, steps=4, draws=2, seed=seed)
        return static, dynamic

    assert run(3) == run(3)
    assert run(3)[0]["sign_agreement"] != run(4)[0]["sign_agreement"]
    with_start = [
        pgd_trajectory(model, x, y, eps=0.1, steps=3, random_start=True, seed=s) for s in (5, 5, 6)
    ]
    assert with_start[0] == with_start[1] and with_start[0] != with_start[2]


def test_model_state_is_left_as_found():
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(12, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 4)
    )
    model.train()
    model[1].weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    running = model[2].running_mean.clone()
    x, y = data(n=6)
    static_indicators(model, x, y, draws=1)
    dynamic_indicators(model, x, y, eps=0.05, steps=2, draws=1)
    assert all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(model[2].running_mean, running)  # eval mode: BN statistics untouched


def test_objective_losses_and_bad_names():
    model, (x, y) = linear_model(), data()
    # Kim Eq. 4 with greedy actions and no penalty on a correct action is r_k1 * CE there.
    kim = gradient_norms(model, x, y, resolve_loss("kim_policy", lam=0.0, action="greedy"))
    ce = gradient_norms(model, x, y)
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).tolist()
    for k, ok in enumerate(correct):
        expected = ce["l2"]["per_sample"][k] if ok else 0.0
        assert kim["l2"]["per_sample"][k] == pytest.approx(expected, rel=1e-5, abs=1e-7)
    with pytest.raises(ConfigError, match="unknown loss"):
        resolve_loss("nope")
    with pytest.raises(ConfigError, match="radius"):
        gradient_sign_agreement(model, x, y, radius=-1.0)


def test_gradient_plots_write_pngs_for_two_models(tmp_path):
    x, y = data(n=8)
    records = {}
    for name, model in {"A": linear_model(seed=0), "B": linear_model(seed=5)}.items():
        records[name] = {
            **static_indicators(model, x, y, draws=1),
            **dynamic_indicators(model, x, y, eps=0.1, steps=3, draws=1),
        }
    records = json.loads(json.dumps(records))  # plots work from records read back from JSON
    for plot, name in (
        (plot_gradient_norms, "norms.png"),
        (plot_gradient_agreement, "agreement.png"),
        (plot_trajectory, "trajectory.png"),
    ):
        path = plot(records, tmp_path / name)
        content = path.read_bytes()
        assert content.startswith(PNG_SIGNATURE) and len(content) > 1000
