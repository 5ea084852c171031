"""The calibration zoo of the masking verdict: honest and evasive models on ``digits``.

``python -m rlrobust.diagnostics.zoo --out zoo.json --markdown zoo.md`` trains small MLPs on
scikit-learn's digits (1437 train / 360 test, 8x8), single-threaded, in about a minute, wraps
some in the evasive models of ``diagnostics/evasive.py``, evaluates every model with the
``standard`` preset (FGSM, PGD-40, AutoAttack standard) and ``--eval.masking`` (budget
``standard``) through ``evaluation.suite.run_suite``, and writes one record per model: the
per-attack accuracies, the worst case, the verdict, the codes, and the statistic each check
compared with its threshold. ``docs/masking_flags.md`` ("Calibration") holds the table of one
run; ``--markdown`` regenerates it. Total about 10 minutes on one CPU core.

Honest: plain cross-entropy, a policy-gradient objective (Kim Eq. 4, exact expectation over
the softmax's actions), PGD adversarial training (Madry et al. 2018) at train eps 0.05/0.1/0.2
and TRADES (Zhang et al. 2019, beta 6) at 0.1/0.2, each evaluated at eps 0.1 and 0.2. Evasive: see ``evasive.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rlrobust.diagnostics import evasive

# Evasive members the verdict is known to miss, with the reason (docs/masking_flags.md,
# "Evasions considered"); the calibration test requires their warnings instead of evidence.
KNOWN_MISSES = {
    "swap: ce shown, other ce gradient": (
        "the gradient of a second cross-entropy model is nearly as good as the model's own (a "
        "strong transfer attack): PGD-40 overstates by 4.5 points, which 360 points do not "
        "resolve; M12 and M13 warn"
    ),
}
TRAIN_STEPS = 300  # full-batch Adam steps (lr 0.01): every model fits digits to > 97 % clean
EVAL_EPS = (0.1, 0.2)
EVASIVE_EVAL_EPS = 0.1


def _digits():
    from rlrobust.data import load_dataset

    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    return train, test


def _mlp(train, seed: int) -> nn.Module:
    from rlrobust.models import build_model

    torch.manual_seed(seed)
    return build_model(
        "mlp", num_classes=10, in_channels=1, image_size=8, mean=train.mean, std=train.std
    )


def _pgd_inner(model: nn.Module, x, y, eps: float, seed: int):
    from rlrobust.attacks.pgd import PGD

    return PGD(eps=eps, norm="linf", steps=7, step_size=2.5 * eps / 7, seed=seed)(model, x, y)


def _trades_inner(model: nn.Module, x, eps: float, steps: int = 7):
    """TRADES' inner maximisation: sign ascent on KL(f(x) || f(x')) from x + 0.001 N(0, 1)."""
    with torch.no_grad():
        clean = F.softmax(model(x), dim=1)
    x_adv = (x + 0.001 * torch.randn_like(x)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), clean, reduction="sum")
        (grad,) = torch.autograd.grad(kl, x_adv)
        x_adv = x_adv.detach() + 2.5 * eps / steps * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1)
    return x_adv.detach()


def train_model(train, kind: str, eps: float = 0.0, seed: int = 0) -> nn.Module:
    """One MLP on digits: ``kind`` in ce, policy, pgd_at, trades (full batch, Adam 0.01)."""
    from rlrobust.objectives import kim_policy_loss
    from rlrobust.objectives.trades import trades_loss

    model = _mlp(train, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = train.images.float() / 255, train.labels
    for _ in range(TRAIN_STEPS):
        if kind == "ce":
            loss = F.cross_entropy(model(x), y)
        elif kind == "policy":
            loss, _ = kim_policy_loss(model(x), y, lam=1.25, action="sample", exact=True)
        elif kind == "pgd_at":
            model.eval()
            x_adv = _pgd_inner(model, x, y, eps, seed)
            model.train()
            loss = F.cross_entropy(model(x_adv), y)
        elif kind == "trades":
            model.eval()
            x_adv = _trades_inner(model, x, eps)
            model.train()
            loss, _ = trades_loss(model(x), model(x_adv), y, beta=6.0)
        else:
            raise ValueError(f"unknown training kind {kind!r}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model.eval()


def build_zoo(train) -> list[tuple[str, str, Callable[[], nn.Module], tuple[float, ...]]]:
    """``(name, kind, make, eval_eps)`` for every zoo member; models are trained lazily, once."""
    cache: dict[tuple, nn.Module] = {}

    def trained(kind: str, eps: float = 0.0, seed: int = 0) -> nn.Module:
        key = (kind, eps, seed)
        if key not in cache:
            cache[key] = train_model(train, kind, eps, seed)
        return cache[key]

    ev = (EVASIVE_EVAL_EPS,)
    shape = (1, 8, 8)
    return [
        ("ce", "honest", lambda: trained("ce"), EVAL_EPS),
        ("policy (Kim)", "honest", lambda: trained("policy"), EVAL_EPS),
        ("pgd-at 0.05", "honest", lambda: trained("pgd_at", 0.05), EVAL_EPS),
        ("pgd-at 0.1", "honest", lambda: trained("pgd_at", 0.1), EVAL_EPS),
        ("pgd-at 0.2", "honest", lambda: trained("pgd_at", 0.2), EVAL_EPS),
        ("trades 0.1", "honest", lambda: trained("trades", 0.1), EVAL_EPS),
        ("trades 0.2", "honest", lambda: trained("trades", 0.2), EVAL_EPS),
        (
            "swap: ce shown, pgd-at 0.1 gradient",
            "evasive",
            lambda: evasive.GradientSwap(trained("ce"), trained("pgd_at", 0.1)),
            ev,
        ),
        (
            "swap: ce shown, pgd-at 0.2 gradient",
            "evasive",
            lambda: evasive.GradientSwap(trained("ce"), trained("pgd_at", 0.2)),
            ev,
        ),
        (
            "swap: ce shown, other ce gradient",
            "evasive",
            lambda: evasive.GradientSwap(trained("ce"), trained("ce", seed=1)),
            ev,
        ),
        (
            "scrambled gradient signs (40 %)",
            "evasive",
            lambda: evasive.SignScrambledGradient(trained("ce"), shape, 0.4),
            ev,
        ),
        (
            "input-seeded noise 0.1 on pgd-at",
            "evasive",
            lambda: evasive.InputSeededNoise(trained("pgd_at", 0.1), 0.1),
            ev,
        ),
        (
            "input-seeded noise 0.05 on pgd-at",
            "evasive",
            lambda: evasive.InputSeededNoise(trained("pgd_at", 0.1), 0.05),
            ev,
        ),
        (
            "input-seeded noise 0.1 on ce",
            "evasive",
            lambda: evasive.InputSeededNoise(trained("ce"), 0.1),
            ev,
        ),
        ("quantised input", "evasive", lambda: evasive.Quantised(trained("ce")), ev),
        ("saturated softmax", "evasive", lambda: evasive.SaturatedSoftmax(trained("ce")), ev),
        ("dropout in eval", "evasive", lambda: evasive.DropoutInEval(trained("ce")), ev),
        ("no gradient path", "evasive", lambda: evasive.NoGradientPath(trained("ce")), ev),
    ]


def statistics(masking: dict) -> dict[str, Any]:
    """What each calibrated check compared with its threshold, enough to judge it again.

    ``m12_columns``: the iterative gradient columns M12 judges (``column_excess`` entries);
    ``m13``: the ensemble's breakdown and point count; ``m16_not_kept`` of ``n_points``;
    ``m10_drop``, ``m11_changed_fraction``.
    """
    m, settings = masking["measurements"], masking["settings"]
    judged = [*settings["whitebox"], "pgd (diagnostic)"]
    columns = {
        label: c
        for label, c in m.get("columns", {}).items()
        if label in judged and label not in settings["one_step"]
    }
    drop = None
    if "pgd_accuracy" in m:
        drop = m["pgd_accuracy"] - min(m["pgd_long_accuracy"], m["pgd_restarts_accuracy"])
    lower = [c["excess_interval"][0] for c in columns.values()]
    return {
        "m12_columns": columns,
        "m12_excess_lower_bound": max(lower) if lower else None,
        "m13": m.get("ensembles", {}),
        "m16_not_kept": m.get("adversarial_not_kept"),
        "n_points": m["n_points"],
        "m10_drop": drop,
        "m11_changed_fraction": m.get("noise", {}).get("changed_fraction"),
    }


def evaluate_member(model: nn.Module, test, eps: float) -> dict[str, Any]:
    from rlrobust.evaluation.suite import run_suite

    result = run_suite(
        model, test, preset="standard", eps=eps, masking=True, masking_budget="standard"
    )
    record, masking = result["evaluation"], result["masking"]
    columns = {e["label"]: e["accuracy"] for e in record["attacks"]}
    breakdown = next((e["breakdown"] for e in record["attacks"] if "breakdown" in e), None)
    return {
        "eps": eps,
        "clean": record["clean_accuracy"],
        "columns": columns,
        "worst_case": record["robust_accuracy"],
        "autoattack_breakdown": breakdown,
        "verdict": masking["verdict"],
        "codes": masking["codes"],
        "evidence_codes": sorted(
            {f["code"] for f in masking["flags"] if f["severity"] == "evidence"}
        ),
        "statistics": statistics(masking),
    }


def run_zoo(only: str | None = None, out: Path | None = None) -> dict[str, Any]:
    """Evaluate the zoo; with ``out``, the record is rewritten after every row (a killed run
    keeps what it measured)."""
    torch.set_num_threads(1)
    train, test = _digits()
    rows: list[dict[str, Any]] = []
    zoo = {"data": "digits test (360 points)", "preset": "standard", "rows": rows}
    for name, kind, make, eps_values in build_zoo(train):
        if only and only not in name:
            continue
        model = make()
        for eps in eps_values:
            started = time.perf_counter()
            row = {"model": name, "kind": kind, **evaluate_member(model, test, eps)}
            row["known_miss"] = KNOWN_MISSES.get(name)
            row["seconds"] = round(time.perf_counter() - started, 1)
            rows.append(row)
            print(f"{name} @ {eps}: {row['verdict']} {row['codes']} ({row['seconds']} s)")
            if out is not None:
                out.write_text(json.dumps(zoo, indent=1))
    return zoo


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def rates(zoo: dict[str, Any]) -> dict[str, Any]:
    """False-positive rate (honest rows whose verdict is not clean) and detection rate (evasive
    rows whose verdict is not clean), with their counts."""
    honest = [r for r in zoo["rows"] if r["kind"] == "honest"]
    evasive_rows = [r for r in zoo["rows"] if r["kind"] == "evasive"]
    flagged_honest = sum(r["verdict"] != "no evidence of masking" for r in honest)
    caught = sum(r["verdict"] != "no evidence of masking" for r in evasive_rows)
    return {
        "honest": len(honest),
        "false_positives": flagged_honest,
        "false_positive_rate": flagged_honest / len(honest) if honest else None,
        "evasive": len(evasive_rows),
        "detected": caught,
        "detection_rate": caught / len(evasive_rows) if evasive_rows else None,
    }


def _check_statistics(row: dict[str, Any]) -> dict[str, float]:
    """Per row, the statistic of each calibrated check, on the scale of its threshold."""
    from rlrobust.stats import wilson_interval

    stats = row["statistics"]
    n = stats["n_points"]
    query = 0.0
    for info in stats["m13"].values():
        if info.get("breakdown") and info.get("n_points"):
            count = int(info["breakdown"].get("square", 0))
            query = max(query, wilson_interval(count, info["n_points"])[0])
    not_kept = stats["m16_not_kept"]
    return {
        "M12": stats["m12_excess_lower_bound"] or 0.0,
        "M13": query,
        "M16": wilson_interval(not_kept, n)[0] if not_kept is not None else 0.0,
        "M10": stats["m10_drop"] or 0.0,
        "M11": stats["m11_changed_fraction"] or 0.0,
    }


def threshold_table(zoo: dict[str, Any]) -> str:
    """Per calibrated check: the largest statistic among honest rows, the evidence threshold,
    and the statistic of each evasive row (all in %)."""
    from rlrobust.diagnostics import masking_checks as mc

    limits = {
        "M12": ("Wilson lower bound of a column's excess", mc.OVERSTATE_EVIDENCE_EXCESS),
        "M13": ("Wilson lower bound of Square-only points", mc.QUERY_ONLY_EVIDENCE_FRACTION),
        "M16": ("Wilson lower bound of iterates not kept", mc.NOT_KEPT_EVIDENCE_FRACTION),
        "M10": ("PGD drop with more steps/restarts", mc.UNCONVERGED_LARGE_DROP),
        "M11": ("predictions changed by noise", mc.UNSTABLE_EVIDENCE_FRACTION),
    }
    per_row = [(r, _check_statistics(r)) for r in zoo["rows"]]
    lines = [
        "| check | statistic | largest honest | evidence above | evasive rows above it |",
        "|---|---|---|---|---|",
    ]
    for code, (what, limit) in limits.items():
        honest = max((s[code] for r, s in per_row if r["kind"] == "honest"), default=0.0)
        above = [r["model"] for r, s in per_row if r["kind"] == "evasive" and s[code] > limit]
        lines.append(
            f"| {code} | {what} | {100 * honest:.1f} | {100 * limit:.1f} | "
            f"{len(above)}: {', '.join(above) or '-'} |"
        )
    return "\n".join(lines)


def markdown(zoo: dict[str, Any]) -> str:
    """The docs table: model, eps, clean, PGD-40, AutoAttack, worst case, verdict, codes."""
    r = rates(zoo)
    summary = (
        f"False-positive rate {r['false_positives']}/{r['honest']} honest evaluations; detection "
        f"rate {r['detected']}/{r['evasive']} evasive ones. Codes in bold are evidence, the "
        "others warnings; accuracies in %."
    )
    lines = [
        summary,
        "",
        "| model | kind | eps | clean | PGD-40 | AutoAttack | worst case | verdict | codes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in zoo["rows"]:
        codes = ", ".join(f"**{c}**" if c in r["evidence_codes"] else c for c in r["codes"]) or "-"
        lines.append(
            f"| {r['model']} | {r['kind']} | {r['eps']:g} | {_pct(r['clean'])} | "
            f"{_pct(r['columns'].get('pgd40-ce'))} | {_pct(r['columns'].get('autoattack'))} | "
            f"{_pct(r['worst_case'])} | {r['verdict']} | {codes} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("masking-zoo.json"))
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--only", default=None, help="run the members whose name contains this")
    args = parser.parse_args(argv)
    zoo = run_zoo(args.only, args.out)
    args.out.write_text(json.dumps(zoo, indent=1))
    if args.markdown is not None:
        args.markdown.write_text(markdown(zoo) + "\n\n" + threshold_table(zoo) + "\n")


if __name__ == "__main__":
    main()
