"""Plots made from records only (DESIGN principle 7): a report can be rebuilt without rerunning."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from rlrobust.files import atomic_write_bytes  # noqa: E402


def _save(fig, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_runs_summary(
    metrics: dict[str, list[dict]], evaluations: dict[str, dict], path: str | Path
) -> Path:
    """Left: held-out accuracy per epoch (a marker where the two-stage switch happened).
    Right: clean, per-attack and worst-case accuracy of each model."""
    fig, (curves, bars) = plt.subplots(1, 2, figsize=(11, 4))
    for name, rows in metrics.items():
        key = (
            "validation_accuracy" if rows and "validation_accuracy" in rows[0] else "test_accuracy"
        )
        epochs = [row["epoch"] for row in rows]
        (line,) = curves.plot(
            epochs, [100 * row[key] for row in rows], marker="o", ms=3, label=name
        )
        switches = [
            row["epoch"]
            for prev, row in zip(rows, rows[1:], strict=False)
            if prev["stage"] != row["stage"]
        ]
        for epoch in switches:
            curves.axvline(epoch - 0.5, color=line.get_color(), ls=":", lw=1)
    curves.set(
        xlabel="epoch", ylabel="held-out accuracy (%)", title="training (dotted: stage switch)"
    )
    curves.grid(alpha=0.3)
    if metrics:
        curves.legend()

    columns = ["clean"]
    for record in evaluations.values():
        columns += [e["label"] for e in record["attacks"] if e["label"] not in columns]
    columns.append("worst case")
    width = 0.8 / max(1, len(evaluations))
    for i, (name, record) in enumerate(evaluations.items()):
        by_label = {"clean": record["clean_accuracy"], "worst case": record["robust_accuracy"]}
        by_label.update({e["label"]: e["accuracy"] for e in record["attacks"]})
        xs = [j + i * width for j in range(len(columns))]
        bars.bar(xs, [100 * by_label.get(c, 0.0) for c in columns], width=width, label=name)
    bars.set_xticks([j + 0.4 - width / 2 for j in range(len(columns))], columns)
    bars.set(ylabel="accuracy (%)", ylim=(0, 100), title="robustness")
    bars.grid(axis="y", alpha=0.3)
    if evaluations:
        bars.legend()
    return _save(fig, Path(path))


def plot_eps_curves(
    curves: dict[str, dict], path: str | Path, styles: dict[str, dict] | None = None
) -> Path:
    """Robust accuracy against eps, one line per model (records from ``robustness_curve``);
    ``styles``: name -> {color, linestyle, marker} (a report's fixed colour per run)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, curve in curves.items():
        eps = [p["eps"] for p in curve["points"]]
        style = (styles or {}).get(name, {})
        ax.plot(
            eps,
            [100 * p["accuracy"] for p in curve["points"]],
            marker=style.get("marker", "o"),
            ls=style.get("linestyle", "-"),
            color=style.get("color"),
            ms=3,
            label=name,
        )
    first = next(iter(curves.values()), {"attack": "", "norm": ""})
    ax.set(
        xlabel=f"eps ({first['norm']})",
        ylabel="robust accuracy (%)",
        ylim=(0, 100),
        title=f"robust accuracy against eps ({first['attack']})",
    )
    ax.grid(alpha=0.3)
    if curves:
        ax.legend()
    return _save(fig, Path(path))
