"""The ``transfer`` rule: examples transferred from supervised models "drop plain RL to about 8 %"
(Zou et al.'s code README), far below what white-box attacks leave it.

The README's numbers say that RL's accuracy under white-box attacks (about 55 %) does not survive
adversarial examples crafted on a supervised model (about 8 %): a black-box attack that beats
the white-box one is the classic sign of gradient masking (Athalye et al.'s checklist). The
reproduction writes ``transfer.json`` into every run that is not the transfer source (PGD and
momentum PGD crafted on the source arm's run of the same seed, at the preset's radius, on the
same seeded test images as the run's own evaluation). Per target run (``arms[0]``, the plain RL
arm, decides; every other arm with a ``transfer`` reference in the preset is reported beside):

- **transfer accuracy**: the record's ``robust_accuracy`` (per image, the worst case over its
  transfer attacks), in %;
- **white-box accuracy**: the run's own evaluation under AutoAttack when its record holds it,
  else the PGD with the most steps it ran;
- **the gap** transfer - white-box (points). The paper's is about 8 - 55 = -47 for RL.

Over two or more seeds, the gap's mean with its Student-t interval across seeds; the records
hold no per-image transfer verdicts, so one seed gives no interval.

Verdict: **holds** when the gap's interval lies below 0 over at least two seeds (transfer is
stronger than the white-box attack: the white-box robustness is masking, as the README says);
**holds weakly** when the mean gap is below 0 but its interval reaches 0 or only one seed is
recorded; **does not hold** when the mean gap is >= 0 (the white-box attack is at least as strong
as transfer: no masking sign, and transfer does not "drop" RL below what it already shows);
**not testable here** without a transfer record and a white-box one on the same run.
"""

from __future__ import annotations

from rlrobust.findings.base import (
    FAILS,
    HOLDS,
    UNTESTABLE,
    WEAK,
    Finding,
    count_verdicts,
    masking_verdict,
    preset_references,
    seeds_text,
)
from rlrobust.findings.claims import Claim
from rlrobust.findings.records import Collection, RunRecords
from rlrobust.stats import format_interval, seed_summary

#: the white-box metrics a run's evaluation is read under, strongest first
WHITE_BOX = ("autoattack", "pgd")


def white_box(run: RunRecords) -> tuple[str, float] | None:
    """(label, accuracy in %) of the run's strongest white-box attack: AutoAttack, else the PGD
    with the most steps (the records name their steps in the label, e.g. ``pgd40-ce``)."""
    attacks = (run.evaluation or {}).get("attacks", [])
    for prefix in WHITE_BOX:
        found = [a for a in attacks if str(a.get("label", "")).lower().startswith(prefix)]
        if found:
            best = max(found, key=lambda a: (a.get("attack") or {}).get("steps") or 0)
            return best["label"], 100 * float(best["accuracy"])
    return None


def same_images(run: RunRecords) -> bool:
    """Whether the transfer record and the run's evaluation drew the same test images (the
    same count and subset seed; a record that does not say is taken at its word)."""
    ev, moved = run.evaluation or {}, run.transfer or {}
    return all(
        ev.get(key) is None or moved.get(key) is None or ev[key] == moved[key]
        for key in ("n_examples", "seed")
    )


def transfer_accuracy(run: RunRecords) -> float | None:
    """The run's accuracy (%) under transfer: per image the worst case over the record's
    transfer attacks, as ``transfer.json`` reports it; None without a record, or when it was
    measured on other test images than the run's evaluation."""
    if not run.transfer or run.transfer.get("robust_accuracy") is None or not same_images(run):
        return None
    return 100 * float(run.transfer["robust_accuracy"])


def paper_transfer(claim: Claim) -> dict[str, float]:
    """arm -> the paper's accuracy under transfer (the preset's ``transfer`` references)."""
    return {r.variant: r.value for r in preset_references(claim, "transfer") if r.variant}


def arm_numbers(runs: list[RunRecords]) -> dict | None:
    """Per seed (transfer, white-box label, white-box, gap) of one arm's runs, summarised."""
    per_seed = []
    for run in sorted(runs, key=lambda r: str(r.seed)):
        moved, box = transfer_accuracy(run), white_box(run)
        if moved is None or box is None:
            continue
        per_seed.append(
            {
                "seed": run.seed,
                "run": run.path,
                "source": run.transfer.get("source"),
                "transfer": moved,
                "white_box_label": box[0],
                "white_box": box[1],
                "gap": moved - box[1],
                "masking": masking_verdict(run),
            }
        )
    if not per_seed:
        return None
    percent = (0.0, 100.0)
    return {
        "per_seed": per_seed,
        "transfer": seed_summary([s["transfer"] for s in per_seed], bounds=percent),
        "white_box": seed_summary([s["white_box"] for s in per_seed], bounds=percent),
        "gap": seed_summary([s["gap"] for s in per_seed]),
        "labels": sorted({s["white_box_label"] for s in per_seed}),
    }


def transfer_verdict(gap: dict) -> tuple[str, str]:
    """The verdict from the gap's seed summary (``mean``, ``interval``, ``n``)."""
    mean, interval = gap["mean"], gap["interval"]
    if mean >= 0:
        return FAILS, (
            f"transfer leaves the model {mean:+.2f} points above the white-box attack: the "
            "white-box attack is the stronger one, so there is no masking sign and transfer "
            "does not drop the model below what it already shows"
        )
    if interval is None:
        return WEAK, f"transfer is {-mean:.2f} points stronger than white-box, on one seed only"
    if interval[1] >= 0:
        return WEAK, (
            f"transfer is {-mean:.2f} points stronger than white-box, but the interval "
            f"{format_interval(interval, 1.0, 2)} reaches 0"
        )
    return HOLDS, (
        f"transfer is {-mean:.2f} points stronger than the white-box attack over {gap['n']} "
        f"seeds, interval {format_interval(interval, 1.0, 2)}: the white-box robustness is masking"
    )


def transfer_finding(claim: Claim, collections: list[Collection], base: Finding) -> Finding:
    runs = [r for c in collections for r in c.runs]
    papers = paper_transfer(claim)
    target = claim.arms[0] if claim.arms else next(iter(papers), None)
    arms = [target, *(a for a in papers if a != target)]
    numbers = {arm: arm_numbers([r for r in runs if r.arm == arm]) for arm in arms}
    main = numbers.get(target)
    if main is None:
        base.verdict = UNTESTABLE
        base.reason = (
            f"no {target} run holds both a transfer record (transfer.json) and a white-box "
            "evaluation; the command below writes both"
        )
        return base
    base.verdict, base.reason = transfer_verdict(main["gap"])
    base.our_number = "; ".join(
        _arm_text(arm, numbers[arm], papers.get(arm)) for arm in arms if numbers[arm]
    )
    base.evidence = [
        f"masking {arm}: {count_verdicts([s['masking'] for s in numbers[arm]['per_seed']])}"
        for arm in arms
        if numbers[arm]
    ]
    base.evidence.append(
        "transfer source: "
        + ", ".join(sorted({str(s["source"]) for s in main["per_seed"]}))
        + " (PGD and momentum PGD at the preset's radius)"
    )
    base.details += _seed_table(arms, numbers)
    base.numbers |= {"arms": {arm: n for arm, n in numbers.items() if n}, "target": target}
    return base


def _arm_text(arm: str, numbers: dict, paper: float | None) -> str:
    gap = numbers["gap"]
    gap_text = seeds_text(gap) if gap["interval"] is not None else f"{gap['mean']:+.2f} (1 seed)"
    return (
        f"{arm}: transfer {seeds_text(numbers['transfer'])}"
        + (f" (paper {paper:g})" if paper is not None else "")
        + f" vs white-box ({', '.join(numbers['labels'])}) {seeds_text(numbers['white_box'])}; "
        f"transfer - white-box {gap_text} ({gap['n']} seed{'s' if gap['n'] > 1 else ''})"
    )


def _seed_table(arms: list[str], numbers: dict) -> list[str]:
    lines = [
        "",
        "| arm | seed | transfer (%) | white-box (%) | transfer - white-box (points) | "
        "masking | source | run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in arms:
        for s in (numbers[arm] or {}).get("per_seed", []):
            lines.append(
                f"| {arm} | {s['seed']} | {s['transfer']:.2f} | {s['white_box']:.2f} "
                f"({s['white_box_label']}) | {s['gap']:+.2f} | {s['masking'] or 'not checked'} | "
                f"`{s['source']}` | `{s['run']}` |"
            )
    return [*lines, ""]
