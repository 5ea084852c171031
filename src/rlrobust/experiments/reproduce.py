"""``rlrobust reproduce PRESET --scale smoke|laptop|paper``: run a preset's sweep and report it.

``plan`` resolves the preset without training anything: the runs with their full configs, the
paper's numbers and the computed differences (``rlrobust reproduce ... --plan [--json]``).
``reproduce`` runs the sweep and the post-steps (RLAB, transfer attacks), then writes
``reproduce.md`` and ``reproduce.json``: our accuracies (mean ± std over seeds) beside the paper's
numbers with the table they come from, and every computed protocol difference of the scale.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rlrobust.experiments.post_steps import extra_metrics, run_rlab, run_transfer
from rlrobust.experiments.presets import Plan, build_plan, get_preset
from rlrobust.experiments.presets.resolve import difference_lines
from rlrobust.experiments.sweep import mean_std, run_sweep, summary_table
from rlrobust.files import atomic_write_json, atomic_write_text
from rlrobust.stats import format_seed_summary, seed_summary


def plan(name: str, scale: str) -> Plan:
    """The resolved runs, references and differences of preset ``name`` at ``scale``."""
    return build_plan(get_preset(name), scale)


def plan_text(p: Plan) -> str:
    """``--plan`` in words: the runs, the paper's numbers and the differences."""
    preset = p.preset
    lines = [f"{preset.title}: {preset.name} at {p.scale} scale", ""]
    if preset.source_note:
        lines += [f"Source: {preset.source_note}", ""]
    lines.append(f"Runs ({len(p.points)}):")
    for point in p.points:
        cfg = point.config
        lines.append(
            f"  {point.slug}: {cfg['data']['name']} / {cfg['model']['name']} / "
            f"{cfg['objective']['name']}, {cfg['train']['epochs']} epochs, seed {point.seed}"
        )
    if p.post:
        lines.append("After training: " + ", ".join(f"{k} = {v}" for k, v in p.post.items()))
    lines += ["", f"Paper's numbers ({len(preset.references)}):"]
    for ref in preset.references[:40]:
        group = ref.variant or ", ".join(f"{k}={v}" for k, v in (ref.values or {}).items())
        lines.append(f"  {group}: {ref.paper_metric or ref.metric} {ref.value:g} ({ref.source})")
    if len(preset.references) > 40:
        lines.append(f"  ... and {len(preset.references) - 40} more (--json lists all)")
    entries = [*preset.protocol.values()]
    entries += [e for v in preset.variants.values() for e in v.entries().values()]
    silent = sum(not e.stated for e in entries)
    lines += [
        "",
        f"Protocol: {len(entries) - silent} entries stated by the sources, {silent} not stated "
        "(our choices); --json lists each with its source or reason",
    ]
    lines += ["", f"Differences from the paper's protocol at {p.scale} scale:"]
    lines += [f"  - {line}" for line in difference_lines(p)]
    lines += [f"  - {note}" for note in preset.scales[p.scale].notes]
    return "\n".join(lines) + "\n"


def _matches(row: dict, ref) -> bool:
    if ref.variant is not None:
        return row["variant"] == ref.variant
    return ref.values is not None and all(row["values"].get(k) == v for k, v in ref.values.items())


def add_extra_metrics(summary: dict, extra: dict) -> None:
    """Fold the post-step metrics (``{group: {seed: {metric: %}}}``) into the summary groups."""
    for group in summary["groups"]:
        per_seed = extra.get(group["group"], {})
        names = sorted({m for metrics in per_seed.values() for m in metrics})
        for name in names:
            values = [per_seed[s][name] for s in sorted(per_seed) if name in per_seed[s]]
            mean, std = mean_std(values)
            spread = seed_summary(values, bounds=(0.0, 100.0))  # accuracies in %
            group["metrics"][name] = {
                "mean": mean,
                "std": std,
                "n": len(values),
                "values": values,
                "interval": spread["interval"],
                "level": spread["level"],
            }


def comparison_rows(preset, summary: dict) -> list[dict]:
    """One row per (group, metric): ours beside the paper's where the paper gives one."""
    rows = []
    for group in summary["groups"]:
        refs = [r for r in preset.references if _matches(group, r)]
        metrics = list(group["metrics"])
        metrics += [r.metric for r in refs if r.metric not in metrics]
        label = group["variant"] or ", ".join(f"{k}={v}" for k, v in group["values"].items())
        for metric in metrics:
            stat = group["metrics"].get(metric)
            ref = next((r for r in refs if r.metric == metric), None)
            rows.append(
                {
                    "group": label,
                    "metric": metric,
                    "ours_mean": stat["mean"] if stat else None,
                    "ours_std": stat["std"] if stat else None,
                    "ours_interval": stat.get("interval") if stat else None,
                    "n_seeds": stat["n"] if stat else 0,
                    "paper": ref.value if ref else None,
                    "paper_metric": (ref.paper_metric or ref.metric) if ref else None,
                    "source": ref.source if ref else None,
                }
            )
    return rows


def comparison_table(rows: list[dict]) -> str:
    lines = [
        "| arm | metric | ours (%, mean ± std [95 % interval]) | paper (%) | paper source |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        ours = (
            format_seed_summary(
                {
                    "mean": row["ours_mean"],
                    "std": row["ours_std"],
                    "interval": row.get("ours_interval"),
                    "n": row["n_seeds"],
                }
            )
            + f" (n={row['n_seeds']})"
            if row["ours_mean"] is not None
            else "not measured at this scale"
        )
        paper = f"{row['paper']:.2f} ({row['paper_metric']})" if row["paper"] is not None else "-"
        lines.append(
            f"| {row['group']} | {row['metric']} | {ours} | {paper} | {row['source'] or '-'} |"
        )
    return "\n".join(lines)


def reproduce(
    name: str,
    scale: str,
    out: str | Path | None = None,
    *,
    jobs: int = 1,
    backend: str = "local",
    address: str | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run preset ``name`` at ``scale`` into ``out`` (default ``reproduce/NAME-SCALE``); returns
    the report record (also written as reproduce.json and reproduce.md)."""
    p = plan(name, scale)  # checks the names before anything runs
    preset = p.preset
    out = Path(out or f"reproduce/{name}-{scale}")
    log(f"reproducing {preset.title} at {scale} scale into {out}")
    summary = run_sweep(p.spec, out, jobs=jobs, backend=backend, address=address, log=log)
    again = False
    if any(k.startswith("rlab.") for k in p.post):
        again |= run_rlab(out, p.points, p.post, log) > 0
    if "transfer.source_arm" in p.post:
        run_transfer(out, p.points, p.post, log)
    if again:  # the sweep's summary reads rlab/rlab.json (the greedy agent)
        summary = run_sweep(p.spec, out, jobs=jobs, backend=backend, address=address, log=log)
    add_extra_metrics(summary, extra_metrics(out, p.points))
    rows = comparison_rows(preset, summary)
    lines = difference_lines(p)
    record = {
        "preset": name,
        "title": preset.title,
        "scale": scale,
        "source_note": preset.source_note,
        "differences": p.differences,
        "difference_lines": lines,
        "notes": list(preset.scales[scale].notes),
        "plan": p.to_json()["protocol"],
        "comparison": rows,
        "summary": summary,
    }
    atomic_write_json(out / "reproduce.json", record)
    intro = (
        f"Scale: **{scale}**. Our accuracies are on our own runs (mean ± std over seeds); the "
        "paper's are copied from the table named beside them."
    )
    if not preset.references:
        intro += " Our sources hold no published numbers for this paper: ours only."
    parts = [f"# {preset.title}", "", intro, ""]
    if preset.source_note:
        parts += [f"**Source of the published numbers:** {preset.source_note}", ""]
    parts += [
        comparison_table(rows),
        "",
        f"## Protocol differences at {scale} scale",
        "",
        "Computed field by field: the resolved config of every run against the paper's "
        "(`rlrobust reproduce "
        f"{name} --scale {scale} --plan` lists them without training).",
        "",
        *[f"- {line}" for line in lines],
        *[f"- {note}" for note in preset.scales[scale].notes],
        "",
        "## All points",
        "",
        summary_table(summary),
        "",
    ]
    heatmaps = sorted(path.name for path in out.glob("heatmap-*.png"))
    parts += [f"![{h}]({h})" for h in heatmaps]
    atomic_write_text(out / "reproduce.md", "\n".join(parts) + "\n")
    return record
