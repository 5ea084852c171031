"""Tests for rlrobust.diagnostics.sharpness: power iteration and Hutchinson's estimator on a
quadratic 0.5 w^T A w with known spectrum (directly and through a model), against the full
autograd Hessian of a small CE model, determinism and model state."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlrobust.diagnostics.sharpness import (
    hutchinson_trace,
    power_iteration,
    sharpness,
    spectrum_ends,
)
from rlrobust.errors import ConfigError

# Tiny tensors: one torch thread avoids start-up and contention costs (see conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

EIGENVALUES = torch.tensor([6.0, 3.0, 1.5, 1.0, 0.5, 0.2], dtype=torch.float64)


def spd_matrix(eigenvalues: torch.Tensor = EIGENVALUES, seed: int = 0) -> torch.Tensor:
    """Q diag(eigenvalues) Q^T with a random orthogonal Q: a dense SPD matrix."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=g).double())
    return q @ torch.diag(eigenvalues) @ q.T


def hutchinson_std(a: torch.Tensor) -> float:
    """Std of v^T A v for Rademacher v: sqrt(2 (||A||_F^2 - sum_i A_ii^2))."""
    return math.sqrt(2 * float((a**2).sum() - (torch.diagonal(a) ** 2).sum()))


def matrix_hvp(a: torch.Tensor):
    return lambda v: [a @ v[0]]


def test_power_iteration_finds_the_known_top_eigenvalues():
    a = spd_matrix()
    like = [torch.zeros(6, dtype=torch.float64)]
    record = power_iteration(matrix_hvp(a), like, top_k=2, iterations=500, tol=1e-12)
    assert record["eigenvalues"] == pytest.approx([6.0, 3.0], rel=1e-6)
    assert all(record["converged"])
    # History: the Rayleigh quotient approaches the eigenvalue from below for an SPD matrix.
    assert record["history"][0][-1] == pytest.approx(6.0, rel=1e-6)
    assert record["history"][0][0] < 6.0


def test_power_iteration_reports_the_largest_magnitude_eigenvalue():
    a = spd_matrix(torch.tensor([-4.0, 2.0, 1.0], dtype=torch.float64))
    record = power_iteration(
        matrix_hvp(a), [torch.zeros(3, dtype=torch.float64)], tol=1e-12, iterations=500
    )
    assert record["eigenvalues"][0] == pytest.approx(-4.0, rel=1e-6)


def test_spectrum_ends_find_the_largest_algebraic_eigenvalue_behind_a_negative_one():
    """A negative largest-magnitude eigenvalue beside a positive trace (the -0.79 vs +5.43 case
    of a real run): the largest algebraic eigenvalue is the other end, and the shifted iteration
    finds it."""
    spectrum = torch.tensor([-0.79, 0.7, 0.6, 0.5, 0.5, 0.4] + [0.3] * 10, dtype=torch.float64)
    a = spd_matrix(spectrum, seed=3)
    like = [torch.zeros(len(spectrum), dtype=torch.float64)]
    first = power_iteration(matrix_hvp(a), like, iterations=2000, tol=1e-13)["eigenvalues"][0]
    assert first == pytest.approx(-0.79, rel=1e-4)
    ends = spectrum_ends(matrix_hvp(a), like, first, iterations=2000, tol=1e-13)
    assert ends["largest_algebraic"] == pytest.approx(0.7, rel=1e-4)
    assert ends["smallest_algebraic"] == pytest.approx(-0.79, rel=1e-4)
    assert ends["largest_magnitude"] == first
    assert ends["converged"]


def test_spectrum_ends_of_a_positive_definite_matrix():
    a = spd_matrix()
    like = [torch.zeros(6, dtype=torch.float64)]
    ends = spectrum_ends(matrix_hvp(a), like, 6.0, iterations=2000, tol=1e-13)
    assert ends["largest_algebraic"] == pytest.approx(6.0)
    assert ends["smallest_algebraic"] == pytest.approx(0.2, rel=1e-4)


def test_hutchinson_is_exact_for_a_diagonal_matrix():
    # v_i^2 = 1 for Rademacher v, so v^T D v = tr(D) for every single probe.
    d = torch.diag(EIGENVALUES)
    record = hutchinson_trace(matrix_hvp(d), [torch.zeros(6, dtype=torch.float64)], probes=3)
    assert record["estimate"] == pytest.approx(float(EIGENVALUES.sum()), rel=1e-12)
    assert record["std_error"] == pytest.approx(0.0, abs=1e-12)


def test_hutchinson_is_within_its_standard_error_for_a_dense_matrix():
    a = spd_matrix()
    probes = 400
    record = hutchinson_trace(matrix_hvp(a), [torch.zeros(6, dtype=torch.float64)], probes=probes)
    tolerance = 4 * hutchinson_std(a) / math.sqrt(probes)
    assert abs(record["estimate"] - float(EIGENVALUES.sum())) <= tolerance
    assert record["probes_used"] == probes and len(record["history"]) == probes
    # The reported standard error estimates the true one.
    assert record["std_error"] == pytest.approx(hutchinson_std(a) / math.sqrt(probes), rel=0.3)


def test_hutchinson_early_stop():
    a = spd_matrix()
    record = hutchinson_trace(
        matrix_hvp(a), [torch.zeros(6, dtype=torch.float64)], probes=10_000, tol=0.05
    )
    assert 10 <= record["probes_used"] < 10_000
    assert record["std_error"] <= 0.05 * abs(record["estimate"])


class Quadratic(nn.Module):
    """'Logits' (N, 1) all equal to 0.5 w^T A w: with the loss logits[:, 0] the Hessian of the
    mean loss w.r.t. w is A, reached through the model path (double backward)."""

    def __init__(self, a: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("a", a)
        self.w = nn.Parameter(torch.linspace(-1, 1, a.shape[0], dtype=a.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = 0.5 * self.w @ self.a @ self.w
        return value.expand(x.shape[0], 1) + 0 * x.flatten(1)[:, :1]


def test_sharpness_of_a_quadratic_through_the_model():
    a = spd_matrix()
    model = Quadratic(a)
    x, y = torch.rand(4, 1, 2, 2, dtype=torch.float64), torch.zeros(4, dtype=torch.long)
    probes = 300
    record = sharpness(
        model,
        [(x[:3], y[:3]), (x[3:], y[3:])],
        lambda logits, y: logits[:, 0],
        iterations=300,
        tol=1e-10,
        probes=probes,
    )
    assert record["top_eigenvalue"]["eigenvalues"][0] == pytest.approx(6.0, rel=1e-6)
    assert record["spectrum_ends"]["largest_algebraic"] == pytest.approx(6.0, rel=1e-6)
    tolerance = 4 * hutchinson_std(a) / math.sqrt(probes)
    assert abs(record["trace"]["estimate"] - float(EIGENVALUES.sum())) <= tolerance
    assert record["num_parameters"] == 6 and record["n_samples"] == 4
    json.dumps(record, allow_nan=False)


def small_ce_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 3)).double()


def full_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The dense Hessian of the mean CE w.r.t. all parameters, by torch.autograd.functional."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])

    def loss(theta: torch.Tensor) -> torch.Tensor:
        params, offset = {}, 0
        for name, shape in zip(names, shapes, strict=True):
            size = math.prod(shape)
            params[name] = theta[offset : offset + size].view(shape)
            offset += size
        logits = torch.func.functional_call(model, params, (x,))
        return F.cross_entropy(logits, y)

    return torch.autograd.functional.hessian(loss, flat)


def test_sharpness_matches_the_dense_hessian_of_a_small_network():
    model = small_ce_model()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(16, 1, 2, 2, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (16,), generator=g)
    h = full_hessian(model, x, y)
    spectrum = torch.linalg.eigvalsh(h)
    top = spectrum[spectrum.abs().argmax()]
    probes = 400
    record = sharpness(model, (x, y), iterations=1000, tol=1e-12, probes=probes, seed=3)
    assert record["top_eigenvalue"]["eigenvalues"][0] == pytest.approx(float(top), rel=1e-4)
    tolerance = 4 * hutchinson_std(h) / math.sqrt(probes)
    assert abs(record["trace"]["estimate"] - float(torch.trace(h))) <= tolerance


def test_deterministic_and_model_left_as_found():
    model = small_ce_model()
    model.train()
    model[1].bias.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    x, y = torch.rand(8, 1, 2, 2, dtype=torch.float64), torch.randint(0, 3, (8,))
    first = sharpness(model, (x, y), iterations=20, probes=10, seed=5)
    again = sharpness(model, (x, y), iterations=20, probes=10, seed=5)
    other = sharpness(model, (x, y), iterations=20, probes=10, seed=6)
    assert first == again and first["trace"] != other["trace"]
    assert all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    # Only the given parameters: the last layer's weight alone.
    last = sharpness(model, (x, y), parameters=[model[3].weight], iterations=5, trace=False)
    assert last["num_parameters"] == 9 and last["trace"] is None


def test_bad_settings_are_rejected():
    like = [torch.zeros(2)]
    with pytest.raises(ConfigError, match="iterations"):
        power_iteration(lambda v: v, like, iterations=0)
    with pytest.raises(ConfigError, match="tol"):
        hutchinson_trace(lambda v: v, like, tol=-1.0)
