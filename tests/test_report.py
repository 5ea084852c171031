"""`rlrobust report`: a self-contained HTML page and markdown from run records only."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from rlrobust.cli import main
from rlrobust.config import load_config
from rlrobust.diagnostics.analysis import analyse, plot_analysis
from rlrobust.evaluation.report import write_evaluation
from rlrobust.evaluation.suite import run_suite
from rlrobust.files import atomic_write_json
from rlrobust.reporting.html import PNG_SIGNATURE, png_data_uri
from rlrobust.reporting.run_report import build_report, collect, read_metrics
from rlrobust.training.checkpoint import load_weights
from rlrobust.training.run import train_run
from rlrobust.training.setup import load_splits, model_for

# Tiny tensors: one torch thread avoids start-up and contention costs (see conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

CHROMIUM = Path("/usr/bin/chromium")
DATA_URI = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _run(root: Path, name: str, overrides: dict) -> Path:
    base = {
        "data.name": "digits",
        "data.train_subset": 200,
        "data.test_subset": 60,
        "data.batch_size": 50,
        "model.name": "mlp",
        "train.epochs": 2,
        "train.seed": 1,
        "optim.lr": 0.05,
        "eval.attacks": "[]",
    }
    cfg = load_config(overrides={**base, **overrides})
    run_dir = root / name
    train_run(cfg, run_dir, log=lambda *_: None)
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs: a two-stage policy run (switch after epoch 1) with an evaluation carrying an eps
    curve and a masking verdict plus diagnostics; and a plain cross-entropy run."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    policy = _run(
        root,
        "policy",
        {
            "objective.name": "kim_policy",
            "objective.options": '{"lam": 1.5, "action": "sample"}',
            "two_stage.enabled": "true",
            "two_stage.switch_accuracy": "1.0",  # switch_epoch overrides the accuracy ...
            "two_stage.switch_epoch": "1",  # ... but after epoch 1
        },
    )
    ce = _run(root, "ce", {})
    cfg = load_config(
        overrides={
            "data.name": "digits",
            "data.train_subset": 200,
            "data.test_subset": 60,
            "model.name": "mlp",
        }
    )
    test = load_splits(cfg.data, 1).test
    for run_dir in (policy, ce):
        model = load_weights(model_for(cfg.model, test), run_dir / "model.safetensors")
        result = run_suite(
            model,
            test,
            attacks=[{"name": "fgsm", "settings": {"eps": 0.1}}],
            eps=0.1,
            eps_curve=[0.05, 0.1] if run_dir is policy else (),
            masking=run_dir is policy,
            batch_size=60,
        )
        write_evaluation(run_dir, "evaluation", result, cfg, title=run_dir.name)
    model = load_weights(model_for(cfg.model, test), policy / "model.safetensors")
    record = analyse(
        model, test.take(20, 0), eps=0.1, parts=["entropy", "landscape"], landscape_points=3
    )
    atomic_write_json(policy / "diagnostics.json", record)
    torch.set_num_threads(old)
    return {"policy": policy, "ce": ce, "diagnostics": record}


def expected_figures(runs, tmp_path) -> int:
    """training + attack bars + eps curve + one per diagnostics figure."""
    return 3 + len(plot_analysis({"policy": runs["diagnostics"]}, tmp_path / "ref"))


def test_html_embeds_every_plot_and_links_nothing_outside(runs, tmp_path):
    written = build_report([runs["policy"], runs["ce"]], tmp_path / "report")
    page = written["html"].read_text()
    uris = DATA_URI.findall(page)
    assert len(uris) == expected_figures(runs, tmp_path)
    assert len(uris) >= 5  # landscape 1-D/2-D/3-D and entropy come on top of the 3 base plots
    for uri in uris:
        assert base64.b64decode(uri).startswith(PNG_SIGNATURE)
    # No asset outside the file: every src is a data URI and there is no href at all.
    srcs = re.findall(r'\bsrc\s*=\s*"([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r"\bhref\s*=", page)
    assert "<link" not in page and "<script" not in page and "http" not in page
    # Both runs side by side, the masking verdict with its flags, the switch marked.
    assert page.count("<h2>") >= 4
    for name in ("policy", "ce", "Gradient-masking verdicts", "warm-up"):
        assert name in page
    verdict = json.loads((runs["policy"] / "evaluation.json").read_text())["masking"]["verdict"]
    assert verdict in page
    # Markdown twin: every figure it names exists.
    markdown = written["markdown"].read_text()
    names = re.findall(r"\]\((figures/[^)]+\.png)\)", markdown)
    assert len(names) == len(uris)
    for name in names:
        assert (tmp_path / "report" / name).read_bytes().startswith(PNG_SIGNATURE)


def test_numbers_come_from_the_records(runs, tmp_path):
    rows = read_metrics(runs["policy"] / "metrics.csv")
    assert [r["stage"] for r in rows] == ["warmup", "main"]
    record = json.loads((runs["ce"] / "evaluation.json").read_text())
    written = build_report([runs["ce"]], tmp_path / "r")
    page = written["html"].read_text()
    assert f"{100 * record['clean_accuracy']:.2f}" in page
    assert f"{100 * record['robust_accuracy']:.2f}" in page
    # The ce run's own final held-out accuracy appears in its runs table.
    final = read_metrics(runs["ce"] / "metrics.csv")[-1]["test_accuracy"]
    assert f"{100 * final:.2f}" in written["markdown"].read_text()


def test_sweep_folder_and_cli(runs, tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    for name in ("policy", "ce"):
        shutil.copytree(runs[name], sweep / name)
    atomic_write_json(sweep / "summary.json", [{"run": "ce", "lr": 0.05, "score": 0.123456}])
    found, summaries = collect([sweep])
    assert sorted(r.name for r in found) == ["sweep/ce", "sweep/policy"]
    assert summaries == {"sweep": [{"run": "ce", "lr": 0.05, "score": 0.123456}]}
    assert main(["report", str(sweep), "--out", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Sweep summary: sweep" in page and "0.1235" in page
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "o2")]) == 2


def test_png_data_uri_refuses_non_png():
    with pytest.raises(ValueError, match="not PNG"):
        png_data_uri(b"GIF89a")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (headless render)")
def test_page_renders_in_headless_chromium(runs, tmp_path):
    import matplotlib.image

    written = build_report([runs["policy"], runs["ce"]], tmp_path / "report")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            written["html"].resolve().as_uri(),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    assert shot.read_bytes().startswith(PNG_SIGNATURE)
    pixels = np.asarray(matplotlib.image.imread(shot), dtype=np.float64)
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    # A blank (all-white) page has zero variance; text, tables and plots give far more.
    assert pixels[..., :3].var() > 1e-3


def test_rlab_records_and_grids_are_in_the_report(runs, tmp_path):
    import shutil

    from rlrobust.cli import main

    run = tmp_path / "ce-with-rlab"
    shutil.copytree(runs["ce"], run)
    argv = ["attack", "rlab", str(run), "--n-examples", "12", "--patch-size", "2"]
    assert main([*argv, "--budget", "150", "--quiet"]) == 0  # writes RUN/rlab-greedy
    record = json.loads((run / "rlab-greedy" / "rlab.json").read_text())
    written = build_report([run], tmp_path / "report")
    page = written["html"].read_text()
    assert "RLAB (query-only attack, localisation masks)" in page
    assert f"{100 * record['rlab']['success_rate']:.1f}" in page
    grid = base64.b64encode((run / "rlab-greedy" / "grid.png").read_bytes()).decode()
    assert grid in DATA_URI.findall(page)
    markdown = written["markdown"].read_text()
    assert "figures/rlab-ce-with-rlab-rlab-greedy.png" in markdown


# --- uncertainty: Wilson intervals per accuracy, t intervals across seeds ----------------------


def test_every_accuracy_of_a_record_carries_its_wilson_interval(tmp_path):
    from scipy import stats as sps

    from rlrobust.evaluation.report import markdown_table
    from rlrobust.models import build_model

    data = load_splits(load_config(overrides={"data.name": "digits"}).data, 0).test.take(70, 0)
    torch.manual_seed(0)
    model = build_model(
        "mlp", num_classes=10, in_channels=1, image_size=8, mean=data.mean, std=data.std
    )
    attacks = [{"name": "fgsm", "settings": {"eps": e}} for e in (0.05, 0.2)]
    record = run_suite(model, data, attacks=attacks)["evaluation"]
    flags = record["per_sample"]

    def wilson(key):
        ci = sps.binomtest(sum(flags[key]), len(flags[key])).proportion_ci(method="wilson")
        return pytest.approx([ci.low, ci.high], abs=1e-12)

    assert record["clean_accuracy_interval"] == wilson("clean_correct")
    assert record["robust_accuracy_interval"] == wilson("robust")
    for entry in record["attacks"]:
        assert entry["accuracy_interval"] == wilson(entry["label"])
    assert record["interval_level"] == 0.95 and record["interval_method"] == "wilson"
    # The table shows every interval; an old record without the keys gets them computed.
    table = markdown_table({"mlp": record})
    low, high = record["attacks"][1]["accuracy_interval"]
    assert (
        f"{100 * record['attacks'][1]['accuracy']:.2f} [{100 * low:.1f}, {100 * high:.1f}]" in table
    )
    old = {k: v for k, v in record.items() if not k.endswith("_interval") and k != "per_sample"}
    old["attacks"] = [
        {k: v for k, v in e.items() if k != "accuracy_interval"} for e in old["attacks"]
    ]
    assert markdown_table({"mlp": old}) == table
    cfg = load_config(overrides={"data.name": "digits", "model.name": "mlp"})
    write_evaluation(tmp_path, "evaluation", {"evaluation": record}, cfg, title="mlp")
    assert table in (tmp_path / "evaluation.md").read_text()
    assert "95 % Wilson interval" in (tmp_path / "evaluation.md").read_text()


def _planted_sweep(root: Path, per_group: dict[float, list[float]]):
    from rlrobust.experiments.sweep import SweepPoint, aggregate, slug_for

    points = []
    for lr, cleans in per_group.items():
        for seed, clean in enumerate(cleans):
            values = {"optim.lr": lr}
            point = SweepPoint(slug_for(None, values, seed), None, values, seed, {})
            record = {
                "n_examples": 100,
                "clean_accuracy": clean,
                "robust_accuracy": clean / 2,
                "attacks": [{"label": "fgsm", "accuracy": clean / 2}],
            }
            atomic_write_json(root / "runs" / point.slug / "evaluation.json", record)
            points.append(point)
    return aggregate(root, points)


def test_sweep_summary_shows_mean_std_and_t_interval_never_a_bare_mean(tmp_path):
    from scipy import stats as sps

    from rlrobust.experiments.sweep import summary_table, write_summary

    summary = _planted_sweep(tmp_path, {0.1: [0.90, 0.93, 0.95], 0.2: [0.80]})
    three, one = summary["groups"]
    values = np.array([90.0, 93.0, 95.0])
    ref = sps.t.interval(0.95, 2, loc=values.mean(), scale=values.std(ddof=1) / np.sqrt(3))
    assert three["metrics"]["clean"]["interval"] == pytest.approx(list(ref), rel=1e-10)
    assert one["metrics"]["clean"]["interval"] is None
    table = summary_table(summary)
    cell = f"{values.mean():.2f} ± {values.std(ddof=1):.2f} [{ref[0]:.2f}, {ref[1]:.2f}]"
    assert cell in table
    assert "80.00 (1 seed: no std, no interval)" in table
    for line in table.splitlines()[2:]:  # no metric cell holds a bare mean
        cells = [c.strip() for c in line.strip("|").split("|")][2:]  # after optim.lr, seeds
        assert len(cells) == 3 and all("±" in c or "1 seed" in c for c in cells)
    write_summary(tmp_path, summary)
    assert "Student-t interval" in (tmp_path / "summary.md").read_text()
    # `rlrobust report` on the sweep folder renders the same table, not raw JSON.
    written = build_report([tmp_path], tmp_path / "report")
    assert cell in written["markdown"].read_text()
    assert cell in written["html"].read_text()


def test_report_summarises_runs_that_differ_only_by_seed(runs, tmp_path):
    from scipy import stats as sps

    accuracies = {0: 0.5, 1: 0.6, 2: 0.8}
    copies = []
    for seed, clean in accuracies.items():
        run = tmp_path / f"ce-s{seed}"
        shutil.copytree(runs["ce"], run)
        config = json.loads((run / "config.json").read_text())
        config["train"]["seed"] = seed
        (run / "config.json").write_text(json.dumps(config))
        record = json.loads((run / "evaluation.json").read_text())
        record["clean_accuracy"] = clean
        record.pop("clean_accuracy_interval")  # recomputed from the planted accuracy
        (run / "evaluation.json").write_text(json.dumps(record))
        copies.append(run)
    written = build_report([*copies, runs["policy"]], tmp_path / "report")
    markdown = written["markdown"].read_text()
    assert "## Across seeds" in markdown and "Student-t interval" in markdown
    values = 100 * np.array(list(accuracies.values()))
    ref = sps.t.interval(0.95, 2, loc=values.mean(), scale=values.std(ddof=1) / np.sqrt(3))
    cell = f"{values.mean():.2f} ± {values.std(ddof=1):.2f} [{ref[0]:.2f}, {ref[1]:.2f}]"
    row = next(line for line in markdown.splitlines() if line.startswith("| ce-s0, ce-s1, ce-s2"))
    assert cell in row and "policy" not in row
    assert cell in written["html"].read_text()


def test_eps_curve_table_shows_wilson_intervals():
    from scipy import stats as sps

    from rlrobust.evaluation.report import curve_lines

    curve = {
        "attack": "pgd",
        "norm": "linf",
        "n_examples": 60,
        "points": [{"eps": 0.1, "accuracy": 27 / 60}, {"eps": 0.3, "accuracy": 0.0}],
    }
    lines = curve_lines(curve)
    ci = sps.binomtest(27, 60).proportion_ci(method="wilson")
    assert f"| 0.1 | 45.00 | [{100 * ci.low:.1f}, {100 * ci.high:.1f}] |" in lines
    upper = sps.binomtest(0, 60).proportion_ci(method="wilson").high
    assert f"| 0.3 | 0.00 | [0.0, {100 * upper:.1f}] |" in lines


def test_records_of_evaluate_name_reach_the_report(runs, tmp_path):
    """`rlrobust evaluate RUN --name NAME` writes NAME.json; the report shows it as `RUN (NAME)`
    beside the default record, with its own attacks and numbers."""
    run = tmp_path / "ce"
    shutil.copytree(runs["ce"], run)
    attacks = '[{"name": "pgd", "settings": {"eps": 0.1, "steps": 3}}]'
    argv = ["evaluate", str(run), "--name", "standard", "--eval.attacks", attacks]
    assert main([*argv, "--eval.n_examples", "30", "--quiet"]) == 0
    record = json.loads((run / "standard.json").read_text())
    written = build_report([run], tmp_path / "report")
    page, markdown = written["html"].read_text(), written["markdown"].read_text()
    html_row = next(row for row in page.split("<tr>") if "<td>ce (standard)</td>" in row)
    md_row = next(line for line in markdown.splitlines() if line.startswith("| ce (standard) |"))
    for row in (html_row, md_row):
        assert f"{100 * record['attacks'][0]['accuracy']:.2f}" in row
    for text in (page, markdown):
        assert "ce (standard-per-sample)" not in text
    assert record["attacks"][0]["label"] in markdown


def test_evaluate_overwrite_leaves_no_stale_curve(runs, tmp_path, capsys):
    """The overwrite rule of `rlrobust evaluate --overwrite`: the earlier NAME-curve.png goes
    when the new evaluation draws no curve."""
    run = tmp_path / "ce"
    shutil.copytree(runs["ce"], run)
    argv = ["evaluate", str(run), "--name", "c", "--eval.attacks", "[]", "--quiet"]
    argv += ["--eval.n_examples", "20"]
    assert main([*argv, "--eval.eps_curve", "[0.05, 0.1]"]) == 0
    assert (run / "c-curve.png").is_file()
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert not (run / "c-curve.png").exists()
    assert "curve" not in json.loads((run / "c.json").read_text())
