"""Training runs: resume gives identical weights, the two-stage switch, checkpoints, schedules."""

from __future__ import annotations

import csv

import pytest
import torch
from safetensors.torch import load_file

from rlrobust.config import OptimConfig, load_config
from rlrobust.data import BatchLoader, load_dataset
from rlrobust.errors import CheckpointError, RunDirectoryError
from rlrobust.models import build_model
from rlrobust.registry import OBJECTIVES
from rlrobust.seeding import make_generator
from rlrobust.training.checkpoint import (
    load_weights,
    optimizer_from_files,
    optimizer_to_files,
    save_weights,
)
from rlrobust.training.loop import train_one_epoch
from rlrobust.training.optim import build_optimizer, lr_at_epoch
from rlrobust.training.run import train_run


def digits_config(**overrides):
    base = {
        "data.name": "digits",
        "data.train_subset": 400,
        "data.test_subset": 100,
        "data.batch_size": 50,
        "model.name": "mlp",
        "train.epochs": 3,
        "train.seed": 3,
        "optim.lr": 0.05,
        "eval.attacks": "[]",
    }
    return load_config(overrides={**base, **overrides})


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


POLICY = {
    "objective.name": "kim_policy",
    "objective.options": '{"lam": 1.5, "action": "sample"}',
    "two_stage.enabled": "true",
    "two_stage.switch_accuracy": "0.3",
}


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    cfg = digits_config(**{**POLICY, "optim.name": "adam", "optim.lr": 0.003})
    train_run(cfg, tmp_path / "whole", log=lambda *_: None)
    train_run(cfg, tmp_path / "parts", log=lambda *_: None, stop_after_epoch=1)
    resumed = train_run(cfg, tmp_path / "parts", resume=True, log=lambda *_: None)

    whole = load_file(tmp_path / "whole" / "model.safetensors")
    parts = load_file(tmp_path / "parts" / "model.safetensors")
    assert whole.keys() == parts.keys()
    for key in whole:
        assert torch.equal(whole[key], parts[key]), key
    assert resumed["finished"] and resumed["epoch"] == 3
    rows = read_csv(tmp_path / "parts" / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]


def test_an_interruption_changes_nothing_but_the_stopping_point(tmp_path):
    cfg = digits_config()
    state = train_run(cfg, tmp_path / "run", log=lambda *_: None, stop_after_epoch=2)
    assert state["epoch"] == 2 and not state["finished"]
    with pytest.raises(RunDirectoryError, match="--resume"):
        train_run(cfg, tmp_path / "run", log=lambda *_: None)


def test_finished_run_directory_is_refused_and_left_untouched(tmp_path):
    cfg = digits_config(**{"train.epochs": 1})
    train_run(cfg, tmp_path / "run", log=lambda *_: None)
    before = (tmp_path / "run" / "model.safetensors").read_bytes()
    for resume in (False, True):
        with pytest.raises(RunDirectoryError, match="finished run"):
            train_run(cfg, tmp_path / "run", resume=resume, log=lambda *_: None)
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == before


def test_resume_without_a_checkpoint_and_non_empty_directories_are_refused(tmp_path):
    with pytest.raises(RunDirectoryError, match="no checkpoint"):
        train_run(digits_config(), tmp_path / "empty", resume=True, log=lambda *_: None)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="not empty"):
        train_run(digits_config(), tmp_path / "other", log=lambda *_: None)


def test_two_stage_switch_is_recorded(tmp_path):
    cfg = digits_config(**{**POLICY, "two_stage.switch_accuracy": "0.0"})
    state = train_run(cfg, tmp_path / "run", log=lambda *_: None)
    assert state["two_stage"] == {"stage": "main", "switch_epoch": 2}
    assert [row["stage"] for row in state["metrics"]] == ["warmup", "main", "main"]


def test_two_stage_without_reaching_the_threshold_stays_in_warmup(tmp_path):
    cfg = digits_config(**{**POLICY, "two_stage.switch_accuracy": "1.0", "train.epochs": 2})
    state = train_run(cfg, tmp_path / "run", log=lambda *_: None)
    assert state["two_stage"] == {"stage": "warmup", "switch_epoch": None}


def test_metrics_csv_logs_the_objective_stats(tmp_path):
    cfg = digits_config(**{"objective.name": "zou_pg", "objective.options": '{"epsilon": 0.2}'})
    train_run(cfg, tmp_path / "run", log=lambda *_: None)
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert len(rows) == 3
    for column in (
        "train_loss",
        "train_reward_mean",
        "train_action_accuracy",
        "train_entropy",
        "train_exploration_rate",
        "test_accuracy",
        "lr",
        "stage",
    ):
        assert column in rows[0], column
    assert 0.0 <= float(rows[-1]["train_exploration_rate"]) <= 1.0


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_an_epoch_reads_the_device_as_often_whatever_its_number_of_batches(name, host_syncs):
    # The loss and the stats stay on the device and are read once at the end of the epoch: a
    # read per batch (float(loss), stats as python floats) would make a GPU wait every step.
    data = load_dataset("digits", "train").take(200, seed=0)
    counts, stats = [], []
    for batch_size in (100, 25):
        torch.manual_seed(0)
        model = build_model(
            "mlp", num_classes=10, in_channels=1, image_size=8, mean=data.mean, std=data.std
        )
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        loader = BatchLoader(data, batch_size, shuffle=True, seed=0)
        objective = OBJECTIVES.create(name)
        with host_syncs() as syncs:
            stats.append(train_one_epoch(model, loader, objective, optimizer, make_generator(0)))
        counts.append(syncs.count)
    assert counts[0] == counts[1] <= 2, counts  # 2 and 8 batches: one read (.cpu().tolist())
    for epoch in stats:
        assert all(type(value) is float for value in epoch.values())  # JSON and metrics.csv


def test_training_learns_on_digits(tmp_path):
    cfg = digits_config(
        **{"train.epochs": 5, "data.train_subset": "none", "data.test_subset": "none"}
    )
    state = train_run(cfg, tmp_path / "run", log=lambda *_: None)
    assert state["metrics"][-1]["test_accuracy"] > 0.85


def test_validation_split_drives_the_heldout_accuracy(tmp_path):
    cfg = digits_config(**{"data.validation_fraction": "0.2", "train.epochs": 1})
    state = train_run(cfg, tmp_path / "run", log=lambda *_: None)
    assert "validation_accuracy" in state["metrics"][0]


def test_weights_that_do_not_match_the_model_are_refused(tmp_path):
    mlp = build_model("mlp", num_classes=10, in_channels=1, image_size=8)
    save_weights(mlp, tmp_path / "mlp.safetensors")
    other = build_model("mlp", num_classes=5, in_channels=1, image_size=8)
    with pytest.raises(CheckpointError, match="does not match the model"):
        load_weights(other, tmp_path / "mlp.safetensors")
    lenet = build_model("lenet5", num_classes=10, in_channels=1, image_size=28)
    with pytest.raises(CheckpointError, match="missing"):
        load_weights(lenet, tmp_path / "mlp.safetensors")


def test_truncated_or_pickled_checkpoints_are_refused(tmp_path):
    mlp = build_model("mlp", num_classes=10, in_channels=1, image_size=8)
    path = save_weights(mlp, tmp_path / "mlp.safetensors")
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_weights(mlp, path)
    pickled = tmp_path / "model.pt"
    torch.save(mlp.state_dict(), pickled)
    with pytest.raises(CheckpointError):
        load_weights(mlp, pickled)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop", "rmsprop_keras"])
def test_optimizer_state_round_trips_through_safetensors_and_json(name):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    cfg = OptimConfig(name=name, lr=0.01)
    optimizer = build_optimizer(cfg, model.parameters())
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(5, 4)).pow(2).sum().backward()
        optimizer.step()
    tensors, meta = optimizer_to_files(optimizer)
    fresh = build_optimizer(cfg, model.parameters())
    optimizer_from_files(fresh, tensors, meta)
    original, restored = optimizer.state_dict(), fresh.state_dict()
    assert original["param_groups"] == restored["param_groups"]
    for index, entry in original["state"].items():
        for key, value in entry.items():
            assert torch.equal(
                torch.as_tensor(value), torch.as_tensor(restored["state"][index][key])
            )


def test_learning_rate_schedules():
    step = OptimConfig(lr=0.1, schedule="step", milestones=[50, 150], gamma=0.1)
    assert [lr_at_epoch(step, e, 200) for e in (0, 49, 50, 149, 150)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001]
    )
    cosine = OptimConfig(lr=0.2, schedule="cosine")
    assert lr_at_epoch(cosine, 0, 10) == pytest.approx(0.2)
    assert lr_at_epoch(cosine, 5, 10) == pytest.approx(0.1)
    assert lr_at_epoch(OptimConfig(lr=0.3), 7, 10) == 0.3


def test_two_stage_can_switch_at_a_fixed_epoch(tmp_path):
    # Kim Table 6: the first objective for a fixed number of epochs, whatever the accuracy.
    cfg = digits_config(
        **{**POLICY, "two_stage.switch_accuracy": "1.0", "two_stage.switch_epoch": "2"}
    )
    state = train_run(cfg, tmp_path / "run", log=lambda *_: None)
    assert state["two_stage"] == {"stage": "main", "switch_epoch": 3}
    assert [row["stage"] for row in state["metrics"]] == ["warmup", "warmup", "main"]


def test_resume_with_checkpoint_selection_equals_an_uninterrupted_run(tmp_path):
    # Gupta's selection (training/selection.py) measures FGSM every 2 epochs and installs the
    # best checkpoint; an interrupted and resumed run must end with the same files and choice.
    cfg = digits_config(
        **{
            "train.epochs": 4,
            "train.checkpoint_every": 2,
            "train.select_checkpoint": "best_fgsm_test",
            "train.select_examples": 60,
            "optim.name": "rmsprop_keras",
            "optim.lr": 0.01,
            "optim.keras_decay": 0.01,
            "optim.weight_decay": 0.0,
        }
    )
    whole = train_run(cfg, tmp_path / "whole", log=lambda *_: None)
    train_run(cfg, tmp_path / "parts", log=lambda *_: None, stop_after_epoch=3)
    parts = train_run(cfg, tmp_path / "parts", resume=True, log=lambda *_: None)
    assert whole["selection"] == parts["selection"]
    for name in (
        "model.safetensors",
        "model-last.safetensors",
        "select/model-epoch0002.safetensors",
    ):
        a, b = load_file(tmp_path / "whole" / name), load_file(tmp_path / "parts" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    rows = read_csv(tmp_path / "parts" / "metrics.csv")
    assert [bool(r["select_fgsm_accuracy"]) for r in rows] == [False, True, False, True]
