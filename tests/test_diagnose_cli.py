"""`rlrobust diagnose`: every part runs on two runs and lands in one record and one figure set."""

from __future__ import annotations

import json

import pytest

from rlrobust.cli import main

pytestmark = pytest.mark.cli

TINY = [
    "--data.name",
    "digits",
    "--data.train_subset",
    "300",
    "--data.test_subset",
    "40",
    "--model.name",
    "mlp",
    "--train.epochs",
    "2",
    "--quiet",
]


def test_diagnose_two_runs_side_by_side(tmp_path, capsys):
    ce, policy = tmp_path / "ce", tmp_path / "policy"
    assert main(["train", *TINY, "--out", str(ce)]) == 0
    assert (
        main(
            [
                "train",
                *TINY,
                "--out",
                str(policy),
                "--objective.name",
                "kim_policy",
                "--objective.options",
                '{"lam": 0.5, "action": "sample"}',
            ]
        )
        == 0
    )
    out = tmp_path / "diag"
    code = main(
        [
            "diagnose",
            str(ce),
            str(policy),
            "--eps",
            "0.1",
            "--landscape-points",
            "5",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert "| indicator | ce | policy |" in table and "masking verdict" in table
    records = json.loads((out / "diagnostics.json").read_text())
    assert set(records) == {"ce", "policy"}
    for record in records.values():
        assert set(record) >= {"masking", "gradients", "entropy", "landscape", "sharpness"}
    # The policy run also gets its training-loss landscape and sharpness; the CE run does not.
    assert "weights_1d_training_loss" in records["policy"]["landscape"]
    assert "training_loss" not in records["ce"]["sharpness"]
    for name in ("gradient-norms.png", "entropy.png", "landscape-2d-ce.png", "pgd-trajectory.png"):
        assert (out / name).stat().st_size > 1000, name
    assert (ce / "diagnostics.json").is_file()


def test_diagnose_one_part_only(tmp_path):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    assert main(["diagnose", str(run), "--entropy", "--eps", "0.1", "--quiet"]) == 0
    record = json.loads((tmp_path / "diagnostics" / "diagnostics.json").read_text())["run"]
    assert "entropy" in record and "masking" not in record


def test_diagnose_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path), "--eps", "0.1"]) == 2
    assert "not a run directory" in capsys.readouterr().err
