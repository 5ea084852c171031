"""Adversarial defences as training steps: threat model, progress, resume, L2L, TRADES, detector."""

from __future__ import annotations

import csv
import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from rlrobust.attacks import build_attack
from rlrobust.config import AdversarialConfig, load_config
from rlrobust.data import BatchLoader, load_dataset
from rlrobust.errors import ConfigError
from rlrobust.evaluation.protocol import evaluate
from rlrobust.models import build_model
from rlrobust.objectives import stats_on_device
from rlrobust.objectives.trades import trades_kl, trades_loss
from rlrobust.registry import OBJECTIVES
from rlrobust.seeding import make_generator
from rlrobust.training.adversarial import AdversarialStep, catastrophic_overfitting
from rlrobust.training.checkpoint import load_weights
from rlrobust.training.loop import train_one_epoch
from rlrobust.training.run import train_run
from rlrobust.training.setup import build_step

# Tiny tensors: one torch thread avoids start-up and contention costs (see conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPS = 0.1

# (method, extra adversarial settings, objective name, objective options)
METHODS = {
    "fgsm_at": ("fgsm_at", {}, "cross_entropy", {}),
    "fgsm_at_wong": ("fgsm_at", {"random_start": True}, "cross_entropy", {}),
    "fgsm_at_policy": ("fgsm_at", {"attack_loss": "objective"}, "gupta_vpg", {}),
    "pgd_at": ("pgd_at", {"steps": 6}, "cross_entropy", {}),
    "trades": ("trades", {"steps": 6}, "cross_entropy", {}),
    "rl_adv": ("rl_adv", {"start_epoch": 0}, "zou_pg", {"epsilon": 0.0}),
    "rl_adv_pgd_ce": (
        "rl_adv",
        {"start_epoch": 0, "attack": "pgd", "steps": 6, "attack_loss": "ce"},
        "kim_policy",
        {"lam": 0.5},
    ),
    "l2l": ("l2l", {}, "cross_entropy", {}),
    "l2l_plain": ("l2l", {"l2l_variant": "plain", "l2l_arch": "two_layer"}, "cross_entropy", {}),
    "l2l_two_step": ("l2l", {"l2l_variant": "two_step"}, "cross_entropy", {}),
    "l2l_policy": ("l2l", {"attack_loss": "objective"}, "kim_warmup", {}),
}


def quiet(*_):
    return None


def make_step(case: str, image_channels: int = 1, **extra):
    method, settings, objective, options = METHODS[case]
    cfg = load_config(
        overrides={
            "train.epochs": 5,
            "adversarial.method": method,
            "adversarial.eps": EPS,
            **{f"adversarial.{k}": v for k, v in {**settings, **extra}.items()},
        }
    )

    class Data:  # build_step reads only the image shape of the training data
        shape = (image_channels, 8, 8)

    return build_step(cfg, Data()), OBJECTIVES.create(objective, **options)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train").take(200, seed=0)


@pytest.fixture(scope="module")
def mnist_batch(shared_data_dir):
    data = load_dataset("mnist", "train", data_dir=shared_data_dir).take(128, seed=1)
    return data.images.float() / 255, data.labels, data


def digits_mlp(data, seed=0):
    torch.manual_seed(seed)
    return build_model(
        "mlp", num_classes=10, in_channels=1, image_size=8, mean=data.mean, std=data.std
    )


# --------------------------------------------------------------------------- the threat model


@pytest.mark.parametrize("case", sorted(METHODS))
def test_every_adversarial_example_respects_the_threat_model(case, digits):
    step, objective = make_step(case)
    seen = []
    step.on_adversarial_example = lambda x, x_adv, eps: seen.append((x, x_adv.detach(), eps))
    model = digits_mlp(digits)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = BatchLoader(digits, 50, shuffle=True, seed=0)
    stats = train_one_epoch(model, loader, objective, optimizer, make_generator(0), step=step)

    assert len(seen) == 4  # every batch of the epoch was adversarial and audited
    for x, x_adv, eps in seen:
        assert eps == pytest.approx(EPS)
        assert (x_adv - x).abs().max().item() <= EPS + 1e-6
        assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
        # It did perturb (an untrained L2L attacker starts with small outputs).
        assert (x_adv - x).abs().max().item() > (0.0 if case.startswith("l2l") else 0.5 * EPS)
    assert stats["adv_violation_rate"] == 0.0
    assert 0.0 < stats["adv_max_perturbation"] <= EPS + 1e-6


@pytest.mark.parametrize("case", sorted(METHODS))
def test_adversarial_steps_leave_their_stats_on_the_device_in_the_training_loop(case, digits):
    # The loop sums the stats on the device (stats_on_device); a python float here would be a
    # host read per batch. Called on their own, steps give python floats as before.
    step, objective = make_step(case)
    model = digits_mlp(digits)
    x, y = digits.images[:50].float() / 255, digits.labels[:50]
    with stats_on_device():
        _, on_device = step(model, x, y, objective, epoch=0, generator=make_generator(0))
    _, on_host = step(model, x, y, objective, epoch=0, generator=make_generator(0))
    assert on_device.keys() == on_host.keys()
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in on_device.values())
    assert all(type(v) is float for v in on_host.values())


def test_eps_ramp_shrinks_the_ball_of_the_first_epochs(digits):
    step, objective = make_step("pgd_at", eps_ramp_epochs=4)
    seen = []
    step.on_adversarial_example = lambda x, x_adv, eps: seen.append((x, x_adv, eps))
    model = digits_mlp(digits)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = BatchLoader(digits, 100, shuffle=True, seed=0)
    for epoch in (0, 1, 5):
        train_one_epoch(
            model, loader, objective, optimizer, make_generator(0), step=step, epoch=epoch
        )
    assert [eps for *_, eps in seen[::2]] == pytest.approx([EPS / 4, EPS / 2, EPS])
    for x, x_adv, eps in seen:
        assert (x_adv - x).abs().max().item() <= eps + 1e-6


def test_random_start_differs_per_batch_yet_replays_from_the_generator(digits):
    step, objective = make_step("fgsm_at_wong")
    seen = []
    step.on_adversarial_example = lambda x, x_adv, eps: seen.append(x_adv.detach().clone())
    model = digits_mlp(digits)
    x, y = digits.images[:32].float() / 255, digits.labels[:32]
    generator = make_generator(5)
    step(model, x, y, objective, epoch=0, generator=generator)
    step(model, x, y, objective, epoch=0, generator=generator)
    step(model, x, y, objective, epoch=0, generator=make_generator(5))
    assert not torch.equal(seen[0], seen[1])  # same batch, new noise
    assert torch.equal(seen[0], seen[2])  # same generator state, same noise


def test_policy_attack_loss_is_deterministic_for_sampling_objectives(digits):
    # gupta_vpg samples actions; the attack fixes them greedily on the clean batch.
    step, objective = make_step("fgsm_at_policy")
    seen = []
    step.on_adversarial_example = lambda x, x_adv, eps: seen.append(x_adv.detach().clone())
    model = digits_mlp(digits)
    x, y = digits.images[:32].float() / 255, digits.labels[:32]
    step(model, x, y, objective, epoch=0, generator=make_generator(1))
    step(model, x, y, objective, epoch=0, generator=make_generator(2))
    assert torch.equal(seen[0], seen[1])


# --------------------------------------------------------------------------- progress on MNIST


@pytest.mark.realdata
@pytest.mark.parametrize("case", ["fgsm_at", "pgd_at", "trades", "rl_adv", "l2l"])
def test_each_method_lowers_its_own_objective_on_mnist(case, mnist_batch):
    x, y, data = mnist_batch
    step, objective = make_step(case)
    torch.manual_seed(0)
    model = build_model(
        "mlp", num_classes=10, in_channels=1, image_size=28, mean=data.mean, std=data.std
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = make_generator(0)
    history = []
    for _ in range(15):
        loss, stats = step(model, x, y, objective, epoch=0, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append((float(loss.detach()), stats))
    if case == "rl_adv":
        # A policy objective maximises reward (its surrogate's value is not monotone): the
        # reward on x and on x_adv must both rise.
        first, last = history[0][1], history[-1][1]
        assert last["reward_mean"] > first["reward_mean"] + 0.1
        assert last["adv_reward_mean"] > first["adv_reward_mean"] + 0.1
    else:
        assert history[-1][0] < 0.75 * history[0][0], [round(h[0], 3) for h in history]


# --------------------------------------------------------------------------- TRADES term


def test_trades_kl_is_zero_for_equal_inputs_and_positive_otherwise():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=generator)
    assert trades_kl(logits, logits).item() == 0.0
    assert torch.equal(trades_kl(logits, logits, reduction="none"), torch.zeros(6))
    other = logits + torch.randn(6, 5, generator=generator)
    assert (trades_kl(logits, other, reduction="none") > 0).all()
    # Shifting every logit of a row leaves the softmax, hence the KL, unchanged.
    assert trades_kl(logits, logits + 3.0).item() == pytest.approx(0.0, abs=1e-6)


def test_trades_kl_matches_a_direct_formula_and_finite_differences():
    generator = torch.Generator().manual_seed(1)
    natural = torch.randn(4, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    adv = torch.randn(4, 3, generator=generator, dtype=torch.float64, requires_grad=True)

    ours = trades_kl(natural, adv)
    # Zhang et al.'s reference: KLDivLoss(sum)(log_softmax(adv), softmax(natural)) / B.
    reference = F.kl_div(F.log_softmax(adv, 1), F.softmax(natural, 1), reduction="sum") / 4
    p, q = natural.softmax(1), adv.softmax(1)
    direct = (p * (p / q).log()).sum() / 4
    assert ours.item() == pytest.approx(reference.item(), rel=1e-12)
    assert ours.item() == pytest.approx(direct.item(), rel=1e-12)

    grads = torch.autograd.grad(ours, (natural, adv))
    expected = torch.autograd.grad(direct, (natural, adv))
    for got, want in zip(grads, expected, strict=True):
        assert torch.allclose(got, want, atol=1e-12)
    assert torch.autograd.gradcheck(trades_kl, (natural, adv))


def test_trades_loss_adds_beta_times_the_kl():
    generator = torch.Generator().manual_seed(2)
    natural, adv = torch.randn(5, 4, generator=generator), torch.randn(5, 4, generator=generator)
    y = torch.tensor([0, 1, 2, 3, 0])
    loss, stats = trades_loss(natural, adv, y, beta=2.0)
    expected = F.cross_entropy(natural, y) + 2.0 * trades_kl(natural, adv)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert stats["kl"] == pytest.approx(trades_kl(natural, adv).item(), rel=1e-6)
    with pytest.raises(ConfigError, match="beta"):
        trades_loss(natural, adv, y, beta=-1.0)


# --------------------------------------------------------------------------- runs and resume


def run_config(method: str, **overrides):
    base = {
        "data.name": "digits",
        "data.train_subset": 200,
        "data.test_subset": 100,
        "data.batch_size": 50,
        "model.name": "mlp",
        "train.epochs": 2,
        "train.seed": 4,
        "optim.name": "adam",
        "optim.lr": 0.003,
        "eval.attacks": "[]",
        "adversarial.method": method,
        "adversarial.eps": EPS,
        "adversarial.steps": 3,
        "adversarial.monitor_size": 50,
    }
    return load_config(overrides={**base, **overrides})


# Kim Table 6: TRADES with cross-entropy, then Eq. 4 with greedy actions after a fixed epoch.
KIM_TABLE6 = {
    "objective.name": "kim_policy",
    "objective.options": '{"lam": 0.5, "action": "greedy"}',
    "two_stage.enabled": "true",
    "two_stage.warmup_objective": "cross_entropy",
    "two_stage.warmup_options": "{}",
    "two_stage.switch_epoch": "1",
}


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize(
    ("method", "extra", "weight_files"),
    [
        ("trades", KIM_TABLE6, ["model.safetensors"]),
        (
            "l2l",
            {"adversarial.l2l_variant": "two_step"},
            ["model.safetensors", "attacker.safetensors"],
        ),
    ],
)
def test_resume_gives_bit_identical_weights(tmp_path, method, extra, weight_files):
    cfg = run_config(method, **extra)
    train_run(cfg, tmp_path / "whole", log=quiet)
    train_run(cfg, tmp_path / "parts", log=quiet, stop_after_epoch=1)
    state = train_run(cfg, tmp_path / "parts", resume=True, log=quiet)
    assert state["finished"] and not state["stopped_early"]
    for name in weight_files:
        whole = load_file(tmp_path / "whole" / name)
        parts = load_file(tmp_path / "parts" / name)
        assert whole.keys() == parts.keys()
        for key in whole:
            assert torch.equal(whole[key], parts[key]), (name, key)
    rows_whole = read_csv(tmp_path / "whole" / "metrics.csv")
    rows_parts = read_csv(tmp_path / "parts" / "metrics.csv")
    for a, b in zip(rows_whole, rows_parts, strict=True):
        assert {k: v for k, v in a.items() if k != "epoch_seconds"} == {
            k: v for k, v in b.items() if k != "epoch_seconds"
        }
    if method == "trades":  # the Kim Table 6 switch happened and TRADES went on after it
        assert [r["stage"] for r in rows_whole] == ["warmup", "main"]
        assert float(rows_whole[1]["train_kl"]) > 0
        assert "train_reward_mean" in rows_whole[1]


def test_trained_l2l_attacker_raises_the_loss_more_than_random_noise(tmp_path):
    cfg = run_config("l2l", **{"train.epochs": 4, "data.train_subset": 600})
    train_run(cfg, tmp_path / "run", log=quiet)
    info = json.loads((tmp_path / "run" / "attacker.json").read_text())
    assert info["variant"] == "gradient" and info["eps"] == pytest.approx(EPS)

    test = load_dataset("digits", "test").take(200, seed=0)
    model = digits_mlp(test)
    load_weights(model, tmp_path / "run" / "model.safetensors")
    model.eval()
    x, y = test.images.float() / 255, test.labels
    attack = build_attack("l2l", run=str(tmp_path / "run"))
    x_adv = attack(model, x, y)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x_noise = (x + EPS * noise).clamp(0, 1)
    with torch.no_grad():
        clean, learned, random = (F.cross_entropy(model(v), y).item() for v in (x, x_adv, x_noise))
    assert learned > random + 0.1 and learned > clean + 0.1, (clean, random, learned)
    assert (x_adv - x).abs().max().item() <= EPS + 1e-6

    # Usable in the evaluation protocol like any attack; the audit passes.
    record = evaluate(model, test, [attack], batch_size=100)
    assert record["audit_passed"]
    assert record["robust_accuracy"] < record["clean_accuracy"]


# --------------------------------------------------------------------------- overfitting detector


def test_detector_fires_on_catastrophic_overfitting_only():
    def history(fgsm, pgd):
        return [{"fgsm": f, "pgd": p} for f, p in zip(fgsm, pgd, strict=True)]

    collapse = history([0.50, 0.55, 0.60, 0.85], [0.40, 0.45, 0.47, 0.05])
    healthy = history([0.40, 0.50, 0.55, 0.56], [0.30, 0.40, 0.45, 0.46])
    worse = history([0.60, 0.62, 0.15], [0.45, 0.47, 0.10])  # both fall: a broken run, not CO
    small_dip = history([0.50, 0.55, 0.60], [0.40, 0.45, 0.30])
    assert catastrophic_overfitting(collapse, 0.2)
    assert not any(catastrophic_overfitting(healthy[: i + 1], 0.2) for i in range(4))
    assert not any(catastrophic_overfitting(collapse[: i + 1], 0.2) for i in range(3))
    assert not catastrophic_overfitting(worse, 0.2)
    assert not catastrophic_overfitting(small_dip, 0.2)
    assert catastrophic_overfitting(small_dip, 0.1)


@pytest.mark.parametrize("stop", [True, False])
def test_planted_collapse_warns_and_can_stop_the_run(tmp_path, monkeypatch, stop):
    planted = iter([(0.50, 0.40), (0.55, 0.45), (0.90, 0.05), (0.92, 0.04)])
    monkeypatch.setattr(AdversarialStep, "monitor", lambda self, model, heldout: next(planted))
    lines = []
    cfg = run_config(
        "fgsm_at", **{"train.epochs": 4, "adversarial.stop_on_overfitting": str(stop).lower()}
    )
    state = train_run(cfg, tmp_path / "run", log=lines.append)
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    flags = [float(r["catastrophic_overfitting"]) for r in rows]
    assert any("catastrophic overfitting after epoch 3" in line for line in lines)
    assert state["finished"]
    if stop:
        assert flags == [0.0, 0.0, 1.0]
        assert state["stopped_early"] and "catastrophic overfitting" in state["stop_reason"]
        assert state["epoch"] == 3
    else:
        assert flags == [0.0, 0.0, 1.0, 1.0]
        assert not state["stopped_early"] and state["stop_reason"] is None
    assert (tmp_path / "run" / "model-best-monitor-pgd.safetensors").is_file()
    # The monitor's columns reach metrics.csv on every epoch.
    assert [float(r["monitor_pgd_accuracy"]) for r in rows][:3] == [0.40, 0.45, 0.05]


# --------------------------------------------------------------------------- config checks


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"adversarial.method": "madry"}, "fgsm_at, pgd_at, trades, rl_adv, l2l"),
        ({"adversarial.method": "trades", "adversarial.beta": -1}, "beta"),
        ({"adversarial.method": "pgd_at", "adversarial.eps": 8}, "eps"),
        ({"adversarial.method": "pgd_at", "adversarial.eps": 0}, "eps"),
        ({"adversarial.method": "pgd_at", "adversarial.steps": 0}, "steps"),
        ({"adversarial.method": "pgd_at", "adversarial.step_size": -0.1}, "step_size"),
        ({"adversarial.method": "rl_adv", "adversarial.adv_rate": -0.2}, "adv_rate"),
        ({"adversarial.method": "rl_adv"}, "start_epoch is 50"),  # Zou's default vs 10 epochs
        ({"adversarial.method": "rl_adv", "adversarial.attack": "cw"}, "fgsm, pgd"),
        ({"adversarial.method": "fgsm_at", "adversarial.attack": "pgd"}, "pgd_at"),
        ({"adversarial.method": "trades", "adversarial.attack_loss": "ce"}, "attack_loss"),
        ({"adversarial.method": "l2l", "adversarial.l2l_variant": "3step"}, "two_step"),
        ({"adversarial.method": "l2l", "adversarial.l2l_lr": 0}, "l2l_lr"),
        ({"adversarial.overfit_drop": 1.5}, "overfit_drop"),
        (
            {"adversarial.stop_on_overfitting": "true", "adversarial.monitor_size": 0},
            "monitor_size",
        ),
    ],
)
def test_bad_adversarial_settings_are_refused(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(overrides=overrides)


def test_method_defaults_follow_the_papers():
    zou = AdversarialConfig(method="rl_adv").resolved()
    assert (zou.eps, zou.adv_rate, zou.start_epoch, zou.attack, zou.attack_loss) == (
        0.01,
        0.2,
        50,
        "fgsm",
        "objective",
    )
    assert zou.random_start is False
    gupta = AdversarialConfig(method="fgsm_at").resolved()
    assert gupta.random_start is False and gupta.attack_loss == "ce"
    assert AdversarialConfig(method="pgd_at").resolved().random_start is True
    assert AdversarialConfig(method="trades").resolved().beta == 6.0


def test_l2l_attack_can_fit_its_attacker_to_the_model_without_changing_it(digits):
    from rlrobust.attacks.l2l import L2LAttack, build_attacker

    torch.manual_seed(0)
    attacker = build_attacker("slim", 1, "gradient")
    before = {k: v.clone() for k, v in attacker.state_dict().items()}
    model = digits_mlp(digits)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = digits.images.float() / 255, digits.labels
    for _ in range(60):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.eval()
    as_is = L2LAttack(attacker=attacker, eps=EPS)(model, x, y)
    fitted = L2LAttack(attacker=attacker, eps=EPS, fit_steps=20)(model, x, y)
    with torch.no_grad():
        losses = [F.cross_entropy(model(v), y).item() for v in (x, as_is, fitted)]
    assert losses[2] > losses[1] + 0.1 and losses[2] > losses[0] + 0.1, losses
    assert (fitted - x).abs().max().item() <= EPS + 1e-6
    assert all(torch.equal(v, before[k]) for k, v in attacker.state_dict().items())
