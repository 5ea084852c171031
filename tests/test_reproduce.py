"""Reproduction presets at smoke scale: our numbers beside the paper's, with the differences."""

from __future__ import annotations

import copy
import json

import pytest

from rlrobust.cli import main
from rlrobust.config import RunConfig
from rlrobust.errors import UnknownNameError
from rlrobust.experiments.presets import (
    PRESETS,
    SCALES,
    build_plan,
    differences,
    get_preset,
    resolve,
)
from rlrobust.experiments.presets.resolve import (
    NO_SUCH_FIELD,
    NOT_IN_PROTOCOL,
    config_fields,
    diff_flat,
    flatten_run,
)
from rlrobust.experiments.reproduce import reproduce
from rlrobust.stats import format_seed_summary

# Tiny tensors: one torch thread avoids start-up and contention costs (see conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_smoke_scale_reports_ours_beside_the_paper(tmp_path, name):
    preset = get_preset(name)
    record = reproduce(name, "smoke", tmp_path, log=lambda *_: None)
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert {p["status"] for p in manifest["points"].values()} == {"finished"}
    rows = record["comparison"]
    paired = [r for r in rows if r["paper"] is not None and r["ours_mean"] is not None]
    report = (tmp_path / "reproduce.md").read_text()
    if preset.references:
        assert paired, "at least one of the paper's numbers has ours beside it"
    else:
        assert "no published numbers" in report and rows
    values = {r.value for r in preset.references}
    assert {r["paper"] for r in rows if r["paper"] is not None} <= values
    for row in paired:
        # mean ± std [interval] over seeds, or the mean marked "1 seed": never a bare mean
        ours = format_seed_summary(
            {
                "mean": row["ours_mean"],
                "std": row["ours_std"],
                "interval": row["ours_interval"],
                "n": row["n_seeds"],
            }
        )
        assert ours in report and ("[" in ours or "1 seed" in ours)
        assert f"{row['paper']:.2f}" in report
    lines = record["difference_lines"]
    assert record["differences"] and all(line in report for line in lines)
    assert "smoke: data.name digits instead of" in report
    # every difference at smoke scale is explained by a named delta, none inherited silently
    for row in record["differences"]:
        assert not row["why"].startswith(("default inherited", "no delta")), row


def test_differences_name_each_protocol_change():
    lines = differences(get_preset("kim-mnist"), "smoke")
    assert any(line.startswith("smoke: data.name digits instead of mnist (") for line in lines)
    assert any(line.startswith("smoke: model.name mlp instead of lenet5 (") for line in lines)
    # CE trains 100 epochs and the policy 200 in the paper: each arm's own difference
    assert any(line.startswith("smoke: train.epochs [CE] 2 instead of 100 (") for line in lines)
    assert any(
        line.startswith("smoke: train.epochs [policy (Eq. 12 warm-up + Eq. 4)] 2 instead of 200")
        for line in lines
    )
    grids = {s: build_plan(get_preset("kim-lambda"), s).spec.grid for s in SCALES}
    assert len(grids["paper"]["objective.options.lam"]) == 7
    assert grids["laptop"]["objective.options.lam"] == [0.25, 0.75, 1.5]
    assert len(grids["smoke"]["objective.options.lam"]) == 2
    with pytest.raises(UnknownNameError, match="kim-mnist"):
        get_preset("kim")
    with pytest.raises(UnknownNameError, match="smoke"):
        differences(get_preset("zou"), "huge")


def test_cli_reproduce_and_lambda_heatmap(tmp_path, capsys):
    code = main(["reproduce", "kim-lambda", "--scale", "smoke", "--out", str(tmp_path), "--quiet"])
    assert code == 0
    assert list(tmp_path.glob("heatmap-*.png"))
    assert "heatmap-" in (tmp_path / "reproduce.md").read_text()


def test_cli_sweep_with_grid_and_seeds(tmp_path):
    code = main(
        [
            "sweep",
            "--data.name",
            "digits",
            "--data.train_subset",
            "128",
            "--model.name",
            "mlp",
            "--train.epochs",
            "1",
            "--train.device",
            "cpu",
            "--grid",
            "optim.lr=[0.05, 0.1]",
            "--seeds",
            "0",
            "--jobs",
            "1",
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert code == 0
    manifest = json.loads((tmp_path / "sweep.json").read_text())
    assert sorted(manifest["points"]) == ["lr-0.05__s0", "lr-0.1__s0"]
    assert (tmp_path / "summary.md").is_file()


# --- the plan: the paper's protocol as data, the differences computed -----------------------------


def _rows(plan, field):
    return [row for row in plan.differences if row["field"] == field]


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_plan_json_for_every_preset_and_scale(name, scale):
    plan = build_plan(get_preset(name), scale)
    data = json.loads(json.dumps(plan.to_json()))
    assert {"preset", "scale", "runs", "references", "differences"} <= set(data)
    assert (data["preset"], data["scale"]) == (name, scale)
    config_keys = set(RunConfig().to_dict())  # the sections of a run's config.json
    assert data["runs"] and all(set(run["config"]) == config_keys for run in data["runs"])
    assert all({"variant", "seed", "config"} <= set(run) for run in data["runs"])
    assert all({"variant", "metric", "value", "source"} <= set(r) for r in data["references"])
    for row in data["differences"]:
        assert {"field", "paper", "ours", "why"} <= set(row)
        # nothing inherited silently: each difference names the delta or the missing feature
        assert row["why"] and not row["why"].startswith(("default inherited", "no delta")), row
    if scale == "paper":
        # the paper's protocol, apart from deltas that say why they cannot be avoided
        assert all(row["why"] for row in data["differences"])
        if name != "rlab":
            assert data["differences"] == [], data["differences"]
    else:
        assert data["differences"]


def test_a_planted_silent_default_is_listed():
    """A protocol that forgets a field inherits the config default: the diff must list it."""
    preset = copy.deepcopy(get_preset("kim-mnist"))
    assert build_plan(preset, "paper").differences == []
    del preset.protocol["optim.momentum"]  # the config default is 0.9; Kim uses none
    rows = _rows(build_plan(preset, "paper"), "optim.momentum")
    assert rows and rows[0]["paper"] == NOT_IN_PROTOCOL and rows[0]["ours"] == 0.9
    assert rows[0]["why"].startswith("default inherited silently")
    # a planted default in the paper's own value: the run keeps 5e-4, the paper says 0
    paper = {"optim.name": "sgd", "optim.weight_decay": 0.0, "data.name": "mnist"}
    ours = {"optim.name": "sgd", "optim.weight_decay": 5e-4, "data.name": "mnist"}
    known = set(config_fields())
    (row,) = diff_flat(paper, ours, {}, known)
    assert (row["field"], row["paper"], row["ours"]) == ("optim.weight_decay", 0.0, 5e-4)
    assert "silent" in row["why"]
    # a default of an attack constructor the protocol leaves out is caught too
    paper_attacks = {"eval.attacks.pgd": {"name": "pgd", "eps": 0.1, "steps": 40}}
    ours_attacks = flatten_run(
        {"eval": {"attacks": [{"name": "pgd", "settings": {"eps": 0.1, "steps": 40}}]}}
    )
    rows = [
        r
        for r in diff_flat({**ours_attacks, **paper_attacks}, ours_attacks, {}, known)
        if r["field"].startswith("eval.attacks.pgd.")
    ]
    assert {r["field"] for r in rows} >= {
        "eval.attacks.pgd.random_start",
        "eval.attacks.pgd.step_size",
    }


def test_gupta_protocol_rows_and_optimiser():
    preset = get_preset("gupta-fgsm-at")
    refs = {(r.variant, r.metric): r.value for r in preset.references}
    assert refs[("CE (220th epoch)", "clean")] == 59.12
    assert refs[("CE (220th epoch)", "autoattack")] == 17.95
    assert refs[("CE (best FGSM checkpoint)", "autoattack")] == 26.36
    assert refs[("RL", "autoattack")] == 30.41
    runs = {p.variant: p.config for p in build_plan(preset, "paper").points}
    assert runs["CE (220th epoch)"]["train"]["select_checkpoint"] == "last"
    for arm in ("CE (best FGSM checkpoint)", "RL"):
        assert runs[arm]["train"]["select_checkpoint"] == "best_fgsm_test"
        assert runs[arm]["train"]["checkpoint_every"] == 20
    for cfg in runs.values():
        optim = cfg["optim"]
        assert cfg["train"]["epochs"] == 220
        assert (optim["name"], optim["lr"], optim["alpha"]) == ("rmsprop_keras", 1e-4, 0.9)
        assert (optim["keras_decay"], optim["weight_decay"]) == (1e-6, 0.0)


def test_a_missing_feature_falls_back_and_is_reported(monkeypatch):
    """Without Keras' RMSprop (an older rlrobust), Gupta's plan says so instead of hiding it."""
    fields = [f for f in config_fields() if f not in {"optim.keras_decay", "optim.alpha"}]
    monkeypatch.setattr(resolve, "config_fields", lambda: fields)
    plan = build_plan(get_preset("gupta-fgsm-at"), "paper")
    (name,) = _rows(plan, "optim.name")
    assert (name["paper"], name["ours"]) == ("rmsprop_keras", "rmsprop")
    assert "lacks optim.keras_decay" in name["why"]
    (decay,) = _rows(plan, "optim.keras_decay")
    assert (decay["paper"], decay["ours"]) == (1e-6, NO_SUCH_FIELD)


def test_kim_paper_protocols_follow_the_text():
    for name in ("kim-mnist", "kim-lambda", "kim-cifar", "kim-cifar-lambda"):
        for point in build_plan(get_preset(name), "paper").points:
            optim = point.config["optim"]
            assert (optim["momentum"], optim["weight_decay"]) == (0.0, 0.0)  # plain SGD
            assert optim["milestones"] == [50, 150]
    runs = {n: get_preset(n).protocol["runs"].value for n in ("kim-lambda", "kim-cifar-lambda")}
    assert runs == {"kim-lambda": 3, "kim-cifar-lambda": 5}  # Table 2: 3 runs, Table 1: 5
    ablation = {p.variant: p.config for p in build_plan(get_preset("kim-cifar"), "paper").points}
    for arm in ("CE warm-up + Eq. 4", "Eq. 4 only"):
        assert ablation[arm]["objective"]["options"]["lam"] == 1.0  # Table 4's lambda2
    assert ablation["Eq. 4 only"]["two_stage"]["enabled"] is False
    assert ablation["policy (Eq. 12 warm-up + Eq. 4)"]["model"]["name"] == "vgg13"
    trades = build_plan(get_preset("kim-trades"), "paper").points[0].config
    pgd20 = next(a for a in trades["eval"]["attacks"] if a["name"] == "pgd")["settings"]
    assert (pgd20["steps"], pgd20["step_size"]) == (20, 0.003)  # Table 6's caption
    pc = get_preset("kim-pc").variants["PC loss (Li et al. 2020)"].entries()
    assert pc["objective.name"].value == "pc_loss"
    assert len(get_preset("kim-cifar-lambda").references) == 7 * 7 * 3


def test_sources_are_honest_about_what_they_are():
    assert "README" in get_preset("zou").source_note and "not" in get_preset("zou").source_note
    zou_attacks = {a["name"] for a in get_preset("zou").protocol["eval.attacks"].value}
    assert {"pgd", "autoattack", "square"} <= zou_attacks
    assert get_preset("zou").protocol["transfer.source_arm"].value == "SL"
    l2l = get_preset("l2l").protocol["model.name"]
    assert not l2l.stated and l2l.source.startswith("not stated")
    rlab = get_preset("rlab").protocol
    assert rlab["rlab.agent"].value == "learned" and rlab["rlab.max_steps"].value == 4000


def test_cli_plan_prints_json_and_words(capsys):
    assert main(["reproduce", "gupta-fgsm-at", "--scale", "paper", "--plan", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["differences"] == [] and len(data["runs"]) == 3
    assert main(["reproduce", "kim-cifar", "--scale", "laptop", "--plan"]) == 0
    text = capsys.readouterr().out
    assert "laptop: data.name fashion-mnist instead of cifar10" in text
    assert "Paper's numbers" in text
