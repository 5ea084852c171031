"""What every rule of ``rules.py`` shares: the verdict names, the ``Finding`` a rule fills in,
the paper's side and the protocol differences of a claim, and small formatting helpers."""

from __future__ import annotations

from dataclasses import dataclass, field

from rlrobust.findings.claims import Claim
from rlrobust.findings.records import Collection, RunRecords
from rlrobust.stats import format_interval

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


def preset_references(claim: Claim, metric: str) -> list:
    """The claim's preset references of ``metric``, in the preset's order ([] without a preset)."""
    if claim.preset is None:
        return []
    from rlrobust.experiments.presets import get_preset

    return [r for r in get_preset(claim.preset).references if r.metric == metric]


def paper_side(claim: Claim) -> tuple[str, str]:
    """(the paper's number, its source), read from the preset's references."""
    if claim.preset is None or claim.reference_metric is None:
        return claim.paper_number or "-", claim.paper
    refs = preset_references(claim, claim.reference_metric)
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


def paper_difference(claim: Claim) -> float | None:
    """The paper's A - B (points) under the claim's reference metric, when the preset holds
    both arms' numbers."""
    if claim.reference_metric is None or not claim.arms:
        return None
    by_arm = {r.variant: r.value for r in preset_references(claim, claim.reference_metric)}
    if claim.arms[0] in by_arm and claim.arms[1] in by_arm:
        return by_arm[claim.arms[0]] - by_arm[claim.arms[1]]
    return None


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


# --- helpers of every rule ---------------------------------------------------------------------


def metric_label(rows: list[dict], prefix: str) -> str | None:
    """The first metric of ``rows`` whose name starts with ``prefix`` (case-insensitive)."""
    return next((r["metric"] for r in rows if r["metric"].lower().startswith(prefix)), None)


def masking_verdict(run: RunRecords) -> str | None:
    masking = (run.evaluation or {}).get("masking")
    return masking.get("verdict") if masking else None


def seeds_text(stat: dict) -> str:
    """``mean ± std [interval]`` of a ``stats.seed_summary``, or ``mean (1 seed)``."""
    mean = f"{stat['mean']:.2f}"
    if stat.get("interval") is None:
        return f"{mean} (1 seed)"
    return f"{mean} ± {stat['std']:.2f} {format_interval(stat['interval'], 1.0, 2)}"


def count_verdicts(verdicts: list[str | None]) -> str:
    """``verdict xN, ...`` in first-seen order (None: "not checked")."""
    counts: dict[str, int] = {}
    for v in verdicts:
        key = v or "not checked"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} x{c}" for k, c in counts.items())


def provenance_lines(collections: list[Collection]) -> list[str]:
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
