"""Transfer attack (crafted on a surrogate, never touching the target's gradients; surrogates from
run directories) and momentum PGD (MI-FGSM: threat model, mu = 0 is PGD, torchattacks)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from rlrobust.attacks import PGD, MomentumPGD, TransferAttack, build_attack, success_on
from rlrobust.attacks.transfer import load_run_model
from rlrobust.config import load_config
from rlrobust.data import load_dataset
from rlrobust.errors import CheckpointError, ConfigError, RunDirectoryError
from rlrobust.models import build_model
from rlrobust.training.run import train_run

NORMS = ("linf", "l2")
EPS = {"linf": 0.2, "l2": 1.0}


def fit_mlp(hidden: tuple[int, ...], seed: int, steps: int = 100) -> nn.Module:
    """An MLP fitted on the digits training split with full-batch Adam."""
    train = load_dataset("digits", "train")
    torch.manual_seed(seed)
    model = build_model(
        "mlp", num_classes=10, in_channels=1, image_size=8, mean=train.mean, std=train.std,
        hidden=hidden,
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x = train.images.float() / 255
    for _ in range(steps):
        loss = F.cross_entropy(model(x), train.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="module")
def models() -> tuple[nn.Module, nn.Module, torch.Tensor, torch.Tensor]:
    """(surrogate, target, x, y): two differently sized MLPs and 64 digits test points."""
    test = load_dataset("digits", "test")
    return (
        fit_mlp((32,), seed=1),
        fit_mlp((64,), seed=2),
        test.images[:64].float() / 255,
        test.labels[:64],
    )


class NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        raise AssertionError("the target's backward was called")


class Guarded(nn.Module):
    """A target whose backward raises and which counts its forward calls."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.forward_calls = 0

    def forward(self, x):
        self.forward_calls += 1
        return self.model(NoBackward.apply(x))


def distance(x_adv, x, norm):
    delta = (x_adv - x).flatten(1)
    return delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)


def accuracy(model, x, y) -> float:
    return (~success_on(model, x, y)).float().mean().item()


# --------------------------------------------------------------------------- transfer


@pytest.mark.parametrize("norm", NORMS)
def test_examples_are_crafted_on_the_surrogate(norm, models):
    surrogate, target, x, y = models
    base = PGD(eps=EPS[norm], norm=norm, steps=10, step_size=EPS[norm] / 4, seed=4)
    expected = base(surrogate, x, y)
    attack = TransferAttack(surrogate, base=base)
    guarded = Guarded(target)
    x_adv = attack(guarded, x, y)
    assert torch.equal(x_adv, expected)
    assert guarded.forward_calls == 0  # a transfer attack does not even query the target
    assert distance(x_adv, x, norm).max().item() <= EPS[norm] + 1e-6
    assert x_adv.min().item() >= 0 and x_adv.max().item() <= 1
    assert torch.equal(attack.last_success_on_surrogate, success_on(surrogate, x_adv, y))
    assert attack.last_success_on_surrogate.float().mean() > 0.8


def test_base_by_name_equals_the_same_attack_built_directly(models):
    surrogate, target, x, y = models
    attack = build_attack(
        "transfer", surrogate=surrogate, base="mpgd", eps=0.1, seed=2, base_settings={"steps": 5}
    )
    direct = MomentumPGD(eps=0.1, steps=5, seed=2)(surrogate, x, y)
    assert torch.equal(attack(Guarded(target), x, y), direct)
    record = attack.describe()
    assert record["name"] == "transfer" and record["eps"] == 0.1 and record["norm"] == "linf"
    assert record["base"] == MomentumPGD(eps=0.1, steps=5, seed=2).describe()
    assert record["surrogate"].startswith("MLP (")


def test_default_base_is_pgd_and_the_examples_transfer(models):
    surrogate, target, x, y = models
    attack = TransferAttack(surrogate, eps=0.1)
    assert isinstance(attack.base, PGD) and attack.base.eps == 0.1
    x_adv = attack(target, x, y)
    clean, adversarial = accuracy(target, x, y), accuracy(target, x_adv, y)
    assert clean > 0.85
    assert adversarial < clean - 0.2  # made on another model, still effective
    # ...but weaker than the same attack on the target itself (white box).
    assert accuracy(target, PGD(eps=0.1)(target, x, y), y) < adversarial


def test_surrogate_and_target_left_as_found(models):
    surrogate, target, x, y = models
    surrogate.train()
    try:
        TransferAttack(surrogate, eps=0.1, base_settings={"steps": 2})(target, x, y)
        assert surrogate.training and all(m.training for m in surrogate.modules())
        assert all(p.requires_grad and p.grad is None for p in surrogate.parameters())
        assert all(p.grad is None for p in target.parameters())
    finally:
        surrogate.eval()


def test_settings_that_contradict_each_other_are_refused(models):
    surrogate = models[0]
    with pytest.raises(ConfigError, match="eps=0.2 but the base attack has eps=0.1"):
        TransferAttack(surrogate, base=PGD(eps=0.1), eps=0.2)
    with pytest.raises(ConfigError, match="base_settings only apply"):
        TransferAttack(surrogate, base=PGD(eps=0.1), base_settings={"steps": 3})
    with pytest.raises(ConfigError, match="eps to the transfer attack itself"):
        TransferAttack(surrogate, base_settings={"eps": 0.3})
    with pytest.raises(ConfigError, match="unknown setting"):
        TransferAttack(surrogate, base_settings={"momentum": 0.3})
    with pytest.raises(ConfigError, match="nn.Module or the path"):
        TransferAttack(42)
    with pytest.raises(ConfigError, match="another transfer attack"):
        TransferAttack(surrogate, base="transfer")


def test_surrogate_from_a_run_directory(tmp_path, models):
    _, target, x, y = models
    overrides = {
        "data.name": "digits",
        "data.train_subset": 300,
        "data.test_subset": 50,
        "data.batch_size": 50,
        "model.name": "mlp",
        "train.epochs": 1,
        "optim.name": "adam",
        "optim.lr": 0.003,
        "eval.attacks": "[]",
    }
    run_dir = tmp_path / "run"
    train_run(load_config(overrides=overrides), run_dir, log=lambda *_: None)

    attack = build_attack("transfer", surrogate=str(run_dir), eps=0.1, base_settings={"steps": 3})
    assert attack.describe()["surrogate"] == str(run_dir)
    loaded = attack.surrogate
    assert not loaded.training
    saved = load_file(run_dir / "model.safetensors")
    assert saved.keys() == loaded.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in loaded.state_dict().items())
    x_adv = attack(Guarded(target), x, y)
    assert torch.equal(x_adv, PGD(eps=0.1, steps=3)(loaded, x, y))

    with pytest.raises(RunDirectoryError, match="no config.json"):
        load_run_model(tmp_path)
    (run_dir / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        TransferAttack(run_dir)


# --------------------------------------------------------------------------- momentum PGD


@pytest.mark.parametrize("norm", NORMS)
def test_momentum_pgd_threat_model(norm, models):
    _, target, x, y = models
    attack = MomentumPGD(eps=EPS[norm], norm=norm, step_size=EPS[norm] / 4, random_start=True)
    x_adv = attack(target, x, y)
    assert distance(x_adv, x, norm).max().item() <= EPS[norm] + 1e-6
    assert x_adv.min().item() >= 0 and x_adv.max().item() <= 1
    assert accuracy(target, x_adv, y) < 0.5


@pytest.mark.parametrize("norm", NORMS)
def test_zero_momentum_is_pgd(norm, models):
    _, target, x, y = models
    settings = {"eps": EPS[norm], "norm": norm, "steps": 10, "step_size": EPS[norm] / 4}
    ours = MomentumPGD(mu=0.0, **settings)(target, x, y)
    pgd = PGD(random_start=False, **settings)(target, x, y)
    assert (ours - pgd).abs().max().item() <= 1e-6
    # ...and the momentum does change the iterates.
    assert not torch.allclose(MomentumPGD(mu=1.0, **settings)(target, x, y), pgd)


def test_momentum_defaults_follow_dong_et_al():
    attack = MomentumPGD(eps=16 / 255)
    assert attack.mu == 1.0 and attack.steps == 10 and not attack.random_start
    assert attack.step_size == pytest.approx(1.6 / 255)
    assert attack.describe()["mu"] == 1.0
    assert MomentumPGD(norm="l2", steps=5).step_size == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="mu must be"):
        MomentumPGD(mu=-1.0)


@pytest.mark.reference
def test_momentum_pgd_equals_torchattacks_mifgsm(models):
    import torchattacks

    _, target, x, y = models
    ours = MomentumPGD(eps=8 / 255, steps=10, step_size=2 / 255, mu=1.0)(target, x, y)
    theirs = torchattacks.MIFGSM(target, eps=8 / 255, alpha=2 / 255, steps=10, decay=1.0)(x, y)
    # torchattacks divides by the mean |gradient| instead of the sum: the same direction.
    assert (ours - theirs).abs().max().item() <= 1e-6
