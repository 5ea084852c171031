"""``rlrobust attack rlab``: every output file, a learned agent saved and reused, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from rlrobust.cli import main

pytestmark = [pytest.mark.cli, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("rlab") / "run"
    args = ["--data.name", "digits", "--model.name", "mlp", "--train.epochs", "3"]
    assert main(["train", *args, "--optim.lr", "0.05", "--out", str(run), "--quiet"]) == 0
    return run


def test_greedy_attack_writes_every_output(digits_run, tmp_path):
    out = tmp_path / "greedy"
    argv = ["attack", "rlab", str(digits_run), "--n-examples", "24", "--patch-size", "2"]
    argv += ["--budget", "200", "--square-eps", "0.2", "--retrain-epochs", "1"]
    argv += ["--retrain-examples", "48", "--eps", "0.1", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    record = json.loads((out / "rlab.json").read_text())
    rlab = record["rlab"]
    assert rlab["n_inputs"] == 24 and 0 < rlab["n_attacked"] <= 24
    assert record["square"]["0.2"]["queries_all"]["mean"] <= 200
    assert set(record["masks"]["vs_foreground"]) == {
        "rlab",
        "vanilla_gradient",
        "smoothgrad",
        "integrated_gradients",
        "random_patches",
    }
    assert set(record["retraining"]["after"]) == {"clean", "fgsm", "pgd40"}
    tensors = load_file(str(out / "examples.safetensors"))
    success = tensors["success"].bool()
    assert int(success.sum()) == rlab["n_success"]
    assert torch.equal(
        tensors["prediction_after"][success] != tensors["labels"][success],
        torch.ones(int(success.sum()), dtype=torch.bool),
    )
    assert (tensors["queries"] <= 200).all()
    assert "RLAB (greedy)" in (out / "rlab.md").read_text()
    assert (out / "grid.png").stat().st_size > 1000
    assert (out / "retrained.safetensors").is_file()


def test_learned_agent_is_trained_once_then_loaded(digits_run, tmp_path, capsys):
    agent_dir = tmp_path / "agent"
    argv = ["attack", "rlab", str(digits_run), "--agent", "learned", "--agent-dir", str(agent_dir)]
    argv += ["--n-examples", "16", "--patch-size", "2", "--budget", "100", "--no-masks"]
    argv += ["--train-iterations", "3", "--train-batch", "16"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--quiet"]) == 0
    meta = json.loads((agent_dir / "agent.json").read_text())
    assert len(meta["training_history"]) == 3
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert "loading the RLAB agent" in capsys.readouterr().out
    a = load_file(str(tmp_path / "a" / "examples.safetensors"))
    b = load_file(str(tmp_path / "b" / "examples.safetensors"))
    assert torch.equal(a["x_adv"], b["x_adv"])  # the saved agent acts as the trained one did


def test_bad_arguments_are_explained(digits_run, tmp_path, capsys):
    base = ["attack", "rlab", str(digits_run), "--out", str(tmp_path / "x"), "--quiet"]
    assert main([*base, "--agent", "learned"]) == 2
    assert "--agent-dir" in capsys.readouterr().err
    assert main([*base, "--retrain-epochs", "1"]) == 2
    assert "--eps" in capsys.readouterr().err
    assert main([*base, "--filters", "sharpen"]) == 2
    assert "gaussian_noise" in capsys.readouterr().err
    assert main([*base, "--budget", "10", "--patch-size", "2"]) == 2
    assert "budget of at least" in capsys.readouterr().err
    assert main(["attack", "rlab", str(tmp_path / "missing"), "--quiet"]) == 2
    assert "run directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    "data,model,patch",
    [
        (["--data.name", "ucr-gunpoint"], ["cnn1d", '{"widths": [8, 8, 8]}'], ["15"]),
        (
            ["--data.name", "moving-mnist", "--data.options"]
            + ['{"num_clips": 32, "frames": 4, "size": 36}'],
            ["cnn3d", '{"widths": [4, 8, 8]}'],
            ["2", "12", "12"],
        ),
    ],
    ids=["signal", "video"],
)
def test_learned_agent_on_signal_and_video_runs(
    data, model, patch, tmp_path, shared_data_dir, capsys
):
    run = tmp_path / "run"
    train = [*data, "--data.data_dir", str(shared_data_dir), "--model.name", model[0]]
    train += ["--model.options", model[1], "--train.epochs", "2", "--out", str(run), "--quiet"]
    assert main(["train", *train]) == 0, capsys.readouterr().err
    out, agent_dir = tmp_path / "rlab", tmp_path / "agent"
    argv = ["attack", "rlab", str(run), "--agent", "learned", "--agent-dir", str(agent_dir)]
    argv += ["--patch-size", *patch, "--budget", "120", "--max-steps", "20", "--n-examples", "6"]
    argv += ["--train-iterations", "2", "--train-batch", "4", "--batch-size", "3"]
    assert main([*argv, "--stacking", "stack", "--out", str(out), "--quiet"]) == 0
    record = json.loads((out / "rlab.json").read_text())
    assert record["settings"]["stacking"] == "stack" and record["settings"]["max_steps"] == 20
    tensors = load_file(str(out / "examples.safetensors"))
    assert (tensors["steps"] <= 20).all() and (tensors["queries"] <= 120).all()
    assert tensors["masks"].shape == tensors["x"][:, 0].shape
    if record["rlab"]["n_success"]:
        assert (out / "grid.png").stat().st_size > 1000
        assert record["masks"]["reference"] == ("none" if len(patch) == 1 else "ground_truth")
