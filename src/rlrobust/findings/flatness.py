"""The ``flatness`` rule: does the policy loss converge to flatter minima than CE (Kim, Eq. 30 and
Figure 1: "the smoothness of the policy loss is better than that of the CE loss")?

Records: each run's ``diagnostics.json``, which ``rlrobust diagnose RUN ... --sharpness
--landscape`` writes into the run folder (``records.py`` reads it; collecting the run, or the
reproduce folder holding the runs, carries it; the ``--out`` folder holds no run configs). A
run's arm is the variant its sweep manifest names or the ``--arm`` given to collect, else its
config's objective (``OBJECTIVE_ARMS``: ``kim_policy`` is arm A, ``cross_entropy`` arm B), so
run folders collected one by one need no ``--arm``. Arms are paired seed by seed.

Primary measure: the largest (algebraic) eigenvalue of the Hessian of the **cross-entropy** loss
at the trained weights (``sharpness.cross_entropy``; Keskar et al.'s sharpness). Why this one:

- it is the same loss on both models, so the two numbers have the same units; the policy
  loss's own Hessian has the scale of its rewards (docs/analysis.md), so a smaller value there
  could be a smaller loss rather than a flatter minimum;
- the power iteration states whether it converged, while the Hessian trace is a Hutchinson
  estimate with Monte Carlo error whose positive and negative curvature can cancel, and the
  Eq. 30 landscape is one random 2-D slice of weight space; both are listed, not decisive.

Per seed the paired difference A - B (policy - CE); over seeds its mean ± std with the 95 %
Student-t interval (``stats.seed_summary``). Verdicts:

- **does not hold**: mean policy - CE >= 0 (the policy model is not flatter);
- **holds**: policy - CE < 0 with its interval below 0 over at least two seeds, and every
  eigenvalue estimate converged (ours: an unconverged power iteration is not a number to decide on);
- **holds weakly**: the direction is right but one of those is missing (named in the reason);
- **not testable here**: an arm, or its sharpness record, missing; no seed with both arms.

Listed beside it (evidence and the per-seed table): the Hessian trace of cross-entropy, the
Eq. 30 landscape's mean loss rise over its 2-D cross-entropy grid (``landscape.shape``; only
between records with the same directions, span and grid), and each model's own training loss
top eigenvalue (Kim's literal comparison, different losses and scales).

``diagnosed_pairs`` and ``difference_text`` are shared with ``indicators.py``.
"""

from __future__ import annotations

from rlrobust.findings.base import FAILS, HOLDS, UNTESTABLE, WEAK, Finding, seeds_text
from rlrobust.findings.claims import Claim
from rlrobust.findings.records import DIAGNOSTICS, Collection, RunRecords
from rlrobust.stats import seed_summary

#: a run's objective -> its arm (index into ``claim.arms``) when no manifest or --arm names it
OBJECTIVE_ARMS = {"kim_policy": 0, "cross_entropy": 1}
#: the Eq. 30 landscape the rule reads (weight space, 2-D, cross-entropy: the same loss on both)
LANDSCAPE = "weights_2d_cross_entropy"


# --- pairing diagnosed runs (shared with indicators.py) ----------------------------------------


def arm_of(run: RunRecords, claim: Claim, objectives: dict[str, int]) -> str | None:
    """The arm a manifest or --arm names, else the one the run's objective stands for."""
    if run.arm is not None:  # a named arm wins: e.g. Zou's RL-adv also trains zou_pg
        return run.arm
    index = objectives.get(run.config.get("objective", {}).get("name"))
    return None if index is None else claim.arms[index]


def diagnosed_pairs(
    claim: Claim, collections: list[Collection], objectives: dict[str, int], parts: tuple[str, ...]
) -> tuple[list[tuple], list[str], str | None]:
    """``[(seed, A run, B run)]`` for every seed where both arms hold the diagnose ``parts``, the
    problems met, and why nothing could be paired (None when something could)."""
    runs = [r for c in collections for r in c.runs]
    problems = [p for r in runs for p in r.problems] + _left_out(collections)
    by_arm: dict[str, dict] = {arm: {} for arm in claim.arms}
    for run in runs:
        arm = arm_of(run, claim, objectives)
        if arm not in by_arm or not _has(run, parts):
            continue
        if run.seed in by_arm[arm]:  # sorted order: the first copy is used, the others named
            kept = by_arm[arm][run.seed].path
            problems.append(f"arm {arm!r} seed {run.seed}: {run.path} ignored, {kept} used")
            continue
        by_arm[arm][run.seed] = run
    missing = [arm for arm in claim.arms if not by_arm[arm]]
    if missing:
        having = sorted({str(arm_of(r, claim, objectives)) for r in runs if _has(r, parts)})
        flags = " ".join(f"--{p}" for p in parts)
        why = (
            f"no run of arm(s) {', '.join(repr(m) for m in missing)} with a diagnose record of "
            f"{', '.join(parts)} (`rlrobust diagnose RUN ... {flags}` writes it into each run "
            f"folder; arms that have one: {', '.join(having) or 'none'})"
        )
        return [], problems, why
    a, b = (by_arm[arm] for arm in claim.arms)
    seeds = sorted(set(a) & set(b), key=str)
    if not seeds:
        why = f"no seed with both arms (A seeds {sorted(a, key=str)}, B {sorted(b, key=str)})"
        return [], problems, why
    return [(s, a[s], b[s]) for s in seeds], problems, None


def _has(run: RunRecords, parts: tuple[str, ...]) -> bool:
    return all(part in (run.diagnostics or {}) for part in parts)


def _left_out(collections: list[Collection]) -> list[str]:
    """Diagnose records that collect left out as too large (then a run seems undiagnosed)."""
    return [
        f"{c.name}/{entry['path']} left out by collect ({entry['why']}): diagnose fewer test "
        "images (--n-examples)"
        for c in collections
        for entry in c.provenance.get("left_out", [])
        if entry["path"].endswith(DIAGNOSTICS)
    ]


def difference_text(stat: dict, unit: str = "") -> str:
    """``+mean ± std [low, high] (n seeds)`` of a ``seed_summary`` of paired differences."""
    text = f"{stat['mean']:+.2f}"
    if stat["interval"] is not None:
        low, high = stat["interval"]
        text += f" ± {stat['std']:.2f} [{low:.2f}, {high:.2f}]"
    n = stat["n"]
    return text + (f" {unit}" if unit else "") + f" ({n} seed{'s' if n > 1 else ''})"


# --- reading a run's sharpness and landscape ---------------------------------------------------


def top_eigenvalue(run: RunRecords, loss: str = "cross_entropy") -> tuple[float, bool] | None:
    """(the largest algebraic Hessian eigenvalue of ``loss``, whether its estimate converged),
    read as ``diagnostics.analysis._top`` reads it: records written before ``spectrum_ends``
    existed hold only the largest-magnitude eigenvalue, which stands in."""
    record = run.diagnostics["sharpness"].get(loss)
    if record is None:
        return None
    top = record["top_eigenvalue"]
    largest_magnitude, converged = top["eigenvalues"][0], bool(top["converged"][0])
    ends = record.get("spectrum_ends")
    if ends is None or ends["largest_algebraic"] == largest_magnitude:
        return largest_magnitude, converged
    # the largest-magnitude eigenvalue is negative: the shifted iteration found the largest one
    return ends["largest_algebraic"], converged and bool(ends["converged"])


def own_loss_top(run: RunRecords) -> float:
    """The top eigenvalue of the loss the model was trained with (``training_loss`` is only
    recorded for objectives other than cross-entropy)."""
    own = top_eigenvalue(run, "training_loss") or top_eigenvalue(run)
    return own[0]


def landscape_rise(run: RunRecords) -> tuple[float, tuple] | None:
    """(mean loss rise over the Eq. 30 grid, the settings that make two rises comparable)."""
    record = (run.diagnostics.get("landscape") or {}).get(LANDSCAPE)
    if record is None:
        return None
    s = record["settings"]
    return record["shape"]["mean_increase"], (s["directions"], s["span"], s["points"])


# --- the rule ----------------------------------------------------------------------------------


def flatness_verdict(
    mean_difference: float,
    interval: list[float] | tuple[float, float] | None,
    n_seeds: int,
    unconverged: int,
) -> tuple[str, str]:
    """The verdict from the primary measure's paired difference policy - CE (module docstring);
    ``unconverged``: runs whose eigenvalue estimate did not converge."""
    if mean_difference >= 0:
        return FAILS, (
            "the policy model is not flatter: top Hessian eigenvalue (cross-entropy) policy - CE "
            f"= {mean_difference:+.3g} on average"
        )
    weak = []
    if n_seeds < 2:
        weak.append("one seed (no interval across seeds)")
    elif interval is None or interval[1] >= 0:
        weak.append("the difference's 95 % interval reaches 0")
    if unconverged:
        weak.append(f"the eigenvalue estimate did not converge on {unconverged} run(s)")
    if weak:
        return WEAK, "policy flatter on average, but " + "; ".join(weak)
    return HOLDS, (
        f"top Hessian eigenvalue (cross-entropy) policy - CE < 0 with its interval below 0 over "
        f"{n_seeds} seeds"
    )


def _seed_row(seed, a: RunRecords, b: RunRecords) -> dict:
    (top_a, conv_a), (top_b, conv_b) = top_eigenvalue(a), top_eigenvalue(b)
    row = {"seed": seed, "a": a, "b": b, "top": (top_a, top_b), "converged": (conv_a, conv_b)}
    row["trace"] = tuple(
        r.diagnostics["sharpness"]["cross_entropy"]["trace"]["estimate"] for r in (a, b)
    )
    row["own"] = (own_loss_top(a), own_loss_top(b))
    rises = landscape_rise(a), landscape_rise(b)
    # a rise is only comparable at the same directions, span and grid
    same = None not in rises and rises[0][1] == rises[1][1]
    row["rise"] = (rises[0][0], rises[1][0]) if same else None
    row["directions"] = rises[0][1][0] if same else None
    return row


def flatness_finding(claim: Claim, collections: list[Collection], base: Finding) -> Finding:
    pairs, problems, why = diagnosed_pairs(claim, collections, OBJECTIVE_ARMS, ("sharpness",))
    if why:
        base.verdict, base.reason = UNTESTABLE, why
        base.details += [f"- problem: {p}" for p in problems]
        return base
    rows = [_seed_row(seed, a, b) for seed, a, b in pairs]
    sa, sb = (seed_summary([r["top"][i] for r in rows]) for i in (0, 1))
    sd = seed_summary([r["top"][0] - r["top"][1] for r in rows])
    unconverged = sum(not c for r in rows for c in r["converged"])
    base.verdict, base.reason = flatness_verdict(sd["mean"], sd["interval"], len(rows), unconverged)
    base.our_number = (
        f"top Hessian eigenvalue (cross-entropy): A {seeds_text(sa)} vs B {seeds_text(sb)}; "
        f"A - B {difference_text(sd)}"
    )
    others = _other_measures(rows)
    base.evidence = [
        *others["lines"],
        f"eigenvalue estimates converged on {2 * len(rows) - unconverged} of {2 * len(rows)} runs",
    ]
    base.numbers |= {
        "measure": "top Hessian eigenvalue (cross-entropy)",
        "a": sa,
        "b": sb,
        "difference": sd,
        "seeds": [r["seed"] for r in rows],
        "unconverged": unconverged,
        **{k: v for k, v in others.items() if k != "lines"},
    }
    base.details += _seed_table(rows)
    base.details += [f"- problem: {p}" for p in problems]
    return base


def _other_measures(rows: list[dict]) -> dict:
    """The paired differences of the measures listed beside the primary one, and their lines."""
    trace = seed_summary([r["trace"][0] - r["trace"][1] for r in rows])
    own = seed_summary([r["own"][0] - r["own"][1] for r in rows])
    lines = [
        f"Hessian trace (cross-entropy) A - B {difference_text(trace)}",
        f"own training loss's top eigenvalue A - B {difference_text(own)} (different losses and "
        "scales: not decisive)",
    ]
    comparable = [r for r in rows if r["rise"] is not None]
    rise = None
    if comparable:
        rise = seed_summary([r["rise"][0] - r["rise"][1] for r in comparable])
        directions = ", ".join(sorted({r["directions"] for r in comparable}))
        lines.append(
            f"Eq. 30 landscape (2-D, cross-entropy, {directions} directions): mean loss rise "
            f"A - B {difference_text(rise)}"
        )
    else:
        lines.append(
            "Eq. 30 landscape: not comparable or not recorded (rlrobust diagnose --landscape, "
            "the same directions and grid on both arms)"
        )
    return {
        "lines": lines,
        "trace_difference": trace,
        "own_loss_difference": own,
        "landscape_difference": rise,
    }


def _seed_table(rows: list[dict]) -> list[str]:
    lines = [
        "",
        "| seed | A top eigenvalue | B top eigenvalue | A - B | A trace | B trace | "
        "A landscape rise | B landscape rise | converged (A, B) | A run | B run |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rise = r["rise"] or ("-", "-")
        lines.append(
            f"| {r['seed']} | {r['top'][0]:.4g} | {r['top'][1]:.4g} | "
            f"{r['top'][0] - r['top'][1]:+.4g} | {r['trace'][0]:.4g} | {r['trace'][1]:.4g} | "
            + " | ".join(v if isinstance(v, str) else f"{v:.4g}" for v in rise)
            + f" | {', '.join('yes' if c else 'no' for c in r['converged'])} | "
            f"`{r['a'].path}` | `{r['b'].path}` |"
        )
    return [*lines, ""]
