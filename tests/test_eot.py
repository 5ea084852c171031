"""Expectation over Transformation (EOT) for randomised models: PGD's ``eot_samples``,
AutoAttack's rand version, and the suite's automatic choice."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rlrobust.attacks import PGD, AutoAttack, build_attack
from rlrobust.attacks.base import logits_and_input_gradient
from rlrobust.attacks.losses import get_loss
from rlrobust.data import load_dataset
from rlrobust.errors import ConfigError
from rlrobust.evaluation.presets import preset_attacks
from rlrobust.evaluation.protocol import evaluate
from rlrobust.evaluation.suite import run_suite, with_eot


class GradientShield(nn.Module):
    """A randomised defence that hides the gradient, not the decision (Athalye et al. 2018).

    logits = f(x) + (c / w) sin(w x R_t) with a fresh Gaussian R_t (pixels x classes) on every
    forward pass: the added values are at most c / w = 0.01 (the prediction is f's), but the
    added gradient c cos(...) R_t is large and random, so one pass's gradient is mostly noise
    while its mean over passes is f's gradient.
    """

    def __init__(self, model: nn.Module, c: float = 10.0, w: float = 1000.0) -> None:
        super().__init__()
        self.model, self.c, self.w = model, c, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = torch.randn(x[0].numel(), 10, device=x.device)
        return self.model(x) + self.c / self.w * torch.sin(self.w * x.flatten(1) @ r)


@pytest.fixture(scope="module")
def mlp(digits_mlp):
    return digits_mlp(0)


@pytest.fixture(scope="module")
def points():
    return load_dataset("digits", "test").take(200, seed=0)


def robust_accuracy(model, data, attack, seed=1) -> float:
    record = evaluate(model, data, [attack], batch_size=100, seed=seed)
    return record["robust_accuracy"]


def test_eot_pgd_beats_plain_pgd_on_a_randomised_model(mlp, points):
    shielded = GradientShield(mlp)
    settings = {"eps": 0.1, "steps": 20, "step_size": 0.0125, "seed": 0}
    plain = robust_accuracy(shielded, points, PGD(**settings))
    eot = robust_accuracy(shielded, points, PGD(**settings, eot_samples=20))
    clean = evaluate(shielded, points, [], seed=1)["clean_accuracy"]
    # Measured: clean 0.995, plain PGD 0.835, EOT-PGD 0.58 (docs/evaluation.md).
    assert clean > 0.95
    assert eot < plain - 0.1
    # ...and on the model without the shield, EOT changes nothing: the gain is the averaging.
    undefended_plain = robust_accuracy(mlp, points, PGD(**settings))
    undefended_eot = robust_accuracy(mlp, points, PGD(**settings, eot_samples=20))
    assert undefended_eot == pytest.approx(undefended_plain)


def test_eot_gradient_is_the_mean_of_per_pass_gradients(mlp, points):
    """A slow loop as the reference: k passes, each with its own draw, averaged by hand."""
    shielded = GradientShield(mlp)
    x = points.images[:8].float() / 255
    y = points.labels[:8]
    loss = get_loss("ce", False)
    torch.manual_seed(5)
    expected = torch.stack(
        [logits_and_input_gradient(shielded, loss, x, y)[1] for _ in range(7)]
    ).mean(0)
    torch.manual_seed(5)
    _, got = PGD(eps=0.1, eot_samples=7)._gradient(shielded, loss, x, y, check=True)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_eot_on_a_deterministic_model_is_plain_pgd(mlp, points):
    x = points.images[:32].float() / 255
    y = points.labels[:32]
    plain = PGD(eps=0.1, steps=5, seed=3)(mlp, x, y)
    eot = PGD(eps=0.1, steps=5, seed=3, eot_samples=4)(mlp, x, y)
    assert torch.equal(plain, eot)


def test_eot_samples_must_be_positive():
    with pytest.raises(ConfigError, match="eot_samples must be an integer >= 1"):
        PGD(eps=0.1, eot_samples=0)
    assert PGD(eps=0.1, eot_samples=3).describe()["eot_samples"] == 3


def test_autoattack_rand_version_is_pyautoattacks(mlp, points):
    attack = AutoAttack(eps=0.1, version="rand", n_iter=5)
    assert attack.attacks == ["apgd-ce", "apgd-dlr"] and attack.eot_iter == 20
    assert AutoAttack(eps=0.1, version="rand", eot_iter=3).describe()["eot_iter"] == 3
    assert AutoAttack(eps=0.1).eot_iter == 1
    # The adapter hands eot_iter to pyautoattack's APGD: with 3 passes the attack runs 3 times
    # as many forward passes per step as with 1 (counted by a wrapper).
    calls = {"n": 0}

    class Counting(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            calls["n"] += 1
            return self.model(x)

    x = points.images[:20].float() / 255
    y = points.labels[:20]
    counts = []
    for eot_iter in (1, 3):
        calls["n"] = 0
        custom = AutoAttack(
            eps=0.01, version="custom", attacks=["apgd-ce"], n_iter=6, eot_iter=eot_iter
        )
        custom(Counting(mlp), x, y)
        counts.append(calls["n"])
    assert counts[1] > 2 * counts[0]


def test_autoattack_rand_fools_the_randomised_model(mlp, points):
    shielded = GradientShield(mlp)
    data = points.take(60, seed=2)
    settings = {"eps": 0.1, "n_iter": 20, "seed": 0}
    plain = robust_accuracy(
        shielded, data, AutoAttack(version="custom", attacks=["apgd-ce"], **settings)
    )
    rand = robust_accuracy(
        shielded, data, AutoAttack(version="custom", attacks=["apgd-ce"], eot_iter=20, **settings)
    )
    assert rand < plain - 0.1


def test_the_suite_turns_eot_on_for_a_random_model_only(mlp, points):
    data = points.take(40, seed=3)
    specs = [{"name": "pgd", "settings": {"eps": 0.1, "steps": 5}}]
    with pytest.warns(UserWarning, match="forward pass is random"):
        random = run_suite(GradientShield(mlp), data, attacks=specs, batch_size=40)
    assert random["eot"]["eot_samples"] == 20 and random["eot"]["forward"]["random"]
    assert random["evaluation"]["attacks"][0]["attack"]["eot_samples"] == 20
    fixed = run_suite(mlp, data, attacks=specs, batch_size=40)
    assert fixed["eot"]["eot_samples"] == 1 and not fixed["eot"]["forward"]["random"]
    assert fixed["evaluation"]["attacks"][0]["attack"]["eot_samples"] == 1
    forced = run_suite(mlp, data, attacks=specs, batch_size=40, eot_samples=3)
    assert forced["eot"] == {"eot_samples": 3, "auto": False}


def test_with_eot_switches_autoattack_to_rand_and_keeps_explicit_settings():
    specs = preset_attacks("standard", 0.1) + [
        {"name": "pgd", "settings": {"eps": 0.1, "eot_samples": 5}},
        {
            "name": "autoattack",
            "settings": {"eps": 0.1, "version": "custom", "attacks": ["apgd-ce"]},
        },
    ]
    out = with_eot(specs, 20)
    by_name = [(s["name"], s.get("label"), s["settings"]) for s in out]
    assert by_name[0][0] == "fgsm" and "eot_samples" not in by_name[0][2]
    assert by_name[1][2]["eot_samples"] == 20
    assert by_name[2][1] == "autoattack-rand" and by_name[2][2]["version"] == "rand"
    assert by_name[3][2]["eot_samples"] == 5  # explicit wins
    assert by_name[4][2]["version"] == "custom" and by_name[4][2]["eot_iter"] == 20
    for spec in out:
        build_attack(spec["name"], **spec["settings"])
    assert [s["settings"].get("eot_samples") for s in preset_attacks("rand", 0.1)[:2]] == [20, 20]
