"""The command line: --help documents every option; train, evaluate and demo on tiny budgets."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rlrobust.cli import build_parser, main
from rlrobust.config import iter_fields

pytestmark = pytest.mark.cli

TINY = [
    "--data.name",
    "digits",
    "--data.train_subset",
    "300",
    "--data.test_subset",
    "60",
    "--model.name",
    "mlp",
    "--train.epochs",
    "2",
    "--data.batch_size",
    "50",
    "--quiet",
]


def help_text(*argv: str) -> str:
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([*argv, "--help"])
    return ""


def test_train_help_lists_every_config_option(capsys):
    help_text("train")
    out = capsys.readouterr().out
    for key, *_ in iter_fields():
        assert f"--{key}" in out, key
    for flag in ("--resume", "--config", "--out", "--quiet", "--list", "--evaluate"):
        assert flag in out


@pytest.mark.parametrize("command", ["evaluate", "demo"])
def test_other_commands_have_help(capsys, command):
    help_text(command)
    out = capsys.readouterr().out
    assert "--quiet" in out and "usage: rlrobust " + command in out


def test_train_then_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    assert (run / "model.safetensors").is_file() and (run / "metrics.csv").is_file()
    code = main(
        [
            "evaluate",
            str(run),
            "--quiet",
            "--eval.attacks",
            '[{"name": "fgsm", "settings": {"eps": 0.1}}, {"name": "pgd", "settings": {"eps": 0.1, "steps": 5}}]',
        ]
    )
    assert code == 0
    record = json.loads((run / "evaluation.json").read_text())
    assert [e["label"] for e in record["attacks"]] == ["fgsm", "pgd"]
    assert record["audit_passed"] and 0 <= record["robust_accuracy"] <= record["clean_accuracy"]
    per_sample = json.loads((run / "evaluation-per-sample.json").read_text())
    assert len(per_sample["robust"]) == 60
    # A second evaluation under the same name would overwrite: refused, file untouched.
    before = (run / "evaluation.json").read_text()
    assert main(["evaluate", str(run), "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (run / "evaluation.json").read_text() == before


def test_bad_key_and_finished_run_give_exit_code_2_and_a_fix(tmp_path, capsys):
    assert main(["train", "--train.epochs", "x", "--quiet"]) == 2
    assert "expects int" in capsys.readouterr().err
    run = tmp_path / "run"
    assert main(["train", *TINY, "--train.epochs", "1", "--out", str(run)]) == 0
    assert main(["train", *TINY, "--out", str(run)]) == 2
    assert "finished run" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(run), "--train.epochs", "3"]) == 2
    assert "saved config.json" in capsys.readouterr().err


def test_config_file_with_override(tmp_path):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(
        json.dumps(
            {
                "data": {"name": "digits", "train_subset": 200, "test_subset": 50},
                "model": {"name": "mlp"},
                "train": {"epochs": 3},
            }
        )
    )
    run = tmp_path / "run"
    assert (
        main(["train", "--config", str(cfg), "--train.epochs", "1", "--quiet", "--out", str(run)])
        == 0
    )
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["epochs"] == 1 and saved["data"]["train_subset"] == 200


def test_list_names_every_registry(capsys):
    assert main(["train", "--list"]) == 0
    out = capsys.readouterr().out
    for word in ("lenet5", "kim_policy", "pgd", "fashion-mnist"):
        assert word in out


def test_demo_runs_as_a_subprocess_and_writes_its_report(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "rlrobust", "demo", "--out", str(out), "--epochs", "2", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # --quiet
    report = json.loads((out / "report.json").read_text())
    names = {"cross-entropy", "policy (Kim, lambda 0.75/1.5)"}
    assert set(report["evaluations"]) == names
    for record in report["evaluations"].values():  # FGSM, PGD and AutoAttack (standard)
        assert [e["attack"]["name"] for e in record["attacks"]] == ["fgsm", "pgd", "autoattack"]
        assert record["attacks"][2]["attack"]["version"] == "standard"
        assert record["n_examples"] == 200
    # a masking verdict per model, and the paired comparison policy - CE on the same images
    assert set(report["masking"]) == names
    assert all(m["verdict"] for m in report["masking"].values())
    rows = {row["metric"]: row for row in report["comparison"]["rows"]}
    assert {"clean", "worst case", "fgsm", "pgd", "autoattack"} <= set(rows)
    low, high = rows["autoattack"]["difference_interval"]
    assert low <= rows["autoattack"]["difference"] <= high
    assert 0.0 <= rows["autoattack"]["mcnemar"]["p_value"] <= 1.0
    # each run directory holds its own evaluation record, as `rlrobust evaluate` writes it
    for folder in ("ce", "policy"):
        assert (out / folder / "evaluation-per-sample.json").is_file()
        assert "masking" in json.loads((out / folder / "evaluation.json").read_text())
    assert (out / "summary.png").stat().st_size > 1000
    text = (out / "report.md").read_text()
    assert "| cross-entropy |" in text and "autoattack" in text
    assert "Gradient-masking verdicts" in text and "McNemar p" in text
    # Running again without --overwrite is refused; with it, the demo replaces its own output.
    again = subprocess.run(
        [sys.executable, "-m", "rlrobust", "demo", "--out", str(out), "--epochs", "1", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 2 and "--overwrite" in again.stderr
