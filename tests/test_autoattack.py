"""The AutoAttack adapter: the same numbers as pyautoattack called directly, the per-attack
breakdown, silence unless verbose, and nothing global left changed (model, RNG, trace, logger)."""

from __future__ import annotations

import logging
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlrobust.attacks import AutoAttack, build_attack
from rlrobust.data import load_dataset
from rlrobust.errors import ConfigError
from rlrobust.models import build_model

pytestmark = pytest.mark.reference

PY_NORMS = {"linf": "Linf", "l2": "L2"}
EPS = {"linf": 0.1, "l2": 0.8}


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """An MLP fitted on digits with 100 full-batch Adam steps, and 64 test points."""
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    torch.manual_seed(0)
    model = build_model(
        "mlp", num_classes=10, in_channels=1, image_size=8, mean=train.mean, std=train.std,
        hidden=(64,),
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x = train.images.float() / 255
    for _ in range(100):
        loss = F.cross_entropy(model(x), train.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.zero_grad(set_to_none=True)
    return model.eval(), test.images[:64].float() / 255, test.labels[:64]


def reference_custom(model, x, y, eps, norm, attacks, n_iter, seed=0, batch_size=64):
    """pyautoattack called directly, its APGDs built with ``n_iter`` through their constructors."""
    from pyautoattack import AutoAttack as PyAutoAttack
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

    adversary = PyAutoAttack(
        model, attacks=attacks, device="cpu", eps=eps, norm=PY_NORMS[norm], seed=seed,
        version="custom",
    )  # fmt: skip
    common = {"eps": eps, "norm": PY_NORMS[norm], "eot_iter": 1, "rho": 0.75, "seed": seed}
    adversary.apgd = APGDAttack(
        model, n_restarts=5, n_iter=n_iter, verbose=False, device="cpu", logger=adversary.logger,
        **common,
    )  # fmt: skip
    adversary.apgd_targeted = APGDAttack_targeted(
        model, n_restarts=1, n_iter=n_iter, verbose=False, device="cpu", logger=adversary.logger,
        **common,
    )  # fmt: skip
    adversary.fab.n_iter = n_iter
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=batch_size)
    return x_adv


def robust_flags(model, x_adv, y):
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


def distance(x_adv, x, norm):
    delta = (x_adv - x).flatten(1)
    return delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)


# --------------------------------------------------------------------------- same numbers


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_custom_version_equals_pyautoattack(norm, trained, caplog):
    model, x, y = trained
    attacks = ["apgd-ce", "apgd-t"]
    ours = AutoAttack(
        eps=EPS[norm], norm=norm, version="custom", attacks=attacks, n_iter=10, seed=0,
        batch_size=64,
    )  # fmt: skip
    x_ours = ours(model, x, y)
    with caplog.at_level(logging.CRITICAL + 1, logger="auto-attack"):
        x_ref = reference_custom(model, x, y, EPS[norm], norm, attacks, n_iter=10)
    assert torch.equal(x_ours, x_ref)
    robust = robust_flags(model, x_ours, y)
    assert 0.05 < robust.float().mean() < 0.9  # a setting that separates attacks from no-ops
    assert torch.equal(ours.last_robust, robust)
    assert distance(x_ours, x, norm).max().item() <= EPS[norm] + 1e-6
    assert x_ours.min().item() >= 0 and x_ours.max().item() <= 1


@pytest.mark.slow
def test_standard_version_equals_pyautoattack_on_a_few_points(trained):
    from pyautoattack import AutoAttack as PyAutoAttack

    model, x, y = trained
    x, y = x[:16], y[:16]
    ours = AutoAttack(eps=0.1, seed=0, batch_size=16)
    x_ours = ours(model, x, y)
    reference = PyAutoAttack(model, device="cpu", eps=0.1, norm="Linf", seed=0)
    logger = logging.getLogger("auto-attack")
    logger.disabled = True
    try:
        x_ref, _ = reference.run_standard_evaluation(x, y, batch_size=16)
    finally:
        logger.disabled = False
    assert torch.equal(x_ours, x_ref)
    assert ours.describe()["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert list(ours.last_breakdown) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    # Points survive APGD-CE here, so every member of the ensemble (Square's 5000 queries too)
    # ran on them.
    assert 0 < int(ours.last_robust.sum()) < 16


# --------------------------------------------------------------------------- the breakdown


def test_breakdown_attributes_each_fooled_sample_to_the_first_attack(trained):
    model, x, y = trained
    ensemble = AutoAttack(
        eps=0.1, version="custom", attacks=["apgd-ce", "apgd-t"], n_iter=10, batch_size=24
    )  # several batches per attack
    x_adv = ensemble(model, x, y)
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    robust = robust_flags(model, x_adv, y) & clean
    labels = ensemble.last_fooled_by
    assert len(labels) == len(x)
    assert [label == "clean" for label in labels] == (~clean).tolist()
    assert [label is None for label in labels] == robust.tolist()
    counts = ensemble.last_breakdown
    assert list(counts) == ["apgd-ce", "apgd-t"]
    assert counts["apgd-ce"] == labels.count("apgd-ce") > 0
    assert counts["apgd-t"] == labels.count("apgd-t")
    assert sum(counts.values()) == int(clean.sum() - robust.sum())

    # Independent check: APGD-CE alone (same seed and batches) fools exactly the samples that
    # the ensemble credits to it, since APGD-CE runs first on the same points.
    alone = AutoAttack(eps=0.1, version="custom", attacks=["apgd-ce"], n_iter=10, batch_size=24)
    fooled_alone = ~robust_flags(model, alone(model, x, y), y) & clean
    assert fooled_alone.tolist() == [label == "apgd-ce" for label in labels]


# --------------------------------------------------------------------------- leaves no trace


def test_model_mode_rng_trace_and_logger_restored(trained):
    model, x, y = trained
    # pyautoattack called directly (the reference runs above) leaves .grad on the parameters;
    # the adapter must not.
    model.zero_grad(set_to_none=True)
    model.train()
    try:
        rng_before = torch.get_rng_state()
        calls = []

        def tracer(frame, event, arg):  # a stand-in for a debugger or coverage tool
            calls.append(event)

        sys.settrace(tracer)
        try:
            AutoAttack(eps=0.1, version="custom", attacks=["apgd-ce"], n_iter=5)(
                model, x[:8], y[:8]
            )
            still_traced = sys.gettrace() is tracer
        finally:
            sys.settrace(None)
        assert still_traced
        assert torch.equal(torch.get_rng_state(), rng_before)
        assert model.training and all(m.training for m in model.modules())
        assert all(p.requires_grad and p.grad is None for p in model.parameters())
        logger = logging.getLogger("auto-attack")
        assert not logger.disabled and logger.level == logging.NOTSET and not logger.handlers
    finally:
        model.eval()


class Probabilities(nn.Module):
    """Returns softmax outputs: pyautoattack's range check warns about it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).softmax(dim=1)


def test_quiet_by_default_and_verbose_on_request(trained, capsys):
    model, x, y = trained
    settings = {"eps": 0.1, "version": "custom", "attacks": ["apgd-ce"], "n_iter": 5}
    AutoAttack(**settings)(Probabilities(model), x[:8], y[:8])
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""

    AutoAttack(**settings, verbose=True)(Probabilities(model), x[:8], y[:8])
    captured = capsys.readouterr()
    assert "probability distribution" in captured.out
    assert "apgd-ce" in captured.out


def test_seed_changes_the_points_and_is_reproducible(trained):
    model, x, y = trained
    settings = {"eps": 0.1, "version": "custom", "attacks": ["apgd-ce"], "n_iter": 10}
    a = AutoAttack(**settings, seed=0)(model, x, y)
    torch.manual_seed(99)
    b = AutoAttack(**settings, seed=0)(model, x, y)
    c = AutoAttack(**settings, seed=1)(model, x, y)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


# --------------------------------------------------------------------------- settings


def test_settings_errors_name_the_fix():
    with pytest.raises(ConfigError, match="standard, plus, rand, custom"):
        AutoAttack(version="random")  # "rand" is pyautoattack's version for random models
    with pytest.raises(ConfigError, match="only used with version='custom'"):
        AutoAttack(attacks=["apgd-ce"])
    with pytest.raises(ConfigError, match="needs a list of attacks"):
        AutoAttack(version="custom")
    with pytest.raises(ConfigError, match="'pgd'.*apgd-ce, apgd-dlr"):
        AutoAttack(version="custom", attacks=["apgd-ce", "pgd"])
    with pytest.raises(ConfigError, match="twice"):
        AutoAttack(version="custom", attacks=["apgd-ce", "apgd-ce"])
    with pytest.raises(ConfigError, match="n_queries"):
        AutoAttack(n_queries=0)


def test_describe_lists_the_resolved_attacks():
    record = build_attack("autoattack", eps=0.3, version="plus").describe()
    assert record["name"] == "autoattack" and record["eps"] == 0.3 and record["norm"] == "linf"
    assert record["attacks"] == ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"]
    assert record["n_queries"] == 5000 and record["n_iter"] == 100 and record["seed"] == 0
    l2 = build_attack("autoattack", norm="l2")
    assert l2.eps == 0.5 and l2.describe()["attacks"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
