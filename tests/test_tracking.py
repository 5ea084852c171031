"""``train.tensorboard``: the event files hold exactly the metrics.csv values, read back with
TensorBoard's own reader (an implementation independent of the writer that torch ships)."""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest

from rlrobust.config import RunConfig, from_dict, load_config
from rlrobust.errors import ConfigError
from rlrobust.training.tracking import (
    TRACKING_DIR,
    NullTracker,
    TensorBoardTracker,
    open_tracker,
    summary_writer_class,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def quiet(*_):
    pass


def read_events(log_dir):
    """{tag: [(step, value), ...]} of the scalars and {tag: [(step, text), ...]} of the texts."""
    # the tensorboard extra is a dev dependency: a missing one fails, never skips
    from tensorboard.backend.event_processing import event_accumulator as accumulator_module

    # size 0 keeps every event (the defaults sample down long runs).
    accumulator = accumulator_module.EventAccumulator(
        str(log_dir), size_guidance={"scalars": 0, "tensors": 0}
    )
    accumulator.Reload()
    tags = accumulator.Tags()
    scalars = {
        tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in tags["scalars"]
    }
    # torch's add_text(tag, ...) stores the text under "<tag>/text_summary".
    texts = {
        tag.removesuffix("/text_summary"): [
            (e.step, e.tensor_proto.string_val[0].decode()) for e in accumulator.Tensors(tag)
        ]
        for tag in tags["tensors"]
    }
    return scalars, texts


def csv_mismatches(rows: list[dict], scalars: dict) -> list[str]:
    """Every numeric metrics.csv cell that the event files do not hold exactly once, at its epoch,
    and every scalar tag that is neither a numeric column nor an event.

    TensorBoard stores scalars as float32, so a number must equal float32(cell) exactly.
    """
    problems, numeric = [], set()
    for column in [key for key in rows[0] if key != "epoch"]:
        expected = []
        for row in rows:
            cell = row.get(column, "")
            try:
                expected.append((int(row["epoch"]), float(np.float32(float(cell)))))
            except ValueError:  # an empty cell, or a text column such as stage
                continue
        if expected:
            numeric.add(column)
            if scalars.get(column) != expected:
                problems.append(f"{column}: csv {expected} != events {scalars.get(column)}")
    extra = sorted(t for t in scalars if t not in numeric and not t.startswith("events/"))
    return problems + [f"{tag}: in the events, not a numeric metrics.csv column" for tag in extra]


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# Two-stage (switch after epoch 2), FGSM training with the end-of-epoch monitor: every kind of
# column metrics.csv can have (objective stats, held-out accuracy, monitor, stage) and an event.
TRACKED_RUN = {
    "data.name": "digits",
    "data.train_subset": 200,
    "data.test_subset": 60,
    "data.batch_size": 50,
    "model.name": "mlp",
    "train.epochs": 4,
    "train.seed": 2,
    "train.tensorboard": "true",
    "optim.name": "adam",
    "optim.lr": 0.003,
    "eval.attacks": "[]",
    "objective.name": "kim_policy",
    "objective.options": '{"lam": 0.5, "action": "greedy"}',
    "two_stage.enabled": "true",
    "two_stage.warmup_objective": "cross_entropy",
    "two_stage.warmup_options": "{}",
    "two_stage.switch_accuracy": "1.0",
    "two_stage.switch_epoch": "2",
    "adversarial.method": "fgsm_at",
    "adversarial.eps": 0.1,
    "adversarial.monitor_size": 30,
    "adversarial.monitor_steps": 2,
}


def test_tensorboard_scalars_equal_metrics_csv_across_a_resume(tmp_path):
    from rlrobust.training.run import train_run

    cfg = load_config(overrides=TRACKED_RUN)
    run = tmp_path / "run"
    train_run(cfg, run, log=quiet, stop_after_epoch=2)  # an interruption, then a resume
    state = train_run(cfg, run, resume=True, log=quiet)
    assert state["finished"] and state["epoch"] == 4

    rows = read_csv(run / "metrics.csv")
    scalars, texts = read_events(run / TRACKING_DIR)
    assert {"train_loss", "test_accuracy", "lr", "monitor_pgd_accuracy"} <= set(scalars)
    assert csv_mismatches(rows, scalars) == []
    # The switch: logged after the last warm-up epoch, as metrics.csv's stage column shows.
    last_warmup = max(int(r["epoch"]) for r in rows if r["stage"] == "warmup")
    assert [r["stage"] for r in rows] == ["warmup", "warmup", "main", "main"]
    assert scalars["events/stage_switch"] == [(last_warmup, 1.0)]
    assert texts["events/stage_switch"] == [(last_warmup, "switching to kim_policy")]

    # Planted faults: a cell off by 1e-3, and a missing epoch, are both caught.
    planted = [dict(r) for r in rows]
    planted[2]["train_loss"] = str(float(planted[2]["train_loss"]) + 1e-3)
    assert any(p.startswith("train_loss") for p in csv_mismatches(planted, scalars))
    assert csv_mismatches(rows + [{**rows[-1], "epoch": "5"}], scalars) != []
    assert csv_mismatches(rows, {**scalars, "stage": [(1, 0.0)]}) != []  # a tag csv lacks


def test_a_run_without_the_option_writes_no_event_files(tmp_path):
    from rlrobust.training.run import train_run

    cfg = load_config(
        overrides={**TRACKED_RUN, "train.tensorboard": "false", "train.epochs": 1,
                   "two_stage.enabled": "false", "adversarial.method": "none"}
    )  # fmt: skip
    train_run(cfg, tmp_path / "run", log=quiet)
    assert (tmp_path / "run" / "metrics.csv").is_file()
    assert not (tmp_path / "run" / TRACKING_DIR).exists()


def test_a_resumed_writer_purges_what_an_interrupted_one_logged_past_the_checkpoint(tmp_path):
    first = TensorBoardTracker(tmp_path)
    for epoch in (1, 2, 3):  # epoch 3 logged, then the process died before its checkpoint
        first.log_epoch({"epoch": epoch, "loss": float(epoch), "stage": "main"}, epoch)
    first.close()
    second = TensorBoardTracker(tmp_path, first_epoch=3)  # resumed after epoch 2
    second.log_epoch({"epoch": 3, "loss": 30.0, "stage": "main"}, 3)
    second.log_event("early_stop", 3, "monitor collapsed")
    second.close()
    scalars, texts = read_events(tmp_path)
    assert scalars["loss"] == [(1, 1.0), (2, 2.0), (3, 30.0)]
    assert scalars["events/early_stop"] == [(3, 1.0)]
    assert texts == {"events/early_stop": [(3, "monitor collapsed")]}  # "stage" is text: skipped


def test_numbers_of_every_kind_become_scalars(tmp_path):
    import torch
    tracker = TensorBoardTracker(tmp_path)
    tracker.log_epoch(
        {"epoch": 1, "flag": True, "count": 3, "numpy": np.float64(0.25), "torch": torch.tensor(0.5),
         "missing": None},
        epoch=1,
    )  # fmt: skip
    tracker.close()
    scalars, _ = read_events(tmp_path)
    assert scalars == {"flag": [(1, 1.0)], "count": [(1, 3.0)], "numpy": [(1, 0.25)],
                       "torch": [(1, 0.5)]}  # fmt: skip


def test_missing_tensorboard_names_the_extra_to_install(monkeypatch):
    # None in sys.modules makes `import` raise ImportError, as if the package were absent.
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match=r"pip install 'rlrobust\[tensorboard\]'"):
        summary_writer_class()
    cfg = load_config(overrides={"train.tensorboard": "true"})
    with pytest.raises(ConfigError, match="train.tensorboard false"):
        open_tracker(cfg.train, "unused")
    # Off (the default), or on a non-main rank, nothing is imported: no error.
    assert isinstance(open_tracker(load_config().train, "unused"), NullTracker)
    assert isinstance(open_tracker(cfg.train, "unused", enabled=False), NullTracker)


def test_the_option_defaults_off_and_old_configs_load():
    assert RunConfig().train.tensorboard is False
    old = RunConfig().to_dict()
    del old["train"]["tensorboard"]  # a config.json written before the option existed
    assert from_dict(RunConfig, old).train.tensorboard is False
