"""The ``paired`` rule: arm A (claimed more robust) against arm B on the same test images.

For every seed that both arms ran, ``compare_runs`` pairs A's and B's per-sample verdicts on the
same test images, on one kind of record: the claim's most preferred evaluation (``standard``
before the preset's ``evaluation``) that both arms of some seed hold; seeds without it are left
out and named. The metric is AutoAttack when every pair holds it, else PGD. Our number is each
arm's accuracy as mean ± std over seeds with a 95 % Student-t interval (``seed_summary``) and the
paired difference A - B likewise; with one seed, the difference's interval is that seed's paired
bootstrap interval over the test images. ``paired_verdict`` turns these into one of four verdicts:

- **does not hold**: A's masking verdict is "evidence of masking" (or "no usable gradient") on
  any seed, whatever the accuracies say; or the mean difference A - B is <= 0;
- **holds**: the difference is > 0 under AutoAttack, its interval excludes 0, at least two seeds,
  and the masking checks ran on every A run without evidence;
- **holds weakly**: the direction is right but one of those is missing (only PGD, the interval
  touches 0, one seed, masking not checked), or the size is not the paper's: the whole interval
  lies below ``SIZE_FRACTION`` (a half, ours) of the paper's A - B, when the preset holds it
  (a claim of "far more robust" is not met by a sliver); each named in the reason;
- **not testable here**: records that cannot answer (an arm missing, no seed with both arms, no
  shared attack).
"""

from __future__ import annotations

from rlrobust.findings.base import (
    FAILS,
    HOLDS,
    MASKED_VERDICTS,
    RESAMPLES,
    UNTESTABLE,
    WEAK,
    Finding,
    count_verdicts,
    masking_verdict,
    metric_label,
    paper_difference,
    seeds_text,
)
from rlrobust.findings.claims import Claim
from rlrobust.findings.records import Collection, RunRecords
from rlrobust.findings.transfer import transfer_accuracy, white_box
from rlrobust.stats import format_interval, seed_summary

#: an interval wholly below this fraction of the paper's A - B is not the paper's size (ours)
SIZE_FRACTION = 0.5


def paired_verdict(
    metric_kind: str,
    mean_difference: float,
    interval: list[float] | tuple[float, float] | None,
    n_seeds: int,
    a_masking: list[str | None],
    paper_difference: float | None = None,
) -> tuple[str, str]:
    """The verdict of a paired claim and why (module docstring). Differences in points, A - B;
    ``metric_kind`` "autoattack" or "pgd"; ``a_masking``: A's masking verdict per seed (None:
    not checked); ``paper_difference``: the paper's A - B, when known."""
    masked = [v for v in a_masking if v in MASKED_VERDICTS]
    if masked:
        return FAILS, f"A's masking verdict is '{masked[0]}' on {len(masked)} of {n_seeds} seed(s)"
    if mean_difference <= 0:
        return FAILS, f"A is not more robust than B under {metric_kind}: A - B = " + (
            f"{mean_difference:+.2f} points"
        )
    weak = []
    if metric_kind != "autoattack":
        weak.append("only under PGD (no AutoAttack record)")
    if interval is None or interval[0] <= 0:
        weak.append("the difference's 95 % interval reaches 0")
    if n_seeds < 2:
        weak.append("one seed (interval over test images only)")
    unchecked = sum(v is None for v in a_masking)
    if unchecked:
        weak.append(f"masking not checked on {unchecked} of {n_seeds} A run(s)")
    if (
        paper_difference is not None
        and paper_difference > 0
        and interval is not None
        and interval[1] < SIZE_FRACTION * paper_difference
    ):
        weak.append(
            f"far smaller than the paper's: the interval's top {interval[1]:+.2f} is below "
            f"{SIZE_FRACTION:g} x the paper's A - B {paper_difference:+.2f}"
        )
    if weak:
        return WEAK, "direction as the paper, but " + "; ".join(weak)
    return HOLDS, (
        f"A - B > 0 under {metric_kind} with its interval above 0 over {n_seeds} seeds, "
        "no masking evidence"
    )


def _pairs(claim: Claim, runs: list[RunRecords]) -> tuple[list[tuple], str | None]:
    a_arm, b_arm = claim.arms
    a = {r.seed: r for r in runs if r.arm == a_arm and r.evaluation is not None}
    b = {r.seed: r for r in runs if r.arm == b_arm and r.evaluation is not None}
    if not a or not b:
        missing = [name for name, got in ((a_arm, a), (b_arm, b)) if not got]
        arms = sorted({str(r.arm) for r in runs})
        return [], (
            f"no evaluated run of arm(s) {', '.join(repr(m) for m in missing)} in the records "
            f"(arms found: {', '.join(arms) or 'none'})"
        )
    seeds = sorted(set(a) & set(b), key=str)
    if not seeds:
        return [], f"no seed with both arms (A seeds {sorted(a, key=str)}, B {sorted(b, key=str)})"
    pairs = [(s, a[s], b[s]) for s in seeds]
    # Seeds are compared on one kind of record: the claim's most preferred one that some seed
    # holds for both arms (a seed evaluated only by the preset cannot join AutoAttack's seeds).
    for name in claim.evaluations:
        same = [p for p in pairs if p[1].evaluation_name == name == p[2].evaluation_name]
        if same:
            left = [str(p[0]) for p in pairs if p not in same]
            note = f"seed(s) {', '.join(left)} left out: not both arms hold a '{name}' record"
            return same, note if left else None
    return pairs, None


def paired_finding(claim: Claim, collections: list[Collection], base: Finding) -> Finding:
    from rlrobust.compare import compare_runs
    from rlrobust.errors import RLRobustError

    runs = [r for c in collections for r in c.runs]
    problems = [p for r in runs for p in r.problems]
    pairs, why = _pairs(claim, runs)
    if pairs and why:  # some seeds compared, the others named
        problems.append(why)
    elif why:
        base.verdict, base.reason = UNTESTABLE, why
        base.details += [f"- problem: {p}" for p in problems]
        return base
    comparisons = []
    for seed, a, b in pairs:
        try:
            result = compare_runs(
                a.evaluation, b.evaluation, names=("A", "B"), n_resamples=RESAMPLES, seed=0
            )
        except RLRobustError as error:
            problems.append(f"seed {seed}: {a.path} vs {b.path}: {error}")
            continue
        comparisons.append((seed, a, b, {row["metric"]: row for row in result["rows"]}))
    if not comparisons:
        base.verdict, base.reason = (
            UNTESTABLE,
            "no pair of runs could be compared: " + "; ".join(problems),
        )
        return base
    kind, label = "autoattack", None
    labels = [set(rows) for *_, rows in comparisons]
    common = [m for m in comparisons[0][3] if all(m in s for s in labels)]
    rows_common = [{"metric": m} for m in common]
    label = metric_label(rows_common, "autoattack")
    if label is None:
        kind, label = "pgd", metric_label(rows_common, "pgd")
    if label is None:
        base.verdict = UNTESTABLE
        base.reason = f"no AutoAttack or PGD result shared by every pair (shared: {common})"
        return base
    a_acc = [100 * rows[label]["a"]["accuracy"] for *_, rows in comparisons]
    b_acc = [100 * rows[label]["b"]["accuracy"] for *_, rows in comparisons]
    diffs = [100 * rows[label]["difference"] for *_, rows in comparisons]
    percent = (0.0, 100.0)  # an accuracy's t interval is cut at its bounds, and says so
    sa, sb = seed_summary(a_acc, bounds=percent), seed_summary(b_acc, bounds=percent)
    sd = seed_summary(diffs)
    n = len(comparisons)
    interval = sd["interval"]
    if n == 1:
        interval = [100 * v for v in comparisons[0][3][label]["difference_interval"]]
    a_masking = [masking_verdict(a) for _, a, _, _ in comparisons]
    b_masking = [masking_verdict(b) for _, _, b, _ in comparisons]
    base.verdict, base.reason = paired_verdict(
        kind, sd["mean"], interval, n, a_masking, paper_difference(claim)
    )
    shown = format_interval(interval, 1.0, 2)
    base.our_number = (
        f"{label}: A {seeds_text(sa)} vs B {seeds_text(sb)}; A - B {sd['mean']:+.2f}"
        + (f" ± {sd['std']:.2f}" if sd["std"] is not None else "")
        + f" {shown} ({n} seed{'s' if n > 1 else ''})"
    )
    base.evidence = _evidence(comparisons, label, a_masking, b_masking)
    base.numbers |= {
        "metric": label,
        "a": sa,
        "b": sb,
        "difference": sd,
        "interval": interval,
        "seeds": [seed for seed, *_ in comparisons],
    }
    base.details += _seed_table(comparisons, label, a_masking, b_masking)
    base.details += [f"- problem: {p}" for p in problems]
    return base


def _evidence(comparisons, label: str, a_masking, b_masking) -> list[str]:
    clean = [100 * rows["clean"]["difference"] for *_, rows in comparisons]
    out = [f"clean A - B {sum(clean) / len(clean):+.2f} points"]  # "without sacrificing accuracy"
    pgd = metric_label([{"metric": m} for m in comparisons[0][3]], "pgd")
    if label.startswith("autoattack") and pgd and all(pgd in rows for *_, rows in comparisons):
        gap = [
            100 * (rows[pgd]["a"]["accuracy"] - rows[label]["a"]["accuracy"])
            for *_, rows in comparisons
        ]
        out.append(f"A: {pgd} - {label} {sum(gap) / len(gap):+.2f} points")
    else:
        out.append("AutoAttack vs PGD: not both run")
    out.append(f"masking A: {count_verdicts(a_masking)}; B: {count_verdicts(b_masking)}")
    out.append(_transfer_text([a for _, a, _, _ in comparisons]))
    square = metric_label([{"metric": m} for m in comparisons[0][3]], "square")
    fooled = _square_in_autoattack([a for _, a, _, _ in comparisons])
    if square:
        values = [100 * rows[square]["a"]["accuracy"] for *_, rows in comparisons]
        out.append(f"A under {square}: {sum(values) / len(values):.2f} %")
    elif fooled is not None:
        out.append(f"query-based: Square (in AutoAttack) fooled {fooled} A image(s) APGD/FAB left")
    else:
        out.append("query-based: not run")
    return out


def _transfer_text(runs: list[RunRecords]) -> str:
    """A's accuracy under transfer (its runs' ``transfer.json``: examples crafted on another
    arm's run) beside its white-box one; a transfer attack that beats the white-box one is a
    masking sign."""
    pairs = [(transfer_accuracy(r), white_box(r)) for r in runs]
    pairs = [(t, w) for t, w in pairs if t is not None and w is not None]
    if not pairs:
        return "transfer: not run"
    sources = sorted({str((r.transfer or {}).get("source")) for r in runs if r.transfer})
    moved = sum(t for t, _ in pairs) / len(pairs)
    box = sum(w[1] for _, w in pairs) / len(pairs)
    return (
        f"A under transfer from {', '.join(sources)}: {moved:.2f} % vs white-box "
        f"{box:.2f} % ({len(pairs)} run{'s' if len(pairs) > 1 else ''})"
    )


def _square_in_autoattack(runs: list[RunRecords]) -> int | None:
    """Images that AutoAttack's Square fooled after its gradient attacks, summed over A's runs
    (a query attack succeeding where gradients failed is a masking sign)."""
    total, seen = 0, False
    for run in runs:
        for entry in run.evaluation.get("attacks", []):
            breakdown = entry.get("breakdown")
            if entry.get("attack", {}).get("name") == "autoattack" and breakdown:
                total += int(breakdown.get("square", 0))
                seen = True
    return total if seen else None


def _seed_table(comparisons, label: str, a_masking, b_masking) -> list[str]:
    lines = [
        "",
        f"| seed | A {label} (%) | B {label} (%) | A - B (points) [95 % paired bootstrap] | "
        "McNemar p | A masking | B masking | A run | B run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (seed, a, b, rows), ma, mb in zip(comparisons, a_masking, b_masking, strict=True):
        row = rows[label]
        lines.append(
            f"| {seed} | {100 * row['a']['accuracy']:.2f} | {100 * row['b']['accuracy']:.2f} | "
            f"{100 * row['difference']:+.2f} {format_interval(row['difference_interval'], 100, 2)}"
            f" | {row['mcnemar']['p_value']:.3g} | {ma or 'not checked'} | "
            f"{mb or 'not checked'} | `{a.path}` | `{b.path}` |"
        )
    return [*lines, ""]
