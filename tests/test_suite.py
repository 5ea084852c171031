"""The evaluation suite: presets, transfer from a surrogate, eps curves, masking verdicts, and
bringing your own model through the CLI."""

from __future__ import annotations

import json

import pytest

from rlrobust.attacks import build_attack
from rlrobust.cli import main
from rlrobust.data import load_dataset
from rlrobust.errors import ConfigError, UnknownNameError
from rlrobust.evaluation.presets import PRESETS, preset_attacks
from rlrobust.evaluation.suite import run_suite
from rlrobust.models import build_model


@pytest.fixture(scope="module")
def models(digits_mlp):
    return digits_mlp(0), digits_mlp(1)


@pytest.fixture(scope="module")
def test_points():
    return load_dataset("digits", "test").take(48, seed=0)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_every_preset_builds_with_valid_settings(preset, norm):
    specs = preset_attacks(preset, 0.1, norm)
    labels = [spec["label"] for spec in specs]
    assert len(labels) == len(set(labels))
    for spec in specs:
        attack = build_attack(spec["name"], **spec["settings"])
        assert attack.eps == pytest.approx(0.1) and attack.norm == norm


def test_standard_preset_is_autoattack_beside_fgsm_and_pgd():
    names = [spec["name"] for spec in preset_attacks("standard", 0.3)]
    assert names == ["fgsm", "pgd", "autoattack"]
    assert preset_attacks("standard", 0.3)[2]["settings"]["version"] == "standard"


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="quick"):
        preset_attacks("paper", 0.1)


def test_suite_with_surrogate_curve_and_masking(models, test_points):
    target, surrogate = models
    result = run_suite(
        target,
        test_points,
        preset="quick",
        eps=0.1,
        surrogate=surrogate,
        eps_curve=[0.02, 0.1, 0.3],
        masking=True,
        batch_size=24,
    )
    record = result["evaluation"]
    labels = [entry["label"] for entry in record["attacks"]]
    assert labels == ["fgsm", "pgd20-ce", "pgd20-dlr", "transfer-pgd", "transfer-mpgd"]
    assert record["audit_passed"]
    # Transfer attacks never beat the white-box worst case on a plainly trained model.
    by_label = {entry["label"]: entry["accuracy"] for entry in record["attacks"]}
    assert by_label["transfer-pgd"] >= by_label["pgd20-ce"]
    points = [p["accuracy"] for p in result["curve"]["points"]]
    assert points[0] >= points[1] >= points[2]
    assert result["masking"]["verdict"] == "no evidence of masking"


def test_preset_needs_eps(models, test_points):
    with pytest.raises(ConfigError, match="eps"):
        run_suite(models[0], test_points, preset="quick")


MODULE = """
import torch
from rlrobust.models import build_model

def build():
    torch.manual_seed(0)
    return build_model("mlp", num_classes=10, in_channels=1, image_size=8)
"""


def test_bring_your_own_model_through_the_cli(tmp_path, monkeypatch, models):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_models.py").write_text(MODULE)
    from rlrobust.training.checkpoint import save_weights

    trained = build_model("mlp", num_classes=10, in_channels=1, image_size=8)
    trained.load_state_dict(models[0].state_dict())
    save_weights(trained, tmp_path / "w.safetensors")
    argv = [
        "evaluate",
        "--model",
        "my_models:build",
        "--weights",
        str(tmp_path / "w.safetensors"),
        "--data.name",
        "digits",
        "--eval.n_examples",
        "40",
        "--eval.preset",
        "quick",
        "--eval.eps",
        "0.1",
        "--out",
        str(tmp_path / "out"),
        "--quiet",
    ]
    assert main(argv) == 0
    record = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert record["n_examples"] == 40 and record["clean_accuracy"] > 0.8  # the weights were loaded
    assert [e["label"] for e in record["attacks"]] == ["fgsm", "pgd20-ce", "pgd20-dlr"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "--model", "nocolon"], "MODULE:FUNCTION"),
        (["evaluate", "--model", "no_such_module_xyz:build", "--out", "x"], "cannot import"),
        (["evaluate", "runs/x", "--model", "a:b"], "not both"),
        (["evaluate"], "either a run directory"),
    ],
)
def test_bad_evaluate_arguments(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "--out" not in argv and argv[1:2] == ["--model"]:
        argv = [*argv, "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
