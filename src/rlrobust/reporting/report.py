"""Markdown reports from run records."""

from __future__ import annotations

from rlrobust.evaluation.protocol import markdown_table
from rlrobust.evaluation.report import attack_lines


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
        *attack_lines(first),
        "",
    ]
    if notes:
        parts += ["Notes:", *[f"- {note}" for note in notes], ""]
    if plot_name:
        parts += [f"![training and robustness]({plot_name})", ""]
    return "\n".join(parts)
