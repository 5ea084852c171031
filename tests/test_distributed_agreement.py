"""Two gloo ranks on a CPU: decisions that change control flow are taken once, the L2L attacker
stays in sync, and each rank draws its own random numbers."""

from __future__ import annotations

import multiprocessing
import os
import socket

import pytest
import torch

from rlrobust.config import load_config
from rlrobust.training.distributed import RANK_STREAM_OFFSET, rank_stream

BASE = {
    "data.name": "digits",
    "data.train_subset": 160,
    "data.test_subset": 60,
    "data.batch_size": 40,
    "model.name": "mlp",
    "train.epochs": 2,
    "train.device": "cpu",
    "optim.lr": 0.05,
}
TWO_STAGE = {
    "objective.name": "kim_policy",
    "objective.options": {"lam": 1.5, "action": "greedy"},
    "two_stage.enabled": True,
    "two_stage.warmup_options": {"lam": 0.75},
    "two_stage.switch_accuracy": 0.8,
}
L2L = {"adversarial.method": "l2l", "adversarial.eps": 0.1, "train.epochs": 1}
# TRADES and RL-adv run two forward passes through the DDP-wrapped model before one backward.
# Their backward passes per example (tests/test_backward_passes.py): TRADES K + 2, RL-adv with
# FGSM 3; L2L (gradient variant) 3.
TWO_FORWARDS = {
    "trades": {"adversarial.method": "trades", "adversarial.eps": 0.1, "adversarial.steps": 2},
    "rl_adv": {
        "adversarial.method": "rl_adv",
        "adversarial.start_epoch": 0,
        "objective.name": "zou_pg",
    },
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank(rank: int, world: int, port: int, overrides: dict, run_dir: str, results) -> None:
    """One torchrun-like rank; rank 1 is told its held-out accuracy is 0.1, rank 0 0.9."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    from rlrobust.training import run as run_module

    run_module.accuracy = lambda *_args, **_kwargs: 0.9 if rank == 0 else 0.1
    if rank != 0:  # only rank 0 looks at the folder: another rank could see it half-written

        def never_here(*_args, **_kwargs):
            raise AssertionError(f"rank {rank} checked the run folder itself")

        run_module.check_run_dir = never_here
    captured = {}
    if "adversarial.method" in overrides:
        from rlrobust.training import l2l

        original = l2l.L2LStep.end_of_epoch

        def keep_attacker(self, *args, **kwargs):
            captured["attacker"] = [p.detach().clone() for p in self.attacker.parameters()]
            return original(self, *args, **kwargs)

        l2l.L2LStep.end_of_epoch = keep_attacker
    try:
        cfg = load_config(overrides=overrides)
        state = run_module.train_run(cfg, run_dir, log=lambda *_: None)
        results.put(
            {
                "rank": rank,
                "stages": [row["stage"] for row in state["metrics"]],
                "switch": state["two_stage"],
                "attacker": [t.tolist() for t in captured.get("attacker", [])],
                "cost": [
                    (row["train_backward_passes"], row["train_backward_passes_per_example"])
                    for row in state["metrics"]
                ],
            }
        )
    except Exception as error:  # reported to the test, which fails with it
        results.put({"rank": rank, "error": f"{type(error).__name__}: {error}"})


def run_two_ranks(overrides: dict, run_dir, *, allow_errors: bool = False) -> list[dict]:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    port = _free_port()
    processes = [
        context.Process(target=_rank, args=(r, 2, port, overrides, str(run_dir), results))
        for r in (0, 1)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=240) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():  # a rank waiting for ever: the bug this file guards against
                process.terminate()
    errors = [o["error"] for o in outcomes if "error" in o]
    assert allow_errors or not errors, errors
    return sorted(outcomes, key=lambda o: o["rank"])


@pytest.mark.slow
def test_ranks_with_different_accuracies_switch_together(tmp_path):
    rank0, rank1 = run_two_ranks({**BASE, **TWO_STAGE}, tmp_path / "run")
    # Rank 1's own accuracy (0.1) would never pass 0.8; it switches with rank 0 all the same.
    assert rank0["stages"] == rank1["stages"] == ["warmup", "main"]
    assert rank0["switch"] == rank1["switch"]


@pytest.mark.slow
def test_a_folder_rank_zero_refuses_fails_every_rank_with_its_reason(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("not a run")
    rank0, rank1 = run_two_ranks(BASE, run_dir, allow_errors=True)
    assert "not empty but holds no run" in rank0["error"]
    assert "rank 0 could not prepare" in rank1["error"]
    assert "not empty but holds no run" in rank1["error"]
    assert sorted(p.name for p in run_dir.iterdir()) == ["notes.txt"]  # nothing lost


@pytest.mark.slow
def test_the_l2l_attacker_is_the_same_on_every_rank(tmp_path):
    rank0, rank1 = run_two_ranks({**BASE, **L2L}, tmp_path / "run")
    assert rank0["attacker"] and rank0["attacker"] == rank1["attacker"]
    # The attacker's update backpropagates through each rank's DDP-wrapped classifier: counted,
    # and summed over the ranks (160 examples, 3 passes each).
    assert rank0["cost"] == rank1["cost"] == [(480, 3.0)]
    assert (tmp_path / "run" / "state.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(TWO_FORWARDS))
def test_two_forward_passes_before_one_backward_train_under_ddp(tmp_path, method):
    rank0, rank1 = run_two_ranks({**BASE, **TWO_FORWARDS[method]}, tmp_path / "run")
    assert rank0["stages"] == rank1["stages"] and len(rank0["stages"]) == 2
    # Both forwards' backward passes counted on each rank, summed over the ranks: the job's
    # count for 160 examples, as a single process would give it.
    per_example = {"trades": 2 + 2, "rl_adv": 3}[method]
    assert rank0["cost"] == [(160 * per_example, float(per_example))] * 2
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_each_rank_draws_its_own_stream_and_rank_zero_the_single_process_one():
    seed = 12_345
    assert rank_stream(seed, 0) == seed
    streams = {rank_stream(seed, rank) for rank in range(8)}
    assert len(streams) == 8
    draws = [
        torch.rand(4, generator=torch.Generator().manual_seed(rank_stream(seed, r))) for r in (0, 1)
    ]
    assert not torch.equal(*draws)
    # Distinct in the low 32 bits (all that torch's CPU generator keeps), and far from the
    # neighbouring epochs' streams of rank 0.
    assert len({rank_stream(seed, r) % 2**32 for r in range(8)}) == 8
    assert RANK_STREAM_OFFSET > 10**9
