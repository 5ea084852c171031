"""The Ray backend of sweeps, on a local 2-CPU Ray instance: same results as the local backend."""

from __future__ import annotations

import json

import ray  # a dev dependency: the test fails, never skips, where it is missing

from rlrobust.config import load_config
from rlrobust.experiments.sweep import SweepSpec, run_sweep


def spec() -> SweepSpec:
    base = load_config(
        overrides={
            "data.name": "digits",
            "data.train_subset": 128,
            "model.name": "mlp",
            "train.epochs": 1,
            "train.device": "cpu",
            "eval.attacks": [{"name": "fgsm", "settings": {"eps": 0.1}}],
            "eval.n_examples": 64,
        }
    ).to_dict()
    return SweepSpec(base=base, grid={"optim.lr": [0.05, 0.1]}, seeds=[0], evaluate=True)


def test_ray_backend_matches_the_local_backend_and_resumes(tmp_path):
    messages: list[str] = []
    by_ray = run_sweep(spec(), tmp_path / "ray", jobs=2, backend="ray", log=messages.append)
    local = run_sweep(spec(), tmp_path / "local", jobs=1, log=lambda *_: None)
    manifest = json.loads((tmp_path / "ray" / "sweep.json").read_text())
    assert {p["status"] for p in manifest["points"].values()} == {"finished"}
    assert [g["metrics"] for g in by_ray["groups"]] == [g["metrics"] for g in local["groups"]]
    assert not ray.is_initialized()  # the instance the sweep started is shut down again
    again: list[str] = []
    run_sweep(spec(), tmp_path / "ray", jobs=2, backend="ray", log=again.append)
    assert any("2 already finished, 0 to run" in line for line in again)
