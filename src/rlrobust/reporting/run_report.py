"""``rlrobust report``: one HTML page and one markdown file from run records only.

DESIGN principle 7 (records first, pictures from records): everything here is read from the
files a run leaves behind -- ``config.json``, ``metrics.csv``, ``state.json``, every evaluation
record (``NAME.json`` of ``rlrobust evaluate --name NAME``, recognised by its content, not its file
name), ``diagnostics.json``, ``*/rlab.json`` and, for a sweep folder, ``summary.json`` -- so a
report can be rebuilt at any time without touching a model. Several runs go side by side, each in
one colour in every figure (``reporting/colours.py``).

Like every command, a report refuses to overwrite an earlier one in ``--out`` unless asked
(``overwrite=True``, ``--overwrite``), and then removes the earlier report's files first so no
stale figure survives (``rlrobust/outputs.py``).

No bare number: every accuracy carries its 95 % Wilson interval over the test images, and every
mean over seeds its std and 95 % t interval (``reporting/seeds.py``; docs/evaluation.md,
"Uncertainty").

Output (``--out DIR``)::

    DIR/report.html        self-contained: inline CSS, figures as base64 PNG data URIs
    DIR/report.md          the same content, figures referenced from DIR/figures/
    DIR/figures/*.png
"""

from __future__ import annotations

import csv
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from rlrobust.errors import RunDirectoryError  # noqa: E402
from rlrobust.evaluation.intervals import interval_of  # noqa: E402
from rlrobust.evaluation.report import INTERVAL_NOTE, markdown_table, masking_lines  # noqa: E402
from rlrobust.files import atomic_write_bytes, atomic_write_text  # noqa: E402
from rlrobust.outputs import claim_outputs, remove_outputs  # noqa: E402
from rlrobust.reporting import html as H  # noqa: E402
from rlrobust.reporting.colours import run_colours, variant_styles  # noqa: E402
from rlrobust.reporting.seeds import ACROSS_SEEDS_NOTE, across_seeds_table  # noqa: E402
from rlrobust.reporting.sweep_section import flat_rows, heatmap_png, is_sweep_summary  # noqa: E402

HELDOUT_KEYS = ("validation_accuracy", "test_accuracy")


@dataclass
class RunRecords:
    """What one run directory holds; every field but ``name`` and ``path`` may be empty."""

    name: str
    path: Path
    config: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)
    state: dict = field(default_factory=dict)
    evaluations: dict[str, dict] = field(default_factory=dict)  # record name (file stem) -> record
    skipped: list[str] = field(default_factory=list)  # .json files that could not be read
    diagnostics: dict | None = None
    rlab: dict[str, dict] = field(default_factory=dict)  # output folder -> rlab.json record


@dataclass
class Figure:
    filename: str
    caption: str
    png: bytes


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def read_metrics(path: Path) -> list[dict]:
    """metrics.csv rows with numbers as floats (``stage`` stays text); [] when absent."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [
            {k: _number(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(handle)
        ]


def _json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


#: JSON files of a run directory that are never evaluation records (read, if at all, elsewhere).
NOT_EVALUATIONS = {"config.json", "state.json", "diagnostics.json", "summary.json", "sweep.json"}


def is_evaluation(record) -> bool:
    """An evaluation record as ``rlrobust evaluate`` writes it (NAME.json), told by its content:
    clean and worst-case accuracy and a list of attacks with a label and an accuracy each.
    Per-sample flags (NAME-per-sample.json), configs and other records are not."""
    if not isinstance(record, dict):
        return False
    numbers = all(
        isinstance(record.get(k), (int, float)) and not isinstance(record.get(k), bool)
        for k in ("clean_accuracy", "robust_accuracy")
    )
    attacks = record.get("attacks")
    return (
        numbers
        and isinstance(attacks, list)
        and all(isinstance(a, dict) and {"label", "accuracy"} <= set(a) for a in attacks)
    )


def load_run(run_dir: str | Path, name: str | None = None) -> RunRecords:
    """Read every record of one run directory (the folder ``rlrobust train --out`` wrote)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise RunDirectoryError(
            f"{run_dir} is not a run directory (no config.json); give the --out of "
            "`rlrobust train` or a sweep folder holding such run directories"
        )
    evaluations, skipped = {}, []
    for path in sorted(run_dir.glob("*.json")):
        if path.name in NOT_EVALUATIONS:
            continue
        try:
            record = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            skipped.append(f"{path.name}: not readable JSON ({error})")
            continue
        if is_evaluation(record):  # NAME.json of `rlrobust evaluate --name NAME`
            evaluations[path.stem] = record
    # `evaluation` first (the default name), then the others alphabetically
    evaluations = dict(sorted(evaluations.items(), key=lambda item: item[0] != "evaluation"))
    return RunRecords(
        name=name or run_dir.name,
        path=run_dir,
        config=_json(run_dir / "config.json") or {},
        metrics=read_metrics(run_dir / "metrics.csv"),
        state=_json(run_dir / "state.json") or {},
        evaluations=evaluations,
        skipped=skipped,
        diagnostics=_json(run_dir / "diagnostics.json"),
        rlab={
            p.parent.name: json.loads(p.read_text()) for p in sorted(run_dir.glob("*/rlab.json"))
        },
    )


def collect(paths: list[str | Path]) -> tuple[list[RunRecords], dict[str, object]]:
    """Runs and sweep summaries from a mix of run directories and sweep folders.

    A sweep folder is any folder without ``config.json`` whose sub-folders (or, as
    ``rlrobust sweep`` writes them, ``runs/`` sub-folders) are runs; its ``summary.json`` (when
    present) is shown as a table and a heat-map.
    """
    runs: list[RunRecords] = []
    summaries: dict[str, object] = {}
    for raw in paths:
        path = Path(raw)
        if (path / "config.json").is_file():
            runs.append(load_run(path))
            continue
        children = sorted(
            p for p in [*path.glob("*"), *path.glob("runs/*")] if (p / "config.json").is_file()
        )
        summary = _json(path / "summary.json")
        if not children and summary is None:
            raise RunDirectoryError(
                f"{path} is neither a run directory (config.json) nor a sweep folder (run "
                "sub-folders or summary.json); give the --out of `rlrobust train` or `rlrobust sweep`"
            )
        if summary is not None:
            summaries[path.name] = summary
        runs += [load_run(child, f"{path.name}/{child.name}") for child in children]
    names = [run.name for run in runs]
    duplicates = {n for n in names if names.count(n) > 1}
    for run in runs:  # two folders with the same name would overwrite each other's lines
        if run.name in duplicates:
            run.name = str(run.path)
    return runs, summaries


# ---------------------------------------------------------------- figures


def _switch_epochs(rows: list[dict]) -> list[float]:
    """Epochs after which the stage changed (warm-up -> main objective)."""
    return [
        row["epoch"]
        for prev, row in zip(rows, rows[1:], strict=False)
        if prev.get("stage") != row.get("stage")
    ]


def training_figure(runs: list[RunRecords], colours: dict[str, str] | None = None) -> Figure | None:
    """Loss, reward mean and held-out accuracy per epoch; dotted line: the two-stage switch.
    ``colours``: run name -> colour (``colours.run_colours``), the same in every figure."""
    colours = colours or run_colours([run.name for run in runs])
    with_metrics = [run for run in runs if run.metrics]
    if not with_metrics:
        return None
    panels = [("train_loss", "training loss", 1.0), ("train_reward_mean", "mean reward", 1.0)]
    heldout = next(
        (k for run in with_metrics for k in HELDOUT_KEYS if k in run.metrics[0]),
        "test_accuracy",
    )
    panels.append((heldout, f"{heldout.replace('_', ' ')} (%)", 100.0))
    panels = [p for p in panels if any(p[0] in r for run in with_metrics for r in run.metrics)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (key, label, scale) in zip(axes[0], panels, strict=True):
        for run in with_metrics:
            rows = [r for r in run.metrics if key in r]
            if not rows:
                continue
            ax.plot(
                [r["epoch"] for r in rows],
                [scale * r[key] for r in rows],
                marker="o",
                ms=3,
                label=run.name,
                color=colours[run.name],
            )
            for epoch in _switch_epochs(run.metrics):
                ax.axvline(epoch - 0.5, color=colours[run.name], ls=":", lw=1.2)
        ax.set(xlabel="epoch", title=label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return Figure(
        "training.png",
        "Training curves (dotted vertical line: switch from the warm-up to the main objective)",
        H.figure_png(fig),
    )


def _eval_label(run: RunRecords, stem: str) -> str:
    return run.name if stem == "evaluation" else f"{run.name} ({stem})"


def all_evaluations(runs: list[RunRecords]) -> dict[str, dict]:
    """Every evaluation record of every run, labelled ``run`` (the default name ``evaluation``)
    or ``run (NAME)``."""
    return {
        _eval_label(run, stem): record for run in runs for stem, record in run.evaluations.items()
    }


def evaluation_styles(runs: list[RunRecords], colours: dict[str, str]) -> dict[str, dict]:
    """Evaluation label -> {color, hatch, linestyle, marker}: the run's colour; a run's second,
    third ... record differs by hatch, line style and marker (``colours.variant_styles``)."""
    pairs = [(run, stem) for run in runs for stem in run.evaluations]
    styles = variant_styles([(run.name, stem) for run, stem in pairs], colours)
    return {_eval_label(run, stem): styles[(run.name, stem)] for run, stem in pairs}


def attack_figure(
    evaluations: dict[str, dict], styles: dict[str, dict] | None = None
) -> Figure | None:
    """Clean, per-attack and worst-case accuracy of each evaluation as grouped bars, each in
    its run's colour (``styles``: label -> colour and hatch, ``evaluation_styles``)."""
    if not evaluations:
        return None
    styles = styles or {}
    columns = ["clean"]
    for record in evaluations.values():
        columns += [e["label"] for e in record["attacks"] if e["label"] not in columns]
    columns.append("worst case")
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(columns) + 2), 3.8))
    width = 0.8 / len(evaluations)
    for i, (name, record) in enumerate(evaluations.items()):
        by_label = {"clean": record["clean_accuracy"], "worst case": record["robust_accuracy"]}
        by_label.update({e["label"]: e["accuracy"] for e in record["attacks"]})
        xs = [j + i * width for j in range(len(columns))]
        heights = [100 * by_label.get(c, float("nan")) for c in columns]
        # error bars: the 95 % Wilson interval over the test images (evaluation/intervals.py)
        bounds = [interval_of(record, c) if c in by_label else None for c in columns]
        # (clamped at 0: a hand-edited record may hold an accuracy outside its stored interval)
        below = [
            max(0.0, h - 100 * b[0]) if b else 0.0 for h, b in zip(heights, bounds, strict=True)
        ]
        above = [
            max(0.0, 100 * b[1] - h) if b else 0.0 for h, b in zip(heights, bounds, strict=True)
        ]
        style = styles.get(name, {})
        ax.bar(
            xs,
            heights,
            width=width,
            label=name,
            yerr=[below, above],
            capsize=2,
            color=style.get("color"),
            hatch=style.get("hatch") or None,
            edgecolor="white" if style.get("hatch") else None,
        )
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(columns))], columns)
    ax.set(
        ylabel="accuracy (%)",
        ylim=(0, 100),
        title="clean, per-attack and worst-case accuracy (bars: 95 % Wilson interval)",
    )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside, not on, bars
    return Figure("attacks.png", "Accuracy under each attack", H.figure_png(fig))


def curve_figure(
    evaluations: dict[str, dict], scratch: Path, styles: dict[str, dict] | None = None
) -> Figure | None:
    from rlrobust.reporting.plots import plot_eps_curves

    curves = {name: r["curve"] for name, r in evaluations.items() if r.get("curve")}
    if not curves:
        return None
    path = plot_eps_curves(curves, scratch / "eps-curve.png", styles)
    return Figure("eps-curve.png", "Robust accuracy against eps", path.read_bytes())


def diagnostics_figures(
    runs: list[RunRecords], scratch: Path, colours: dict[str, str] | None = None
) -> list[Figure]:
    """Re-drawn from diagnostics.json with the same code as ``rlrobust diagnose``, each run's
    lines in its report colour."""
    from rlrobust.diagnostics.analysis import plot_analysis

    records = {run.name: run.diagnostics for run in runs if run.diagnostics}
    if not records:
        return []
    folder = scratch / "diagnostics"
    folder.mkdir()
    colours = colours or run_colours([run.name for run in runs])
    return [
        Figure(
            f"diagnostics-{path.name}",
            f"Diagnostics: {path.stem.replace('-', ' ')}",
            path.read_bytes(),
        )
        for path in plot_analysis(records, folder, colours=colours)
    ]


# ---------------------------------------------------------------- page parts


def rlab_rows(runs: list[RunRecords]) -> tuple[list[str], list[list[object]]]:
    """One row per RLAB record: success, queries, L2 and the masks' Dice with the foreground."""
    header = [
        "run",
        "record",
        "agent",
        "success %",
        "queries (mean / median)",
        "L2",
        "mask Dice: RLAB",
        "mask Dice: best saliency",
    ]
    rows = []
    for run in runs:
        for folder, record in run.rlab.items():
            m = record["rlab"]
            # Scores against the data's exact masks (clips), else against the foreground.
            masks = record.get("masks", {})
            scores = masks.get("vs_reference") or masks.get("vs_foreground", {})
            saliency = [
                v["dice_mean"] for k, v in scores.items() if k not in {"rlab", "random_patches"}
            ]
            q = m["queries_success"]
            rows.append(
                [
                    run.name,
                    folder,
                    record["agent"],
                    f"{100 * m['success_rate']:.1f}",
                    f"{q['mean']:.1f} / {q['median']:.0f}",
                    f"{m['l2']['mean']:.2f}",
                    f"{scores['rlab']['dice_mean']:.3f}" if "rlab" in scores else "-",
                    f"{max(saliency):.3f}" if saliency else "-",
                ]
            )
    return header, rows


def rlab_figures(runs: list[RunRecords]) -> list[Figure]:
    """The image grids (original | adversarial | mask) that ``rlrobust attack rlab`` drew."""
    figures = []
    for run in runs:
        for folder, record in run.rlab.items():
            grid = run.path / folder / record.get("grid", "grid.png")
            if record.get("grid") and grid.is_file():
                slug = f"{run.name}-{folder}".replace("/", "-")
                caption = f"RLAB on {run.name} ({folder}): original, adversarial, mask"
                figures.append(Figure(f"rlab-{slug}.png", caption, grid.read_bytes()))
    return figures


def _masking_records(runs: list[RunRecords]) -> dict[str, dict]:
    """Every masking verdict found: from evaluations (--eval.masking) and from diagnostics."""
    found = {}
    for run in runs:
        for stem, record in run.evaluations.items():
            if record.get("masking"):
                found[_eval_label(run, stem)] = record["masking"]
        if run.diagnostics and run.diagnostics.get("masking"):
            found[f"{run.name} (diagnostics)"] = run.diagnostics["masking"]
    return found


def _run_rows(runs: list[RunRecords]) -> tuple[list[str], list[list[object]]]:
    header = ["run", "data", "model", "objective", "epochs", "finished", "final held-out acc (%)"]
    rows = []
    for run in runs:
        cfg = run.config
        last = run.metrics[-1] if run.metrics else {}
        acc = next((last[k] for k in HELDOUT_KEYS if k in last), None)
        rows.append(
            [
                run.name,
                cfg.get("data", {}).get("name", "-"),
                cfg.get("model", {}).get("name", "-"),
                cfg.get("objective", {}).get("name", "-"),
                run.state.get("epoch", len(run.metrics)),
                run.state.get("finished", "-"),
                "-" if acc is None else f"{100 * acc:.2f}",
            ]
        )
    return header, rows


def _summary_rows(summary) -> tuple[list[str], list[list[object]]] | None:
    """A sweep summary as a table when it is a list of flat dicts (or a dict of them)."""
    if isinstance(summary, dict):
        for key in ("runs", "rows", "results"):
            if isinstance(summary.get(key), list):
                summary = summary[key]
                break
        else:
            if summary and all(isinstance(v, dict) for v in summary.values()):
                summary = [{"run": k, **v} for k, v in summary.items()]
    if not isinstance(summary, list) or not all(isinstance(r, dict) for r in summary):
        return None
    header: list[str] = []
    for row in summary:
        header += [k for k in row if k not in header]

    def cell(value):
        if isinstance(value, float):
            return f"{value:.4g}"
        return json.dumps(value) if isinstance(value, (dict, list)) else value

    return header, [[cell(row.get(k, "")) for k in header] for row in summary]


def _sweep_summary_table(summary) -> str | None:
    """The table of a summary.json written by ``rlrobust sweep`` (mean ± std and the 95 % t
    interval over seeds per metric); None for any other summary."""
    if not is_sweep_summary(summary):
        return None
    from rlrobust.experiments.sweep import summary_table

    return summary_table(summary)


def _md_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _md_to_html_table(markdown: str) -> str:
    """The evaluation module's markdown table re-used as HTML (one source for the numbers)."""
    lines = [line.strip().strip("|").split("|") for line in markdown.splitlines()]
    header = [c.strip() for c in lines[0]]
    return H.table(header, [[c.strip() for c in line] for line in lines[2:]])


#: the files a report generates in its folder: refused without --overwrite, removed with it.
REPORT_OUTPUTS = ("report.html", "report.md", "figures/*.png")


def build_report(
    paths: list[str | Path], out: str | Path, title: str | None = None, overwrite: bool = False
) -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` and ``figures/`` into ``out``; returns their paths.

    An earlier report in ``out`` is refused (``OutputExistsError``) unless ``overwrite``; then
    its files are removed once the new report is ready, so no stale figure survives.
    """
    out = Path(out)
    stale = claim_outputs(out, REPORT_OUTPUTS, overwrite, "report")  # before any work
    runs, summaries = collect(paths)
    colours = run_colours([run.name for run in runs])
    styles = evaluation_styles(runs, colours)
    title = title or "rlrobust report: " + ", ".join(run.name for run in runs[:4]) + (
        " ..." if len(runs) > 4 else ""
    )
    evaluations = all_evaluations(runs)
    html_parts: list[str] = []
    md_parts: list[str] = [f"# {title}", ""]
    figures: list[Figure] = []

    def section(heading: str) -> None:
        html_parts.append(f"<h2>{H.esc(heading)}</h2>")
        md_parts.extend([f"## {heading}", ""])

    def add_figure(figure: Figure | None) -> None:
        if figure is None:
            return
        figures.append(figure)
        html_parts.append(H.img_figure(figure.png, figure.caption))
        md_parts.extend([f"![{figure.caption}](figures/{figure.filename})", ""])

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        section("Runs")
        header, rows = _run_rows(runs)
        html_parts.append(H.table(header, rows))
        md_parts.extend([_md_table(header, rows), ""])
        for name, summary in summaries.items():
            section(f"Sweep summary: {name}")
            seed_table = _sweep_summary_table(summary)
            as_rows = _summary_rows(summary)
            if seed_table is not None:  # `rlrobust sweep`'s own summary: mean ± std [t interval]
                from rlrobust.experiments.sweep import SEED_NOTE

                html_parts.append(_md_to_html_table(seed_table))
                html_parts.append(f'<p class="muted">{H.esc(SEED_NOTE)}</p>')
                md_parts.extend([SEED_NOTE, "", seed_table, ""])
                heatmap = heatmap_png(summary)
                if heatmap is not None:
                    slug = name.replace("/", "-")
                    caption = f"Sweep {name}: mean over seeds per grid point and metric"
                    add_figure(Figure(f"sweep-{slug}-heatmap.png", caption, heatmap))
            else:  # any other summary: a table of its rows, or of its leaf values
                rows = as_rows or (["key", "value"], flat_rows(summary))
                html_parts.append(H.table(*rows))
                md_parts.extend([_md_table(*rows), ""])

        section("Training")
        add_figure(training_figure(runs, colours))
        if not any(run.metrics for run in runs):
            html_parts.append('<p class="muted">no metrics.csv found</p>')
            md_parts.extend(["No metrics.csv found.", ""])

        section("Robustness")
        if evaluations:
            table_md = markdown_table(evaluations)
            html_parts.append(_md_to_html_table(table_md))
            html_parts.append(f'<p class="muted">{H.esc(INTERVAL_NOTE)}</p>')
            md_parts.extend([INTERVAL_NOTE, "", table_md, ""])
            add_figure(attack_figure(evaluations, styles))
            add_figure(curve_figure(evaluations, scratch, styles))
            seeds_md = across_seeds_table(runs)
            if seeds_md is not None:
                section("Across seeds")
                html_parts.append(_md_to_html_table(seeds_md))
                html_parts.append(f'<p class="muted">{H.esc(ACROSS_SEEDS_NOTE)}</p>')
                md_parts.extend([ACROSS_SEEDS_NOTE, "", seeds_md, ""])
        else:
            html_parts.append(
                '<p class="muted">no evaluation record found (run `rlrobust evaluate RUN`)</p>'
            )
            md_parts.extend(["No evaluation record found.", ""])

        masking = _masking_records(runs)
        if masking:
            section("Gradient-masking verdicts")
            for name, record in masking.items():
                html_parts.append(
                    f'<p><b>{H.esc(name)}</b>: verdict <span class="verdict">'
                    f"{H.esc(record['verdict'])}</span></p>"
                )
                flags = record.get("flags", [])
                if flags:
                    html_parts.append(
                        "<ul>"
                        + "".join(
                            f'<li class="flag-{H.esc(f["severity"])}"><code>{H.esc(f["code"])}'
                            f"</code> ({H.esc(f['severity'])}): {H.esc(f['message'])}</li>"
                            for f in flags
                        )
                        + "</ul>"
                    )
                else:
                    html_parts.append('<p class="muted">no flag raised</p>')
                md_parts.extend([f"**{name}**", "", *masking_lines(record), ""])

        if any(run.rlab for run in runs):
            section("RLAB (query-only attack, localisation masks)")
            header, rows = rlab_rows(runs)
            html_parts.append(H.table(header, rows))
            md_parts.extend([_md_table(header, rows), ""])
            for figure in rlab_figures(runs):
                add_figure(figure)

        diag = diagnostics_figures(runs, scratch, colours)
        if diag:
            section("Diagnostics")
            for figure in diag:
                add_figure(figure)

        skipped = [f"{run.name}/{note}" for run in runs for note in run.skipped]
        if skipped:  # shown, never dropped silently
            section("Records not read")
            html_parts.append("<ul>" + "".join(f"<li>{H.esc(n)}</li>" for n in skipped) + "</ul>")
            md_parts.extend([*[f"- {n}" for n in skipped], ""])

    remove_outputs(stale)  # the earlier report's files, only now that the new one is ready
    html_path = atomic_write_text(out / "report.html", H.page(title, html_parts))
    for figure in figures:
        atomic_write_bytes(out / "figures" / figure.filename, figure.png)
    md_path = atomic_write_text(out / "report.md", "\n".join(md_parts))
    return {"html": html_path, "markdown": md_path}
