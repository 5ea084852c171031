"""The sweep part of a report: the summary of ``rlrobust sweep`` as a table and a heat-map.

A sweep's ``summary.json`` (``experiments/sweep.py: aggregate``) holds one group per grid point
with, per metric, the mean, sample std and 95 % t interval over seeds. The table comes from the
sweep's own ``summary_table``; the heat-map here puts the last grid key on the columns and every
other grid key (and the variant, if any) on the rows, one panel per metric, so any grid --
1-D, 2-D or more, numeric or not -- gets one. A summary of any other shape is shown as a table of
its leaf values (``key.path | value``), never as a raw JSON dump.
"""

from __future__ import annotations

import json

import numpy as np

SWEEP_KEYS = {"groups", "metric_names", "grid_keys"}


def is_sweep_summary(summary) -> bool:
    return isinstance(summary, dict) and set(summary) >= SWEEP_KEYS


def _label(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _ordered(values: list) -> list:
    """Distinct values in order of appearance; sorted when all are numbers (a grid axis)."""
    distinct = list(dict.fromkeys(json.dumps(v, sort_keys=True) for v in values))
    decoded = [json.loads(v) for v in distinct]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in decoded)
    return sorted(decoded) if numeric else decoded


def heatmap_grid(summary: dict, metric: str) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(row labels, column labels, means, stds) of ``metric`` over the sweep's groups; NaN where
    a group lacks the metric. Columns: the last grid key; rows: the other keys and the variant."""
    keys = list(summary["grid_keys"])
    groups = summary["groups"]
    has_variant = any(g.get("variant") for g in groups)
    row_keys, col_key = keys[:-1], (keys[-1] if keys else None)

    def row_of(group) -> str:
        parts = [f"{group['variant']}"] if has_variant else []
        parts += [f"{k}={_label(group['values'][k])}" for k in row_keys]
        return ", ".join(parts) or "all"

    columns = _ordered([g["values"][col_key] for g in groups]) if col_key else [None]
    rows = list(dict.fromkeys(row_of(g) for g in groups))
    means = np.full((len(rows), len(columns)), np.nan)
    stds = np.full_like(means, np.nan)
    column_ids = [json.dumps(c, sort_keys=True) for c in columns]
    for group in groups:
        stat = group["metrics"].get(metric)
        if not stat:
            continue
        i = rows.index(row_of(group))
        j = column_ids.index(json.dumps(group["values"][col_key], sort_keys=True)) if col_key else 0
        means[i, j] = stat["mean"]
        stds[i, j] = stat["std"] if stat.get("n", 1) > 1 else np.nan
    column_labels = [f"{col_key}={_label(c)}" if col_key else "(no grid)" for c in columns]
    return rows, column_labels, means, stds


def heatmap_png(summary: dict) -> bytes | None:
    """One heat-map panel per metric (mean over seeds, in %, on a shared 0-100 scale; each cell
    annotated ``mean ± std``, or ``(1 seed)``); None when no group has a metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rlrobust.reporting.html import figure_png

    grids = {m: heatmap_grid(summary, m) for m in summary["metric_names"]}
    grids = {m: g for m, g in grids.items() if np.isfinite(g[2]).any()}
    if not grids:
        return None
    rows, columns = next(iter(grids.values()))[:2]
    labels = 0.08 * max(len(r) for r in rows)  # inches for the row labels of the first panel
    width = 1.3 * len(columns) + 1.0
    fig, axes = plt.subplots(
        1,
        len(grids),
        figsize=(width * len(grids) + labels + 1.5, 0.55 * len(rows) + 1.8),
        squeeze=False,
    )
    for k, (ax, (metric, (_, _, means, stds))) in enumerate(
        zip(axes[0], grids.items(), strict=True)
    ):
        image = ax.imshow(means, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(columns)), columns, rotation=20, ha="right", fontsize=8)
        # the same rows in every panel: named once, on the left
        ax.set_yticks(range(len(rows)), rows if k == 0 else [], fontsize=8)
        ax.set_title(f"{metric} (%)", fontsize=9)
        for (i, j), mean in np.ndenumerate(means):
            if np.isnan(mean):
                continue
            spread = "(1 seed)" if np.isnan(stds[i, j]) else f"± {stds[i, j]:.1f}"
            # dark text on viridis' light (high) end, white on its dark end
            colour = "black" if mean > 50 else "white"
            ax.text(
                j, i, f"{mean:.1f}\n{spread}", ha="center", va="center", fontsize=7, color=colour
            )
    fig.colorbar(image, ax=list(axes[0]), label="accuracy (%), mean over seeds", shrink=0.9)
    return figure_png(fig)


def flat_rows(summary, prefix: str = "") -> list[list[str]]:
    """``[key.path, value]`` for every leaf of a JSON value (list items by index)."""
    if isinstance(summary, dict) and summary:
        items = summary.items()
    elif isinstance(summary, list) and summary:
        items = ((str(i), v) for i, v in enumerate(summary))
    else:
        shown = f"{summary:.4g}" if isinstance(summary, float) else json.dumps(summary)
        return [[prefix or "(value)", shown.strip('"')]]
    rows = []
    for key, value in items:
        rows += flat_rows(value, f"{prefix}.{key}" if prefix else str(key))
    return rows
