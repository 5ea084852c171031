"""The ``grid`` rule: Kim's lambda table on MNIST (Table 2), cell by cell.

What the paper says of its MNIST grid: every one of the 49 (lambda1, lambda2) cells reaches
99.02 - 99.30 % clean accuracy with PGD accuracy 56.18 - 69.06 % (Table 2), and "in the grayscale
dataset MNIST, it seems that there is no particular tendency" (the text under Table 1; the
lambda2 trend it describes is CIFAR-10's). So the rule checks two things on our grid:

- **every cell trains**: a cell *collapses* when its mean clean accuracy over seeds is below
  ``COLLAPSE_CLEAN`` (ours: a LeNet5 that learned MNIST at all is far above it; chance is 10 %);
- **no tendency in lambda2**: for each lambda1, the PGD accuracy of the largest lambda2 minus
  that of the smallest, paired by seed, with a Student-t interval across seeds at the
  Bonferroni-corrected level ``1 - 0.05 / rows`` (one test per lambda1 row).

Verdict: **does not hold** when a cell of the main grid collapses or a row's trend interval
excludes 0; **holds weakly** when neither happens but a cell has fewer than two seeds or the
grid is smaller than 3 x 3; **holds** otherwise; **not testable here** without PGD records.

Runs are grouped by (lambda1, lambda2, learning rate) read from each run's config.json. The main
grid is the learning rate with the most runs; runs at another learning rate (e.g. a collapsing
cell retrained at a tenth of it) are reported beside it, in the evidence and the claim's section.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from rlrobust.findings.base import FAILS, HOLDS, UNTESTABLE, WEAK, Finding, seeds_text
from rlrobust.findings.claims import Claim
from rlrobust.findings.records import Collection, RunRecords
from rlrobust.stats import DEFAULT_LEVEL, format_interval, seed_summary

#: a cell whose mean clean accuracy (%) is below this collapsed (ours; see the module docstring)
COLLAPSE_CLEAN = 50.0
#: the config keys of (lambda1, lambda2), as the kim-lambda preset names its grid
LAM_KEYS = ("two_stage.warmup_options.lam", "objective.options.lam")
#: the smallest grid that can show a tendency, as the findings issue asks (3 x 3)
MIN_SIDE = 3


@dataclass(frozen=True)
class Cell:
    lam1: float  # the Eq. 12 warm-up's lambda
    lam2: float  # Eq. 4's lambda
    lr: float


def _cell_of(run: RunRecords) -> Cell | None:
    cfg = run.config
    try:
        lam1 = cfg["two_stage"]["warmup_options"]["lam"]
        lam2 = cfg["objective"]["options"]["lam"]
        lr = cfg["optim"]["lr"]
    except (KeyError, TypeError):
        return None
    return Cell(float(lam1), float(lam2), float(lr))


def _accuracies(run: RunRecords) -> tuple[float, float] | None:
    """(clean, PGD) accuracy in % from the run's evaluation record, or None."""
    record = run.evaluation or {}
    pgd = [a for a in record.get("attacks", []) if str(a.get("label", "")).startswith("pgd")]
    if "clean_accuracy" not in record or not pgd:
        return None
    return 100 * record["clean_accuracy"], 100 * pgd[0]["accuracy"]


def _group(runs: list[RunRecords]) -> dict[Cell, dict[int, tuple[float, float]]]:
    """cell -> seed -> (clean, PGD)."""
    cells: dict[Cell, dict[int, tuple[float, float]]] = defaultdict(dict)
    for run in runs:
        cell, values = _cell_of(run), _accuracies(run)
        if cell is not None and values is not None:
            cells[cell][run.seed] = values
    return dict(cells)


def _paper_pgd(claim: Claim) -> dict[tuple[float, float], float]:
    """(lambda1, lambda2) -> the paper's PGD accuracy of that cell, from the preset."""
    from rlrobust.experiments.presets import get_preset

    out = {}
    for ref in get_preset(claim.preset).references if claim.preset else []:
        values = ref.values or {}
        if ref.metric == "pgd" and set(LAM_KEYS) <= set(values):
            out[(float(values[LAM_KEYS[0]]), float(values[LAM_KEYS[1]]))] = ref.value
    return out


def _trend(row: dict[float, dict[int, tuple[float, float]]], level: float) -> dict | None:
    """PGD(largest lambda2) - PGD(smallest lambda2) paired by seed, summarised over seeds."""
    low, high = min(row), max(row)
    seeds = sorted(set(row[low]) & set(row[high]))
    if low == high or not seeds:
        return None
    diffs = [row[high][s][1] - row[low][s][1] for s in seeds]
    return {"from": low, "to": high, **seed_summary(diffs, level=level)}


def grid_verdict(
    collapsed: list[Cell], trends: dict[float, dict | None], min_seeds: int, side: int
) -> tuple[str, str]:
    """The verdict of the MNIST grid claim and why (module docstring)."""
    if collapsed:
        names = ", ".join(f"({c.lam1:g}, {c.lam2:g})" for c in collapsed)
        return FAILS, (
            f"cell(s) {names} collapse (mean clean accuracy below {COLLAPSE_CLEAN:g} %); "
            "every cell of the paper's grid trains"
        )
    significant = [
        lam1
        for lam1, t in trends.items()
        if t and t["interval"] and (t["interval"][0] > 0 or t["interval"][1] < 0)
    ]
    if significant:
        rows = ", ".join(f"lambda1 = {lam1:g}" for lam1 in significant)
        return FAILS, (
            f"PGD accuracy changes with lambda2 at {rows} (interval excludes 0); the paper sees "
            "'no particular tendency' on MNIST"
        )
    weak = []
    if min_seeds < 2:
        weak.append("a cell has one seed (no interval across seeds)")
    if side < MIN_SIDE:
        weak.append(f"the grid is smaller than {MIN_SIDE} x {MIN_SIDE}")
    if any(t is None or t["interval"] is None for t in trends.values()):
        weak.append("a row's trend has no interval")
    if weak:
        return WEAK, "no collapse and no significant tendency, but " + "; ".join(weak)
    return HOLDS, (
        "every cell trains and no lambda2 tendency is significant at any lambda1, as the paper "
        "says of MNIST"
    )


def grid_finding(claim: Claim, collections: list[Collection], base: Finding) -> Finding:
    cells = _group([r for c in collections for r in c.runs])
    if not cells:
        base.verdict, base.reason = UNTESTABLE, "no run with a lambda grid point and a PGD record"
        return base
    runs_per_lr: dict[float, int] = defaultdict(int)
    for cell, seeds in cells.items():
        runs_per_lr[cell.lr] += len(seeds)
    main_lr = max(sorted(runs_per_lr), key=lambda lr: runs_per_lr[lr])
    main = {c: s for c, s in cells.items() if c.lr == main_lr}
    others = {c: s for c, s in cells.items() if c.lr != main_lr}
    lam1s = sorted({c.lam1 for c in main})
    lam2s = sorted({c.lam2 for c in main})
    level = 1 - (1 - DEFAULT_LEVEL) / len(lam1s)  # Bonferroni over the rows
    rows = {lam1: {c.lam2: s for c, s in main.items() if c.lam1 == lam1} for lam1 in lam1s}
    trends = {lam1: _trend(row, level) for lam1, row in rows.items()}
    summaries = {c: _summaries(s) for c, s in cells.items()}
    collapsed = [c for c in sorted(main, key=_order) if summaries[c][0]["mean"] < COLLAPSE_CLEAN]
    min_seeds = min(len(s) for s in main.values())
    base.verdict, base.reason = grid_verdict(
        collapsed, trends, min_seeds, min(len(lam1s), len(lam2s))
    )
    pgd_means = [summaries[c][1]["mean"] for c in main if c not in collapsed]
    base.our_number = (
        f"PGD: {min(pgd_means):.2f} to {max(pgd_means):.2f} over {len(main) - len(collapsed)} "
        f"trained cell(s) of a {len(lam1s)} x {len(lam2s)} grid ({min_seeds}+ seeds each, lr "
        f"{main_lr:g}); {len(collapsed)} collapsed"
        if pgd_means
        else f"every one of {len(main)} cells collapsed"
    )
    base.evidence = _evidence(trends, collapsed, others, summaries, level)
    base.details += _cell_table(claim, main, summaries, "main grid", main_lr)
    if others:
        base.details += _cell_table(claim, others, summaries, "other learning rates", None)
    base.numbers |= {
        "main_lr": main_lr,
        "collapsed": [(c.lam1, c.lam2) for c in collapsed],
        "trends": {lam1: t for lam1, t in trends.items()},
        "cells": {(c.lam1, c.lam2, c.lr): summaries[c] for c in cells},
        "level": level,
    }
    return base


def _order(cell: Cell) -> tuple[float, float, float]:
    return cell.lam1, cell.lam2, cell.lr


def _summaries(seeds: dict[int, tuple[float, float]]) -> tuple[dict, dict]:
    ordered = [seeds[s] for s in sorted(seeds)]
    bounds = (0.0, 100.0)
    return (
        seed_summary([v[0] for v in ordered], bounds=bounds),
        seed_summary([v[1] for v in ordered], bounds=bounds),
    )


def _evidence(trends, collapsed, others, summaries, level) -> list[str]:
    out = []
    for lam1, t in trends.items():
        if t is None:
            out.append(f"lambda1 {lam1:g}: no trend (one lambda2 or no shared seed)")
            continue
        shown = format_interval(t["interval"], 1.0, 2) if t["interval"] else "(1 seed)"
        out.append(
            f"lambda1 {lam1:g}: PGD(lambda2 {t['to']:g}) - PGD(lambda2 {t['from']:g}) "
            f"{t['mean']:+.2f} {shown} at {100 * level:.1f} %"
        )
    out.append(f"collapsed cells: {len(collapsed)}")
    for cell in sorted(others, key=_order):
        clean, pgd = summaries[cell]
        out.append(
            f"({cell.lam1:g}, {cell.lam2:g}) at lr {cell.lr:g}: clean {seeds_text(clean)}, "
            f"PGD {seeds_text(pgd)}"
        )
    return out


def _cell_table(claim, cells, summaries, title: str, lr: float | None) -> list[str]:
    paper = _paper_pgd(claim)
    heading = f"{title} (lr {lr:g})" if lr is not None else title
    lines = [
        "",
        f"**{heading}**: clean and PGD accuracy (%), mean ± std [95 % t interval] over seeds",
        "",
        "| lambda1 | lambda2 | lr | seeds | clean (%) | PGD (%) | paper's PGD (%) |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in sorted(cells, key=_order):
        clean, pgd = summaries[cell]
        theirs = paper.get((cell.lam1, cell.lam2))
        lines.append(
            f"| {cell.lam1:g} | {cell.lam2:g} | {cell.lr:g} | {clean['n']} | "
            f"{seeds_text(clean)} | {seeds_text(pgd)} | "
            f"{'-' if theirs is None else f'{theirs:g}'} |"
        )
    return [*lines, ""]
