"""Sweeps: grid expansion and folder names, dotted option keys, resume, aggregates, heat map."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from rlrobust.config import RunConfig, load_config
from rlrobust.errors import ConfigError, RLRobustError
from rlrobust.experiments.sweep import (
    SweepPoint,
    SweepSpec,
    aggregate,
    expand_points,
    parse_grid,
    parse_seeds,
    plot_heatmap,
    run_sweep,
    set_option,
    slug_for,
)
from rlrobust.training.run import train_run

# Tiny tensors: one torch thread avoids start-up and contention costs (see conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {
    "data.name": "digits",
    "data.train_subset": 160,
    "data.batch_size": 64,
    "model.name": "mlp",
    "train.epochs": 2,
    "train.device": "cpu",
    "optim.lr": 0.05,
    "eval.n_examples": 32,
    "eval.attacks": [{"name": "fgsm", "settings": {"eps": 0.1}}],
}


def base() -> dict:
    return load_config(overrides=TINY).to_dict()


def test_grid_expansion_is_the_cartesian_product_times_seeds():
    grid = parse_grid(["optim.lr=[0.1, 0.01]", "objective.options.lam=[0.5, 1, 1.5]"])
    spec = SweepSpec(base=base(), grid=grid, seeds=[0, 1])
    points = expand_points(spec)
    assert len(points) == 2 * 3 * 2
    combos = {(p.values["optim.lr"], p.values["objective.options.lam"], p.seed) for p in points}
    assert len(combos) == 12
    first = points[0]
    assert first.slug == "lr-0.1__lam-0.5__s0"
    assert first.config["optim"]["lr"] == 0.1 and first.config["train"]["seed"] == 0
    assert first.group == "lr-0.1__lam-0.5"
    assert len({p.slug for p in points}) == 12


def test_slug_uses_full_keys_when_last_parts_clash_and_variants_lead():
    values = {"two_stage.warmup_options.lam": 0.75, "objective.options.lam": 1.5}
    assert slug_for(None, values, 2) == (
        "two_stage.warmup_options.lam-0.75__objective.options.lam-1.5__s2"
    )
    assert slug_for("CE warm-up + Eq. 4", {}, 0) == "CE-warm-up-+-Eq.-4__s0"


def test_dotted_option_keys_set_inside_the_dict_without_sharing():
    a, b = RunConfig(), RunConfig()
    set_option(a, "two_stage.warmup_options.lam", 0.25)
    set_option(a, "objective.options.nested.depth", 3)
    assert a.two_stage.warmup_options == {"lam": 0.25}
    assert a.objective.options == {"nested": {"depth": 3}}
    assert b.two_stage.warmup_options == {"lam": 0.75}  # the default is untouched
    set_option(a, "train.epochs", "4")  # plain keys still convert types
    assert a.train.epochs == 4
    with pytest.raises(ConfigError, match="goes too deep"):
        set_option(a, "train.epochs.x", 1)


def test_bad_grid_and_seed_options_name_the_fix():
    with pytest.raises(ConfigError, match="KEY=JSON_LIST"):
        parse_grid(["optim.lr"])
    with pytest.raises(ConfigError, match="not JSON"):
        parse_grid(["optim.lr=[0.1,"])
    with pytest.raises(ConfigError, match="seeds"):
        parse_seeds("0,a")
    assert parse_seeds("0, 1,2") == [0, 1, 2]


def test_resume_skips_finished_and_resumes_unfinished(tmp_path):
    spec = SweepSpec(base=base(), grid={"optim.lr": [0.05, 0.1]}, seeds=[0], evaluate=True)
    a, b = expand_points(spec)
    runs = tmp_path / "runs"
    # b was killed after epoch 1 of 2; a never started.
    cfg_b = load_config(overrides={**TINY, "optim.lr": 0.1})
    train_run(cfg_b, runs / b.slug, stop_after_epoch=1, log=lambda *_: None)
    assert not json.loads((runs / b.slug / "state.json").read_text())["finished"]
    run_sweep(spec, tmp_path, log=lambda *_: None)
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert {p["status"] for p in manifest["points"].values()} == {"finished"}
    state_b = json.loads((runs / b.slug / "state.json").read_text())
    assert state_b["finished"] and state_b["epoch"] == 2
    assert [row["epoch"] for row in state_b["metrics"]] == [1, 2]  # epoch 1 kept, not retrained
    watched = [
        runs / p.slug / name for p in (a, b) for name in ("model.safetensors", "evaluation.json")
    ]
    before = {path: path.stat().st_mtime_ns for path in watched}
    run_sweep(spec, tmp_path, log=lambda *_: None)  # everything finished: nothing retrained
    assert {path: path.stat().st_mtime_ns for path in watched} == before
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {"clean", "fgsm", "worst_case"} <= set(summary["metric_names"])


def test_a_different_spec_in_the_same_folder_is_refused(tmp_path):
    spec = SweepSpec(base=base(), grid={"optim.lr": [0.05]}, seeds=[0])
    run_sweep(spec, tmp_path, log=lambda *_: None)
    other = SweepSpec(base=base(), grid={"optim.lr": [0.2]}, seeds=[0])
    with pytest.raises(RLRobustError, match="different sweep"):
        run_sweep(other, tmp_path, log=lambda *_: None)


def test_more_seeds_extend_a_finished_sweep_and_fewer_are_refused(tmp_path):
    spec = SweepSpec(base=base(), grid={"optim.lr": [0.05]}, seeds=[0])
    run_sweep(spec, tmp_path, log=lambda *_: None)
    (first,) = expand_points(spec)
    weights = tmp_path / "runs" / first.slug / "model.safetensors"
    before = weights.stat().st_mtime_ns
    lines = []
    run_sweep(
        SweepSpec(base=base(), grid={"optim.lr": [0.05]}, seeds=[0, 1]), tmp_path, log=lines.append
    )
    assert "1 already finished, 1 to run" in lines[0]
    assert weights.stat().st_mtime_ns == before  # seed 0 kept, not retrained
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert manifest["spec"]["seeds"] == [0, 1] and len(manifest["points"]) == 2
    with pytest.raises(RLRobustError, match="different sweep"):  # dropping a seed is not adding
        run_sweep(SweepSpec(base=base(), grid={"optim.lr": [0.05]}, seeds=[1, 2]), tmp_path)


def plant(tmp_path, lam1: float, lam2: float, seed: int, clean: float, fgsm: float) -> SweepPoint:
    values = {"two_stage.warmup_options.lam": lam1, "objective.options.lam": lam2}
    point = SweepPoint(slug_for(None, values, seed), None, values, seed, {})
    record = {
        "clean_accuracy": clean,
        "robust_accuracy": fgsm,
        "attacks": [{"label": "fgsm", "accuracy": fgsm}],
    }
    path = tmp_path / "runs" / point.slug / "evaluation.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    return point


def test_aggregates_from_planted_records_and_heatmap(tmp_path):
    rng = np.random.default_rng(0)
    points, truth = [], {}
    for lam1 in (0.25, 0.75):
        for lam2 in (0.75, 1.5):
            cleans = rng.uniform(0.5, 1.0, 3)
            fgsms = rng.uniform(0.0, 0.5, 3)
            truth[(lam1, lam2)] = (100 * cleans, 100 * fgsms)
            points += [
                plant(tmp_path, lam1, lam2, s, c, f)
                for s, (c, f) in enumerate(zip(cleans, fgsms, strict=True))
            ]
    summary = aggregate(tmp_path, points)
    assert len(summary["groups"]) == 4
    for row in summary["groups"]:
        key = (
            row["values"]["two_stage.warmup_options.lam"],
            row["values"]["objective.options.lam"],
        )
        cleans, fgsms = truth[key]
        assert row["seeds"] == [0, 1, 2]
        assert math.isclose(row["metrics"]["clean"]["mean"], cleans.mean(), rel_tol=1e-12)
        assert math.isclose(row["metrics"]["clean"]["std"], cleans.std(ddof=1), rel_tol=1e-12)
        assert math.isclose(row["metrics"]["worst_case"]["std"], fgsms.std(ddof=1), rel_tol=1e-12)
        assert math.isclose(row["metrics"]["fgsm"]["mean"], fgsms.mean(), rel_tol=1e-12)
    png = plot_heatmap(summary, tmp_path / "heat.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        plot_heatmap({**summary, "grid_keys": summary["grid_keys"][:1]}, tmp_path / "x.png") is None
    )


def test_ray_backend_without_ray_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees where Ray is missing
    spec = SweepSpec(base=base(), grid={}, seeds=[0])
    with pytest.raises(RLRobustError, match=r"pip install 'rlrobust\[ray\]'"):
        run_sweep(spec, tmp_path, backend="ray", log=lambda *_: None)
    assert not (tmp_path / "sweep.json").exists()


def test_process_pool_with_spawn_runs_two_points(tmp_path):
    spec = SweepSpec(
        base=load_config(overrides={**TINY, "train.epochs": 1}).to_dict(), seeds=[0, 1]
    )
    summary = run_sweep(spec, tmp_path, jobs=2, log=lambda *_: None)
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert sorted(manifest["points"]) == ["s0", "s1"]
    assert {p["status"] for p in manifest["points"].values()} == {"finished"}
    assert summary["groups"][0]["seeds"] == [0, 1]
    assert "heldout" in summary["metric_names"]
    assert (tmp_path / "summary.md").read_text().count("±") >= 1
