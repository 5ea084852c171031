"""Reproduction presets at smoke scale: our numbers beside the paper's, with the differences."""

from __future__ import annotations

import json

import pytest

from rlrobust.cli import main
from rlrobust.errors import UnknownNameError
from rlrobust.experiments.presets import PRESETS, differences, get_preset
from rlrobust.experiments.reproduce import reproduce

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
        assert f"{row['ours_mean']:.2f} ± {row['ours_std']:.2f}" in report
        assert f"{row['paper']:.2f}" in report
    assert record["differences"] and all(line in report for line in record["differences"])
    assert "smoke: data digits" in report and "instead of" in report


def test_differences_name_each_protocol_change():
    lines = differences(get_preset("kim-mnist"), "smoke")
    assert "smoke: data digits (320 training images) instead of mnist" in lines
    assert "smoke: model mlp instead of lenet5" in lines
    assert any(
        line.startswith("smoke: epochs 2 instead of 100 (CE) / 200 (policy)") for line in lines
    )
    grid = get_preset("kim-lambda").scales
    assert len(grid["paper"].grid["objective.options.lam"]) == 7
    assert grid["laptop"].grid["objective.options.lam"] == [0.25, 0.75, 1.5]
    assert len(grid["smoke"].grid["objective.options.lam"]) == 2
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
