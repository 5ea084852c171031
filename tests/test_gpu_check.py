"""The GPU check's CPU fallback runs in CI, so the script cannot rot before a GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_gpu_check_cpu_fallback_runs_and_its_records_agree(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        # The peer benchmarks (step 4) run in test_benchmarks_smoke.py already.
        [
            sys.executable,
            str(SCRIPT),
            "--quick",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
            "--skip-benchmarks",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    record = json.loads((tmp_path / "gpu_check.json").read_text())
    assert set(record["training"]) == {"ce", "policy"}
    assert record["resnet18"]["images_per_second"] > 0
    agreement = record["agreement"]
    assert agreement["agree"] and agreement["n_examples"] == 40
    assert agreement["clean_cpu"] > 0.5  # a trained model, so the attacks had points to attack
    assert "benchmarks" not in record
    assert record["rlab"]["exit_code"] == 0 and 0.0 <= record["rlab"]["success_rate"] <= 1.0
    assert "## GPU check on CPU" in done.stdout


def test_benchmark_lines_are_read_once_from_the_summary(monkeypatch):
    gpu_check = load_script()
    stdout = (
        "=== bench_pgd\nRESULT name=a ratio=1.0\n=== all results\nRESULT name=a ratio=1.0\n"
    )

    class Done:
        returncode = 0

    Done.stdout = stdout
    monkeypatch.setattr(gpu_check.subprocess, "run", lambda *a, **k: Done)
    assert gpu_check.run_benchmarks(gpu_check.torch.device("cpu"), True)["results"] == [
        "RESULT name=a ratio=1.0"
    ]


def load_script():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return gpu_check


def test_disagreeing_records_are_caught():
    """A planted mismatch (one verdict in ten flipped) fails the comparison."""
    gpu_check = load_script()
    base = {"n_examples": 10, "clean_accuracy": 0.9, "robust_accuracy": 0.5}
    cpu = {**base, "per_sample": {"robust": [1] * 5 + [0] * 5}}
    same = {**base, "per_sample": {"robust": [1] * 5 + [0] * 5}}
    assert gpu_check.compare_records(same, cpu)["agree"]
    flipped = {**base, "robust_accuracy": 0.6, "per_sample": {"robust": [1] * 6 + [0] * 4}}
    result = gpu_check.compare_records(flipped, cpu)
    assert not result["agree"] and result["differing_verdicts"] == 1
