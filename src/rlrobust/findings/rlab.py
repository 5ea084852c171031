"""The ``rlab`` rule: the RLAB agent reaches a "100 % average success rate" with fewer queries
(Sarkar et al.).

A victim is one run (an arm and seed of the ``rlab`` preset: CE and policy). Its RLAB records are
the ``rlab.json`` files in its subfolders; each names its agent (``learned``: the claim;
``greedy``: the baseline, reported beside). Where a run holds several records of an agent, the
one with Square in it is read: Square then ran in the same command, at the same query budget
(``--square-eps``) on the same test images. Per victim and agent:

- **success rate**: fooled / attacked (images the victim classified correctly), with its 95 %
  Wilson interval (``stats.wilson_interval``); queries and steps per success (mean, median);
- **queries against Square**, per Square radius: whether RLAB needs fewer queries than Square on
  the images both fooled. The records hold each attack's mean over its own successes, not
  per-image queries, so the rule decides only what the counts force: over every overlap size k
  the two sets of fooled images allow, RLAB's largest possible mean on the overlap (its other
  successes cost at least ``Q_MIN`` query each, none more than the budget) against Square's
  smallest possible one. "fewer" when RLAB's bound is below Square's for every k, "not fewer"
  when the opposite bounds say so for every k, else "undetermined" (exact when both attacks
  fooled every attacked image: the overlap is then every image).

Success part: **met** when the interval contains 100 % or its lower end is >= ``SUCCESS_FLOOR``
(95 %, ours: the claim says 100 %); **below** when the whole interval is under 95 %; else
inconclusive. Query part: **met** when "fewer" against Square at every radius recorded.

Verdict per victim: **holds** when both parts are met; **holds weakly** when one is (the other
inconclusive, undetermined, not fewer, or Square not run); **does not hold** when the success
interval lies entirely below 95 %, or the success rate is inconclusive and RLAB needs not fewer
queries than Square (our completion); **not testable here** when the success rate is
inconclusive and no query comparison can be made (Square not run, or undetermined), and
without a learned agent's RLAB record. The claim's verdict is the weakest victim's (a 100 %
average over victims needs 100 % on each).

The paper's two other claims are reported beside the verdict, per victim, where a record holds
them (the learned agent's first, else the greedy one's): **masks** ("localization masks ... with
Dice coefficient and IOU scores outperforming gradient-based baselines"): RLAB's mean Dice
against the reference masks next to the best gradient baseline's (a series has no reference:
then only RLAB's agreement with each baseline); **retraining** ("used to fine-tune the victim
model to improve robustness"): RLAB's success rate and the clean, FGSM and PGD-40 accuracies
before and after fine-tuning on RLAB's examples.
"""

from __future__ import annotations

from rlrobust.findings.base import FAILS, HOLDS, UNTESTABLE, WEAK, Finding
from rlrobust.findings.claims import Claim
from rlrobust.findings.records import Collection, RunRecords
from rlrobust.stats import format_interval, wilson_interval

#: a success rate whose interval's lower end reaches this (in %) counts as the claim's 100 %
#: (ours: with finite images an interval never excludes everything below 100)
SUCCESS_FLOOR = 95.0
#: the fewest queries a successful input can cost (its first, clean query; Square's first
#: noise point): the bound that makes "fewer on the images both fooled" decidable
Q_MIN = 1
#: the weakest verdict of the victims is the claim's (a victim the records cannot answer sits
#: between a failure and a partial success)
ORDER = (FAILS, UNTESTABLE, WEAK, HOLDS)


def agent_record(run: RunRecords, agent: str) -> tuple[str | None, dict | None]:
    """(subfolder, rlab.json) of the run's ``agent`` attack: the one that ran Square beside it
    where several exist (same images, same budget), else the first in sorted order."""
    found = [(name, r) for name, r in run.rlab.items() if r.get("agent") == agent]
    if not found:
        return None, None
    return next(((n, r) for n, r in found if r.get("square")), found[0])


def success(metrics: dict) -> dict:
    """Success rate (%) with its Wilson interval and the queries and steps per success."""
    n, k = int(metrics["n_attacked"]), int(metrics["n_success"])
    interval = [100 * v for v in wilson_interval(k, n)] if n else None
    return {
        "n_attacked": n,
        "n_success": k,
        "rate": 100 * k / n if n else None,
        "interval": interval,
        "queries_mean": metrics["queries_success"]["mean"],
        "queries_median": metrics["queries_success"]["median"],
        "steps_mean": (metrics.get("steps_success") or {}).get("mean"),
        "linf_mean": (metrics.get("linf") or {}).get("mean"),
    }


def success_status(interval: list[float] | None) -> str:
    """met / below / inconclusive for a success interval in %."""
    if interval is None:
        return "inconclusive"
    if interval[1] >= 100.0 or interval[0] >= SUCCESS_FLOOR:
        return "met"
    return "below" if interval[1] < SUCCESS_FLOOR else "inconclusive"


def _mean_bounds(total: int, n: int, k: int, budget: int) -> tuple[float, float]:
    """(lowest, highest) mean of k of ``n`` successes whose queries sum to ``total``, each
    between Q_MIN and ``budget``."""
    low = max(total - (n - k) * budget, k * Q_MIN) / k
    high = min(total - (n - k) * Q_MIN, k * budget) / k
    return low, high


def both_fooled(rlab: dict, square: dict, budget: int) -> dict:
    """Is RLAB's mean query count below Square's on the images both fooled? ("fewer", "not
    fewer" or "undetermined", with the overlap sizes considered; module docstring)."""
    n_attacked = int(rlab["n_attacked"])
    n_r, n_q = int(rlab["n_success"]), int(square["n_success"])
    out = {"status": "undetermined", "overlap": None}
    if int(square["n_attacked"]) != n_attacked or min(n_r, n_q) == 0:
        return out
    k_low, k_high = max(0, n_r + n_q - n_attacked), min(n_r, n_q)
    out["overlap"] = [k_low, k_high]
    if k_low == 0:  # the two sets of fooled images may not meet: nothing to compare on
        return out
    # the means are float32 averages of integer counts: the sums are integers
    sum_r = round(rlab["queries_success"]["mean"] * n_r)
    sum_q = round(square["queries_success"]["mean"] * n_q)
    bounds = [
        (_mean_bounds(sum_r, n_r, k, budget), _mean_bounds(sum_q, n_q, k, budget))
        for k in range(k_low, k_high + 1)
    ]
    if all(r[1] < q[0] for r, q in bounds):
        out["status"] = "fewer"
    elif all(r[0] >= q[1] for r, q in bounds):
        out["status"] = "not fewer"
    out["exact"] = k_low == k_high == n_attacked
    return out


def square_results(record: dict) -> list[dict]:
    """Square at each radius the record holds, against the record's RLAB attack."""
    budget = int(record["settings"]["budget"])
    out = []
    for eps, metrics in sorted(record.get("square", {}).items(), key=lambda kv: float(kv[0])):
        out.append(
            {
                "eps": float(eps),
                "success": success(metrics),
                "comparison": both_fooled(record["rlab"], metrics, budget),
            }
        )
    return out


def queries_status(squares: list[dict]) -> str:
    """met / not fewer / undetermined / not run, over every Square radius."""
    if not squares:
        return "not run"
    statuses = [s["comparison"]["status"] for s in squares]
    if all(s == "fewer" for s in statuses):
        return "met"
    return "not fewer" if "not fewer" in statuses else "undetermined"


def rlab_verdict(success_part: str, query_part: str) -> tuple[str, str]:
    """One victim's verdict from its two parts (module docstring)."""
    success_text = {
        "met": "success rate as the claim",
        "below": f"success interval entirely below {SUCCESS_FLOOR:g} %",
        "inconclusive": f"success interval neither contains 100 % nor stays above "
        f"{SUCCESS_FLOOR:g} %",
    }[success_part]
    query_text = {
        "met": "fewer queries than Square on the images both fooled",
        "not fewer": "not fewer queries than Square on the images both fooled",
        "undetermined": "fewer queries than Square not decidable from the records (their "
        "means over each attack's own successes are beside)",
        "not run": "Square not run at the same budget",
    }[query_part]
    if success_part == "below":
        return FAILS, success_text
    met = [success_part == "met", query_part == "met"]
    if all(met):
        return HOLDS, f"{success_text}, {query_text}"
    if any(met):
        return WEAK, f"{success_text}, but {query_text}" if met[0] else (
            f"{query_text}, but {success_text}"
        )
    if query_part == "not fewer":
        return FAILS, f"neither part shown: {success_text}; {query_text}"
    # an inconclusive success rate and no query comparison: the records cannot answer
    return UNTESTABLE, f"neither part decidable: {success_text}; {query_text}"


def _record_with(run: RunRecords, key: str) -> dict | None:
    """The first RLAB record of the run that holds ``key``: the learned agent's, else greedy's."""
    for agent in ("learned", "greedy"):
        for record in run.rlab.values():
            if record.get("agent") == agent and record.get(key):
                return record
    return None


def masks_text(masks: dict) -> str:
    """RLAB's localisation masks against the gradient baselines, in one clause."""
    scores = masks.get("vs_reference")
    if scores and "rlab" in scores:
        baselines = {
            k: v["dice_mean"] for k, v in scores.items() if k not in ("rlab", "random_patches")
        }
        best = max(baselines, key=baselines.get)
        rlab = scores["rlab"]["dice_mean"]
        word = "above" if rlab > baselines[best] else "not above"
        return (
            f"masks vs {masks.get('reference')} ({masks.get('n')} inputs): RLAB Dice {rlab:.2f}, "
            f"best gradient baseline {best} {baselines[best]:.2f} ({word})"
        )
    agreement = masks.get("rlab_vs_baselines") or {}
    pairs = ", ".join(f"{k} {v['dice_mean']:.2f}" for k, v in sorted(agreement.items()))
    return f"masks: no reference masks ({masks.get('reference')}); RLAB's Dice with {pairs}"


def retraining_text(retraining: dict) -> str:
    """RLAB's success and the victim's accuracies before and after fine-tuning, in one clause."""
    before, after = retraining["rlab_before"], retraining["rlab_after"]
    acc = [
        f"{name} {100 * retraining['before'][key]:.1f} -> {100 * retraining['after'][key]:.1f}"
        for key, name in (("clean", "clean"), ("fgsm", "FGSM"), ("pgd40", "PGD-40"))
        if key in retraining.get("before", {}) and key in retraining.get("after", {})
    ]
    settings = retraining.get("settings", {})
    return (
        f"retraining ({retraining.get('n_rlab_examples')} RLAB examples, "
        f"{settings.get('epochs')} epochs): RLAB success {100 * before['success_rate']:.1f} -> "
        f"{100 * after['success_rate']:.1f} %; "
        + ", ".join(acc)
        + f" % (eps {retraining.get('eps')})"
    )


def victim_result(run: RunRecords) -> dict | None:
    """The learned agent's (and the greedy baseline's) numbers on one victim, or None without a
    learned agent's record."""
    folder, record = agent_record(run, "learned")
    if record is None:
        return None
    learned = success(record["rlab"])
    squares = square_results(record)
    success_part, query_part = success_status(learned["interval"]), queries_status(squares)
    verdict, reason = rlab_verdict(success_part, query_part)
    greedy_folder, greedy = agent_record(run, "greedy")
    return {
        "victim": f"{run.arm or run.path} (seed {run.seed})",
        "record": f"{run.path}/{folder}/rlab.json",
        "budget": record["settings"]["budget"],
        "max_steps": record["settings"].get("max_steps"),
        "learned": learned,
        "greedy": None if greedy is None else success(greedy["rlab"]),
        "greedy_record": None if greedy is None else f"{run.path}/{greedy_folder}/rlab.json",
        "square": squares,
        "success_part": success_part,
        "query_part": query_part,
        "verdict": verdict,
        "reason": reason,
        "masks": (_record_with(run, "masks") or {}).get("masks"),
        "retraining": (_record_with(run, "retraining") or {}).get("retraining"),
    }


def rlab_finding(claim: Claim, collections: list[Collection], base: Finding) -> Finding:
    runs = [r for c in collections for r in c.runs]
    problems = [p for r in runs for p in r.problems]
    results = [v for v in (victim_result(r) for r in runs) if v is not None]
    base.details += [f"- problem: {p}" for p in problems]
    if not results:
        agents = sorted({str(r.get("agent")) for run in runs for r in run.rlab.values()})
        base.verdict = UNTESTABLE
        base.reason = (
            "no RLAB record of the learned agent (rlab.json with agent 'learned') in the "
            f"records (agents found: {', '.join(agents) or 'none'})"
        )
        return base
    base.verdict = min((r["verdict"] for r in results), key=ORDER.index)
    base.reason = "; ".join(f"{r['victim']}: {r['verdict']} ({r['reason']})" for r in results)
    rates = [r["learned"]["rate"] for r in results if r["learned"]["rate"] is not None]
    average = (
        f"average {sum(rates) / len(rates):.1f} % over {len(rates)} victim(s); " if rates else ""
    )
    base.our_number = average + "; ".join(_victim_text(r) for r in results)
    base.evidence = [_greedy_text(r) for r in results]
    base.evidence += [f"{r['victim']}: {masks_text(r['masks'])}" for r in results if r["masks"]]
    base.evidence += [
        f"{r['victim']}: {retraining_text(r['retraining'])}" for r in results if r["retraining"]
    ]
    base.evidence.append(
        "Square is bounded by its eps, RLAB's distortions are not (Linf of RLAB's successes: "
        + ", ".join(_linf(r) for r in results)
        + "); queries include RLAB's probes, its budget unit is steps"
    )
    base.numbers |= {"victims": {r["victim"]: r for r in results}}
    base.details += _table(results)
    skipped = [r.path for r in runs if agent_record(r, "learned")[1] is None]
    base.details += [f"- no learned agent's RLAB record: `{path}`" for path in skipped]
    return base


def _rate_text(s: dict) -> str:
    if s["rate"] is None:
        return "no attacked image"
    return (
        f"{s['rate']:.1f} % {format_interval(s['interval'], 1.0, 1)} "
        f"({s['n_success']}/{s['n_attacked']})"
    )


def _queries_text(s: dict) -> str:
    return f"{s['queries_mean']:.1f} / {s['queries_median']:.1f}"


def _victim_text(r: dict) -> str:
    text = (
        f"{r['victim']}: learned {_rate_text(r['learned'])}, queries per success "
        f"{_queries_text(r['learned'])} (mean / median) of a {r['budget']}-query budget"
    )
    for s in r["square"]:
        text += (
            f"; Square eps {s['eps']:g} {_rate_text(s['success'])}, "
            f"{s['success']['queries_mean']:.1f} mean queries: {s['comparison']['status']}"
        )
    if not r["square"]:
        text += "; Square not run"
    return text


def _greedy_text(r: dict) -> str:
    if r["greedy"] is None:
        return f"{r['victim']}: greedy baseline not run"
    return (
        f"{r['victim']}: greedy baseline {_rate_text(r['greedy'])}, queries per success "
        f"{_queries_text(r['greedy'])}"
    )


def _linf(r: dict) -> str:
    value = r["learned"]["linf_mean"]
    return f"{r['victim']} {value:.2f}" if isinstance(value, float) else f"{r['victim']} -"


def _table(results: list[dict]) -> list[str]:
    lines = [
        "",
        "| victim | attack | success % [95 % Wilson] | queries per success (mean / median) | "
        "steps per success (mean) | RLAB learned against this Square, on the images both "
        "fooled | record |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows = [("RLAB learned", r["learned"], "-", r["record"])]
        if r["greedy"] is not None:
            rows.append(("RLAB greedy", r["greedy"], "-", r["greedy_record"]))
        for s in r["square"]:
            verdict = s["comparison"]["status"]
            rows.append((f"Square eps {s['eps']:g}", s["success"], verdict, r["record"]))
        for name, s, verdict, record in rows:
            steps = s["steps_mean"]
            lines.append(
                f"| {r['victim']} | {name} | {_rate_text(s)} | {_queries_text(s)} | "
                f"{'-' if steps is None else f'{steps:.1f}'} | {verdict} | `{record}` |"
            )
    return [*lines, ""]
