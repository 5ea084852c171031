"""Markdown reports from run records."""

from __future__ import annotations

from rlrobust.evaluation.protocol import markdown_table


def attack_settings_lines(evaluation: dict) -> list[str]:
    lines = []
    for entry in evaluation["attacks"]:
        settings = ", ".join(f"{k}={v}" for k, v in entry["attack"].items() if k != "name")
        audit = (
            "audit passed"
            if entry["audit"]["passed"]
            else "AUDIT FAILED: " + "; ".join(entry["audit"]["problems"])
        )
        lines.append(f"- `{entry['label']}`: {settings} ({audit}; {entry['seconds']:.1f} s)")
    return lines


def comparison_report(
    title: str, evaluations: dict[str, dict], notes: list[str], plot_name: str | None
) -> str:
    first = next(iter(evaluations.values()))
    parts = [
        f"# {title}",
        "",
        f"Accuracy (%) on {first['n_examples']} test images.",
        "",
        markdown_table(evaluations),
        "",
        "Attacks:",
        *attack_settings_lines(first),
        "",
    ]
    if notes:
        parts += ["Notes:", *[f"- {note}" for note in notes], ""]
    if plot_name:
        parts += [f"![training and robustness]({plot_name})", ""]
    return "\n".join(parts)
