"""Evaluation that shards: shards by hand, torchrun ranks and Ray tasks each compute part of the
(batch, attack) units, and the assembled record equals a single-process run's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from rlrobust.commands import main
from rlrobust.config import load_config
from rlrobust.errors import ConfigError
from rlrobust.evaluation.shards import in_shard, missing_shards, parse_shard
from rlrobust.training.run import train_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ATTACKS = json.dumps(
    [
        {"name": "fgsm", "settings": {"eps": 0.1}},
        {"name": "pgd", "settings": {"eps": 0.1, "steps": 5, "step_size": 0.03, "seed": 1}},
    ]
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards") / "run"
    cfg = load_config(
        overrides={
            "data.name": "digits",
            "data.train_subset": 300,
            "model.name": "mlp",
            "train.epochs": 3,
            "train.device": "cpu",
            "optim.lr": 0.05,
        }
    )
    train_run(cfg, folder, log=lambda *_: None)
    return folder


def options(name: str) -> list[str]:
    return [
        "--name",
        name,
        "--eval.attacks",
        ATTACKS,
        "--eval.n_examples",
        "70",
        "--data.eval_batch_size",
        "16",
        "--quiet",
    ]


def record(run_dir, name):
    whole = json.loads((run_dir / f"{name}.json").read_text())
    for entry in whole["attacks"]:
        entry.pop("seconds")
    whole.pop("model_source", None)
    return whole, json.loads((run_dir / f"{name}-per-sample.json").read_text())


def test_shard_arithmetic():
    assert parse_shard("1/3") == (1, 3) and parse_shard(" 0 / 1 ") == (0, 1)
    for bad in ("3/3", "1", "-1/2", "a/b", "0/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)
    batches = range(10)
    shards = [[b for b in batches if in_shard(b, (k, 3))] for k in range(3)]
    assert sorted(sum(shards, [])) == list(batches)  # a partition of the batches
    assert all(in_shard(b, None) for b in batches)


def test_shards_by_hand_assemble_to_the_single_process_record(run_dir):
    assert main(["evaluate", str(run_dir), *options("single")]) == 0
    state = run_dir / "byhand.partial"
    assert main(["evaluate", str(run_dir), *options("byhand"), "--shard", "1/3"]) == 0
    assert missing_shards(state, 3) == [0, 2] and not (run_dir / "byhand.json").exists()
    assert main(["evaluate", str(run_dir), *options("byhand"), "--shard", "0/3"]) == 0
    assert main(["evaluate", str(run_dir), *options("byhand"), "--shard", "2/3"]) == 0
    assert missing_shards(state, 3) == []
    assert main(["evaluate", str(run_dir), *options("byhand"), "--resume"]) == 0
    assert record(run_dir, "byhand") == record(run_dir, "single")
    assert not state.exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_torchrun_ranks_shard_and_rank_zero_assembles(run_dir):
    if not (run_dir / "single.json").exists():
        assert main(["evaluate", str(run_dir), *options("single")]) == 0
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}",
            "-m",
            "rlrobust",
            "evaluate",
            str(run_dir),
            *options("ranks"),
        ],
        env={**env, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert record(run_dir, "ranks") == record(run_dir, "single")


@pytest.mark.slow
def test_ray_tasks_shard_and_the_record_is_assembled_here(run_dir):
    import ray  # noqa: F401 - a dev dependency: the test fails, never skips, where it is missing
    if not (run_dir / "single.json").exists():
        assert main(["evaluate", str(run_dir), *options("single")]) == 0
    argv = ["evaluate", str(run_dir), *options("ray"), "--shards", "2", "--backend", "ray"]
    assert main(argv) == 0
    assert record(run_dir, "ray") == record(run_dir, "single")


def test_shard_options_that_cannot_work_are_refused(run_dir, capsys):
    base = ["evaluate", str(run_dir), *options("bad")]
    assert main([*base, "--shard", "0/2", "--shards", "2", "--backend", "ray"]) == 2
    assert main([*base, "--shards", "2"]) == 2
    assert "add --backend ray" in capsys.readouterr().err
