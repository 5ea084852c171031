"""Tests for rlrobust.diagnostics.landscape: the origin of the landscape is the loss at the
trained weights, weights come back bit for bit (also after an error), filter normalisation,
an analytic quadratic along a direction, the input-space landscape of a linear model,
determinism, and the landscape plots."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlrobust.data import load_dataset
from rlrobust.diagnostics.landscape import (
    as_batches,
    batch_set_loss,
    filter_normalize,
    fixed_batches,
    grid_coordinates,
    input_landscape_2d,
    landscape_shape,
    random_direction,
    weight_landscape_1d,
    weight_landscape_2d,
)
from rlrobust.diagnostics.plots import (
    _directions_label,
    plot_landscape_1d,
    plot_landscape_2d,
    plot_landscape_3d,
)
from rlrobust.errors import DataError, RLRobustError
from rlrobust.models import build_model
from rlrobust.seeding import make_generator

# Tiny tensors: one torch thread avoids start-up and contention costs (see conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "test")


def train(model: nn.Module, data, steps: int = 80) -> nn.Module:
    """Full-batch Adam on the digits training set: enough for ~95 % test accuracy."""
    x, y = data.images.float() / 255, data.labels
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model


@pytest.fixture(scope="module")
def trained_mlp(digits):
    torch.manual_seed(0)
    model = build_model(
        "mlp", num_classes=10, in_channels=1, image_size=8, mean=(0.3,), std=(0.37,), hidden=(32,)
    )
    return train(model, digits[0])


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return build_model(
        "zou_cnn6", num_classes=10, in_channels=1, image_size=8, widths=(4, 8), hidden=16
    )


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_bit_identical(model: nn.Module, saved: dict[str, torch.Tensor]) -> None:
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key  # exact, not approximate


def test_origin_is_the_trained_loss_and_weights_are_restored(trained_mlp, digits):
    model = trained_mlp
    batches = fixed_batches(digits[1], num_samples=200, batch_size=64)
    saved = snapshot(model)
    record = weight_landscape_2d(model, batches, points=5, span=0.5, seed=0)
    assert_bit_identical(model, saved)
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    with torch.no_grad():
        reference = float(F.cross_entropy(model(x).double(), y))
        accuracy = float((model(x).argmax(1) == y).double().mean())
    assert record["alphas"][2] == 0.0 and record["betas"][2] == 0.0
    assert record["loss"][2][2] == record["loss_at_origin"]  # same weights, same numbers
    assert record["loss_at_origin"] == pytest.approx(reference, rel=1e-5)
    assert record["accuracy"][2][2] == pytest.approx(accuracy) and accuracy > 0.85
    # A trained model sits near a minimum: moving away along random directions costs loss.
    assert record["shape"]["max_increase"] > 0
    one_d = weight_landscape_1d(model, batches, points=7, seed=0)
    assert_bit_identical(model, saved)
    assert one_d["loss"][3] == one_d["loss_at_origin"] == pytest.approx(reference, rel=1e-5)
    json.dumps(record, allow_nan=False)


def test_weights_are_restored_after_an_error(trained_mlp, digits):
    model = trained_mlp
    saved = snapshot(model)
    calls = []

    def failing_loss(logits, y):
        calls.append(1)
        if len(calls) == 3:  # fails in the middle of the sweep, weights moved
            raise RuntimeError("planted failure")
        return F.cross_entropy(logits, y, reduction="none")

    model.train()
    with pytest.raises(RuntimeError, match="planted"):
        weight_landscape_1d(model, fixed_batches(digits[1], 32), failing_loss, points=5)
    assert_bit_identical(model, saved)
    assert all(m.training for m in model.modules())
    model.eval()


def test_filter_normalisation_gives_each_filter_the_weight_norm():
    model = small_cnn()
    params = list(model.parameters())
    direction = random_direction(model, make_generator(0))
    checked = 0
    for param, d in zip(params, direction, strict=True):
        assert d.shape == param.shape
        if param.ndim >= 2:  # conv (out, in, kh, kw) and linear (out, in)
            torch.testing.assert_close(
                d.flatten(1).norm(dim=1), param.detach().flatten(1).norm(dim=1)
            )
            assert not torch.equal(d, param.detach())  # a random direction, not the weights
            checked += 1
        else:
            assert torch.count_nonzero(d) == 0  # biases zeroed by default
    assert checked == 6  # 4 conv + 2 linear weights
    with_bias = random_direction(model, make_generator(0), include_bias_bn=True)
    for param, d in zip(params, with_bias, strict=True):
        if param.ndim == 1:
            torch.testing.assert_close(d.abs(), param.detach().abs())
    # Including biases draws the same numbers for the weights.
    for d0, d1 in zip(direction, with_bias, strict=True):
        if d0.ndim >= 2:
            assert torch.equal(d0, d1)


def test_filter_normalize_on_a_hand_made_case():
    weight = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    direction = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    expected = torch.tensor([[5.0, 0.0], [2**0.5, 2**0.5]])
    torch.testing.assert_close(filter_normalize(direction, weight), expected)


def test_plain_directions_are_standard_gaussians():
    model = small_cnn()
    direction = random_direction(model, make_generator(7), directions="gaussian")
    g = make_generator(7)
    for param, d in zip(model.parameters(), direction, strict=True):
        expected = torch.randn(param.shape, generator=g)
        assert torch.equal(d, expected)  # biases too: Kim perturbs every parameter


def filter_norm_ratios(model: nn.Module, direction: list[torch.Tensor]) -> torch.Tensor:
    """||d_i|| / ||theta_i|| for every filter of every weight tensor."""
    return torch.cat(
        [
            d.flatten(1).norm(dim=1) / p.detach().flatten(1).norm(dim=1)
            for p, d in zip(model.parameters(), direction, strict=True)
            if p.ndim >= 2
        ]
    )


def test_gaussian_directions_are_not_filter_normalised_and_filter_normalised_ones_are():
    model = small_cnn()
    gaussian = filter_norm_ratios(
        model, random_direction(model, make_generator(2), directions="gaussian")
    )
    normalised = filter_norm_ratios(
        model, random_direction(model, make_generator(2), directions="filter_normalized")
    )
    torch.testing.assert_close(normalised, torch.ones_like(normalised))
    # Plain N(0, I) filters have norm ~ sqrt(fan-in), unrelated to the weights' filter norms.
    assert (gaussian - 1).abs().max() > 0.5 and gaussian.std() > 0.1
    with pytest.raises(RLRobustError, match="gaussian"):
        random_direction(model, make_generator(2), directions="filter")


def test_records_and_figures_name_their_directions(trained_mlp, digits, tmp_path):
    batches = fixed_batches(digits[1], num_samples=64)
    kim = weight_landscape_2d(trained_mlp, batches, points=3, directions="gaussian")
    li = weight_landscape_2d(trained_mlp, batches, points=3)
    assert kim["settings"]["directions"] == "gaussian" and kim["settings"]["include_bias_bn"]
    assert li["settings"]["directions"] == "filter_normalized"
    assert not li["settings"]["include_bias_bn"]
    assert "Kim Eq. 30" in kim["directions_label"]
    assert "Li et al. 2018" in li["directions_label"]
    assert kim["loss"] != li["loss"]
    assert "Kim Eq. 30" in _directions_label({"kim": {"landscape": kim}})
    assert _directions_label({"li": li}) == li["directions_label"]
    png = plot_landscape_2d({"gaussian": kim, "filter": li}, tmp_path / "both.png")
    assert png.read_bytes().startswith(PNG_SIGNATURE)


class SquaredLogits(nn.Module):
    """z = W x with loss ||z||^2: along a direction D the loss is exactly quadratic,
    f(a) = f(0) + 2a mean<Wx, Dx> + a^2 mean||Dx||^2."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(6, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_curvature_of_a_quadratic_landscape():
    model = SquaredLogits().double()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(10, 1, 2, 3, generator=g, dtype=torch.float64)
    y = torch.zeros(10, dtype=torch.long)
    loss = lambda logits, y: (logits**2).sum(dim=1)  # noqa: E731
    record = weight_landscape_1d(model, (x, y), loss, points=9, span=0.8, seed=3)
    (d,) = random_direction(model, make_generator(3))
    dx = x.flatten(1) @ d.T
    expected_curvature = float(2 * (dx**2).sum(1).mean())
    assert record["shape"]["curvature_at_origin"] == pytest.approx(expected_curvature, rel=1e-9)
    assert record["shape"]["convex_fraction"] == 1.0
    # Every point matches the closed form, not only the curvature.
    wx = x.flatten(1) @ model.fc.weight.detach().T
    for a, value in zip(record["alphas"], record["loss"], strict=True):
        expected = float(((wx + a * dx) ** 2).sum(1).mean())
        assert value == pytest.approx(expected, rel=1e-9)
    # Its negative is concave everywhere (Kim's reading of a penalty-dominated policy loss).
    negative = weight_landscape_1d(model, (x, y), lambda z, y: -loss(z, y), points=9, seed=3)
    assert negative["shape"]["concave_fraction"] == 1.0


def test_input_landscape_of_a_linear_two_class_model():
    # Margin loss z_other - z_y is linear in x with gradient g = w_o - w_y; without clamping
    # f(a, b) = f(0, 0) + a ||g||_1 + b g . r exactly.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 2)).double()
    g = torch.Generator().manual_seed(4)
    x = 0.4 + 0.2 * torch.rand(5, 1, 2, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (5,), generator=g)
    record = input_landscape_2d(model, x, y, "margin", radius=0.05, points=5, seed=1)
    w = model[1].weight.detach()
    grad = w[1 - y] - w[y]
    per_sample = torch.tensor(record["per_sample"], dtype=torch.float64)  # (N, a, b)
    center = per_sample[:, 2, 2]
    with torch.no_grad():
        logits = model(x)
    torch.testing.assert_close(center, logits[torch.arange(5), 1 - y] - logits[torch.arange(5), y])
    for i, a in enumerate(record["alphas"]):
        torch.testing.assert_close(per_sample[:, i, 2], center + a * grad.abs().sum(1))
    slopes = (per_sample[:, 2, 4] - per_sample[:, 2, 0]) / (2 * 0.05)
    assert torch.all(slopes.abs() <= grad.abs().sum(1) + 1e-9)  # a random sign is no steeper
    assert record["zero_gradient_fraction"] == 0.0
    json.dumps(record, allow_nan=False)


def test_records_are_deterministic_under_a_seed(trained_mlp, digits):
    batches = fixed_batches(digits[1], num_samples=64)
    first = weight_landscape_1d(trained_mlp, batches, points=5, seed=11)
    again = weight_landscape_1d(trained_mlp, batches, points=5, seed=11)
    other = weight_landscape_1d(trained_mlp, batches, points=5, seed=12)
    assert first == again and first["loss"] != other["loss"]
    x, y = batches[0]
    a = input_landscape_2d(trained_mlp, x[:8], y[:8], radius=0.1, points=3, seed=2)
    b = input_landscape_2d(trained_mlp, x[:8], y[:8], radius=0.1, points=3, seed=2)
    assert a == b


def test_batchnorm_statistics_and_modes_are_untouched():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(36, 3)
    )
    model.train()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, 1, 5, 5, generator=g), torch.randint(0, 3, (8,), generator=g)
    saved = snapshot(model)
    flags = [p.requires_grad for p in model.parameters()]
    weight_landscape_2d(model, (x, y), points=3, include_bias_bn=True)
    input_landscape_2d(model, x, y, points=3)
    assert_bit_identical(model, saved)  # running_mean / running_var included
    assert all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_grid_and_batch_checks():
    assert grid_coordinates(5, 1.0) == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert grid_coordinates(51, 1.0)[25] == 0.0
    with pytest.raises(DataError):
        as_batches([])
    with pytest.raises(DataError, match="0, 1"):
        as_batches((torch.full((2, 1, 2, 2), 2.0), torch.zeros(2, dtype=torch.long)))
    x, y = torch.rand(6, 1, 2, 2), torch.zeros(6, dtype=torch.long)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    split = batch_set_loss(
        model, lambda z, t: F.cross_entropy(z, t), [(x[:2], y[:2]), (x[2:], y[2:])]
    )
    whole = batch_set_loss(model, lambda z, t: F.cross_entropy(z, t), [(x, y)])
    assert split[0] == pytest.approx(whole[0], rel=1e-6)  # weighted by batch size


def test_landscape_plots_write_pngs_for_two_models(tmp_path, digits):
    batches = fixed_batches(digits[1], num_samples=32)
    records_1d, records_2d = {}, {}
    for name, steps in (("short", 5), ("long", 40)):
        torch.manual_seed(0)
        model = build_model("mlp", num_classes=10, in_channels=1, image_size=8, hidden=(16,))
        train(model, digits[0], steps=steps)
        records_1d[name] = weight_landscape_1d(model, batches, points=5)
        records_2d[name] = weight_landscape_2d(model, batches, points=5)
    x, y = batches[0]
    records_input = {
        name: input_landscape_2d(
            build_model("mlp", num_classes=10, in_channels=1, image_size=8),
            x[:4],
            y[:4],
            radius=0.1,
            points=5,
        )
        for name in ("A", "B")
    }
    records_1d, records_2d = json.loads(json.dumps([records_1d, records_2d]))
    outputs = [
        plot_landscape_1d(records_1d, tmp_path / "l1.png"),
        plot_landscape_1d(records_1d, tmp_path / "l1r.png", relative=True),
        plot_landscape_2d(records_2d, tmp_path / "l2.png"),
        plot_landscape_3d(records_2d, tmp_path / "l3.png"),
        plot_landscape_2d(records_input, tmp_path / "i2.png"),
    ]
    for path in outputs:
        content = path.read_bytes()
        assert content.startswith(PNG_SIGNATURE) and len(content) > 1000
    with pytest.raises(RLRobustError, match="2-D"):
        plot_landscape_1d(records_2d, tmp_path / "bad.png")
    with pytest.raises(RLRobustError, match="non-empty"):
        plot_landscape_2d({}, tmp_path / "bad.png")
    assert landscape_shape(records_2d["long"])["max_increase"] >= 0


@pytest.mark.cli
def test_diagnose_cli_takes_the_directions(tmp_path):
    import argparse

    from rlrobust.commands import diagnose
    from rlrobust.config import load_config
    from rlrobust.training.run import train_run

    run = tmp_path / "run"
    cfg = load_config(
        overrides={
            "data.name": "digits",
            "data.train_subset": 200,
            "data.test_subset": 30,
            "model.name": "mlp",
            "train.epochs": 1,
        }
    )
    train_run(cfg, run, log=lambda *_: None)
    parser = argparse.ArgumentParser()
    diagnose.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["diagnose", str(run), "--landscape", "--eps", "0.1", "--landscape-points", "3"]
        + ["--landscape-directions", "gaussian", "--quiet"]
    )
    assert diagnose.run(args) == 0
    record = json.loads((run / "diagnostics.json").read_text())["landscape"]
    assert record["weights_2d_cross_entropy"]["settings"]["directions"] == "gaussian"
    assert "Kim Eq. 30" in record["weights_1d_cross_entropy"]["directions_label"]
    with pytest.raises(SystemExit):
        parser.parse_args(["diagnose", str(run), "--eps", "0.1", "--landscape-directions", "li"])
