"""Gupta's checkpoint selection: records every K epochs, the best-FGSM choice, the files."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from rlrobust.config import TrainConfig, load_config
from rlrobust.data import load_dataset
from rlrobust.errors import ConfigError
from rlrobust.models import build_model
from rlrobust.training.run import train_run
from rlrobust.training.selection import (
    FGSM_COLUMN,
    choose,
    fgsm_accuracy,
    plot_selection,
)

QUIET = {"log": lambda *_: None}


def digits_config(**overrides):
    base = {
        "data.name": "digits",
        "data.train_subset": 300,
        "data.test_subset": 80,
        "data.batch_size": 50,
        "model.name": "mlp",
        "train.epochs": 4,
        "train.seed": 1,
        "optim.lr": 0.05,
        "eval.attacks": "[]",
        "train.checkpoint_every": 2,
        "train.select_eps": 0.1,
    }
    return load_config(overrides={**base, **overrides})


def test_choose_takes_the_best_fgsm_epoch_and_the_earliest_on_a_tie():
    rows = [
        {"epoch": 1},
        {"epoch": 2, FGSM_COLUMN: 0.30},
        {"epoch": 3},
        {"epoch": 4, FGSM_COLUMN: 0.55},
        {"epoch": 6, FGSM_COLUMN: 0.55},
        {"epoch": 8, FGSM_COLUMN: 0.40},
    ]
    train = TrainConfig(checkpoint_every=2, select_checkpoint="best_fgsm_test")
    record = choose(rows, train)
    assert record["selected_epoch"] == 4 and record["selected_fgsm_accuracy"] == 0.55
    assert record["selected_file"] == "select/model-epoch0004.safetensors"
    assert record["optimistic"] and "TEST" in record["reason"]
    assert [c["epoch"] for c in record["candidates"]] == [2, 4, 6, 8]
    last = choose(rows, TrainConfig(checkpoint_every=2))
    assert last["selected_epoch"] == 8 and "selected_file" not in last
    empty = choose([{"epoch": 1}], train)
    assert empty["selected_epoch"] == 1 and "no checkpoint" in empty["reason"]


def test_fgsm_accuracy_matches_a_hand_made_fgsm():
    data = load_dataset("digits", "test").subset(range(60))
    torch.manual_seed(0)
    model = build_model("mlp", num_classes=10, in_channels=1, image_size=8, hidden=(16,))
    model.train()
    clean, robust = fgsm_accuracy(model, data, 0.05, 25, "cpu")
    assert model.training  # mode restored
    x = data.images.float() / 255
    x.requires_grad_(True)
    model.eval()
    torch.nn.functional.cross_entropy(model(x), data.labels, reduction="sum").backward()
    x_adv = (x + 0.05 * x.grad.sign()).clamp(0, 1).detach()
    with torch.no_grad():
        ok = model(x.detach()).argmax(1) == data.labels
        ok_adv = model(x_adv).argmax(1) == data.labels
    assert clean == pytest.approx(float(ok.double().mean()))
    assert robust == pytest.approx(float((ok & ok_adv).double().mean()))
    assert robust <= clean


def test_best_fgsm_test_installs_the_selected_weights(tmp_path):
    cfg = digits_config(**{"train.select_checkpoint": "best_fgsm_test"})
    state = train_run(cfg, tmp_path / "run", **QUIET)
    run = tmp_path / "run"
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept = [int(r["epoch"]) for r in rows if r[FGSM_COLUMN]]
    assert kept == [2, 4]
    selection = json.loads((run / "selection.json").read_text())
    assert state["selection"] == selection
    best = max(kept, key=lambda e: (float(rows[e - 1][FGSM_COLUMN]), -e))
    assert selection["selected_epoch"] == best
    model = load_file(run / "model.safetensors")
    kept_file = load_file(run / f"select/model-epoch{best:04d}.safetensors")
    last = load_file(run / "model-last.safetensors")
    final = load_file(run / state["model_file"])  # the last epoch's checkpoint
    for key in model:
        assert torch.equal(model[key], kept_file[key])
        assert torch.equal(last[key], final[key])
    assert (run / "select/model-epoch0002.safetensors").is_file()
    png = plot_selection(run)
    assert png.read_bytes().startswith(b"\x89PNG")


def test_selection_does_not_change_training(tmp_path):
    plain = digits_config(**{"train.checkpoint_every": "none"})
    train_run(plain, tmp_path / "plain", **QUIET)
    chosen = digits_config(**{"train.select_checkpoint": "last"})
    train_run(chosen, tmp_path / "kept", **QUIET)
    a = load_file(tmp_path / "plain" / "model.safetensors")
    b = load_file(tmp_path / "kept" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "plain" / "selection.json").exists()
    assert json.loads((tmp_path / "kept" / "selection.json").read_text())["selected_epoch"] == 4


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"train.checkpoint_every": "none", "train.select_checkpoint": "best_fgsm_test"}, "set"),
        ({"train.checkpoint_every": 9, "train.select_checkpoint": "best_fgsm_test"}, "exceeds"),
        ({"train.checkpoint_every": 0}, ">= 1"),
        ({"train.select_checkpoint": "best"}, "last, best_fgsm_test"),
        ({"train.select_eps": 0.0}, "select_eps"),
    ],
)
def test_bad_selection_settings_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        digits_config(**overrides)
