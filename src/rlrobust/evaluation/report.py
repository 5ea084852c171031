"""Write an evaluation result (from ``run_suite``) as JSON, per-sample JSON, markdown and plots."""

from __future__ import annotations

from pathlib import Path

from rlrobust.evaluation.protocol import markdown_table
from rlrobust.files import atomic_write_json, atomic_write_text


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
        "| eps | accuracy (%) |",
        "|---|---|",
    ]
    lines += [f"| {p['eps']:g} | {100 * p['accuracy']:.2f} |" for p in curve["points"]]
    return lines


def masking_lines(masking: dict) -> list[str]:
    lines = [f"Gradient-masking verdict: **{masking['verdict']}**"]
    for flag in masking["flags"]:
        lines.append(f"- {flag['code']} ({flag['severity']}): {flag['message']}")
    if not masking["flags"]:
        lines.append("- no flag raised (see docs/masking_flags.md for what each check looks for)")
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
