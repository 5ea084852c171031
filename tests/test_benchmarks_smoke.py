"""Smoke tests of the benchmark scripts in benchmarks/.

Each script runs with --quick in a fresh process and must exit 0 and print a RESULT line with
a numeric ratio. The timing values themselves are never checked: they depend on the machine
and its load, and the scripts' own targets are goals to track, not tests.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = (
    "bench_objectives",
    "bench_pgd",
    "bench_attack_overhead",
    "bench_training",
    "bench_memory",
    "bench_autoattack",
    "bench_fast_paths",
)
RESULT = re.compile(r"^RESULT name=(?P<name>\S+) ratio=(?P<ratio>\S+)(?P<rest>.*)$", re.MULTILINE)


def load_script(name: str, monkeypatch: pytest.MonkeyPatch):
    """Import benchmarks/<name>.py as a module (its `from common import ...` needs the folder)."""
    monkeypatch.syspath_prepend(str(BENCH_DIR))
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run_script(name: str, *options: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("RLROBUST_DATA", None)  # quick runs never read real data; keep them hermetic
    return subprocess.run(
        [sys.executable, str(BENCH_DIR / f"{name}.py"), *options],
        capture_output=True,
        text=True,
        timeout=300,  # generous: a machine shared with other jobs can be many times slower
        env=env,
    )


def results(stdout: str) -> list[re.Match]:
    return list(RESULT.finditer(stdout))


def test_script_list_matches_run_all(monkeypatch):
    run_all = load_script("run_all", monkeypatch)
    assert tuple(run_all.SCRIPTS) == SCRIPTS
    assert sorted(p.stem for p in BENCH_DIR.glob("bench_*.py")) == sorted(SCRIPTS)
    assert run_all.selected(["pgd", "bench_memory"]) == ["bench_pgd", "bench_memory"]
    with pytest.raises(SystemExit, match="unknown benchmark"):
        run_all.selected(["no_such_benchmark"])


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_lists_the_shared_options(name, monkeypatch):
    text = load_script(name, monkeypatch).build_parser().format_help()
    for option in ("--quick", "--device", "--repeats", "--warmup", "--seed", "--strict"):
        assert option in text, f"{name} --help lacks {option}"


def test_result_line_format_and_targets(monkeypatch, capsys):
    common = load_script("common", monkeypatch)
    assert common.target_met(1.0, ">=1.0") and not common.target_met(0.99, ">=1.0")
    assert common.target_met(1.03, "<=1.03") and not common.target_met(1.04, "<=1.03")
    assert not common.target_met(float("nan"), "<=1.03")
    assert common.report("demo", 1.5, "<=1.2", images=16) is False
    line = capsys.readouterr().out.strip()
    assert line == "RESULT name=demo ratio=1.5000 target<=1.2 ok=false images=16"
    assert common.Timing([1.0, 3.0, 2.0]).median == 2.0


@pytest.mark.parametrize("name", SCRIPTS)
def test_quick_run_prints_a_numeric_ratio(name):
    # One torch thread: on a machine shared with other jobs, torch's threads would otherwise
    # spin waiting for each other; the figures are not checked, only that the script runs.
    done = run_script(name, "--quick", "--threads", "1")
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    found = results(done.stdout)
    assert found, f"{name} printed no RESULT line:\n{done.stdout}"
    last = found[-1]
    assert done.stdout.rstrip().endswith(last.group(0)), "the RESULT line must come last"
    if (
        name == "bench_autoattack"
        and importlib.util.find_spec("rlrobust.attacks.autoattack") is None
    ):
        # Only acceptable while the adapter does not exist.
        assert "status=not_yet_available" in last.group("rest")
        return
    for match in found:
        ratio = float(match.group("ratio"))
        assert math.isfinite(ratio) and ratio > 0, match.group(0)
        assert re.search(r" target(>=|<=)[0-9.]+ ok=(true|false)", match.group("rest")), (
            match.group(0)
        )
        # Not a timing: the compared attacks are deterministic (PGD without a random start,
        # AutoAttack with a fixed seed), so their outputs must agree up to float noise.
        diff = re.search(r"max_abs_diff=(\S+)", match.group("rest"))
        if diff:
            assert float(diff.group(1)) <= 1e-5, match.group(0)


def test_run_all_collects_result_lines(monkeypatch, tmp_path, capsys):
    # Stand-in scripts (no torch import, so this is fast): one passes, one fails.
    run_all = load_script("run_all", monkeypatch)
    (tmp_path / "bench_good.py").write_text(
        "import sys\nprint('# detail')\nprint('RESULT name=good ratio=1.5 target>=1.0 ok=true', sys.argv[1:])\n"
    )
    (tmp_path / "bench_bad.py").write_text("raise SystemExit(3)\n")
    monkeypatch.setattr(run_all, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(run_all, "SCRIPTS", ("bench_good", "bench_bad"))
    monkeypatch.setattr(sys, "argv", ["run_all.py", "--quick", "--repeats", "3"])
    assert run_all.main() == 1
    summary = capsys.readouterr().out.split("=== all results", 1)[1]
    found = results(summary)
    assert [m.group("name") for m in found] == ["good"]
    assert "'--quick', '--repeats', '3'" in found[0].group("rest")
    assert "bench_bad" in summary
