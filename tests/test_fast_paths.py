"""The opt-in fast paths give the default path's numbers (within stated tolerances), never timings.

- train.channels_last: logits and one SGD step's weights within atol 1e-5 of the default path;
- train.amp = bf16: a bf16 loss within 5e-2 (relative) of float32 on CPU, training still lowers
  the loss, and the default path is bit-identical to the plain loop it replaced;
- train.compile: compiled and eager logits within 1e-5 (inductor with the C++ compiler here),
  checkpoints without the ``_orig_mod.`` prefix, a failing compiler reported as a ConfigError;
- optim.fused: 5 fused steps of SGD / Adam / AdamW within 1e-6 of the plain update;
- eval.early_exit: identical per-sample verdicts with and without early exit on a trained
  digits MLP (PGD with random start, restarts, ce / margin / dlr, linf and l2, momentum PGD,
  targeted), the same returned points, and fewer per-sample forward passes (counted by a
  wrapper module).
"""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import load_file

from rlrobust.attacks import PGD, MomentumPGD
from rlrobust.attacks.pgd import ACTIVE_SET_EVERY
from rlrobust.config import OptimConfig, load_config
from rlrobust.data import load_dataset
from rlrobust.errors import ConfigError
from rlrobust.evaluation.protocol import evaluate
from rlrobust.models import build_model
from rlrobust.training import fast
from rlrobust.training.checkpoint import load_weights, save_weights
from rlrobust.training.loop import train_one_epoch
from rlrobust.training.optim import build_optimizer
from rlrobust.training.run import train_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def cross_entropy(logits, y, generator=None):
    loss = torch.nn.functional.cross_entropy(logits, y)
    return loss, {"accuracy": float((logits.argmax(1) == y).float().mean())}


def small_cnn(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(
        "zou_cnn6",
        num_classes=10,
        in_channels=3,
        image_size=8,
        mean=[0.5, 0.4, 0.3],
        std=[0.2, 0.3, 0.25],
        widths=(8, 16),
        hidden=32,
    )


def random_batch(n: int = 32, channels: int = 3, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, 8, 8, generator=generator)
    return x, torch.randint(0, 10, (n,), generator=generator)


def digits_mlp(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("mlp", num_classes=10, in_channels=1, image_size=8, mean=[0.3], std=[0.3])


# --------------------------------------------------------------------------- config


def test_fast_path_defaults_and_help():
    cfg = load_config()
    assert (cfg.train.channels_last, cfg.train.amp, cfg.train.compile) == (False, "none", False)
    assert cfg.optim.fused is False and cfg.eval.early_exit is True
    from rlrobust.config import iter_fields

    helps = {key: text for key, _, _, text in iter_fields()}
    for key in ("train.channels_last", "train.amp", "train.compile", "optim.fused"):
        assert "fast path" in helps[key]
    assert "verdicts" in helps["eval.early_exit"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.amp": "fp16"}, "choose one of: none, bf16"),
        ({"optim.name": "rmsprop", "optim.fused": "true"}, "set optim.fused false"),
    ],
)
def test_bad_fast_path_settings_name_the_fix(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


# --------------------------------------------------------------------------- channels_last


def test_channels_last_logits_and_one_sgd_step_match():
    x, y = random_batch()
    plain, fast_model = small_cnn(), small_cnn()
    fast.model_to_channels_last(fast_model)
    assert fast_model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    x_cl = fast.batch_to_channels_last(x)
    assert x_cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(x_cl, x)
    with torch.no_grad():
        assert torch.allclose(fast_model(x_cl), plain(x), atol=1e-5, rtol=0)

    weights = []
    for model, channels_last in ((plain, False), (fast_model, True)):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        train_one_epoch(model, [(x, y)], cross_entropy, optimizer, channels_last=channels_last)
        weights.append(model.state_dict())
    for key, value in weights[0].items():
        assert torch.allclose(weights[1][key], value, atol=1e-5, rtol=0), key


def test_non_image_batches_are_left_alone():
    signal = torch.rand(4, 2, 16)
    assert fast.batch_to_channels_last(signal) is signal


# --------------------------------------------------------------------------- amp


def test_default_path_is_bit_identical_to_the_plain_loop():
    x, y = random_batch(seed=2)
    reference, model = small_cnn(3), small_cnn(3)
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):  # the loop as it was before the fast paths existed
        loss, _ = cross_entropy(reference(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train_one_epoch(model, [(x, y), (x, y)], cross_entropy, optimizer, amp="none")
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_bf16_loss_is_close_to_float32_and_training_still_learns():
    x, y = random_batch(64, seed=4)
    model = small_cnn(5)
    loss32, _ = cross_entropy(model(x), y)
    with fast.autocast("bf16", "cpu"):
        logits = model(x)
        loss16, _ = cross_entropy(logits, y)
    assert logits.dtype == torch.bfloat16 and loss16.dtype == torch.float32
    # bf16 keeps 8 mantissa bits: the loss agrees to about 1e-2 relative, not to 1e-5.
    assert abs(loss16.item() - loss32.item()) <= 5e-2 * loss32.item()

    # Training under bf16 autocast on real digits still lowers the loss; weights stay float32.
    train = load_dataset("digits", "train").take(256, seed=0)
    batch = [(train.images.float() / 255, train.labels)]
    mlp = digits_mlp(5)
    optimizer = torch.optim.Adam(mlp.parameters(), lr=0.01)
    losses = [
        train_one_epoch(mlp, batch, cross_entropy, optimizer, amp="bf16")["loss"] for _ in range(20)
    ]
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.dtype == torch.float32 for p in mlp.parameters())


def test_amp_on_cpu_logs_one_warning_line():
    lines = []
    fast.warn_if_amp_on_cpu("bf16", "cpu", lines.append)
    fast.warn_if_amp_on_cpu("none", "cpu", lines.append)
    assert len(lines) == 1 and "mainly pays off on GPUs" in lines[0] and "\n" not in lines[0]


def test_a_run_with_channels_last_bf16_and_fused_trains_and_saves_plain_weights(tmp_path):
    overrides = {
        "data.name": "digits",
        "data.train_subset": 300,
        "data.test_subset": 100,
        "data.batch_size": 50,
        "model.name": "zou_cnn6",
        "model.options": '{"widths": [4, 8], "hidden": 16}',
        "train.epochs": 2,
        "optim.lr": 0.05,
        "eval.attacks": "[]",
        "train.channels_last": "true",
        "train.amp": "bf16",
        "optim.fused": "true",
    }
    lines = []
    state = train_run(load_config(overrides=overrides), tmp_path / "run", log=lines.append)
    assert state["finished"] and any("mainly pays off on GPUs" in line for line in lines)
    metrics = state["metrics"]
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    plain = build_model(
        "zou_cnn6", num_classes=10, in_channels=1, image_size=8, widths=(4, 8), hidden=16
    )
    load_weights(plain, tmp_path / "run" / "model.safetensors")  # loads into a plain model


# --------------------------------------------------------------------------- compile


@pytest.fixture(scope="module")
def compiled_mlp():
    model = digits_mlp(6).eval()
    return model, fast.compile_model(model)


def test_compiled_and_eager_logits_agree(compiled_mlp):
    model, compiled = compiled_mlp
    x, _ = random_batch(16, channels=1, seed=7)
    with torch.no_grad(), fast.compile_errors():
        assert torch.allclose(compiled(x), model(x), atol=1e-5, rtol=0)


def test_compiled_checkpoints_have_no_prefix(compiled_mlp, tmp_path):
    model, compiled = compiled_mlp
    assert all(key.startswith(fast.COMPILED_PREFIX) for key in compiled.state_dict())
    assert fast.plain_state_dict(compiled).keys() == model.state_dict().keys()
    assert fast.plain_module(compiled) is model
    save_weights(compiled, tmp_path / "w.safetensors")
    assert set(load_file(tmp_path / "w.safetensors")) == set(model.state_dict())
    fresh = digits_mlp(99)
    load_weights(fresh, tmp_path / "w.safetensors")
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)


def test_a_failing_compiler_is_a_config_error_that_says_turn_it_off():
    def broken_backend(graph_module, example_inputs):
        raise RuntimeError("no C++ compiler found")

    compiled = fast.compile_model(digits_mlp(), backend=broken_backend)
    with pytest.raises(ConfigError, match="Set train.compile false"), fast.compile_errors():
        compiled(torch.rand(2, 1, 8, 8))


def test_a_compiled_run_checkpoints_the_plain_module(tmp_path, monkeypatch):
    # The "eager" backend traces with torch.compile but generates no code: the run's wiring is
    # tested here without a second inductor compilation.
    from rlrobust.training import run

    monkeypatch.setattr(run, "compile_model", lambda m: fast.compile_model(m, backend="eager"))
    overrides = {
        "data.name": "digits",
        "data.train_subset": 200,
        "data.test_subset": 50,
        "data.batch_size": 50,
        "model.name": "mlp",
        "train.epochs": 1,
        "eval.attacks": "[]",
        "train.compile": "true",
    }
    train_run(load_config(overrides=overrides), tmp_path / "run", log=lambda *_: None)
    keys = set(load_file(tmp_path / "run" / "model.safetensors"))
    assert keys == set(digits_mlp().state_dict())


# --------------------------------------------------------------------------- fused


@pytest.mark.parametrize(
    "settings",
    [
        {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4},
        {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "nesterov": True},
        {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4},
        {"name": "adamw", "lr": 1e-3, "weight_decay": 1e-2},
    ],
)
def test_fused_update_matches_the_plain_one(settings):
    x, y = random_batch(16, seed=8)
    models = [small_cnn(9), small_cnn(9)]
    for model, fused in zip(models, (False, True), strict=True):
        optimizer = build_optimizer(OptimConfig(**settings, fused=fused), model.parameters())
        assert optimizer.defaults.get("fused") is (True if fused else None)
        for _ in range(5):
            train_one_epoch(model, [(x, y)], cross_entropy, optimizer)
    for key, value in models[0].state_dict().items():
        assert torch.allclose(models[1].state_dict()[key], value, atol=1e-6, rtol=0), key


def test_fused_rmsprop_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="no fused rmsprop update.*set optim.fused false"):
        build_optimizer(OptimConfig(name="rmsprop", fused=True), small_cnn().parameters())


# --------------------------------------------------------------------------- early exit


class CountingModel(torch.nn.Module):
    """Counts the samples that go through forward passes (rows, summed over calls)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rows = 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.model(x)


@pytest.fixture(scope="module")
def trained_digits(fit_full_batch):
    """An MLP trained on digits (full batch, Adam; about a second) and 150 test points."""
    model = fit_full_batch(digits_mlp(0), load_dataset("digits", "train"))
    return model, load_dataset("digits", "test").take(150, seed=0)


PGD_CASES = [  # budgets at which most, but not all, points are fooled within the steps
    ("pgd", {"norm": "linf", "eps": 0.15, "steps": 10, "step_size": 0.03, "loss": "ce"}),
    ("pgd", {"norm": "linf", "eps": 0.15, "steps": 10, "step_size": 0.03, "restarts": 3}),
    ("pgd", {"norm": "linf", "eps": 0.15, "steps": 8, "step_size": 0.03, "loss": "margin"}),
    ("pgd", {"norm": "linf", "eps": 0.15, "steps": 8, "step_size": 0.03, "loss": "dlr"}),
    ("pgd", {"norm": "l2", "eps": 1.5, "steps": 10, "restarts": 2, "loss": "margin"}),
    ("pgd", {"norm": "l2", "eps": 1.5, "steps": 10, "loss": "dlr", "random_start": False}),
    ("pgd", {"norm": "linf", "eps": 0.2, "steps": 8, "step_size": 0.04, "targeted": True}),
    ("mpgd", {"norm": "linf", "eps": 0.15, "steps": 10, "restarts": 2, "random_start": True}),
]


@pytest.mark.parametrize(("name", "settings"), PGD_CASES)
def test_early_exit_returns_the_same_points_with_fewer_forward_passes(
    trained_digits, name, settings
):
    model, data = trained_digits
    x, y = data.images.float() / 255, data.labels
    cls = PGD if name == "pgd" else MomentumPGD
    outputs, rows = [], []
    for early_exit in (False, True):
        counter = CountingModel(model)
        attack = cls(**settings, keep_fooling=True, early_exit=early_exit, seed=3)
        outputs.append(attack(counter, x, y))
        rows.append(counter.rows)
    assert torch.equal(outputs[0], outputs[1])
    assert rows[1] < 0.9 * rows[0]


@pytest.mark.parametrize("early_exit", [False, True])
@pytest.mark.parametrize("cls", [PGD, MomentumPGD])
def test_keep_fooling_reads_the_fooled_points_only_every_few_steps(
    trained_digits, host_syncs, cls, early_exit
):
    # Reading which points are fooled is a host sync on a GPU. With eps = 0 no point is ever
    # fooled, so every step runs: 20 more steps may add one read per ACTIVE_SET_EVERY steps.
    model, data = trained_digits
    x = data.images[:64].float() / 255
    with torch.no_grad():
        y = model(x).argmax(1)  # every point starts correctly classified
    counts = []
    for steps in (10, 30):
        attack = cls(eps=0.0, steps=steps, keep_fooling=True, early_exit=early_exit)
        with host_syncs() as syncs:
            attack(model, x, y)
        counts.append(syncs.count)
    assert counts[1] - counts[0] == 20 // ACTIVE_SET_EVERY, counts


@pytest.mark.parametrize(
    "settings",
    [
        {"norm": "linf", "eps": 0.15, "steps": 10, "step_size": 0.03},
        {"norm": "l2", "eps": 1.0, "steps": 10, "step_size": 0.25, "loss": "dlr"},
    ],
)
def test_keep_fooling_counts_exactly_the_points_some_iterate_fooled(trained_digits, settings):
    """Independent reference: iterate k of the plain (last-iterate) PGD is PGD with k steps."""
    model, data = trained_digits
    x, y = data.images.float() / 255, data.labels
    steps = settings["steps"]
    with torch.no_grad():
        wrong = [
            model(PGD(**{**settings, "steps": k}, seed=5)(model, x, y)).argmax(1) != y
            for k in range(steps + 1)
        ]
    some_iterate = torch.stack(wrong).any(dim=0)
    with torch.no_grad():
        kept = model(PGD(**settings, keep_fooling=True, seed=5)(model, x, y)).argmax(1) != y
    assert torch.equal(kept, some_iterate)
    # Never weaker per sample than the last iterate alone (one restart).
    assert bool((kept >= wrong[-1]).all()) and bool(some_iterate.any())


@pytest.mark.parametrize("cascade", [False, True])
def test_protocol_verdicts_are_identical_with_and_without_early_exit(trained_digits, cascade):
    model, data = trained_digits
    specs = [{"name": "fgsm", "settings": {"eps": 0.05}}] + [
        {"name": name, "settings": dict(settings, seed=1)} for name, settings in PGD_CASES[:6]
    ]
    counter = CountingModel(model)
    plain = evaluate(counter, data, specs, batch_size=64, cascade=cascade, early_exit=False)
    plain_rows, counter.rows = counter.rows, 0
    early = evaluate(counter, data, specs, batch_size=64, cascade=cascade, early_exit=True)
    assert early["per_sample"] == plain["per_sample"]
    assert [e["accuracy"] for e in early["attacks"]] == [e["accuracy"] for e in plain["attacks"]]
    assert counter.rows < plain_rows
    assert early["robust_accuracy"] < early["clean_accuracy"]
    assert any(0 < e["accuracy"] < early["clean_accuracy"] for e in early["attacks"])
    pgd_entry = early["attacks"][1]["attack"]
    assert pgd_entry["keep_fooling"] and pgd_entry["early_exit"]


def test_protocol_leaves_the_callers_attack_as_it_was(trained_digits):
    model, data = trained_digits
    attack = PGD(eps=0.1, steps=3, step_size=0.03)
    before = copy.copy(attack.describe())
    evaluate(model, data.take(20, seed=0), [attack], batch_size=20)
    assert attack.describe() == before and not attack.keep_fooling


def test_early_exit_without_keep_fooling_is_refused():
    with pytest.raises(ConfigError, match="needs keep_fooling=True"):
        PGD(eps=0.1, early_exit=True)


def test_protocol_fast_paths_channels_last_and_bf16_keep_verdicts_close(trained_digits):
    model, data = trained_digits
    gray = data.take(60, seed=1)
    torch.manual_seed(11)  # channels_last matters only for convolutions: a small CNN
    cnn = build_model(
        "zou_cnn6", num_classes=10, in_channels=1, image_size=8, widths=(8, 16), hidden=32
    ).eval()
    spec = [{"name": "pgd", "settings": {"eps": 0.1, "steps": 5, "step_size": 0.03}}]
    plain = evaluate(cnn, gray, spec, batch_size=30)
    laid_out = evaluate(copy.deepcopy(cnn), gray, spec, batch_size=30, channels_last=True)
    assert laid_out["clean_accuracy"] == plain["clean_accuracy"]
    assert abs(laid_out["robust_accuracy"] - plain["robust_accuracy"]) <= 1 / 60
    bf16 = evaluate(model, gray, spec, batch_size=30, amp="bf16")
    fp32 = evaluate(model, gray, spec, batch_size=30)
    # bf16 attack passes: the clean verdicts (float32) are the same; the attack's gradients are
    # rounded, so its accuracy may move by a few points, not more.
    assert bf16["clean_accuracy"] == fp32["clean_accuracy"]
    assert abs(bf16["robust_accuracy"] - fp32["robust_accuracy"]) <= 0.1
    assert bf16["audit_passed"]
