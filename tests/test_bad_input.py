"""The bad-input catalogue: each case gets a clear error that names the problem and the fix,
and nothing on disk is lost or overwritten. One test per row of the catalogue."""

from __future__ import annotations

import shutil

import pytest
import torch

from rlrobust.attacks import FGSM, PGD, build_attack
from rlrobust.config import load_config
from rlrobust.data import ImageData, load_dataset
from rlrobust.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    RLRobustError,
    RunDirectoryError,
    UnknownNameError,
)
from rlrobust.models import build_model
from rlrobust.registry import OBJECTIVES
from rlrobust.training.checkpoint import load_weights, save_weights
from rlrobust.training.run import train_run


def tiny_model():
    torch.manual_seed(0)
    return build_model("mlp", num_classes=10, in_channels=1, image_size=8)


def test_missing_data_file_names_the_folder_and_the_fix(tmp_path):
    with pytest.raises(DataError) as caught:
        load_dataset("mnist", "test", data_dir=tmp_path)
    message = str(caught.value)
    assert str(tmp_path) in message and "RLROBUST_DATA" in message and "--data.download" in message


def test_corrupted_data_file_is_an_md5_mismatch(tmp_path, shared_data_dir):
    folder = tmp_path / "mnist"
    shutil.copytree(shared_data_dir / "mnist", folder)
    target = folder / "t10k-labels-idx1-ubyte.gz"
    target.chmod(0o644)
    raw = bytearray(target.read_bytes())
    raw[100] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="md5") as caught:
        load_dataset("mnist", "test", data_dir=tmp_path)
    assert "t10k-labels" in str(caught.value)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: build_model("lenet6", num_classes=10, in_channels=1, image_size=28), "lenet5"),
        (lambda: OBJECTIVES.get("kim"), "kim_policy"),
        (lambda: build_attack("cw"), "pgd"),
        (lambda: load_dataset("svhn"), "fashion-mnist"),
    ],
)
def test_unknown_names_list_the_valid_ones(make, name):
    with pytest.raises(UnknownNameError) as caught:
        make()
    assert name in str(caught.value) and "choose one of" in str(caught.value)


@pytest.mark.parametrize(("eps", "fragment"), [(-0.1, "eps"), (2.0, "pixel")])
def test_eps_outside_zero_one_is_refused(eps, fragment):
    with pytest.raises(ConfigError) as caught:
        PGD(eps=eps)
    assert fragment in str(caught.value)


def test_labels_outside_the_class_range():
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(DataError, match="10"):
        FGSM(eps=0.1)(tiny_model(), x, torch.tensor([0, 1, 2, 10]))
    with pytest.raises(DataError, match="label"):
        ImageData(
            torch.zeros(2, 1, 8, 8, dtype=torch.uint8),
            torch.tensor([0, 12]),
            10,
            "bad",
            (0.0,),
            (1.0,),
        )


def test_nan_inputs_are_refused():
    x = torch.rand(3, 1, 8, 8)
    x[1, 0, 2, 2] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        PGD(eps=0.1, steps=2)(tiny_model(), x, torch.tensor([0, 1, 2]))


def test_checkpoint_that_does_not_match_the_model(tmp_path):
    path = save_weights(tiny_model(), tmp_path / "w.safetensors")
    wrong = build_model("mlp", num_classes=3, in_channels=1, image_size=8)
    with pytest.raises(CheckpointError, match="config.json"):
        load_weights(wrong, path)


def test_checkpoints_are_never_unpickled(tmp_path):
    evil = tmp_path / "evil.safetensors"
    torch.save({"weight": torch.zeros(1)}, evil)  # a pickle archive under a safetensors name
    with pytest.raises(CheckpointError, match="pickle / torch.save file.*never unpickles"):
        load_weights(tiny_model(), evil)


def test_a_safetensors_header_length_ending_in_0x80_is_not_taken_for_a_pickle(tmp_path):
    from safetensors.torch import save

    from rlrobust.weights import read_safetensors

    # grow a tensor name until the 8-byte little-endian header length starts with 0x80, the
    # pickle protocol marker (the demo's half-width zou_cnn6 has a 1152-byte header)
    for width in range(1, 400):
        blob = save({"w" * width: torch.zeros(2)})
        if blob[0] == 0x80:
            break
    else:
        pytest.fail("no header length with low byte 0x80 found")
    path = tmp_path / "w.safetensors"
    path.write_bytes(blob)
    assert torch.equal(read_safetensors(path)["w" * width], torch.zeros(2))


def test_run_directory_with_a_finished_run_is_left_alone(tmp_path):
    cfg = load_config(
        overrides={
            "data.name": "digits",
            "data.train_subset": 100,
            "model.name": "mlp",
            "train.epochs": 1,
        }
    )
    train_run(cfg, tmp_path / "run", log=lambda *_: None)
    snapshot = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    with pytest.raises(RunDirectoryError, match="another output directory"):
        train_run(cfg, tmp_path / "run", log=lambda *_: None)
    assert snapshot == {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}


def test_config_key_that_does_not_exist():
    with pytest.raises(ConfigError, match="valid keys|has "):
        load_config(overrides={"optim.learning_rate": 0.1})


def test_bad_objective_option():
    with pytest.raises(ConfigError, match="lam"):
        OBJECTIVES.get("kim_policy")(lambda_=1.5)


def test_all_errors_are_value_errors_for_callers_that_catch_broadly():
    for error in (UnknownNameError, ConfigError, DataError, CheckpointError, RunDirectoryError):
        assert issubclass(error, RLRobustError) and issubclass(error, ValueError)


# --- command arguments: refused before any work, with the option named ---------------------


def _no_work(*_args, **_kwargs):
    raise AssertionError("work started before the arguments were checked")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--eps", "2"], "larger than the whole pixel range"),
        (["--eps", "0"], "radius > 0"),
        (["--eps", "-0.1", "--norm", "l2"], "radius > 0"),
        (["--eps", "0.1", "--n-examples", "0"], "--n-examples must be at least 1"),
        (["--eps", "0.1", "--landscape-points", "1"], "--landscape-points must be at least 3"),
    ],
)
def test_diagnose_arguments_are_checked_before_any_run_is_loaded(
    tmp_path, monkeypatch, capsys, extra, fragment
):
    import rlrobust.runs
    from rlrobust.cli import main

    monkeypatch.setattr(rlrobust.runs, "load_run", _no_work)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert main(["diagnose", str(run), *extra, "--out", str(tmp_path / "d"), "--quiet"]) == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_diagnose_refuses_two_runs_of_the_same_name(tmp_path, monkeypatch, capsys):
    import rlrobust.runs
    from rlrobust.cli import main

    monkeypatch.setattr(rlrobust.runs, "load_run", _no_work)
    runs = [tmp_path / "a" / "run", tmp_path / "b" / "run"]
    for run in runs:
        run.mkdir(parents=True)
        (run / "config.json").write_text("{}")
    assert main(["diagnose", *map(str, runs), "--eps", "0.1", "--quiet"]) == 2
    assert "two runs are named run" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--jobs", "-2"], "--jobs must be at least 1"),
        (["--address", "10.0.0.1:6379"], "--backend ray"),
    ],
)
def test_sweep_and_reproduce_backend_options_are_checked_first(
    tmp_path, monkeypatch, capsys, extra, fragment
):
    import rlrobust.experiments.reproduce
    import rlrobust.experiments.sweep
    from rlrobust.cli import main

    monkeypatch.setattr(rlrobust.experiments.sweep, "run_sweep", _no_work)
    monkeypatch.setattr(rlrobust.experiments.reproduce, "reproduce", _no_work)
    sweep = ["sweep", "--data.name", "digits", "--out", str(tmp_path / "s"), *extra, "--quiet"]
    assert main(sweep) == 2
    assert fragment in capsys.readouterr().err
    reproduce = ["reproduce", "kim-mnist", "--out", str(tmp_path / "r"), *extra, "--quiet"]
    assert main(reproduce) == 2
    assert fragment in capsys.readouterr().err
