"""Our number and the verdict of each claim, computed from its records (the rules as code).

``paired`` claims (arm A claimed more robust than arm B): for every seed that both arms ran,
``compare_runs`` pairs A's and B's per-sample verdicts on the same test images. The metric is
AutoAttack when every pair holds it, else PGD. Our number is each arm's accuracy as mean ± std
over seeds with a 95 % Student-t interval (``seed_summary``) and the paired difference A - B
likewise; with one seed, the difference's interval is that seed's paired bootstrap interval over
the test images. ``paired_verdict`` turns these into one of four verdicts:

- **does not hold**: A's masking verdict is "evidence of masking" (or "no usable gradient") on
  any seed, whatever the accuracies say; or the mean difference A - B is <= 0;
- **holds**: the difference is > 0 under AutoAttack, its interval excludes 0, at least two seeds,
  and the masking checks ran on every A run without evidence;
- **holds weakly**: the direction is right but one of those is missing (only PGD, the interval
  touches 0, one seed, masking not checked), each named in the reason;
- **not testable here**: no records (the row says "not measured yet" and gives the command), or
  records that cannot answer (an arm missing, no seed with both arms, no shared attack).

Claims of other kinds have no rule yet: their verdict is "not testable here" with what a rule
must compute (``Claim.what_would_test``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rlrobust.findings.claims import Claim
from rlrobust.findings.records import Collection, RunRecords, read_claim
from rlrobust.stats import format_interval, seed_summary

HOLDS, WEAK, FAILS, UNTESTABLE = "holds", "holds weakly", "does not hold", "not testable here"
NOT_MEASURED = "not measured yet"
MASKED_VERDICTS = ("evidence of masking", "no usable gradient")
CLEAN_VERDICT = "no evidence of masking"
#: bootstrap resamples of each seed's paired comparison (fixed seed 0: the document is
#: reproducible byte for byte)
RESAMPLES = 10_000


@dataclass
class Finding:
    claim: Claim
    paper_number: str
    paper_source: str
    our_number: str
    protocol: str
    verdict: str
    reason: str
    evidence: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # markdown lines of the claim's section
    numbers: dict = field(default_factory=dict)  # the computed values (tests read these)


# --- the paper's side --------------------------------------------------------------------------


def paper_side(claim: Claim) -> tuple[str, str]:
    """(the paper's number, its source), read from the preset's references."""
    if claim.preset is None or claim.reference_metric is None:
        return claim.paper_number or "-", claim.paper
    from rlrobust.experiments.presets import get_preset

    refs = [r for r in get_preset(claim.preset).references if r.metric == claim.reference_metric]
    if claim.arms:
        by_arm = {r.variant: r for r in refs if r.variant in claim.arms}
        if len(by_arm) == 2:
            a, b = by_arm[claim.arms[0]], by_arm[claim.arms[1]]
            what = a.paper_metric or a.metric
            text = f"{what}: A {a.value:g} vs B {b.value:g} (A - B {a.value - b.value:+.2f})"
            return text, a.source if a.source == b.source else f"{a.source}; {b.source}"
    if not refs:
        return claim.paper_number or "no number in the preset", claim.paper
    what = refs[0].paper_metric or refs[0].metric
    values = [r.value for r in refs]
    if len(refs) == 1:
        return f"{what}: {values[0]:g}", refs[0].source
    return f"{what}: {min(values):g} to {max(values):g} over {len(refs)} cells", refs[0].source


# --- protocol differences ----------------------------------------------------------------------


def protocol_lines(claim: Claim, collections: list[Collection]) -> tuple[str, list[str]]:
    """(the table cell, every difference line): from the records' reproduce.json where the
    collection is a reproduce folder, else computed from the preset and scale the collection
    names, else what the records' configs show; with no records, computed from the preset at
    the claim's planned scale."""
    from rlrobust.experiments.presets import differences, get_preset

    lines, sources, uncomputed = [], [], 0
    for c in collections:
        if c.reproduce is not None:
            lines += [f"{c.name}: {line}" for line in c.reproduce.get("difference_lines", [])]
            lines += [f"{c.name}: {note}" for note in c.reproduce.get("notes", [])]
            sources.append("records")
        elif c.provenance.get("preset") and c.provenance.get("scale"):
            preset = get_preset(c.provenance["preset"])
            lines += [f"{c.name}: {line}" for line in differences(preset, c.provenance["scale"])]
            sources.append("preset named by the records")
        else:
            uncomputed += 1
            lines += [
                f"{c.name}: not computed (collected without --preset / --scale); its configs: "
                + "; ".join(sorted({config_facts(r) for r in c.runs}))
            ]
    if not collections and claim.preset:
        lines = [f"planned: {line}" for line in differences(get_preset(claim.preset), claim.scale)]
        sources.append(f"preset's planned {claim.scale} scale")
    computed = len(lines) - uncomputed
    computed -= sum("none: every field" in line for line in lines)
    parts = [claim.mapping]
    if sources:
        parts.append(
            f"{computed} computed difference(s) from the {', '.join(dict.fromkeys(sources))}"
        )
    if uncomputed:
        parts.append(f"{uncomputed} collection(s) without a preset: differences not computed")
    cell = "; ".join(parts) + (" (listed in the claim's section)" if lines else "")
    return cell, lines


def config_facts(run: RunRecords) -> str:
    """What a run's config says about the protocol, in one line (data, model, objective,
    epochs, test images, attacks)."""
    cfg = run.config
    data, model, train = cfg.get("data", {}), cfg.get("model", {}), cfg.get("train", {})
    objective, ev = cfg.get("objective", {}), cfg.get("eval", {})
    attacks = [a.get("label", a.get("name")) for a in ev.get("attacks", [])]
    n = (run.evaluation or {}).get("n_examples", ev.get("n_examples"))
    return (
        f"{data.get('name')} / {model.get('name')} / {objective.get('name')}, "
        f"{train.get('epochs')} epochs, {n} test images, attacks {', '.join(map(str, attacks))}"
    )


# --- the paired rule ---------------------------------------------------------------------------


def _label(rows: list[dict], prefix: str) -> str | None:
    return next((r["metric"] for r in rows if r["metric"].lower().startswith(prefix)), None)


def masking_verdict(run: RunRecords) -> str | None:
    masking = (run.evaluation or {}).get("masking")
    return masking.get("verdict") if masking else None


def paired_verdict(
    metric_kind: str,
    mean_difference: float,
    interval: list[float] | tuple[float, float] | None,
    n_seeds: int,
    a_masking: list[str | None],
) -> tuple[str, str]:
    """The verdict of a paired claim and why (module docstring). Differences in points, A - B;
    ``metric_kind`` "autoattack" or "pgd"; ``a_masking``: A's masking verdict per seed (None:
    not checked)."""
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
    return [(s, a[s], b[s]) for s in seeds], None


def _fmt(stat: dict) -> str:
    mean = f"{stat['mean']:.2f}"
    if stat.get("interval") is None:
        return f"{mean} (1 seed)"
    return f"{mean} ± {stat['std']:.2f} {format_interval(stat['interval'], 1.0, 2)}"


def paired_finding(claim: Claim, collections: list[Collection], base: Finding) -> Finding:
    from rlrobust.compare import compare_runs
    from rlrobust.errors import RLRobustError

    runs = [r for c in collections for r in c.runs]
    problems = [p for r in runs for p in r.problems]
    pairs, why = _pairs(claim, runs)
    if why:
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
    label = _label(rows_common, "autoattack")
    if label is None:
        kind, label = "pgd", _label(rows_common, "pgd")
    if label is None:
        base.verdict = UNTESTABLE
        base.reason = f"no AutoAttack or PGD result shared by every pair (shared: {common})"
        return base
    a_acc = [100 * rows[label]["a"]["accuracy"] for *_, rows in comparisons]
    b_acc = [100 * rows[label]["b"]["accuracy"] for *_, rows in comparisons]
    diffs = [100 * rows[label]["difference"] for *_, rows in comparisons]
    sa, sb, sd = seed_summary(a_acc), seed_summary(b_acc), seed_summary(diffs)
    n = len(comparisons)
    interval = sd["interval"]
    if n == 1:
        interval = [100 * v for v in comparisons[0][3][label]["difference_interval"]]
    a_masking = [masking_verdict(a) for _, a, _, _ in comparisons]
    b_masking = [masking_verdict(b) for _, _, b, _ in comparisons]
    base.verdict, base.reason = paired_verdict(kind, sd["mean"], interval, n, a_masking)
    shown = format_interval(interval, 1.0, 2)
    base.our_number = (
        f"{label}: A {_fmt(sa)} vs B {_fmt(sb)}; A - B {sd['mean']:+.2f}"
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


def _count(verdicts: list[str | None]) -> str:
    counts: dict[str, int] = {}
    for v in verdicts:
        key = v or "not checked"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} x{c}" for k, c in counts.items())


def _evidence(comparisons, label: str, a_masking, b_masking) -> list[str]:
    clean = [100 * rows["clean"]["difference"] for *_, rows in comparisons]
    out = [f"clean A - B {sum(clean) / len(clean):+.2f} points"]  # "without sacrificing accuracy"
    pgd = _label([{"metric": m} for m in comparisons[0][3]], "pgd")
    if label.startswith("autoattack") and pgd and all(pgd in rows for *_, rows in comparisons):
        gap = [
            100 * (rows[pgd]["a"]["accuracy"] - rows[label]["a"]["accuracy"])
            for *_, rows in comparisons
        ]
        out.append(f"A: {pgd} - {label} {sum(gap) / len(gap):+.2f} points")
    else:
        out.append("AutoAttack vs PGD: not both run")
    out.append(f"masking A: {_count(a_masking)}; B: {_count(b_masking)}")
    transfer = _label([{"metric": m} for m in comparisons[0][3]], "transfer")
    if transfer:
        values = [100 * rows[transfer]["a"]["accuracy"] for *_, rows in comparisons]
        out.append(f"A under {transfer}: {sum(values) / len(values):.2f} %")
    else:
        out.append("transfer: not run")
    square = _label([{"metric": m} for m in comparisons[0][3]], "square")
    fooled = _square_in_autoattack([a for _, a, _, _ in comparisons])
    if square:
        values = [100 * rows[square]["a"]["accuracy"] for *_, rows in comparisons]
        out.append(f"A under {square}: {sum(values) / len(values):.2f} %")
    elif fooled is not None:
        out.append(f"query-based: Square (in AutoAttack) fooled {fooled} A image(s) APGD/FAB left")
    else:
        out.append("query-based: not run")
    return out


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


# --- every claim -------------------------------------------------------------------------------


def find(claim: Claim, results: Path) -> Finding:
    """The finding of ``claim`` from ``results/`` alone."""
    collections = read_claim(results, claim.id, claim.evaluations)
    paper, source = paper_side(claim)
    protocol, difference_lines = protocol_lines(claim, collections)
    base = Finding(claim, paper, source, NOT_MEASURED, protocol, UNTESTABLE, "")
    base.details = [f"- {line}" for line in _provenance_lines(collections)]
    base.numbers["differences"] = difference_lines
    if not collections:
        base.reason = f"not measured yet: no records in results/{claim.id}/"
        return base
    if claim.kind == "paired":
        return paired_finding(claim, collections, base)
    base.our_number = "records present, no rule yet"
    base.reason = (
        f"records present, but no rule for a '{claim.kind}' claim is written yet "
        f"(rlrobust/findings/rules.py); it must compute: {claim.what_would_test}"
    )
    return base


def _provenance_lines(collections: list[Collection]) -> list[str]:
    lines = []
    for c in collections:
        p = c.provenance
        cpus = (p.get("machine") or {}).get("cpus")
        wall = p.get("wall_seconds")
        load = (p.get("load") or {}).get("note") or ""
        lines.append(
            f"records `{c.name}`: `{p.get('command')}` at commit "
            f"{(p.get('git_commit') or 'unknown')[:12]}, {p.get('date')}, {cpus} CPUs"
            + (f", {wall:.0f} s wall" if isinstance(wall, int | float) else "")
            + (f" ({load})" if load else "")
            + f"; {len(c.runs)} run(s)"
        )
    return lines
