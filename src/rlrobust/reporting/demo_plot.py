"""The demo's ``summary.png``: training, robustness with the masking verdicts, paired differences.

Drawn from the records only (DESIGN principle 7), like every plot of ``reporting.plots``.
"""

from __future__ import annotations

from pathlib import Path

from rlrobust.reporting.plots import _save, plt


def plot_demo_summary(
    metrics: dict[str, list[dict]],
    evaluations: dict[str, dict],
    verdicts: dict[str, str],
    comparison: dict,
    path: str | Path,
) -> Path:
    """Left: held-out accuracy per epoch. Middle: clean, per-attack and worst-case accuracy of
    each model (its masking verdict in the legend). Right: the paired difference A - B per
    metric with its bootstrap interval and McNemar's p (from ``compare_runs``)."""
    fig, (curves, bars, paired) = plt.subplots(1, 3, figsize=(17, 4.2), gridspec_kw={"wspace": 0.5})
    for name, rows in metrics.items():
        key = (
            "validation_accuracy" if rows and "validation_accuracy" in rows[0] else "test_accuracy"
        )
        (line,) = curves.plot(
            [r["epoch"] for r in rows], [100 * r[key] for r in rows], marker="o", ms=3, label=name
        )
        for prev, row in zip(rows, rows[1:], strict=False):
            if prev.get("stage") != row.get("stage"):  # the two-stage switch (Kim Eq. 12 -> 4)
                curves.axvline(row["epoch"] - 0.5, color=line.get_color(), ls=":", lw=1)
    curves.set(xlabel="epoch", ylabel="held-out accuracy (%)", title="training (dotted: switch)")
    curves.grid(alpha=0.3)
    if metrics:
        curves.legend(fontsize=8)

    columns = ["clean"]
    for record in evaluations.values():
        columns += [e["label"] for e in record["attacks"] if e["label"] not in columns]
    columns.append("worst case")
    width = 0.8 / max(1, len(evaluations))
    for i, (name, record) in enumerate(evaluations.items()):
        by_label = {"clean": record["clean_accuracy"], "worst case": record["robust_accuracy"]}
        by_label.update({e["label"]: e["accuracy"] for e in record["attacks"]})
        xs = [j + i * width for j in range(len(columns))]
        label = f"{name}\nmasking: {verdicts.get(name, 'not checked')}"
        bars.bar(xs, [100 * by_label.get(c, 0.0) for c in columns], width=width, label=label)
    bars.set_xticks([j + 0.4 - width / 2 for j in range(len(columns))], columns, fontsize=8)
    first = next(iter(evaluations.values()), {})
    bars.set(ylabel="accuracy (%)", ylim=(0, 100), title=f"{first.get('n_examples')} test images")
    bars.grid(axis="y", alpha=0.3)
    if evaluations:
        bars.legend(fontsize=7)

    rows = comparison["rows"]
    ys = list(range(len(rows)))
    diffs = [100 * r["difference"] for r in rows]
    low = [d - 100 * r["difference_interval"][0] for d, r in zip(diffs, rows, strict=True)]
    high = [100 * r["difference_interval"][1] - d for d, r in zip(diffs, rows, strict=True)]
    paired.errorbar(diffs, ys, xerr=[low, high], fmt="o", capsize=4)
    paired.axvline(0.0, color="grey", lw=1)
    labels = [f"{r['metric']}\np = {r['mcnemar']['p_value']:.2g}" for r in rows]
    paired.set_yticks(ys, labels, fontsize=8)
    paired.invert_yaxis()
    a, b = comparison["a"]["name"], comparison["b"]["name"]
    level = f"{100 * comparison['level']:g} %"
    paired.set(xlabel=f"{a} - {b} (points), {level} interval", title="paired comparison")
    paired.grid(axis="x", alpha=0.3)
    return _save(fig, Path(path))
