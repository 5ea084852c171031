"""The ``breaks`` rule: "AutoAttack very easily attacked" a model that FGSM did not (Gupta).

Gupta reports that, without adversarial training, the RL model's FGSM accuracy beats CE's but
AutoAttack breaks it easily. Read literally, two measurable things, per seed on the same test
images of the RL (``arms[0]``) and the CE (``arms[1]``) run:

- **the gap** FGSM - AutoAttack on the RL model (points): AutoAttack finds what FGSM missed;
- **the advantage under AutoAttack** RL - CE (points): whether any robustness edge is left.

Each is summarised over seeds (mean ± std, 95 % Student-t interval; with one seed, the paired
bootstrap interval over the test images). The RL - CE difference under FGSM is reported beside
them, as the premise of the claim.

Verdict: **does not hold** when the gap is <= 0, or RL keeps an advantage under AutoAttack whose
interval lies above 0 (AutoAttack does not break RL more than CE); **holds** when the gap's
interval lies above 0 and the advantage's interval reaches 0 or below, over at least two seeds;
**holds weakly** when the direction is right but one of those is missing, or the premise (RL
beats CE under FGSM) is not seen here; **not testable here** without both arms' FGSM and
AutoAttack records on the same images.

A run's arm is the one its records name; without one, the objective decides (``OBJECTIVE_ARMS``).
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
    seeds_text,
)
from rlrobust.findings.claims import Claim
from rlrobust.findings.records import Collection, RunRecords
from rlrobust.stats import format_interval, paired_bootstrap, seed_summary

#: objective name -> the arm a run stands for when its records name none (Gupta's two arms)
OBJECTIVE_ARMS = {"gupta_vpg": "RL", "cross_entropy": "CE"}


def arm_of(run: RunRecords) -> str | None:
    if run.arm is not None:
        return run.arm
    return OBJECTIVE_ARMS.get(run.config.get("objective", {}).get("name"))


def _flags(run: RunRecords, prefix: str) -> list[int] | None:
    """The per-sample verdicts of the run's first attack whose label starts with ``prefix``."""
    per_sample = (run.evaluation or {}).get("per_sample", {})
    label = next((k for k in per_sample if k.lower().startswith(prefix)), None)
    return per_sample[label] if label else None


def _accuracy(flags: list[int]) -> float:
    return 100 * sum(map(bool, flags)) / len(flags)


def _seed_numbers(rl: RunRecords, ce: RunRecords) -> dict | None:
    """One seed's accuracies and differences (points), or None when a record lacks an attack."""
    flags = {
        (arm, attack): _flags(run, attack)
        for arm, run in (("rl", rl), ("ce", ce))
        for attack in ("fgsm", "autoattack")
    }
    if any(f is None for f in flags.values()):
        return None
    if len({len(f) for f in flags.values()}) != 1:
        return None  # not the same test images
    acc = {key: _accuracy(f) for key, f in flags.items()}

    def boot(a, b):
        return [100 * v for v in paired_bootstrap(a, b, n_resamples=RESAMPLES, seed=0)["interval"]]

    return {
        "acc": acc,
        "gap": acc[("rl", "fgsm")] - acc[("rl", "autoattack")],
        "gap_interval": boot(flags[("rl", "fgsm")], flags[("rl", "autoattack")]),
        "aa_edge": acc[("rl", "autoattack")] - acc[("ce", "autoattack")],
        "aa_edge_interval": boot(flags[("rl", "autoattack")], flags[("ce", "autoattack")]),
        "fgsm_edge": acc[("rl", "fgsm")] - acc[("ce", "fgsm")],
        "fgsm_edge_interval": boot(flags[("rl", "fgsm")], flags[("ce", "fgsm")]),
    }


def breaks_verdict(gap: dict, aa_edge: dict, fgsm_edge: dict) -> tuple[str, str]:
    """The verdict from the three seed summaries (each with ``mean`` and ``interval``)."""
    if gap["mean"] <= 0:
        return FAILS, f"AutoAttack breaks no more of the RL model than FGSM: gap {gap['mean']:+.2f}"
    if aa_edge["interval"][0] > 0:
        return FAILS, (
            f"RL stays more robust than CE under AutoAttack: RL - CE {aa_edge['mean']:+.2f} "
            f"points, interval {format_interval(aa_edge['interval'], 1.0, 2)} above 0"
        )
    weak = []
    if gap["interval"][0] <= 0:
        weak.append("the gap's interval reaches 0")
    if gap["n"] < 2:
        weak.append("one seed (intervals over test images only)")
    if fgsm_edge["mean"] <= 0:
        weak.append("the premise is not seen here: RL does not beat CE under FGSM")
    if weak:
        return WEAK, "AutoAttack breaks what FGSM left, but " + "; ".join(weak)
    return HOLDS, (
        f"AutoAttack takes {gap['mean']:.2f} points more than FGSM from the RL model, and leaves "
        f"it no more robust than CE (RL - CE {aa_edge['mean']:+.2f}) over {gap['n']} seeds"
    )


def _summary(per_seed: list[dict], key: str) -> dict:
    stat = seed_summary([s[key] for s in per_seed])
    if stat["interval"] is None:  # one seed: its interval over the test images
        stat["interval"] = per_seed[0][f"{key}_interval"]
    return stat


def breaks_finding(claim: Claim, collections: list[Collection], base: Finding) -> Finding:
    runs = [r for c in collections for r in c.runs if r.evaluation is not None]
    rl_arm, ce_arm = claim.arms
    rl = {r.seed: r for r in runs if arm_of(r) == rl_arm}
    ce = {r.seed: r for r in runs if arm_of(r) == ce_arm}
    seeds = sorted(set(rl) & set(ce), key=str)
    per_seed = [(s, _seed_numbers(rl[s], ce[s])) for s in seeds]
    usable = [(s, n) for s, n in per_seed if n is not None]
    if not usable:
        base.verdict = UNTESTABLE
        base.reason = (
            f"no seed with both arms' FGSM and AutoAttack records on the same images ({rl_arm} "
            f"seeds {sorted(rl, key=str)}, {ce_arm} seeds {sorted(ce, key=str)})"
        )
        return base
    numbers = [n for _, n in usable]
    gap, aa_edge, fgsm_edge = (_summary(numbers, k) for k in ("gap", "aa_edge", "fgsm_edge"))
    base.verdict, base.reason = breaks_verdict(gap, aa_edge, fgsm_edge)
    mean = {key: sum(n["acc"][key] for n in numbers) / len(numbers) for key in numbers[0]["acc"]}
    base.our_number = (
        f"RL: FGSM {mean[('rl', 'fgsm')]:.2f} vs AutoAttack {mean[('rl', 'autoattack')]:.2f}; "
        f"gap {_stat_text(gap)}; RL - CE under AutoAttack {_stat_text(aa_edge)} "
        f"({len(numbers)} seed{'s' if len(numbers) > 1 else ''})"
    )
    masking = [masking_verdict(rl[s]) for s, _ in usable]
    base.evidence = [
        f"RL - CE under FGSM {_stat_text(fgsm_edge)} (the premise)",
        f"CE: FGSM {mean[('ce', 'fgsm')]:.2f} vs AutoAttack {mean[('ce', 'autoattack')]:.2f}",
        f"masking RL: {count_verdicts(masking)}",
    ]
    base.details += _seed_table(usable, masking)
    base.numbers |= {"gap": gap, "aa_edge": aa_edge, "fgsm_edge": fgsm_edge, "seeds": seeds}
    return base


def _stat_text(stat: dict) -> str:
    if stat["n"] > 1:
        return seeds_text(stat)
    return f"{stat['mean']:+.2f} {format_interval(stat['interval'], 1.0, 2)} (1 seed)"


def _seed_table(usable, masking) -> list[str]:
    lines = [
        "",
        "| seed | RL FGSM (%) | RL AutoAttack (%) | CE FGSM (%) | CE AutoAttack (%) | "
        "gap [95 % paired bootstrap] | RL - CE under AutoAttack | RL masking |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (seed, n), verdict in zip(usable, masking, strict=True):
        acc = n["acc"]
        lines.append(
            f"| {seed} | {acc[('rl', 'fgsm')]:.2f} | {acc[('rl', 'autoattack')]:.2f} | "
            f"{acc[('ce', 'fgsm')]:.2f} | {acc[('ce', 'autoattack')]:.2f} | "
            f"{n['gap']:+.2f} {format_interval(n['gap_interval'], 1.0, 2)} | "
            f"{n['aa_edge']:+.2f} {format_interval(n['aa_edge_interval'], 1.0, 2)} | "
            f"{verdict or 'not checked'} |"
        )
    return [*lines, ""]
