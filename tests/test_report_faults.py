"""`rlrobust report` fault catalogue, on planted records (no model is trained): earlier reports
are never overwritten silently and leave no stale figure; every evaluation record of a run is
shown whatever its name; each run keeps one colour in every panel; a sweep summary is a table
and a heat-map, never a JSON dump."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.figure
import numpy as np
import pytest
from matplotlib.colors import to_hex

from rlrobust.cli import main
from rlrobust.files import atomic_write_json
from rlrobust.outputs import OutputExistsError
from rlrobust.reporting.colours import run_colours
from rlrobust.reporting.run_report import build_report, collect
from rlrobust.reporting.sweep_section import heatmap_grid

FIGURE_REFS = re.compile(r"\]\((figures/[^)]+\.png)\)")


def evaluation(clean: float, attacks: dict[str, float], n: int = 100, **extra) -> dict:
    """An evaluation record as `rlrobust evaluate` writes it (the keys the report reads)."""
    entries = [{"label": label, "accuracy": acc} for label, acc in attacks.items()]
    worst = min([clean, *attacks.values()])
    return {
        "n_examples": n,
        "clean_accuracy": clean,
        "robust_accuracy": worst,
        "attacks": entries,
        **extra,
    }


def plant_run(root: Path, name: str, *, metrics=True, records=None, diagnostics=None) -> Path:
    run = root / name
    run.mkdir(parents=True)
    config = {"data": {"name": "digits"}, "model": {"name": "mlp"}, "objective": {"name": "ce"}}
    atomic_write_json(run / "config.json", config)
    if metrics:
        lines = ["epoch,stage,train_loss,test_accuracy", "1,main,1.0,0.5", "2,main,0.5,0.7"]
        (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    for stem, record in (records or {}).items():
        atomic_write_json(run / f"{stem}.json", record)
    if diagnostics is not None:
        atomic_write_json(run / "diagnostics.json", diagnostics)
    return run


CURVE = {
    "attack": "pgd",
    "norm": "linf",
    "n_examples": 100,
    "points": [{"eps": 0.05, "accuracy": 0.6}, {"eps": 0.1, "accuracy": 0.3}],
}


# ------------------------------------------------------------------ overwrite rule


def test_report_refuses_to_overwrite_and_removes_stale_figures(tmp_path, capsys):
    run = plant_run(
        tmp_path, "a", records={"evaluation": evaluation(0.9, {"fgsm": 0.4}, curve=CURVE)}
    )
    out = tmp_path / "report"
    assert main(["report", str(run), "--out", str(out), "--quiet"]) == 0
    assert (out / "figures" / "eps-curve.png").is_file()
    (out / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    # a second report into the same folder is refused; nothing there changes
    assert main(["report", str(run), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "report.html" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    with pytest.raises(OutputExistsError):
        build_report([run], out)
    # with --overwrite, a report without an eps curve leaves no eps-curve.png behind
    record = evaluation(0.9, {"fgsm": 0.4})
    atomic_write_json(run / "evaluation.json", record)
    assert main(["report", str(run), "--out", str(out), "--overwrite", "--quiet"]) == 0
    named = set(FIGURE_REFS.findall((out / "report.md").read_text()))
    on_disk = {f"figures/{p.name}" for p in (out / "figures").iterdir()}
    assert named == on_disk and "figures/eps-curve.png" not in on_disk
    assert (out / "notes.txt").read_text() == "mine"  # not a report file: kept


def test_compare_and_diagnose_refuse_to_overwrite(tmp_path, capsys):
    run = plant_run(tmp_path, "a")
    out = tmp_path / "diag"
    out.mkdir()
    (out / "diagnostics.json").write_text("{}")
    argv = ["diagnose", str(run), "--eps", "0.1", "--out", str(out), "--quiet"]
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    (run / "diagnostics.json").write_text("{}")  # an earlier run record is not clobbered either
    assert main([*argv[:-3], "--out", str(tmp_path / "new"), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    cmp_out = tmp_path / "cmp"
    cmp_out.mkdir()
    (cmp_out / "compare.md").write_text("old")
    assert main(["compare", str(run), str(run), "--out", str(cmp_out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (cmp_out / "compare.md").read_text() == "old"


# ------------------------------------------------------------------ every evaluation record


def test_every_evaluation_record_is_shown_by_its_name(tmp_path):
    standard = evaluation(
        0.91,
        {"autoattack": 0.123, "transfer(ce)": 0.456},
        masking={"verdict": "likely-masking", "flags": []},
    )
    run = plant_run(
        tmp_path,
        "ce",
        records={
            "evaluation": evaluation(0.9, {"fgsm": 0.5}),
            "standard": standard,
            # per-image flags and other JSON are not evaluation records
            "standard-per-sample": {"clean_correct": [True], "robust": [False]},
            "notes": {"clean_accuracy": "high"},
        },
    )
    (run / "broken.json").write_text('{"clean_accuracy": 0.')
    written = build_report([run], tmp_path / "report")
    page, markdown = written["html"].read_text(), written["markdown"].read_text()
    for text in (page, markdown):
        assert "ce (standard)" in text and "autoattack" in text and "transfer(ce)" in text
        assert "12.30" in text and "45.60" in text  # the standard record's own numbers
        assert "likely-masking" in text  # its masking verdict
        assert "per-sample" not in text and "ce (notes)" not in text
        assert "broken.json" in text  # shown as not read, never dropped silently


# ------------------------------------------------------------------ one colour per run


def test_each_run_keeps_one_colour_in_every_panel(tmp_path, monkeypatch):
    drawn = []
    original = matplotlib.figure.Figure.savefig

    def record(fig, *args, **kwargs):
        drawn.append(fig)
        return original(fig, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    landscape = {
        "landscape": {"weights_1d_cross_entropy": {"alphas": [-1, 0, 1], "loss": [2, 1, 3]}}
    }
    # "b" has no metrics and "a" no diagnostics: matplotlib's own cycle would give "c" another
    # colour in the training and landscape panels than in the bars
    runs = [
        plant_run(
            tmp_path, "a", records={"evaluation": evaluation(0.9, {"fgsm": 0.5}, curve=CURVE)}
        ),
        plant_run(
            tmp_path, "b", metrics=False, records={"evaluation": evaluation(0.8, {"fgsm": 0.2})}
        ),
        plant_run(
            tmp_path,
            "c",
            records={
                "evaluation": evaluation(0.7, {"fgsm": 0.3}, curve=CURVE),
                "standard": evaluation(0.7, {"autoattack": 0.1}),
            },
            diagnostics=landscape,
        ),
    ]
    build_report(runs, tmp_path / "report")
    colours = run_colours(["a", "b", "c"])
    seen: dict[str, set[str]] = {"a": set(), "b": set(), "c": set()}
    panels = 0
    for fig in drawn:
        for ax in fig.axes:
            artists = [(line.get_label(), line.get_color()) for line in ax.get_lines()]
            for container in ax.containers:
                if hasattr(container, "patches") and container.patches:
                    artists.append((container.get_label(), container.patches[0].get_facecolor()))
            named = [
                (label.split(" (")[0], c) for label, c in artists if label in seen or " (" in label
            ]
            panels += bool(named)
            for run, colour in named:
                seen[run].add(to_hex(colour))
    assert panels >= 4  # training (x2 panels), bars, eps curve, landscape
    assert seen == {name: {colours[name]} for name in seen}
    assert len(set(colours.values())) == 3


# ------------------------------------------------------------------ sweep: table and heat-map


def planted_sweep(root: Path) -> dict:
    from rlrobust.experiments.sweep import SweepPoint, aggregate, slug_for

    cleans = {(0.1, 1): [0.90, 0.94], (0.1, 2): [0.80], (0.2, 1): [0.70, 0.60], (0.2, 2): [0.5]}
    points = []
    for (lr, lam), values in cleans.items():
        for seed, clean in enumerate(values):
            grid = {"optim.lr": lr, "objective.options.lam": lam}
            point = SweepPoint(slug_for(None, grid, seed), None, grid, seed, {})
            run = root / "runs" / point.slug
            atomic_write_json(run / "config.json", {"train": {"seed": seed}})
            atomic_write_json(run / "evaluation.json", evaluation(clean, {"fgsm": clean / 2}))
            points.append(point)
    summary = aggregate(root, points)
    atomic_write_json(root / "summary.json", summary)
    return summary


def test_sweep_section_is_a_table_and_a_heatmap(tmp_path):
    sweep = tmp_path / "sweep"
    summary = planted_sweep(sweep)
    rows, columns, means, stds = heatmap_grid(summary, "clean")
    assert rows == ["optim.lr=0.1", "optim.lr=0.2"]
    assert columns == ["objective.options.lam=1", "objective.options.lam=2"]
    expected = np.array([[np.mean([90, 94]), 80], [np.mean([70, 60]), 50]])
    np.testing.assert_allclose(means, expected)
    np.testing.assert_allclose(stds[0, 0], np.std([90, 94], ddof=1))
    assert np.isnan(stds[0, 1])  # one seed: no std
    found, _ = collect([sweep])  # the runs under runs/, as `rlrobust sweep` writes them
    assert len(found) == 6
    written = build_report([sweep], tmp_path / "report")
    page, markdown = written["html"].read_text(), written["markdown"].read_text()
    assert "figures/sweep-sweep-heatmap.png" in markdown
    assert "Sweep sweep: mean over seeds" in page
    assert "<pre>" not in page and "```json" not in markdown


def test_any_other_summary_is_a_table_not_a_json_dump(tmp_path):
    sweep = tmp_path / "other"
    plant_run(sweep, "r1")
    atomic_write_json(sweep / "summary.json", {"best": {"lr": 0.1, "acc": 0.98765}, "n": 4})
    written = build_report([sweep], tmp_path / "report")
    page = written["html"].read_text()
    assert "<pre>" not in page and "```json" not in written["markdown"].read_text()
    assert "<td>best.lr</td><td>0.1</td>" in page and "<td>best.acc</td><td>0.9877</td>" in page
