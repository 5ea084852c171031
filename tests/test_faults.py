"""The fault catalogue: kills, full disks, unwritable paths, damaged files and mistyped
arguments, each ending in a restartable state or a one-line message with the exit code users
expect, never in lost work or a raw traceback."""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest
import torch

from rlrobust.commands import main
from rlrobust.config import load_config
from rlrobust.errors import ConfigError, RunDirectoryError
from rlrobust.files import atomic_write_json, remove_orphans
from rlrobust.training import run as run_module
from rlrobust.training.run import train_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {
    "data.name": "digits",
    "data.train_subset": 120,
    "data.test_subset": 60,
    "model.name": "mlp",
    "train.epochs": 2,
}


def quiet(*_):
    pass


def tiny_config(**extra):
    return load_config(overrides={**TINY, **extra})


# ----------------------------------------------------------------------------- stuck or lost work


def killed_before_first_checkpoint(run_dir):
    """What a run killed in epoch 1 leaves: its config, a partial checkpoint and a temp file."""
    run_dir.mkdir(parents=True)
    atomic_write_json(run_dir / "config.json", tiny_config().to_dict())
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / ".model-epoch0001.safetensors.abc.tmp").write_bytes(b"half")
    (run_dir / ".metrics.csv.xyz.tmp").write_bytes(b"half")


@pytest.mark.parametrize("resume", [False, True])
def test_a_run_killed_before_its_first_checkpoint_restarts(tmp_path, resume):
    run_dir = tmp_path / "run"
    killed_before_first_checkpoint(run_dir)
    state = train_run(tiny_config(), run_dir, resume=resume, log=quiet)
    assert state["finished"] and state["epoch"] == 2
    assert not list(run_dir.rglob("*.tmp"))


def test_resume_on_the_command_line_restarts_a_run_that_never_checkpointed(tmp_path):
    run_dir = tmp_path / "run"
    killed_before_first_checkpoint(run_dir)
    assert main(["train", "--out", str(run_dir), "--resume", "--quiet"]) == 0
    assert json.loads((run_dir / "state.json").read_text())["finished"]


def test_a_folder_with_user_files_is_never_cleared(tmp_path):
    run_dir = tmp_path / "run"
    killed_before_first_checkpoint(run_dir)
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(RunDirectoryError, match="not empty but holds no run"):
        train_run(tiny_config(), run_dir, log=quiet)
    assert (run_dir / "notes.txt").read_text() == "mine"


def test_an_unwritable_output_folder_fails_before_any_data_is_loaded(tmp_path, monkeypatch):
    def no_data(*_args, **_kwargs):
        raise AssertionError("data was loaded before the output folder was checked")

    monkeypatch.setattr(run_module, "load_splits", no_data)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(RunDirectoryError, match="cannot write into the run directory"):
        train_run(tiny_config(), blocked / "run", log=quiet)


def test_orphan_temp_files_are_removed_on_resume(tmp_path):
    run_dir = tmp_path / "run"
    train_run(tiny_config(), run_dir, log=quiet, stop_after_epoch=1)
    orphan = run_dir / "checkpoints" / ".model-epoch0002.safetensors.q1w2.tmp"
    orphan.write_bytes(b"interrupted")
    state = train_run(tiny_config(), run_dir, resume=True, log=quiet)
    assert state["finished"] and not orphan.exists()


def test_remove_orphans_touches_only_temp_files_of_atomic_writes(tmp_path):
    (tmp_path / "keep.tmp").write_text("a user's file without the leading dot")
    (tmp_path / ".x.json.abcd.tmp").write_text("orphan")
    removed = remove_orphans(tmp_path)
    assert [p.name for p in removed] == [".x.json.abcd.tmp"]
    assert (tmp_path / "keep.tmp").exists()


def test_result_files_get_the_users_umask_not_0600(tmp_path):
    path = atomic_write_json(tmp_path / "record.json", {"a": 1})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask


# ----------------------------------------------------------------------------- messages


def test_ctrl_c_ends_with_130_and_one_line(monkeypatch, capsys):
    from rlrobust.commands import report

    def interrupted(_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "run", interrupted)
    assert main(["report", "somewhere"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted" in err[0]


def test_a_full_disk_ends_with_one_line_and_exit_1(monkeypatch, capsys):
    from rlrobust.commands import report

    def disk_full(_args):
        raise OSError(errno.ENOSPC, "No space left on device", "/runs/x/metrics.csv")

    monkeypatch.setattr(report, "run", disk_full)
    assert main(["report", "somewhere"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "disk is full" in err[0] and "metrics.csv" in err[0]


def test_a_damaged_config_json_is_named(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"data": {"name": "digits"')  # cut off
    assert main(["evaluate", str(run_dir)]) == 2
    assert "config.json is damaged" in capsys.readouterr().err
    assert main(["train", "--out", str(run_dir), "--resume"]) == 2
    assert "config.json is damaged" in capsys.readouterr().err


def test_a_yaml_config_is_refused_by_name(tmp_path):
    path = tmp_path / "kim.yaml"
    path.write_text("data:\n  name: mnist\n")
    with pytest.raises(ConfigError, match="YAML.*JSON \\(.json\\) or TOML"):
        load_config(path)


def test_malformed_attack_list_gets_the_parse_position_and_a_list_example():
    with pytest.raises(ConfigError) as info:
        load_config(overrides={"eval.attacks": '[{"name": pgd}]'})
    message = str(info.value)
    assert "at character 10" in message and "JSON: a list" in message and '[{"name": "pgd"' in message


def test_an_unknown_option_shows_the_commands_usage(capsys):
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "runs/x", "--bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: rlrobust evaluate" in err and "unrecognized arguments: --bogus" in err


def test_every_command_takes_threads(monkeypatch):
    from rlrobust.commands import COMMANDS, _build_parsers

    _, parsers = _build_parsers()
    assert set(parsers) == {command.NAME for command in COMMANDS}
    for name, parser in parsers.items():
        assert "--threads" in parser.format_help(), name
    before = torch.get_num_threads()
    try:
        from rlrobust.commands import report

        monkeypatch.setattr(report, "run", lambda _args: torch.get_num_threads())
        assert main(["report", "x", "--threads", "1"]) == 1
        assert main(["report", "x", "--threads", "0"]) == 2
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- provenance


OWN_MODEL = """
from rlrobust.models import build_model


def digits_mlp():
    return build_model("mlp", num_classes=10, in_channels=1, image_size=8)
"""


def test_own_model_without_weights_is_flagged_in_the_record(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fault_models.py").write_text(OWN_MODEL)
    out = tmp_path / "mine"
    code = main(
        [
            "evaluate",
            "--model",
            "fault_models:digits_mlp",
            "--data.name",
            "digits",
            "--eval.n_examples",
            "20",
            "--eval.attacks",
            '[{"name": "fgsm"}]',
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    assert "no --weights given" in capsys.readouterr().err
    source = json.loads((out / "evaluation.json").read_text())["model_source"]
    assert source["module"] == "fault_models" and source["function"] == "digits_mlp"
    assert source["weights"] is None and source["warnings"]


def test_an_unfinished_run_is_evaluated_with_a_warning_and_says_so(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train_run(tiny_config(), run_dir, log=quiet, stop_after_epoch=1)
    code = main(["evaluate", str(run_dir), "--eval.attacks", '[{"name": "fgsm"}]', "--quiet"])
    assert code == 0
    assert "is unfinished" in capsys.readouterr().err
    source = json.loads((run_dir / "evaluation.json").read_text())["model_source"]
    assert source["finished"] is False
    assert source["epochs_trained"] == 1 and source["epochs_configured"] == 2
    assert len(source["weights"]["sha256"]) == 64


def test_an_interrupted_evaluate_resumes_on_the_command_line(tmp_path, monkeypatch):
    """Ctrl-C half-way through `rlrobust evaluate` keeps the finished units; `--resume` ends
    with the record of an uninterrupted evaluation."""
    from rlrobust.evaluation import protocol

    run_dir = tmp_path / "run"
    train_run(tiny_config(), run_dir, log=quiet)
    attacks = json.dumps(
        [
            {"name": "fgsm", "settings": {"eps": 0.1}},
            {"name": "pgd", "settings": {"eps": 0.1, "steps": 5, "step_size": 0.03}},
        ]
    )
    common = ["evaluate", str(run_dir), "--eval.attacks", attacks, "--quiet"]
    common += ["--data.eval_batch_size", "16"]
    assert main([*common, "--name", "whole"]) == 0

    real = protocol._attack_unit
    calls = {"n": 0}

    def interrupted_after_three(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(protocol, "_attack_unit", interrupted_after_three)
    assert main([*common, "--name", "split"]) == 130
    assert (run_dir / "split.partial").is_dir() and not (run_dir / "split.json").exists()
    monkeypatch.setattr(protocol, "_attack_unit", real)
    assert main([*common, "--name", "split"]) == 2  # old state and no --resume: refused
    assert main([*common, "--name", "split", "--resume"]) == 0

    def comparable(name):
        record = json.loads((run_dir / f"{name}.json").read_text())
        for entry in record["attacks"]:
            entry.pop("seconds")
        return {k: v for k, v in record.items() if k not in ("model_source",)}

    assert comparable("split") == comparable("whole")
    whole = json.loads((run_dir / "whole-per-sample.json").read_text())
    assert json.loads((run_dir / "split-per-sample.json").read_text()) == whole
    assert not (run_dir / "split.partial").exists()


# ----------------------------------------------------------------------------- numbers that lie


class NaNLogits(torch.nn.Module):
    """Answers NaN for every input: without an output audit it looks perfectly robust."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(64, 10)

    def forward(self, x):
        return self.linear(x.flatten(1)) * float("nan")


def test_a_model_that_outputs_nan_fails_the_audit():
    from rlrobust.attacks import FGSM
    from rlrobust.data import load_dataset
    from rlrobust.evaluation.protocol import evaluate

    data = load_dataset("digits", "test").take(30, 0)
    record = evaluate(NaNLogits(), data, [FGSM(eps=0.1)], batch_size=16)
    assert not record["audit_passed"]
    assert record["output_audit"]["nonfinite_clean_outputs"] == 30
    assert "NaN or inf logits" in record["output_audit"]["problems"][0]


def test_an_empty_evaluation_is_refused():
    from rlrobust.attacks import FGSM
    from rlrobust.data import load_dataset
    from rlrobust.errors import RLRobustError
    from rlrobust.evaluation.protocol import evaluate

    empty = load_dataset("digits", "test").take(0, 0)
    with pytest.raises(RLRobustError, match="no images to evaluate"):
        evaluate(torch.nn.Flatten(), empty, [FGSM(eps=0.1)])
    with pytest.raises(ConfigError, match="at least one test image"):
        load_config(overrides={"eval.n_examples": 0})


def test_a_same_named_model_module_in_another_folder_is_not_reused(tmp_path, monkeypatch):
    """Two folders, each with its own my_models.py: the one in the current folder is built."""
    from rlrobust.models.external import load_model_function

    for name, width in (("a", 3), ("b", 5)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "fault_shadow_models.py").write_text(
            f"import torch\n\ndef build():\n    return torch.nn.Linear(2, {width})\n"
        )
    monkeypatch.chdir(tmp_path / "a")
    assert load_model_function("fault_shadow_models:build").out_features == 3
    monkeypatch.chdir(tmp_path / "b")
    assert load_model_function("fault_shadow_models:build").out_features == 5
