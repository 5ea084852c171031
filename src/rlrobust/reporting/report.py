"""Markdown reports from run records."""

from __future__ import annotations

from rlrobust.evaluation.report import INTERVAL_NOTE, attack_lines, markdown_table


def comparison_report(
    title: str, evaluations: dict[str, dict], notes: list[str], plot_name: str | None
) -> str:
    first = next(iter(evaluations.values()))
    parts = [
        f"# {title}",
        "",
        f"On {first['n_examples']} test images. {INTERVAL_NOTE}",
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
