"""Tests for rlrobust.attacks: the attack contract over every registered attack, analytic checks,
equivalence with torchattacks / pyautoattack, losses, argument errors and restarts."""

from __future__ import annotations

import functools
import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlrobust.attacks import (
    ATTACKS,
    FGSM,
    PGD,
    build_attack,
    list_attacks,
    model_frozen,
    normalize_l2,
    project,
)
from rlrobust.attacks.base import choose_targets
from rlrobust.attacks.l2l import build_attacker
from rlrobust.attacks.losses import get_loss
from rlrobust.errors import ConfigError, DataError, RLRobustError, UnknownNameError


def digits_mlp_surrogate() -> nn.Module:
    """A small MLP fitted on sklearn's digits (full-batch Adam), the transfer attack's surrogate.

    Built once at import with a forked global RNG, so importing this module changes no random
    state; it shares the data (not the architecture) with the `trained` fixture's model.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images[:1500], dtype=torch.float32).flatten(1) / 16.0
    y = torch.tensor(data.target[:1500], dtype=torch.int64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
        for _ in range(60):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


SURROGATE = digits_mlp_surrogate()


# Settings for every registered attack, per norm. A new attack must add an entry here (the
# test `test_every_registered_attack_has_settings` fails otherwise). The "random" entry turns on
# whatever randomness the attack has, for the seed tests.
def untrained_l2l_attacker() -> nn.Module:
    """A fixed, untrained L2L attacker; the contract tests fine-tune a copy (fit_steps)."""
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    attacker = build_attacker("slim", 1, "gradient")
    torch.random.set_rng_state(state)
    return attacker


L2L_ATTACKER = untrained_l2l_attacker()

SETTINGS: dict[str, dict[str, dict]] = {
    "l2l": {
        "linf": {"attacker": L2L_ATTACKER, "eps": 0.1, "norm": "linf", "fit_steps": 20},
        "l2": {"attacker": L2L_ATTACKER, "eps": 1.0, "norm": "l2", "fit_steps": 20},
        "random": {"random_start": True},
    },
    "fgsm": {
        "linf": {"eps": 0.1, "norm": "linf"},
        "l2": {"eps": 1.0, "norm": "l2"},
        "random": {"random_start": True},
    },
    "pgd": {
        "linf": {"eps": 0.1, "norm": "linf", "steps": 10, "step_size": 0.025},
        "l2": {"eps": 1.0, "norm": "l2", "steps": 10},
        "random": {"random_start": True},
    },
    "mpgd": {
        "linf": {"eps": 0.1, "norm": "linf", "steps": 10},
        "l2": {"eps": 1.0, "norm": "l2", "steps": 10},
        "random": {"random_start": True},
    },
    "square": {
        # The schedule of p is stretched to the small budget, so 150 queries suffice on 8x8 images.
        "linf": {"eps": 0.1, "norm": "linf", "n_queries": 150, "rescale_schedule": True},
        "l2": {"eps": 1.0, "norm": "l2", "n_queries": 150, "rescale_schedule": True},
        "random": {},
    },
    "autoattack": {
        "linf": {
            "eps": 0.1,
            "norm": "linf",
            "version": "custom",
            "attacks": ["apgd-ce"],
            "n_iter": 10,
        },
        "l2": {"eps": 1.0, "norm": "l2", "version": "custom", "attacks": ["apgd-ce"], "n_iter": 10},
        "random": {},
    },
    "transfer": {
        "linf": {"surrogate": SURROGATE, "base": "mpgd", "eps": 0.1, "norm": "linf"},
        "l2": {"surrogate": SURROGATE, "base": "mpgd", "eps": 1.0, "norm": "l2"},
        "random": {"base_settings": {"random_start": True}},
    },
    # Replays PGD's fooling examples (``contract_examples`` adds them in ``make_attack``).
    "saved": {
        "linf": {"eps": 0.1, "norm": "linf"},
        "l2": {"eps": 1.0, "norm": "l2"},
        "random": {},
    },
}
# Attacks that return the clean x wherever they fail (AutoAttack, as pyautoattack does). On the
# contract tests' random batch nothing may be fooled at eps = 0.1 (the one correctly classified
# point is robust there), so "the points moved" is checked as "exactly the fooled points moved";
# `test_attack_lowers_accuracy_of_trained_model` still rules out an identity attack.
KEEPS_CLEAN_IF_NOT_FOOLED = {"autoattack", "saved"}
# Attacks with nothing random to seed (a replay of stored examples).
NOT_RANDOM = {"saved"}
NORMS = ("linf", "l2")
CASES = [(name, norm) for name in ATTACKS.names() for norm in NORMS]
RANDOM_CASES = [(name, norm) for name, norm in CASES if name not in NOT_RANDOM]


def make_attack(name: str, norm: str, **overrides) -> object:
    settings = {**SETTINGS[name][norm], **overrides}
    if name == "saved":
        settings["examples"] = contract_examples(norm)
    return build_attack(name, **settings)


# --------------------------------------------------------------------------- tiny models and data


class TinyConv(nn.Module):
    """1x8x8 -> 10 classes, with BatchNorm and Dropout so a leaked train mode would show."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(F.relu(self.bn(self.conv(x))))
        return self.fc(h.flatten(1))


def tiny_conv(seed: int = 0) -> TinyConv:
    torch.manual_seed(seed)
    model = TinyConv()
    # Non-trivial running statistics, so that eval mode differs from train mode.
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.2, 0.2)
        model.bn.running_var.uniform_(0.5, 1.5)
    return model


def linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    return digits_tensors()


def digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's bundled 8x8 digits (offline), scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.int64)
    return x, y


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    return trained_on_digits()


@functools.cache
def trained_on_digits() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small conv net trained briefly on digits, plus 128 held-out examples (built once: the
    `trained` fixture and the `saved` attack's examples share it)."""
    x, y = digits_tensors()
    model = tiny_conv(1)
    model.drop.p = 0.0
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    x_train, y_train = x[:1500], y[:1500]
    model.train()
    for _ in range(4):
        order = torch.randperm(len(x_train), generator=generator)
        for i in range(0, len(order), 100):
            batch = order[i : i + 100]
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    model.zero_grad(set_to_none=True)
    return model, x[1600:1728].clone(), y[1600:1728].clone()


@functools.cache
def contract_examples(norm: str):
    """The `saved` attack's examples: PGD's fooling points on the contract tests' random batch
    (model ``tiny_conv()``) and on the trained model's held-out points."""
    from rlrobust.attacks.saved import ExampleSet

    trained_model, x_held, y_held = trained_on_digits()
    with torch.random.fork_rng(devices=[]):
        model = tiny_conv().eval()
    pgd = build_attack("pgd", **SETTINGS["pgd"][norm], keep_fooling=True)
    kept = []
    for net, (x, y) in [(model, batch()), (trained_model, (x_held, y_held))]:
        x_adv = pgd(net, x, y)
        with torch.no_grad():
            fooled = (net(x).argmax(1) == y) & (net(x_adv).argmax(1) != y)
        kept.append((x[fooled], x_adv[fooled], y[fooled]))
    x, x_adv, y = (torch.cat(parts) for parts in zip(*kept, strict=True))
    eps = SETTINGS["saved"][norm]["eps"]
    return ExampleSet(x_adv=x_adv, x=x, y=y, index=torch.arange(len(x)), eps=eps, norm=norm)


def batch(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=generator)
    y = torch.randint(0, 10, (n,), generator=generator)
    return x, y


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def distance(x_adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    delta = (x_adv - x).flatten(1)
    return delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)


# --------------------------------------------------------------------------- registry coverage


def test_every_registered_attack_has_settings():
    missing = [name for name in ATTACKS.names() if name not in SETTINGS]
    assert not missing, f"add test settings for {missing} to SETTINGS in tests/test_attacks.py"
    for name in ATTACKS.names():
        assert set(NORMS) <= set(SETTINGS[name]), name
    assert {"fgsm", "pgd"} <= set(list_attacks())


@pytest.mark.parametrize("name", ATTACKS.names())
def test_describe_is_json_and_names_the_attack(name):
    attack = make_attack(name, "linf")
    record = json.loads(json.dumps(attack.describe()))
    assert record["name"] == name
    assert record["eps"] == pytest.approx(0.1)
    assert record["norm"] == "linf"
    assert "seed" in record


# --------------------------------------------------------------------------- the contract


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_output_inside_ball_and_pixel_range(name, norm):
    model = tiny_conv().eval()
    x, y = batch()
    x_adv = make_attack(name, norm)(model, x, y)
    eps = SETTINGS[name][norm]["eps"]
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert distance(x_adv, x, norm).max().item() <= eps + 1e-6
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
    assert not x_adv.requires_grad
    if name in KEEPS_CLEAN_IF_NOT_FOOLED:
        with torch.no_grad():
            fooled = (model(x).argmax(1) == y) & (model(x_adv).argmax(1) != y)
        assert torch.equal(x_adv[~fooled], x[~fooled])
        assert (distance(x_adv[fooled], x[fooled], norm) > 0).all()
        return
    # The attack did move the points (an identity "attack" would pass the checks above).
    assert distance(x_adv, x, norm).max().item() > 0.5 * eps


@pytest.mark.parametrize(("name", "norm"), CASES)
@pytest.mark.parametrize("start_mode", ["train", "eval"])
def test_model_left_as_found(name, norm, start_mode):
    model = tiny_conv()
    model.train(start_mode == "train")
    model.conv.bias.requires_grad_(False)  # one frozen parameter must stay frozen
    flags_before = {n: p.requires_grad for n, p in model.named_parameters()}
    modes_before = {n: m.training for n, m in model.named_modules()}
    state_before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = batch()

    make_attack(name, norm)(model, x, y)

    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags_before
    assert {n: m.training for n, m in model.named_modules()} == modes_before
    assert all(p.grad is None for p in model.parameters())
    # Eval mode during the attack: BatchNorm running statistics are not updated.
    for key, value in model.state_dict().items():
        assert torch.equal(value, state_before[key]), key


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_mixed_module_modes_restored(name, norm):
    model = tiny_conv().train()
    model.bn.eval()  # e.g. frozen BatchNorm inside a model that is training
    x, y = batch()
    make_attack(name, norm)(model, x, y)
    assert model.training and model.conv.training and model.drop.training
    assert not model.bn.training


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_runs_in_eval_mode_whatever_the_starting_mode(name, norm):
    # With dropout active, a train-mode forward would change the result (and use the global RNG).
    x, y = batch()
    model = tiny_conv()
    from_eval = make_attack(name, norm)(model.eval(), x, y)
    torch.manual_seed(123)
    from_train = make_attack(name, norm)(model.train(), x, y)
    assert torch.equal(from_eval, from_train)


@pytest.mark.parametrize(("name", "norm"), CASES)
@pytest.mark.parametrize("x_requires_grad", [False, True])
def test_input_untouched(name, norm, x_requires_grad):
    model = tiny_conv().eval()
    x, y = batch()
    x.requires_grad_(x_requires_grad)
    x_copy, y_copy = x.detach().clone(), y.clone()
    make_attack(name, norm)(model, x, y)
    assert torch.equal(x.detach(), x_copy) and torch.equal(y, y_copy)
    assert x.grad is None
    assert x.requires_grad == x_requires_grad


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_works_under_no_grad(name, norm):
    model = tiny_conv().eval()
    x, y = batch()
    expected = make_attack(name, norm)(model, x, y)
    with torch.no_grad():
        got = make_attack(name, norm)(model, x, y)
    assert torch.equal(expected, got)


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_inference_mode_is_refused_with_a_clear_error(name, norm):
    model = tiny_conv().eval()
    x, y = batch()
    with torch.inference_mode(), pytest.raises(RLRobustError, match="inference_mode"):
        make_attack(name, norm)(model, x, y)


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_same_seed_same_output(name, norm):
    model = tiny_conv().eval()
    x, y = batch()
    settings = {**SETTINGS[name]["random"], "seed": 7}
    first = make_attack(name, norm, **settings)(model, x, y)
    torch.manual_seed(999)  # the global RNG must not matter
    attack = make_attack(name, norm, **settings)
    second = attack(model, x, y)
    third = attack(model, x, y)  # calling again gives the same result too
    assert torch.equal(first, second) and torch.equal(second, third)


@pytest.mark.parametrize(("name", "norm"), [c for c in CASES if c[0] in NOT_RANDOM])
def test_an_attack_without_randomness_ignores_its_seed(name, norm, trained):
    """A replay has nothing to seed: another seed must give the very same points."""
    model, x, y = trained
    a = make_attack(name, norm, seed=0)(model, x, y)
    b = make_attack(name, norm, seed=1)(model, x, y)
    assert torch.equal(a, b) and not torch.equal(a, x)  # the same points, and not a no-op


@pytest.mark.parametrize(("name", "norm"), RANDOM_CASES)
def test_different_seed_with_random_start_differs(name, norm, request):
    model = tiny_conv().eval()
    x, y = batch()
    if name in KEEPS_CLEAN_IF_NOT_FOOLED:
        # The seed can only show on fooled points: use the trained model, where many are fooled.
        model, x, y = request.getfixturevalue("trained")
    random = SETTINGS[name]["random"]
    a = make_attack(name, norm, **random, seed=0)(model, x, y)
    b = make_attack(name, norm, **random, seed=1)(model, x, y)
    assert not torch.equal(a, b)


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_attack_lowers_accuracy_of_trained_model(name, norm, trained):
    model, x, y = trained
    clean = accuracy(model, x, y)
    adversarial = accuracy(model, make_attack(name, norm)(model, x, y), y)
    assert clean > 0.85
    assert adversarial < clean - 0.2


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_labels_out_of_range_raise_data_error(name, norm):
    model = tiny_conv().eval()
    x, y = batch(4)
    y[1], y[3] = 10, -1
    with pytest.raises(DataError, match=r"labels \{-1, 10\}.*\[0, 9\]"):
        make_attack(name, norm)(model, x, y)
    # ...and the model is restored even though the attack failed half way.
    assert all(p.requires_grad for p in model.parameters())
    assert not model.training


@pytest.mark.parametrize(("name", "norm"), CASES)
def test_bad_inputs_raise_data_error(name, norm):
    model = tiny_conv().eval()
    attack = make_attack(name, norm)
    x, y = batch(4)
    x_nan = x.clone()
    x_nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        attack(model, x_nan, y)
    with pytest.raises(DataError, match="normalisation inside the model"):
        attack(model, x * 255, y)
    with pytest.raises(DataError, match="float"):
        attack(model, (x * 255).to(torch.uint8), y)
    with pytest.raises(DataError, match="int64"):
        attack(model, x, y.int())
    with pytest.raises(DataError, match="one label per example"):
        attack(model, x, y[:3])


# --------------------------------------------------------------------------- helpers


def test_model_frozen_restores_on_exception():
    model = tiny_conv().train()
    model.fc.weight.requires_grad_(False)
    with pytest.raises(RuntimeError, match="boom"), model_frozen(model):
        assert not model.training
        assert not any(p.requires_grad for p in model.parameters())
        raise RuntimeError("boom")
    assert model.training and model.bn.training
    assert not model.fc.weight.requires_grad and model.fc.bias.requires_grad


def test_project_linf_and_l2():
    x = torch.full((2, 1, 2, 2), 0.5)
    far = x + torch.tensor([0.3, -0.01]).view(2, 1, 1, 1)
    linf = project(far, x, 0.1, "linf")
    assert torch.allclose(linf - x, torch.tensor([0.1, -0.01]).view(2, 1, 1, 1).expand_as(x))
    l2 = project(far, x, 0.1, "l2")
    # Sample 0 has norm 0.6 -> scaled onto the sphere; sample 1 (norm 0.02) is inside: unchanged.
    assert (l2[0] - x[0]).norm().item() == pytest.approx(0.1, rel=1e-6)
    assert torch.allclose(l2[0] - x[0], torch.full((1, 2, 2), 0.05))
    assert torch.equal(l2[1], far[1])


def test_normalize_l2_unit_norm_and_zero_safe():
    g = torch.zeros(3, 2, 3)
    g[0, 0, 0] = 3.0
    g[0, 1, 2] = 4.0
    g[1] = 1e-20
    out = normalize_l2(g)
    assert torch.allclose(out[0].flatten(), torch.tensor([0.6, 0, 0, 0, 0, 0.8]))
    assert torch.isfinite(out).all()
    assert torch.equal(out[2], torch.zeros(2, 3))


def test_fgsm_linf_matches_analytic_gradient_of_a_linear_model():
    # For logits W x + b, d CE / dx = W^T (softmax(z) - onehot(y)) (Goodfellow et al. 2015).
    model = linear_model().eval()
    x, y = batch(8)
    x = 0.2 + 0.6 * x  # interior points: the clamp to [0, 1] stays inactive
    weight, bias = model[1].weight.detach(), model[1].bias.detach()
    z = x.flatten(1) @ weight.T + bias
    grad = (torch.softmax(z, 1) - F.one_hot(y, 10).float()) @ weight
    expected = x + 0.05 * grad.sign().view_as(x)
    assert torch.allclose(FGSM(eps=0.05)(model, x, y), expected, atol=1e-7)


def test_fgsm_l2_step_has_length_eps():
    model = linear_model().eval()
    x, y = batch(8)
    x = 0.2 + 0.6 * x
    x_adv = FGSM(eps=0.1, norm="l2")(model, x, y)
    assert torch.allclose(distance(x_adv, x, "l2"), torch.full((8,), 0.1), rtol=1e-5)


def test_choose_targets():
    logits = torch.tensor([[0.0, 1.0, -3.0, 2.0], [5.0, -1.0, 0.0, -2.0], [-9.0, 0.0, 1.0, 2.0]])
    y = torch.tensor([0, 3, 2])
    least = choose_targets(logits, y, "least_likely", torch.Generator().manual_seed(0))
    # The lowest logit among the classes other than the label: -3 (class 2), -1 (class 1, the
    # label's -2 is skipped), -9 (class 0).
    assert least.tolist() == [2, 1, 0]
    y_many = torch.randint(0, 4, (500,), generator=torch.Generator().manual_seed(1))
    logits_many = torch.zeros(500, 4)
    a = choose_targets(logits_many, y_many, "random", torch.Generator().manual_seed(3))
    b = choose_targets(logits_many, y_many, "random", torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert (a != y_many).all() and a.min() >= 0 and a.max() <= 3
    assert set(a.tolist()) == {0, 1, 2, 3}


def test_least_likely_skips_the_label():
    logits = torch.tensor([[-5.0, 0.0, 1.0]])
    target = choose_targets(logits, torch.tensor([0]), "least_likely", torch.Generator())
    assert target.tolist() == [1]


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
@pytest.mark.parametrize("loss", ["ce", "margin", "dlr"])
def test_targeted_attack_moves_towards_least_likely_target(name, loss, trained):
    model, x, y = trained
    settings = {"eps": 0.3, "targeted": True, "target": "least_likely", "loss": loss}
    if name == "pgd":
        settings.update(steps=20, step_size=0.03)
    with torch.no_grad():
        clean_logits = model(x)
    target = clean_logits.scatter(1, y[:, None], float("inf")).argmin(1)
    x_adv = build_attack(name, **settings)(model, x, y)
    with torch.no_grad():
        adv_logits = model(x_adv)
    targeted_loss = get_loss(loss, targeted=True)
    # Every sample moved towards its target: the targeted loss went up.
    assert (targeted_loss(adv_logits, y, target) > targeted_loss(clean_logits, y, target)).all()
    assert (clean_logits.argmax(1) == target).float().mean().item() < 0.05
    if name == "pgd":
        # Targeted DLR is the slowest of the three (its numerator ignores the other classes).
        hit = (adv_logits.argmax(1) == target).float().mean().item()
        assert hit > (0.3 if loss == "dlr" else 0.7)


# --------------------------------------------------------------------------- losses


LOGITS = torch.tensor([[2.0, 5.0, -1.0, 3.0]])


def test_margin_loss_by_hand():
    # y = 3: max over the others is 5, so 5 - 3 = 2; y = 1: 3 - 5 = -2.
    margin = get_loss("margin")
    assert margin(LOGITS, torch.tensor([3])).item() == pytest.approx(2.0)
    assert margin(LOGITS, torch.tensor([1])).item() == pytest.approx(-2.0)
    # Targeted, t = 2: z_t - max_{j != t} z_j = -1 - 5 = -6.
    targeted = get_loss("margin", targeted=True)
    assert targeted(LOGITS, torch.tensor([1]), torch.tensor([2])).item() == pytest.approx(-6.0)


def test_dlr_loss_by_hand():
    # Sorted logits 5 > 3 > 2 > -1: z_pi1 = 5, z_pi3 = 2, z_pi4 = -1.
    dlr = get_loss("dlr")
    # y = 3: -(3 - 5) / (5 - 2) = 2/3; y = 1: -(5 - 3) / 3 = -2/3.
    assert dlr(LOGITS, torch.tensor([3])).item() == pytest.approx(2 / 3)
    assert dlr(LOGITS, torch.tensor([1])).item() == pytest.approx(-2 / 3)
    # Targeted, y = 1, t = 2: -(5 - (-1)) / (5 - (2 + (-1)) / 2) = -6 / 4.5.
    targeted = get_loss("dlr", targeted=True)
    value = targeted(LOGITS, torch.tensor([1]), torch.tensor([2])).item()
    assert value == pytest.approx(-6 / 4.5)


def test_dlr_is_invariant_to_shift_and_scale():
    logits = torch.randn(6, 10, generator=torch.Generator().manual_seed(0))
    y = torch.arange(6)
    dlr = get_loss("dlr")
    assert torch.allclose(dlr(logits, y), dlr(3.0 * logits + 7.0, y), atol=1e-6)


def test_ce_loss_by_hand():
    y = torch.tensor([3])
    expected = -3.0 + math.log(sum(math.exp(v) for v in LOGITS[0].tolist()))
    assert get_loss("ce")(LOGITS, y).item() == pytest.approx(expected, rel=1e-6)
    target = torch.tensor([2])
    expected_t = 1.0 + math.log(sum(math.exp(v) for v in LOGITS[0].tolist()))
    assert get_loss("ce", targeted=True)(LOGITS, y, target).item() == pytest.approx(
        -expected_t, rel=1e-6
    )


def test_dlr_needs_three_classes():
    with pytest.raises(ConfigError, match="at least 3 classes.*loss='ce'"):
        get_loss("dlr")(torch.randn(4, 2), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ConfigError, match="at least 4 classes"):
        get_loss("dlr", targeted=True)(
            torch.randn(4, 3), torch.zeros(4, dtype=torch.int64), torch.ones(4, dtype=torch.int64)
        )
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    x, _ = batch(4)
    with pytest.raises(ConfigError, match="at least 3 classes"):
        PGD(eps=0.1, loss="dlr", steps=2)(model, x, torch.zeros(4, dtype=torch.int64))


def test_unknown_loss_lists_valid_names():
    with pytest.raises(UnknownNameError, match="ce, margin, dlr"):
        get_loss("hinge")
    with pytest.raises(UnknownNameError, match="ce, margin, dlr"):
        PGD(loss="hinge")


@pytest.mark.reference
def test_dlr_losses_match_pyautoattack():
    from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

    logits = torch.randn(32, 10, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(1))
    t = (y + 3) % 10
    reference = APGDAttack.dlr_loss(None, logits, y)
    assert torch.allclose(get_loss("dlr")(logits, y), reference, atol=1e-6)
    reference_t = APGDAttack_targeted.dlr_loss_targeted(SimpleNamespace(y_target=t), logits, y)
    assert torch.allclose(get_loss("dlr", targeted=True)(logits, y, t), reference_t, atol=1e-6)


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_negative_eps_is_refused(name):
    with pytest.raises(ConfigError, match=r"eps must be >= 0.*eps=8/255"):
        build_attack(name, eps=-0.1)


@pytest.mark.parametrize("name", ["fgsm", "pgd"])
def test_linf_eps_above_one_names_pixel_units(name):
    with pytest.raises(ConfigError, match=r"pixel units.*8/255 = 0\.0314"):
        build_attack(name, eps=2)
    # l2 budgets above 1 are ordinary (e.g. eps = 2 on MNIST).
    assert build_attack(name, eps=2, norm="l2").eps == 2.0


def test_unknown_norm_and_target_list_valid_choices():
    with pytest.raises(ConfigError, match="linf, l2"):
        PGD(norm="l1")
    with pytest.raises(ConfigError, match="random, least_likely"):
        FGSM(target="most_likely")


@pytest.mark.parametrize(
    "settings", [{"steps": -1}, {"restarts": 0}, {"step_size": 0.0}, {"steps": 2.5}]
)
def test_bad_pgd_settings(settings):
    with pytest.raises(ConfigError):
        PGD(eps=0.1, **settings)


def test_build_attack_unknown_setting_names_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) alpha.*valid settings: eps, "):
        build_attack("pgd", alpha=0.1)
    with pytest.raises(UnknownNameError, match="fgsm, pgd"):
        build_attack("cw")


def test_eps_defaults():
    assert PGD().eps == pytest.approx(8 / 255)
    assert PGD().step_size == pytest.approx(0.01)
    l2 = PGD(norm="l2", eps=1.0, steps=10)
    assert l2.step_size == pytest.approx(0.25)
    assert FGSM(eps=0.1, random_start=True).alpha == pytest.approx(0.125)


def test_zero_eps_returns_the_input(trained):
    model, x, y = trained
    for attack in (FGSM(eps=0.0), PGD(eps=0.0, steps=3), PGD(eps=0.0, norm="l2", steps=3)):
        assert torch.equal(attack(model, x, y), x)


# --------------------------------------------------------------------------- restarts


@pytest.mark.parametrize("norm", NORMS)
def test_restarts_never_fool_fewer_samples(norm, trained):
    model, x, y = trained
    eps = 0.04 if norm == "linf" else 0.35
    settings = {"eps": eps, "norm": norm, "steps": 5, "seed": 3}
    if norm == "linf":
        settings["step_size"] = 0.01
    one = PGD(restarts=1, **settings)(model, x, y)
    many = PGD(restarts=4, **settings)(model, x, y)
    with torch.no_grad():
        fooled_one = model(one).argmax(1) != y
        fooled_many = model(many).argmax(1) != y
    # The setting leaves work for the extra restarts: some but not all samples are fooled.
    assert 0 < fooled_one.sum() < len(y)
    assert (fooled_many | ~fooled_one).all()
    # Samples fooled by restart 0 keep exactly that restart's point.
    assert torch.equal(many[fooled_one], one[fooled_one])
    assert distance(many, x, norm).max().item() <= eps + 1e-6


def test_restarts_keep_highest_loss_when_nothing_fools():
    # A constant model can never be fooled: the kept point is the highest-loss restart.
    class Constant(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # Class 0 always wins; the CE of label 0 grows with the first pixel's value.
            first = x.flatten(1)[:, :1]
            return torch.cat([10 + 0 * first, first, torch.zeros_like(first)], dim=1) + self.w

    model = Constant()
    x = torch.full((6, 1, 2, 2), 0.5)
    y = torch.zeros(6, dtype=torch.int64)
    out = PGD(eps=0.2, steps=0, restarts=5, seed=0)(model, x, y)
    # With steps=0 each restart is a random start; the kept one maximises the first pixel.
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        clean = model(x)
    assert clean.shape == (6, 3)
    starts = [
        (x + (2 * torch.rand(x.shape, generator=generator) - 1) * 0.2).clamp(0, 1) for _ in range(5)
    ]
    best_first_pixel = torch.stack([s.flatten(1)[:, 0] for s in starts]).amax(0)
    assert torch.equal(out.flatten(1)[:, 0], best_first_pixel)


# --------------------------------------------------------------------------- torchattacks


def _untrained_model():
    # An untrained conv net (gradients not saturated) in eval mode.
    return tiny_conv(5).eval()


@pytest.mark.reference
def test_fgsm_equals_torchattacks(trained):
    import torchattacks

    # A batch size that is a power of two: torchattacks averages the loss over the batch and we
    # sum it, and scaling by 2^-k is exact in floating point, so every gradient sign agrees.
    model, x, y = trained
    x, y = x[:64], y[:64]
    for net in (model, _untrained_model()):
        ours = FGSM(eps=8 / 255)(net, x, y)
        theirs = torchattacks.FGSM(net, eps=8 / 255)(x, y)
        assert torch.equal(ours, theirs)


@pytest.mark.reference
def test_pgd_linf_equals_torchattacks(trained):
    import torchattacks

    model, x, y = trained
    x, y = x[:64], y[:64]
    for net in (model, _untrained_model()):
        ours = PGD(eps=8 / 255, step_size=2 / 255, steps=10, random_start=False)(net, x, y)
        theirs = torchattacks.PGD(net, eps=8 / 255, alpha=2 / 255, steps=10, random_start=False)(
            x, y
        )
        assert (ours - theirs).abs().max().item() <= 1e-6


@pytest.mark.reference
def test_pgd_l2_matches_torchattacks(trained):
    import torchattacks

    # torchattacks' PGDL2 step is alpha * g / (||g|| + 1e-10) with g the gradient of the *mean*
    # loss, then delta * min(1, eps / ||delta||) and a clamp to [0, 1]: our formula, up to the
    # tiny constant in the denominator, which is negligible while gradients are not vanishing.
    model, x, y = trained
    x, y = x[:64], y[:64]
    for net in (model, _untrained_model()):
        ours = PGD(eps=0.5, norm="l2", step_size=0.1, steps=10, random_start=False)(net, x, y)
        theirs = torchattacks.PGDL2(net, eps=0.5, alpha=0.1, steps=10, random_start=False)(x, y)
        assert (ours - theirs).abs().max().item() <= 1e-5
