"""The ``cost`` rule: learning to attack (L2L) gives PGD-AT's robustness at a lower training cost
(Dai et al.).

Each L2L variant of the ``l2l`` preset (every variant but ``BASELINE``) is set against PGD-AT,
seed by seed on the same test images:

- **robustness**: the paired difference L2L - PGD-AT in points (``compare.compare_runs``, as the
  ``paired`` rule) under AutoAttack when both runs' records hold it (``rlrobust evaluate --name
  standard``), else under the preset's PGD with the most steps. Over two or more seeds, the
  mean with its Student-t interval across seeds; with one seed, that seed's paired bootstrap
  interval over the test images. With several variants each interval is Bonferroni-corrected:
  level ``1 - ALPHA / m``, m the number of L2L variants with a seed paired with PGD-AT.
- **training cost**: L2L / PGD-AT, summed over every epoch of ``metrics.csv`` and over the
  paired seeds, of ``train_backward_passes`` (backward passes through the classifier, where the
  training records it) and of ``epoch_seconds`` (wall time: it depends on the machine and its
  load, so it is the weaker measure).

A variant **supports** the claim when it is non-inferior (the lower end of its interval is
above ``-MARGIN`` points; ``MARGIN`` = 2 points is ours) and cheaper (cost ratio < 1 on
backward passes when both runs record them, else on wall time).

Verdict: **holds** when some variant supports the claim under AutoAttack over at least two
seeds on backward passes; **holds weakly** when some variant supports it only under PGD, or with
one seed, or only on wall time (the reason names which); **does not hold** when no variant is
both non-inferior and cheaper; **not testable here** when PGD-AT or every L2L arm is missing
(or no seed has both, no shared attack, no training cost recorded). Masking verdicts of both
arms are evidence beside the verdict.
"""

from __future__ import annotations

from rlrobust.findings.base import (
    FAILS,
    HOLDS,
    RESAMPLES,
    UNTESTABLE,
    WEAK,
    Finding,
    count_verdicts,
    masking_verdict,
    metric_label,
)
from rlrobust.findings.claims import Claim
from rlrobust.findings.records import Collection, RunRecords
from rlrobust.stats import format_interval, seed_summary

#: the arm every L2L variant is set against
BASELINE = "PGD-AT"
#: non-inferiority margin in points of robust accuracy (ours: the claim says "PGD-AT's
#: robustness", without a tolerance)
MARGIN = 2.0
#: the family-wise error rate shared by the variants' intervals (Bonferroni)
ALPHA = 0.05
#: metrics.csv columns: per-epoch backward passes through the classifier, and wall seconds
BACKWARD, SECONDS = "train_backward_passes", "epoch_seconds"
BASES = {"backward passes": BACKWARD, "wall time": SECONDS}


def variants_of(claim: Claim) -> list[str]:
    """The L2L arms, in the preset's order: every variant but the baseline."""
    from rlrobust.experiments.presets import get_preset

    return [v for v in get_preset(claim.preset).variants if v != BASELINE]


def training_cost(run: RunRecords) -> dict[str, float | None]:
    """``{column: sum over epochs}`` of the run's metrics.csv; None where the file or a value
    is missing (a column the training did not write cannot be counted as zero)."""
    out: dict[str, float | None] = {}
    for column in (BACKWARD, SECONDS):
        values = [row.get(column) for row in run.metrics]
        numbers = values and all(isinstance(v, float) for v in values)
        out[column] = float(sum(values)) if numbers else None
    return out


def cost_ratios(pairs: list[tuple[RunRecords, RunRecords]]) -> dict[str, float | None]:
    """L2L / PGD-AT of each column, over the summed cost of the paired seeds (None unless every
    run of every pair records it: a ratio over part of the seeds would mix in their spread)."""
    out: dict[str, float | None] = {}
    for column in (BACKWARD, SECONDS):
        l2l = [training_cost(a)[column] for a, _ in pairs]
        pgd = [training_cost(b)[column] for _, b in pairs]
        if any(v is None for v in l2l + pgd) or sum(pgd) <= 0:
            out[column] = None
        else:
            out[column] = sum(l2l) / sum(pgd)
    return out


def _strongest_pgd(labels: list[str], record: dict) -> str | None:
    """The PGD label among ``labels`` with the most steps in ``record`` (the strongest of the
    preset's PGD evaluations), else the first label that starts with "pgd"."""
    steps = {
        e["label"]: e.get("attack", {}).get("steps") or 0
        for e in record.get("attacks", [])
        if e.get("attack", {}).get("name") == "pgd" and e.get("label") in labels
    }
    if steps:
        return max(steps, key=lambda label: (steps[label], -labels.index(label)))
    return metric_label([{"metric": m} for m in labels], "pgd")


def robust_metric(comparisons: list[tuple]) -> tuple[str | None, str | None]:
    """(kind, label): AutoAttack when every comparison holds it, else the strongest PGD."""
    shared = [m for m in comparisons[0][3] if all(m in rows for *_, rows in comparisons)]
    label = metric_label([{"metric": m} for m in shared], "autoattack")
    if label is not None:
        return "autoattack", label
    label = _strongest_pgd(shared, comparisons[0][1].evaluation)
    return ("pgd", label) if label else (None, None)


def compare_variant(variant: str, pairs: list, level: float, problems: list[str]) -> dict | None:
    """Robustness and cost of one variant against PGD-AT over its paired seeds, or None when no
    pair could be compared or no attack is shared."""
    from rlrobust.compare import compare_runs
    from rlrobust.errors import RLRobustError

    comparisons = []
    for seed, a, b in pairs:
        try:
            result = compare_runs(
                a.evaluation,
                b.evaluation,
                names=(variant, BASELINE),
                level=level,
                n_resamples=RESAMPLES,
                seed=0,
            )
        except RLRobustError as error:
            problems.append(f"{variant}, seed {seed}: {a.path} vs {b.path}: {error}")
            continue
        comparisons.append((seed, a, b, {row["metric"]: row for row in result["rows"]}))
    if not comparisons:
        return None
    kind, label = robust_metric(comparisons)
    if label is None:
        problems.append(f"{variant}: no AutoAttack or PGD result shared with {BASELINE}")
        return None
    diffs = [100 * rows[label]["difference"] for *_, rows in comparisons]
    stat = seed_summary(diffs, level=level)
    interval = stat["interval"]
    if interval is None:  # one seed: its paired bootstrap interval over the test images
        interval = [100 * v for v in comparisons[0][3][label]["difference_interval"]]
    ratios = cost_ratios([(a, b) for _, a, b, _ in comparisons])
    basis = next((name for name, column in BASES.items() if ratios[column] is not None), None)
    return {
        "variant": variant,
        "kind": kind,
        "metric": label,
        "seeds": [seed for seed, *_ in comparisons],
        "per_seed": comparisons,
        "differences": diffs,
        "difference": stat,
        "interval": interval,
        "non_inferior": interval[0] > -MARGIN,
        "ratios": ratios,
        "basis": basis,
        "cheaper": None if basis is None else ratios[BASES[basis]] < 1,
        "masking": [masking_verdict(a) for _, a, _, _ in comparisons],
        "baseline_masking": [masking_verdict(b) for _, _, b, _ in comparisons],
        "clean": [100 * rows["clean"]["difference"] for *_, rows in comparisons],
    }


def caveats(result: dict) -> list[str]:
    """Why a supporting variant supports the claim only weakly (empty: it holds)."""
    out = []
    if result["kind"] != "autoattack":
        out.append("only under PGD (no AutoAttack record)")
    if len(result["seeds"]) < 2:
        out.append("one seed (interval over test images only)")
    if result["basis"] != "backward passes":
        out.append(
            f"cheaper only on wall time ({BACKWARD} not recorded; wall time depends on the "
            "machine's load)"
        )
    return out


def why_not(result: dict) -> str:
    """Why a variant does not support the claim."""
    reasons = []
    if not result["non_inferior"]:
        reasons.append(
            f"not non-inferior (lower end {result['interval'][0]:+.2f} <= -{MARGIN:g} points "
            f"under {result['metric']})"
        )
    if result["basis"] is None:
        reasons.append("training cost not recorded")
    elif not result["cheaper"]:
        ratio = result["ratios"][BASES[result["basis"]]]
        reasons.append(f"not cheaper ({ratio:.2f} x PGD-AT's {result['basis']})")
    return f"{result['variant']}: " + " and ".join(reasons)


def cost_verdict(results: list[dict], level: float) -> tuple[str, str]:
    """The verdict of the claim from every variant's result (module docstring)."""
    supporting = [r for r in results if r["non_inferior"] and r["cheaper"]]
    if not supporting:
        return FAILS, "no L2L variant is both non-inferior and cheaper: " + "; ".join(
            why_not(r) for r in results
        )
    best = min(supporting, key=lambda r: len(caveats(r)))
    ratio = best["ratios"][BASES[best["basis"]]]
    what = (
        f"{best['variant']} - {BASELINE} {best['difference']['mean']:+.2f} points under "
        f"{best['metric']}, lower end {best['interval'][0]:+.2f} above -{MARGIN:g} "
        f"({100 * level:.4g} % interval), at {ratio:.2f} x {BASELINE}'s {best['basis']}"
    )
    if caveats(best):
        return WEAK, f"{what}, but " + "; ".join(caveats(best))
    return HOLDS, f"{what}, over {len(best['seeds'])} seeds"


def _pairs(runs: list[RunRecords], variants: list[str]) -> tuple[dict, str | None]:
    """``{variant: [(seed, l2l run, PGD-AT run)]}`` of the evaluated runs, or why none."""
    baseline = {r.seed: r for r in runs if r.arm == BASELINE and r.evaluation is not None}
    arms = {
        v: {r.seed: r for r in runs if r.arm == v and r.evaluation is not None} for v in variants
    }
    found = ", ".join(sorted({str(r.arm) for r in runs})) or "none"
    if not baseline:
        return {}, f"no evaluated {BASELINE} run in the records (arms found: {found})"
    if not any(arms.values()):
        return {}, f"no evaluated run of any L2L arm ({', '.join(variants)}; arms found: {found})"
    pairs = {
        v: [(s, by_seed[s], baseline[s]) for s in sorted(set(by_seed) & set(baseline), key=str)]
        for v, by_seed in arms.items()
    }
    pairs = {v: p for v, p in pairs.items() if p}
    if not pairs:
        seeds = sorted(baseline, key=str)
        return {}, f"no seed with both {BASELINE} and an L2L arm ({BASELINE} seeds {seeds})"
    return pairs, None


def cost_finding(claim: Claim, collections: list[Collection], base: Finding) -> Finding:
    runs = [r for c in collections for r in c.runs]
    problems = [p for r in runs for p in r.problems]
    variants = variants_of(claim)
    pairs, why = _pairs(runs, variants)
    if why:
        base.verdict, base.reason = UNTESTABLE, why
        base.details += [f"- problem: {p}" for p in problems]
        return base
    # Bonferroni over the variants put to the test: each interval at 1 - ALPHA / m
    level = 1 - ALPHA / len(pairs)
    results = [compare_variant(v, p, level, problems) for v, p in pairs.items()]
    results = [r for r in results if r is not None]
    base.details += [f"- problem: {p}" for p in problems]
    if not results:
        base.verdict = UNTESTABLE
        base.reason = "no L2L run could be compared with PGD-AT: " + "; ".join(problems)
        return base
    if all(r["basis"] is None for r in results):
        base.verdict = UNTESTABLE
        base.reason = f"no training cost recorded ({SECONDS} / {BACKWARD} of metrics.csv)"
        return base
    base.verdict, base.reason = cost_verdict(results, level)
    base.our_number = "; ".join(_variant_text(r, level) for r in results)
    base.evidence = [_evidence(r) for r in results]
    base.evidence.append(
        f"cost basis: {BACKWARD} where both runs record it, else {SECONDS} (wall time, "
        "load-dependent: see the records' load note)"
    )
    base.numbers |= {
        "baseline": BASELINE,
        "level": level,
        "variants": {r["variant"]: _numbers(r) for r in results},
    }
    for r in results:
        base.details += _seed_table(r, level)
    return base


def _ratio_text(ratio: float | None) -> str:
    return "not recorded" if ratio is None else f"{ratio:.2f} x"


def _variant_text(r: dict, level: float) -> str:
    stat, n = r["difference"], len(r["seeds"])
    spread = f" ± {stat['std']:.2f}" if stat["std"] is not None else ""
    return (
        f"{r['variant']} - {BASELINE} under {r['metric']} {stat['mean']:+.2f}{spread} "
        f"{format_interval(r['interval'], 1.0, 2)} ({100 * level:.4g} %, {n} seed"
        f"{'s' if n > 1 else ''}), cost {_ratio_text(r['ratios'][BACKWARD])} (backward passes), "
        f"{_ratio_text(r['ratios'][SECONDS])} (wall time)"
    )


def _evidence(r: dict) -> str:
    clean = sum(r["clean"]) / len(r["clean"])
    return (
        f"{r['variant']}: clean - {BASELINE} {clean:+.2f} points; masking {r['variant']}: "
        f"{count_verdicts(r['masking'])}, {BASELINE}: {count_verdicts(r['baseline_masking'])}"
    )


def _numbers(r: dict) -> dict:
    """What the tests read: everything but the run records."""
    return {k: v for k, v in r.items() if k != "per_seed"}


def _seed_table(r: dict, level: float) -> list[str]:
    label = r["metric"]
    lines = [
        "",
        f"{r['variant']} against {BASELINE}:",
        "",
        f"| seed | L2L {label} (%) | {BASELINE} {label} (%) | L2L - {BASELINE} (points) "
        f"[{100 * level:.4g} % paired bootstrap] | backward passes L2L / {BASELINE} | "
        f"wall seconds L2L / {BASELINE} | L2L masking | {BASELINE} masking | L2L run | "
        f"{BASELINE} run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (seed, a, b, rows), ma, mb in zip(
        r["per_seed"], r["masking"], r["baseline_masking"], strict=True
    ):
        row, ca, cb = rows[label], training_cost(a), training_cost(b)
        lines.append(
            f"| {seed} | {100 * row['a']['accuracy']:.2f} | {100 * row['b']['accuracy']:.2f} | "
            f"{100 * row['difference']:+.2f} {format_interval(row['difference_interval'], 100, 2)}"
            f" | {_count(ca[BACKWARD])} / {_count(cb[BACKWARD])} | {_seconds(ca[SECONDS])} / "
            f"{_seconds(cb[SECONDS])} | {ma or 'not checked'} | {mb or 'not checked'} | "
            f"`{a.path}` | `{b.path}` |"
        )
    return [*lines, ""]


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
