"""``rlrobust reproduce PRESET --scale smoke|laptop|paper``: run a preset's sweep and report it.

The report (``reproduce.md`` and ``reproduce.json`` in the output folder) puts our accuracies
(mean ± std over seeds) beside the paper's numbers with the table they come from, and lists every
protocol difference of the chosen scale in plain words.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rlrobust.config import load_config
from rlrobust.experiments.presets import Preset, differences, get_preset, scale_words
from rlrobust.experiments.sweep import SweepSpec, run_sweep, summary_table
from rlrobust.files import atomic_write_json, atomic_write_text


def build_spec(preset: Preset, scale: str) -> SweepSpec:
    spec = preset.scales[scale]
    base = load_config(overrides=spec.overrides).to_dict()
    variants = {
        name: {**overrides, **spec.per_variant.get(name, {})}
        for name, overrides in preset.variants.items()
    }
    return SweepSpec(base=base, grid=spec.grid, seeds=spec.seeds, variants=variants, evaluate=True)


def run_rlab_on_runs(sweep_dir: Path, settings: dict, log: Callable[[str], None]) -> int:
    """Greedy RLAB on every finished run of the sweep that has no RLAB record yet; the count."""
    from rlrobust.attacks.rlab.attack import RLABSettings
    from rlrobust.attacks.rlab.run import RLABExperiment, load_victim, run_rlab
    from rlrobust.training.checkpoint import read_state

    done = 0
    for run_dir in sorted((sweep_dir / "runs").iterdir()):
        state = read_state(run_dir)
        if not (state and state.get("finished")) or (run_dir / "rlab" / "rlab.json").is_file():
            continue
        model, test, train = load_victim(run_dir, settings["n_examples"])
        exp = RLABExperiment(
            settings=RLABSettings(patch_size=settings["patch_size"], budget=settings["budget"]),
            masks=False,
        )
        log(f"  RLAB (greedy) on {run_dir.name}")
        run_rlab(model, test, train, exp, run_dir / "rlab", log=lambda *_: None)
        done += 1
    return done


def _matches(row: dict, ref) -> bool:
    if ref.variant is not None:
        return row["variant"] == ref.variant
    return ref.values is not None and all(row["values"].get(k) == v for k, v in ref.values.items())


def comparison_rows(preset: Preset, summary: dict) -> list[dict]:
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
                    "n_seeds": stat["n"] if stat else 0,
                    "paper": ref.value if ref else None,
                    "paper_metric": (ref.paper_metric or ref.metric) if ref else None,
                    "source": ref.source if ref else None,
                }
            )
    return rows


def comparison_table(rows: list[dict]) -> str:
    lines = [
        "| arm | metric | ours (%, mean ± std) | paper (%) | paper source |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        ours = (
            f"{row['ours_mean']:.2f} ± {row['ours_std']:.2f} (n={row['n_seeds']})"
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
    preset = get_preset(name)
    diffs = differences(preset, scale)  # checks the scale name first
    out = Path(out or f"reproduce/{name}-{scale}")
    spec = build_spec(preset, scale)
    log(f"reproducing {preset.title} at {scale} scale into {out}")
    summary = run_sweep(spec, out, jobs=jobs, backend=backend, address=address, log=log)
    rlab = preset.scales[scale].rlab
    if rlab is not None and run_rlab_on_runs(out, rlab, log):
        summary = run_sweep(spec, out, jobs=jobs, backend=backend, address=address, log=log)
    rows = comparison_rows(preset, summary)
    record = {
        "preset": name,
        "title": preset.title,
        "scale": scale,
        "protocol": scale_words(preset, scale),
        "paper_protocol": preset.paper,
        "differences": diffs,
        "comparison": rows,
        "summary": summary,
    }
    atomic_write_json(out / "reproduce.json", record)
    parts = [
        f"# {preset.title}",
        "",
        f"Scale: **{scale}**. Our accuracies are on our own runs (mean ± std over seeds); the "
        "paper's are copied from the table named beside them."
        + (
            ""
            if preset.references
            else " Our sources hold no published numbers for this paper: ours only."
        ),
        "",
        comparison_table(rows),
        "",
        f"## Protocol differences at {scale} scale",
        "",
        *[f"- {line}" for line in diffs],
        "",
        "## All points",
        "",
        summary_table(summary),
        "",
    ]
    heatmaps = sorted(p.name for p in out.glob("heatmap-*.png"))
    parts += [f"![{h}]({h})" for h in heatmaps]
    atomic_write_text(out / "reproduce.md", "\n".join(parts) + "\n")
    return record
