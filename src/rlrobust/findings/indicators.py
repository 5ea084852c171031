"""The ``indicators`` rule: does RL show Zou et al.'s static and dynamic gradient indicators and a
higher predictive entropy than SL?

Records: each run's ``diagnostics.json`` from ``rlrobust diagnose RUN ... --gradients --entropy
--masking`` (in the run folder; see ``flatness.py`` for how runs are collected and paired). Arms:
the manifest's variant or the ``--arm`` given to collect, else the objective (``zou_pg``: RL,
``cross_entropy``: SL). Arms are paired seed by seed, on the same test images (the diagnose
records of a seed must agree on data set, test subset, evaluation seed and image count).

Zou et al.: policy-gradient training leaves unstable gradient directions and smaller gradient
magnitudes in input space (docs/analysis.md). The diagnose record splits its measures as they do
(``gradients.py``):

- static, at clean images: the input-gradient L2 norm (Zou: smaller) and the cosine between the
  gradients at x and at nearby points (Zou: lower, unstable direction);
- dynamic: the cosine of successive gradients along PGD (lower) and the cosine of the gradient
  under small Gaussian noise (lower).

The record gives each measure as a number per test image, not as a yes / no. So a measure
*fires* on RL on a seed when the mean per-image difference RL - SL is on Zou's side (smaller norm,
lower cosine) with its 95 % Student-t interval over the images excluding 0, and fires on SL when
its interval excludes 0 on the other side (ours: a paired interval over the same images at the
study's 95 % level rather than a threshold on the values, whose scale depends on data and model).

Entropy (Zou: higher for RL): mean predictive entropy in nats on the clean images, RL - SL per
seed, over seeds mean ± std with the 95 % t interval; under PGD (each model's own PGD-20
images) it is listed beside. Verdicts:

- **does not hold**: clean entropy RL - SL <= 0 on average, or no measure of the static (or of
  the dynamic) group fires on RL on any seed;
- **holds**: every measure fires on RL on every seed and none on SL, and the clean entropy
  difference's interval is above 0, over at least two seeds;
- **holds weakly**: in between (the reason names what is missing);
- **not testable here**: an arm or its gradients / entropy record missing, no seed with both.

Each run's masking verdict (``diagnose --masking``) is evidence only: the claim is that the
indicators appear; whether they mean robustness or masking is the ``zou`` claim's AutoAttack
comparison to answer.
"""

from __future__ import annotations

from rlrobust.findings.base import (
    FAILS,
    HOLDS,
    UNTESTABLE,
    WEAK,
    Finding,
    count_verdicts,
    seeds_text,
)
from rlrobust.findings.claims import Claim
from rlrobust.findings.flatness import diagnosed_pairs, difference_text
from rlrobust.findings.records import Collection, RunRecords
from rlrobust.stats import seed_summary

#: a run's objective -> its arm (index into ``claim.arms``) when no manifest or --arm names it
OBJECTIVE_ARMS = {"zou_pg": 0, "cross_entropy": 1}
#: (group, measure, where its per-image values sit under the record's ``gradients``); every
#: measure fires on RL when RL's value is *lower* than SL's (Zou's side)
MEASURES = (
    ("static", "gradient L2 norm", ("static", "norms", "l2", "per_sample")),
    ("static", "nearby gradient cosine", ("static", "sign_agreement", "cosine", "per_sample")),
    ("dynamic", "PGD step cosine", ("dynamic", "trajectory", "cosine_per_sample")),
    ("dynamic", "noise gradient cosine", ("dynamic", "noise_stability", "cosine", "per_sample")),
)
GROUPS = ("static", "dynamic")
REASON_TAIL = (
    "; whether the indicators mean robustness or masking is not this claim's question: the zou "
    "claim's AutoAttack comparison answers it (masking verdicts in the evidence)"
)


def per_image(run: RunRecords, path: tuple[str, ...]) -> list[float]:
    """One value per test image; a PGD trajectory's per-step cosines are averaged per image."""
    values = run.diagnostics["gradients"]
    for key in path:
        values = values[key]
    return [sum(v) / len(v) if isinstance(v, list) else v for v in values]


def different_images(rl: RunRecords, sl: RunRecords) -> str | None:
    """Why the two records may not be on the same test images (None: they are)."""

    def facts(run: RunRecords) -> tuple:
        cfg = run.config
        data, ev = cfg.get("data", {}), cfg.get("eval", {})
        n = run.diagnostics.get("n_examples")
        return data.get("name"), data.get("test_subset"), ev.get("seed"), n

    a, b = facts(rl), facts(sl)
    if a == b:
        return None
    return f"(data, test subset, eval seed, images) differ: RL {a}, SL {b}"


def fires(difference: dict) -> str | None:
    """Where a measure fires: on "RL" when the per-image interval of RL - SL is below 0, on "SL"
    when it is above, else None."""
    interval = difference["interval"]
    if interval is None:  # one image: no interval
        return None
    if interval[1] < 0:
        return "RL"
    return "SL" if interval[0] > 0 else None


def _seed_result(seed, rl: RunRecords, sl: RunRecords) -> dict:
    measures = {}
    for _, name, path in MEASURES:
        # seed_summary is the Student-t interval of a mean: here over the seed's test images
        diff = seed_summary(
            [x - y for x, y in zip(per_image(rl, path), per_image(sl, path), strict=True)]
        )
        measures[name] = {"difference": diff, "fires": fires(diff)}
    entropy = {
        kind: rl.diagnostics["entropy"][kind]["summary"]["mean"]
        - sl.diagnostics["entropy"][kind]["summary"]["mean"]
        for kind in ("clean", "adversarial")
        if kind in rl.diagnostics["entropy"] and kind in sl.diagnostics["entropy"]
    }
    return {"seed": seed, "rl": rl, "sl": sl, "measures": measures, "entropy": entropy}


def indicators_verdict(
    rl_fires: dict[str, int],
    sl_fires: dict[str, int],
    n_seeds: int,
    entropy_mean: float,
    entropy_interval: list[float] | tuple[float, float] | None,
) -> tuple[str, str]:
    """The verdict (module docstring) from the seeds on which each measure fired on RL and on
    SL, and the clean entropy difference RL - SL (mean over seeds, its interval)."""
    fails = []
    if entropy_mean <= 0:
        fails.append(f"RL's clean entropy is not higher: RL - SL = {entropy_mean:+.3g} nats")
    for group in GROUPS:
        if not any(rl_fires[name] for g, name, _ in MEASURES if g == group):
            fails.append(f"no {group} indicator fires on RL on any of {n_seeds} seed(s)")
    if fails:
        return FAILS, "; ".join(fails)
    weak = [
        f"{name} fires on RL on {rl_fires[name]} of {n_seeds} seeds"
        for _, name, _ in MEASURES
        if rl_fires[name] < n_seeds
    ]
    weak += [
        f"{name} fires on SL on {sl_fires[name]} seed(s)"
        for _, name, _ in MEASURES
        if sl_fires[name]
    ]
    if n_seeds < 2:
        weak.append("one seed (no interval across seeds)")
    elif entropy_interval is None or entropy_interval[0] <= 0:
        weak.append("the clean entropy difference's 95 % interval reaches 0")
    if weak:
        return WEAK, "RL shows the indicators and a higher entropy in part: " + "; ".join(weak)
    return HOLDS, (
        f"every indicator fires on RL and none on SL on each of {n_seeds} seeds, and RL's clean "
        "entropy is higher with its interval above 0"
    )


def indicators_finding(claim: Claim, collections: list[Collection], base: Finding) -> Finding:
    parts = ("gradients", "entropy")
    pairs, problems, why = diagnosed_pairs(claim, collections, OBJECTIVE_ARMS, parts)
    results = _same_image_results(pairs, problems)
    if why or not results:
        base.verdict = UNTESTABLE
        base.reason = why or "no seed whose RL and SL records share images"
        base.details += [f"- problem: {p}" for p in problems]
        return base
    n = len(results)
    count = _fire_counts(results)
    clean = seed_summary([r["entropy"]["clean"] for r in results])
    verdict, reason = indicators_verdict(
        count["RL"], count["SL"], n, clean["mean"], clean["interval"]
    )
    base.verdict, base.reason = verdict, reason + REASON_TAIL
    rl_entropy, sl_entropy = (
        seed_summary([r[who].diagnostics["entropy"]["clean"]["summary"]["mean"] for r in results])
        for who in ("rl", "sl")
    )
    fired = ", ".join(f"{name} {count['RL'][name]}" for _, name, _ in MEASURES)
    base.our_number = (
        f"clean entropy (nats): RL {seeds_text(rl_entropy)} vs SL {seeds_text(sl_entropy)}; "
        f"RL - SL {difference_text(clean)}; seeds (of {n}) on which each indicator fires on RL: "
        f"{fired}"
    )
    adversarial = [r["entropy"]["adversarial"] for r in results if "adversarial" in r["entropy"]]
    pgd = seed_summary(adversarial) if adversarial else None
    base.evidence = _evidence(results, count, pgd)
    base.numbers |= {
        "seeds": [r["seed"] for r in results],
        "entropy_difference": clean,
        "adversarial_entropy_difference": pgd,
        "rl_fires": count["RL"],
        "sl_fires": count["SL"],
        "per_seed": {
            r["seed"]: {name: m["difference"] for name, m in r["measures"].items()} for r in results
        },
    }
    base.details += _seed_table(results)
    base.details += [f"- problem: {p}" for p in problems]
    return base


def _same_image_results(pairs: list[tuple], problems: list[str]) -> list[dict]:
    """Each seed's comparison, for the seeds whose two records are on the same test images (the
    others are named in ``problems``: a per-image difference needs the same images)."""
    results = []
    for seed, rl, sl in pairs:
        mismatch = different_images(rl, sl)
        if mismatch:
            problems.append(f"seed {seed}: not paired, {mismatch}")
            continue
        results.append(_seed_result(seed, rl, sl))
    return results


def _fire_counts(results: list[dict]) -> dict[str, dict[str, int]]:
    """{"RL" or "SL": {measure: seeds on which it fires there}}."""
    return {
        who: {
            name: sum(r["measures"][name]["fires"] == who for r in results)
            for _, name, _ in MEASURES
        }
        for who in ("RL", "SL")
    }


def _masking(run: RunRecords) -> str | None:
    return (run.diagnostics.get("masking") or {}).get("verdict")


def _evidence(results: list[dict], count: dict, pgd: dict | None) -> list[str]:
    out = [
        f"entropy under PGD RL - SL {difference_text(pgd, 'nats')}"
        if pgd
        else "entropy under PGD: not recorded"
    ]
    sl_fired = [f"{name} {k}" for name, k in count["SL"].items() if k]
    out.append("indicators firing on SL: " + (", ".join(sl_fired) if sl_fired else "none"))
    out.append(
        f"masking (diagnose): RL {count_verdicts([_masking(r['rl']) for r in results])}; "
        f"SL {count_verdicts([_masking(r['sl']) for r in results])}"
    )
    return out


def _seed_table(results: list[dict]) -> list[str]:
    lines = [
        "",
        "| seed | measure | RL - SL per image, mean [95 % t over images] | fires on | RL run | "
        "SL run |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        runs = f"`{r['rl'].path}` | `{r['sl'].path}` |"
        for _, name, _ in MEASURES:
            m = r["measures"][name]
            d = m["difference"]
            shown = f"{d['mean']:+.3g}" + (
                f" [{d['interval'][0]:.3g}, {d['interval'][1]:.3g}]" if d["interval"] else ""
            )
            lines.append(f"| {r['seed']} | {name} | {shown} | {m['fires'] or 'neither'} | {runs}")
        for kind, value in r["entropy"].items():
            lines.append(f"| {r['seed']} | entropy {kind} (nats) | {value:+.3g} | - | {runs}")
    return [*lines, ""]
