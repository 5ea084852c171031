"""The ``grid`` rule (Kim's MNIST lambda table): cell summaries, the Bonferroni trend test and
the collapse check against hand computation, on records in the layout the real commands write;
one test runs the real smoke reproduction and reads it back."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from rlrobust.findings import document, grid, rules
from rlrobust.findings.claims import get_claim

CLAIM = get_claim("kim-table2-lambda")
LAMS = (0.25, 0.75, 1.5)
# Student-t quantile t_{1 - 0.05/6, df=2} (Bonferroni over 3 rows, two-sided), from
# scipy.stats.t.ppf(1 - 0.05 / 6, 2) written out: independent of rlrobust.stats
T_BONFERRONI_DF2 = 7.648803937915553
N = 100  # test images of the synthetic records


def write_run(run_dir: Path, lam1, lam2, lr, seed, clean: float, pgd: float) -> None:
    run_dir.mkdir(parents=True)
    config = {
        "data": {"name": "mnist"},
        "two_stage": {"enabled": True, "warmup_options": {"lam": lam1}},
        "objective": {"name": "kim_policy", "options": {"lam": lam2}},
        "optim": {"lr": lr},
        "train": {"seed": seed},
        "eval": {"n_examples": N},
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    record = {
        "n_examples": N,
        "clean_accuracy": clean / 100,
        "robust_accuracy": pgd / 100,
        "attacks": [
            {"label": "fgsm", "attack": {"name": "fgsm"}, "accuracy": pgd / 100},
            {"label": "pgd", "attack": {"name": "pgd"}, "accuracy": pgd / 100},
        ],
        "config": config,
    }
    correct = round(clean * N / 100)
    robust = round(pgd * N / 100)
    per_sample = {
        "labels": [i % 10 for i in range(N)],
        "clean_correct": [1] * correct + [0] * (N - correct),
        "fgsm": [1] * robust + [0] * (N - robust),
        "pgd": [1] * robust + [0] * (N - robust),
        "robust": [1] * robust + [0] * (N - robust),
    }
    (run_dir / "evaluation.json").write_text(json.dumps(record))
    (run_dir / "evaluation-per-sample.json").write_text(json.dumps(per_sample))


def provenance(root: Path) -> None:
    (root / "provenance.json").write_text(
        json.dumps(
            {
                "claim": CLAIM.id,
                "command": "synthetic records written by tests/test_findings_grid.py",
                "git_commit": "0" * 40,
                "date": "2026-01-01T00:00:00+00:00",
                "machine": {"cpus": 2},
            }
        )
    )


def pgd_of(lam1: float, lam2: float, seed: int, trend: float) -> float:
    """PGD accuracy (%) of a cell: 60, plus ``trend`` points per lambda2 step, plus seed noise."""
    return 60 + trend * LAMS.index(lam2) + (seed - 1) * (1 + LAMS.index(lam1))


def write_grid(tmp_path: Path, *, trend=0.0, collapse=(), lr_cells=()) -> Path:
    """A 3 x 3 grid x 3 seeds at lr 0.1; ``collapse``: cells at 10 % clean; ``lr_cells``:
    cells also run at lr 0.01 (a second collection)."""
    results = tmp_path / "results"
    root = results / CLAIM.id / "grid"
    for lam1 in LAMS:
        for lam2 in LAMS:
            for seed in (0, 1, 2):
                clean = 10.0 if (lam1, lam2) in collapse else 99.0
                pgd = 0.0 if (lam1, lam2) in collapse else pgd_of(lam1, lam2, seed, trend)
                write_run(
                    root / "runs" / f"{lam1}-{lam2}__s{seed}", lam1, lam2, 0.1, seed, clean, pgd
                )
    provenance(root)
    if lr_cells:
        other = results / CLAIM.id / "lr"
        for lam1, lam2 in lr_cells:
            for seed in (0, 1, 2):
                write_run(other / "runs" / f"s{seed}", lam1, lam2, 0.01, seed, 98.0, 50.0 + seed)
        provenance(other)
    return results


def test_a_flat_grid_holds_and_its_numbers_match_hand_computation(tmp_path):
    f = rules.find(CLAIM, write_grid(tmp_path))
    assert f.verdict == rules.HOLDS, f.reason
    assert f.numbers["main_lr"] == 0.1 and f.numbers["collapsed"] == []
    assert f.numbers["level"] == pytest.approx(1 - 0.05 / 3)
    # row lambda1 = 1.5: seed noise (seed - 1) * 3, identical at both ends: differences all 0
    assert f.numbers["trends"][1.5]["mean"] == pytest.approx(0.0)
    # cell (1.5, 0.25): PGD 57, 60, 63: mean 60, std 3
    cell = f.numbers["cells"][(1.5, 0.25, 0.1)]
    assert cell[1]["mean"] == pytest.approx(60.0) and cell[1]["std"] == pytest.approx(3.0)
    assert "PGD: 60.00 to 60.00 over 9 trained cell(s) of a 3 x 3 grid (3+ seeds each" in (
        f.our_number
    )
    text = document.markdown(tmp_path / "results")
    assert "| 1.5 | 0.25 | 0.1 | 3 | 99.00 ± 0.00" in text
    assert "| 60.00 ± 3.00" in text and "| 60.47 |" in text  # the paper's (1.5, 0.25) cell


def raise_corner(results: Path, lam1: float, trend: float, extras: dict[int, float]) -> None:
    """Rewrite the (lam1, 1.5) cell: its PGD accuracy gains ``extras[seed]`` points."""
    root = results / CLAIM.id / "grid" / "runs"
    for seed, extra in extras.items():
        path = root / f"{lam1}-1.5__s{seed}"
        shutil.rmtree(path)
        write_run(path, lam1, 1.5, 0.1, seed, 99.0, pgd_of(lam1, 1.5, seed, trend) + extra)


def test_a_lambda2_trend_fails_the_mnist_claim_with_the_bonferroni_interval(tmp_path):
    # +2 points per lambda2 step with a per-seed wobble: differences 4 + (seed - 1) * 0.5 at
    # lambda1 = 0.25 need different noise at the two ends; write them explicitly
    results = write_grid(tmp_path, trend=2.0)
    raise_corner(results, 0.25, 2.0, {0: 0.0, 1: 1.0, 2: 2.0})
    f = rules.find(CLAIM, results)
    t = f.numbers["trends"][0.25]
    # differences: 4 + 0, 4 + 1, 4 + 2 = 4, 5, 6: mean 5, std 1
    half = T_BONFERRONI_DF2 * 1.0 / math.sqrt(3)
    assert t["mean"] == pytest.approx(5.0)
    assert t["interval"] == pytest.approx([5 - half, 5 + half], abs=1e-6)
    assert f.verdict == rules.FAILS and "lambda1 = 0.25" in f.reason
    assert "no particular tendency" in f.reason


def test_a_trend_inside_its_bonferroni_interval_is_no_tendency(tmp_path):
    results = write_grid(tmp_path)
    # lambda1 = 0.75, differences 1, 3, 5: mean 3, std 2, half width 7.65 * 2 / sqrt(3) = 8.8
    raise_corner(results, 0.75, 0.0, {0: 1.0, 1: 3.0, 2: 5.0})
    f = rules.find(CLAIM, results)
    assert f.numbers["trends"][0.75]["mean"] == pytest.approx(3.0)
    assert f.verdict == rules.HOLDS, f.reason


def test_a_collapsed_cell_fails_and_the_smaller_learning_rate_is_reported_beside(tmp_path):
    results = write_grid(tmp_path, collapse=[(1.5, 1.5)], lr_cells=[(1.5, 1.5)])
    f = rules.find(CLAIM, results)
    assert f.verdict == rules.FAILS and "(1.5, 1.5) collapse" in f.reason
    assert f.numbers["collapsed"] == [(1.5, 1.5)]
    assert "8 trained cell(s)" in f.our_number and "1 collapsed" in f.our_number
    lr_line = next(e for e in f.evidence if "at lr 0.01" in e)
    # 98 % clean on all seeds; PGD 50, 51, 52: mean 51, std 1, t_{0.975,2} = 4.3027
    assert "clean 98.00 ± 0.00" in lr_line and "PGD 51.00 ± 1.00 [48.52, 53.48]" in lr_line


def test_one_seed_or_a_small_grid_holds_weakly(tmp_path):
    results = tmp_path / "results"
    root = results / CLAIM.id / "small"
    for lam1 in (0.25, 0.75):
        for lam2 in (0.25, 0.75):
            write_run(root / "runs" / f"{lam1}-{lam2}", lam1, lam2, 0.1, 0, 99.0, 60.0)
    provenance(root)
    f = rules.find(CLAIM, results)
    assert f.verdict == rules.WEAK
    assert "one seed" in f.reason and "smaller than 3 x 3" in f.reason


def test_records_without_a_grid_point_are_not_testable(tmp_path):
    results = tmp_path / "results"
    root = results / CLAIM.id / "other"
    run = root / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"train": {"seed": 0}}))
    provenance(root)
    f = rules.find(CLAIM, results)
    assert f.verdict == rules.UNTESTABLE and "no run with a lambda grid point" in f.reason


def test_the_collapse_threshold_is_the_documented_one():
    assert grid.COLLAPSE_CLEAN == 50.0 and "COLLAPSE_CLEAN" in grid.__doc__


@pytest.mark.slow
def test_the_real_smoke_grid_is_read_back(tmp_path, monkeypatch):
    """``rlrobust reproduce kim-lambda --scale smoke``, collected as the claim says, reaches a
    verdict with numbers from its own records."""
    from rlrobust.experiments.reproduce import reproduce
    from rlrobust.findings.collect import collect

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "kl"
    reproduce("kim-lambda", scale="smoke", out=out, log=lambda *_: None)
    collect(out, CLAIM.id, command="rlrobust reproduce kim-lambda --scale smoke", results="res")
    f = rules.find(CLAIM, tmp_path / "res")
    assert f.verdict != rules.UNTESTABLE, f.reason
    assert len(f.numbers["cells"]) == 4  # the smoke scale's 2 x 2 corner
    assert "2 x 2 grid" in f.our_number or "collapsed" in f.our_number
