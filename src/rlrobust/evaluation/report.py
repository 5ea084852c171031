"""Write an evaluation result (from ``run_suite``) as JSON, per-sample JSON, markdown and plots."""

from __future__ import annotations

from pathlib import Path

from rlrobust.evaluation.intervals import interval_of
from rlrobust.files import atomic_write_json, atomic_write_text
from rlrobust.stats import format_interval, wilson_interval

#: The sentence that goes above every accuracy table with intervals.
INTERVAL_NOTE = (
    "Accuracy (%) with its 95 % Wilson interval over the test images in brackets "
    '(docs/evaluation.md, "Uncertainty").'
)


def _cell(record: dict, which: str, accuracy: float) -> str:
    interval = interval_of(record, which)
    text = f"{100 * accuracy:.2f}"
    return f"{text} {format_interval(interval)}" if interval is not None else text


def markdown_table(records: dict[str, dict]) -> str:
    """One row per model: clean, each attack, worst case, each as ``accuracy % [95 % interval]``.

    Each cell carries the Wilson interval of its accuracy (read from the record, or computed
    from its accuracy and ``n_examples`` for records written before intervals existed).
    """
    labels: list[str] = []
    for record in records.values():
        labels += [e["label"] for e in record["attacks"] if e["label"] not in labels]
    header = ["model", "clean"] + labels + (["worst case"] if labels else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, record in records.items():
        by_label = {e["label"]: e["accuracy"] for e in record["attacks"]}
        cells = [name, _cell(record, "clean", record["clean_accuracy"])]
        cells += [_cell(record, lab, by_label[lab]) if lab in by_label else "-" for lab in labels]
        if labels:
            cells.append(_cell(record, "worst case", record["robust_accuracy"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def attack_lines(record: dict) -> list[str]:
    lines = []
    for entry in record["attacks"]:
        settings = ", ".join(f"{k}={v}" for k, v in entry["attack"].items() if k != "name")
        audit = entry["audit"]
        verdict = (
            "audit passed" if audit["passed"] else "AUDIT FAILED: " + "; ".join(audit["problems"])
        )
        extra = ""
        if "breakdown" in entry:
            extra = "; fooled by " + ", ".join(f"{k} {v}" for k, v in entry["breakdown"].items())
        lines.append(
            f"- `{entry['label']}` ({entry['attack'].get('name')}): {settings} "
            f"({verdict}; {entry['seconds']:.1f} s{extra})"
        )
    return lines


def curve_lines(curve: dict) -> list[str]:
    lines = [
        f"Robust accuracy against eps ({curve['attack']}, {curve['norm']}):",
        "",
        "| eps | accuracy (%) | 95 % Wilson interval |",
        "|---|---|---|",
    ]
    n = int(curve.get("n_examples") or 0)
    for point in curve["points"]:
        # the curve stores accuracies only; k = round(accuracy * n) recovers the exact count
        interval = wilson_interval(round(point["accuracy"] * n), n) if n else None
        lines.append(
            f"| {point['eps']:g} | {100 * point['accuracy']:.2f} | "
            f"{format_interval(interval) or '-'} |"
        )
    return lines


def masking_lines(masking: dict) -> list[str]:
    lines = [f"Gradient-masking verdict: **{masking['verdict']}**"]
    for flag in masking["flags"]:
        lines.append(f"- {flag['code']} ({flag['severity']}): {flag['message']}")
    if not masking["flags"]:
        lines.append("- no flag raised (see docs/masking_flags.md for what each check looks for)")
    # Which per-attack columns overstate robustness (above the per-sample worst case, M12).
    columns = masking.get("measurements", {}).get("columns", {})
    over = [
        f"`{label}` (+{100 * c['excess']:.1f} points over {100 * c['worst_case']:.1f})"
        for label, c in columns.items()
        if c.get("overstates") and "(diagnostic)" not in label
    ]
    if over:
        lines.append(
            "- columns that overstate robustness (cite the worst case): " + ", ".join(over)
        )
    for check, why in masking.get("skipped", {}).items():
        lines.append(f"- {check} not checked: {why}")
    not_run = masking.get("attacks_not_run")
    if not_run:
        dropped = ", ".join(not_run["dropped"])
        lines.append(f"- not run (no gradient path: {not_run['reason']}): {dropped}")
    return lines


def write_evaluation(out: Path, name: str, result: dict, cfg, title: str) -> str:
    """Write NAME.json, NAME-per-sample.json, NAME.md (and NAME-curve.png); return the table."""
    from rlrobust.reporting.plots import plot_eps_curves

    record = dict(result["evaluation"])
    per_sample = record.pop("per_sample")
    full = {**record, "config": cfg.to_dict()}
    parts = [
        f"# Evaluation of {title}",
        "",
        INTERVAL_NOTE,
        "",
        markdown_table({title: record}),
        "",
        *attack_lines(record),
        "",
    ]
    if "curve" in result:
        full["curve"] = result["curve"]
        plot_eps_curves({title: result["curve"]}, out / f"{name}-curve.png")
        parts += [
            *curve_lines(result["curve"]),
            "",
            f"![robust accuracy against eps]({name}-curve.png)",
            "",
        ]
    if "masking" in result:
        full["masking"] = result["masking"]
        parts += [*masking_lines(result["masking"]), ""]
    atomic_write_json(out / f"{name}-per-sample.json", per_sample)
    atomic_write_json(out / f"{name}.json", full)
    atomic_write_text(out / f"{name}.md", "\n".join(parts))
    table = markdown_table({title: record})
    if "masking" in result:
        table += f"\nmasking verdict: {result['masking']['verdict']}"
    return table
