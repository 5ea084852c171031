"""Square Attack: threat model, no gradients, exact query counting, budget, seeding, the p
schedule and eta pattern, and agreement with the authors' implementation (pyautoattack)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlrobust.attacks import Square, build_attack
from rlrobust.attacks.square import eta, eta_rectangles, p_selection
from rlrobust.data import load_dataset
from rlrobust.errors import ConfigError
from rlrobust.models import build_model

NORMS = ("linf", "l2")
EPS = {"linf": 0.1, "l2": 1.0}


def unit(data) -> torch.Tensor:
    return data.images.float() / 255


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """An MLP fitted on digits with 100 full-batch Adam steps, and 200 test points."""
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    torch.manual_seed(0)
    model = build_model(
        "mlp", num_classes=10, in_channels=1, image_size=8, mean=train.mean, std=train.std,
        hidden=(64,),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = unit(train), train.labels
    for _ in range(100):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.zero_grad(set_to_none=True)
    return model.eval(), unit(test)[:200], test.labels[:200]


def distance(x_adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    delta = (x_adv - x).flatten(1)
    return delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)


def predictions(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


class NoBackward(torch.autograd.Function):
    """Identity whose backward raises: any gradient through the model fails loudly."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        raise AssertionError("the model's backward was called")


class QueryCounter(nn.Module):
    """Wraps a model; attributes every row it is called on to the nearest clean sample.

    Records per sample the number of queries and whether each query was classified correctly.
    Also checks that every query runs with gradients disabled.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, p: float = 2.0) -> None:
        super().__init__()
        self.model, self.x, self.y, self.p = model, x, y, p
        self.counts = torch.zeros(len(x), dtype=torch.int64)
        self.history: list[list[bool]] = [[] for _ in range(len(x))]

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled(), "Square must query under torch.no_grad()"
        owner = torch.cdist(rows.flatten(1), self.x.flatten(1), p=self.p).argmin(dim=1)
        logits = self.model(NoBackward.apply(rows))
        correct = logits.argmax(1) == self.y[owner]
        self.counts += torch.bincount(owner, minlength=len(self.x))
        for i, ok in zip(owner.tolist(), correct.tolist(), strict=True):
            self.history[i].append(ok)
        return logits


# --------------------------------------------------------------------------- threat model


@pytest.mark.parametrize("norm", NORMS)
def test_threat_model_and_reported_success(norm, trained):
    model, x, y = trained
    x, y = x[:64], y[:64]
    attack = Square(eps=EPS[norm], norm=norm, n_queries=100, seed=0)
    x_adv = attack(model, x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert distance(x_adv, x, norm).max().item() <= EPS[norm] + 1e-6
    assert x_adv.min().item() >= 0 and x_adv.max().item() <= 1
    # Square searches on the boundary of the ball: linf points sit at +-eps wherever [0, 1]
    # allows, and the l2 perturbation is scaled to norm eps before the clamp.
    assert distance(x_adv, x, norm).min().item() > 0.5 * EPS[norm]
    assert attack.last_queries.dtype == torch.int64 and attack.last_queries.shape == (64,)
    assert attack.last_success.dtype == torch.bool
    assert torch.equal(attack.last_success, predictions(model, x_adv) != y)
    assert 0 < attack.last_success.sum() < 64


def test_signals_are_treated_as_height_one_images():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 16, 5)).eval()
    x = torch.rand(6, 2, 16, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(6, dtype=torch.int64)
    for norm in NORMS:
        x_adv = Square(eps=0.2, norm=norm, n_queries=20)(model, x, y)
        assert x_adv.shape == x.shape
        assert distance(x_adv, x, norm).max().item() <= 0.2 + 1e-6


# --------------------------------------------------------------------------- queries


@pytest.mark.parametrize("norm", NORMS)
def test_never_uses_gradients_and_counts_every_query(norm, trained):
    model, x, y = trained
    x, y = x[:24], y[:24]
    eps = {"linf": 0.15, "l2": 0.6}[norm]
    # Rows are attributed to the nearest clean sample: valid while the balls do not overlap.
    p = float("inf") if norm == "linf" else 2.0
    pairwise = torch.cdist(x.flatten(1), x.flatten(1), p=p) + 1e9 * torch.eye(len(x))
    assert pairwise.min().item() > 2 * eps
    counter = QueryCounter(model, x, y, p)
    n_queries = 60
    attack = Square(eps=eps, norm=norm, n_queries=n_queries, seed=3)
    attack(counter, x, y)

    assert torch.equal(counter.counts, attack.last_queries)
    assert attack.last_queries.min().item() >= 1
    assert attack.last_queries.max().item() <= n_queries + 1
    success = attack.last_success
    assert 0 < success.sum() < len(x), "the setting must leave some samples robust"
    # A robust sample spends the whole budget; a fooled one stops at the query that fooled it.
    assert (attack.last_queries[~success] == n_queries + 1).all()
    for i, history in enumerate(counter.history):
        if success[i]:
            assert history[-1] is False and all(history[:-1]), i
        else:
            assert all(history), i


def test_zero_budget_queries_only_the_initial_point(trained):
    model, x, y = trained
    counter = QueryCounter(model, x[:10], y[:10])
    attack = Square(eps=0.1, n_queries=0)
    attack(counter, x[:10], y[:10])
    assert counter.counts.tolist() == [1] * 10
    assert attack.last_queries.tolist() == [1] * 10


def test_model_with_raising_backward_and_no_grad_context(trained):
    model, x, y = trained

    class Guarded(nn.Module):
        def forward(self, rows):
            return model(NoBackward.apply(rows))

    # Under an enclosing enable_grad the attack must still not build a graph through the model.
    with torch.enable_grad():
        x_adv = Square(eps=0.1, n_queries=20)(Guarded(), x[:16], y[:16])
    assert not x_adv.requires_grad


# --------------------------------------------------------------------------- seeding, strength


@pytest.mark.parametrize("norm", NORMS)
def test_same_seed_same_output_and_counts(norm, trained):
    model, x, y = trained
    x, y = x[:32], y[:32]
    first = Square(eps=EPS[norm], norm=norm, n_queries=50, seed=5)
    second = Square(eps=EPS[norm], norm=norm, n_queries=50, seed=5)
    a = first(model, x, y)
    torch.manual_seed(1234)  # the global RNG must not matter
    b = second(model, x, y)
    assert torch.equal(a, b)
    assert torch.equal(first.last_queries, second.last_queries)
    other = Square(eps=EPS[norm], norm=norm, n_queries=50, seed=6)(model, x, y)
    assert not torch.equal(a, other)


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.3), ("l2", 3.0)])
def test_fools_an_undefended_model_at_a_large_eps(norm, eps, trained):
    model, x, y = trained
    x, y = x[:100], y[:100]
    correct = predictions(model, x) == y
    attack = Square(eps=eps, norm=norm, n_queries=200, seed=0)
    x_adv = attack(model, x, y)
    robust = (predictions(model, x_adv) == y) & correct
    assert correct.float().mean() > 0.85
    assert robust.float().mean() < 0.05
    # Most samples fall in a few queries at this budget.
    assert attack.last_queries[correct].float().median() < 20


class Upsampled(nn.Module):
    """The digits model on 32x32 images: 4x4 average pooling in front of the 8x8 model.

    The comparison runs at 32x32 because on 8x8 images the reference never places a window at
    the last row or column (its positions are drawn from [0, H - s - 1]), which handicaps it.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(F.avg_pool2d(x, 4))


@pytest.mark.reference
@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.1), ("l2", 3.2)])
def test_robust_accuracy_close_to_pyautoattack(norm, eps, trained):
    from pyautoattack.square import SquareAttack

    model8, x8, y = trained
    model = Upsampled(model8).eval()
    x = F.interpolate(x8, scale_factor=4, mode="nearest")
    correct = predictions(model, x) == y
    x, y = x[correct], y[correct]
    settings = {"n_queries": 300, "p_init": 0.8}
    ours = Square(eps=eps, norm=norm, seed=0, **settings)(model, x, y)
    reference = SquareAttack(
        model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, seed=0, device="cpu",
        resc_schedule=False, **settings,
    )  # fmt: skip
    theirs = reference.perturb(x, y)
    ours_accuracy = (predictions(model, ours) == y).float().mean().item()
    theirs_accuracy = (predictions(model, theirs) == y).float().mean().item()
    # Both are random searches with different random draws: the same strength, not the same
    # points. The setting is chosen to be far from 0 % and 100 % robust accuracy.
    assert len(y) > 150
    assert 0.2 < theirs_accuracy < 0.8
    assert abs(ours_accuracy - theirs_accuracy) <= 0.06


# --------------------------------------------------------------------------- building blocks


def test_p_schedule_halves_at_the_papers_iterations():
    assert p_selection(0.8, 0, 5000, False) == 0.8
    assert p_selection(0.8, 10, 5000, False) == 0.8
    assert p_selection(0.8, 11, 5000, False) == 0.4
    assert p_selection(0.8, 50, 5000, False) == 0.4
    assert p_selection(0.8, 51, 5000, False) == 0.2
    assert p_selection(0.8, 4500, 5000, False) == 0.8 / 128
    assert p_selection(0.8, 9000, 10000, False) == 0.8 / 512
    # Rescaled to a 1000-query budget, iteration 100 is iteration 1000 of the 10000 schedule.
    assert p_selection(0.8, 100, 1000, True) == 0.8 / 16
    assert p_selection(0.8, 101, 1000, True) == 0.8 / 32


@pytest.mark.reference
def test_eta_pattern_matches_pyautoattack():
    from pyautoattack.square import SquareAttack

    reference = SquareAttack(None, norm="L2", eps=1.0, device="cpu")
    for s in range(1, 12):
        for rows in range(1, 7):
            assert torch.allclose(eta_rectangles(rows, s), reference.eta_rectangles(rows, s))
        theirs = reference.eta(s)  # randomly transposed
        ours = eta(s)
        assert torch.allclose(theirs, ours) or torch.allclose(theirs, ours.T)
        assert ours.norm().item() == pytest.approx(1.0, rel=1e-6)


def test_describe_and_bad_settings():
    record = build_attack("square", eps=0.05, n_queries=10).describe()
    assert record == {
        "name": "square",
        "eps": 0.05,
        "norm": "linf",
        "seed": 0,
        "n_queries": 10,
        "p_init": 0.8,
        "loss": "margin",
        "rescale_schedule": False,
    }
    with pytest.raises(ConfigError, match=r"p_init.*\(0, 1\]"):
        Square(p_init=1.5)
    with pytest.raises(ConfigError, match="margin, ce"):
        Square(loss="dlr")
    with pytest.raises(ConfigError, match="n_queries"):
        Square(n_queries=-1)


def test_ce_loss_also_fools(trained):
    model, x, y = trained
    attack = Square(eps=0.3, n_queries=100, loss="ce")
    x_adv = attack(model, x[:50], y[:50])
    assert torch.equal(attack.last_success, predictions(model, x_adv) != y[:50])
    assert attack.last_success.float().mean() > 0.8
