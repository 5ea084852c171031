"""`rlrobust attack rlab`: every bad argument is refused before any work, with a message that
names the option; earlier outputs are never overwritten without --overwrite, and with it no
stale file of the earlier attack survives."""

from __future__ import annotations

import json

import pytest

import rlrobust.attacks.rlab.run as rlab_run
from rlrobust.cli import main

pytestmark = [pytest.mark.cli, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("rlab-args") / "run"
    args = ["--data.name", "digits", "--model.name", "mlp", "--train.epochs", "2"]
    assert main(["train", *args, "--optim.lr", "0.05", "--out", str(run), "--quiet"]) == 0
    return run


def _no_work(*_args, **_kwargs):
    raise AssertionError("work started before the arguments were checked")


BEFORE_LOADING = [
    (["--eps", "2", "--retrain-epochs", "1"], "--eps 2 is outside (0, 1]"),
    (["--eps", "0", "--retrain-epochs", "1"], "--eps 0 is outside (0, 1]"),
    (["--eps", "nan", "--retrain-epochs", "1"], "outside (0, 1]"),
    (["--eps", "0.1"], "--retrain-epochs"),
    (["--square-eps", "0.1", "1.5"], "--square-eps 1.5 is outside"),
    (["--square-eps", "0.1", "0.1"], "more than once"),
    (["--budget", "1"], "--budget must be at least 2"),
    (["--max-steps", "0"], "--max-steps must be at least 1"),
    (["--patch-size", "0"], "--patch-size"),
    (["--patch-size", "1", "2", "3", "4"], "--patch-size"),
    (["--filters", "sharpen"], "gaussian_noise"),
    (["--filters", "gaussian_noise", "gaussian_noise"], "more than once"),
    (["--n-examples", "0"], "--n-examples must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--retrain-epochs", "-1"], "--retrain-epochs must be >= 0"),
    (["--penalty", "-1"], "--penalty"),
    (["--penalty", "nan"], "--penalty"),
    (["--retrain-epochs", "1", "--eps", "0.1", "--retrain-lr", "0"], "--retrain-lr"),
    (["--foreground-threshold", "1.5"], "--foreground-threshold"),
    (["--agent-dir", "agents/x"], "--agent learned"),
    (["--agent", "learned"], "--agent-dir"),
    (["--agent", "learned", "--agent-dir", "A", "--reprobe"], "--reprobe"),
    (["--retrain-epochs", "1"], "give --eps"),
]


@pytest.mark.parametrize(("extra", "fragment"), BEFORE_LOADING)
def test_bad_argument_is_refused_before_the_run_is_loaded(
    digits_run, tmp_path, monkeypatch, capsys, extra, fragment
):
    monkeypatch.setattr(rlab_run, "load_victim", _no_work)
    monkeypatch.setattr(rlab_run, "run_rlab", _no_work)
    out = tmp_path / "out"
    extra = [str(tmp_path / e) if e == "A" else e for e in extra]
    assert main(["attack", "rlab", str(digits_run), *extra, "--out", str(out), "--quiet"]) == 2
    assert fragment in capsys.readouterr().err
    assert not out.exists()


def test_agent_dir_that_cannot_be_written_is_refused_before_training(
    digits_run, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(rlab_run, "load_victim", _no_work)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    argv = ["attack", "rlab", str(digits_run), "--agent", "learned", "--quiet"]
    assert main([*argv, "--agent-dir", str(blocker)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main([*argv, "--agent-dir", str(blocker / "agent")]) == 2
    assert "cannot be created" in capsys.readouterr().err
    assert main([*argv, "--agent-dir", str(tmp_path / "ok"), "--out", str(blocker)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--budget", "10", "--patch-size", "2"], "budget of at least 66 queries"),
        (["--patch-size", "2", "2", "2"], "does not fit spatial shape"),
        (["--mask-reference", "ground_truth"], "no ground-truth masks"),
    ],
)
def test_arguments_that_need_the_data_are_checked_before_the_attack(
    digits_run, tmp_path, monkeypatch, capsys, extra, fragment
):
    monkeypatch.setattr(rlab_run, "run_rlab", _no_work)
    out = tmp_path / "out"
    assert main(["attack", "rlab", str(digits_run), *extra, "--out", str(out), "--quiet"]) == 2
    assert fragment in capsys.readouterr().err
    assert not out.exists()


def test_earlier_outputs_are_kept_or_fully_replaced(digits_run, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["attack", "rlab", str(digits_run), "--n-examples", "8", "--patch-size", "2"]
    argv += ["--budget", "200", "--no-masks", "--out", str(out), "--quiet"]
    retrain = ["--retrain-epochs", "1", "--retrain-examples", "16", "--eps", "0.1"]
    assert main([*argv, *retrain]) == 0
    assert (out / "retrained.safetensors").is_file()
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # a second attack into the same folder is refused, and nothing there changes
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "rlab.json" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # with --overwrite, the earlier attack's files go: no retrained model without retraining
    assert main([*argv, "--overwrite"]) == 0
    assert not (out / "retrained.safetensors").exists()
    assert "retraining" not in json.loads((out / "rlab.json").read_text())
    assert (out / "notes.txt").read_text() == "mine"  # not an output of the attack: kept


def test_an_unknown_or_absent_device_fails_before_any_work(tmp_path, monkeypatch, capsys):
    """`--device` is resolved before the victim is loaded (a CPU-only host asked for cuda)."""
    import json

    import torch

    from rlrobust.attacks.rlab import run as rlab_run
    from rlrobust.commands import main

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({}))

    def no_work(*_args, **_kwargs):
        raise AssertionError("the victim was loaded before the device was checked")

    monkeypatch.setattr(rlab_run, "load_victim", no_work)
    device = "cuda:7" if not torch.cuda.is_available() else "nonsense"
    assert main(["attack", "rlab", str(run_dir), "--device", device]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err or "unknown device" in err
