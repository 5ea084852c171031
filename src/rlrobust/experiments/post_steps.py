"""Steps a reproduction runs after its sweep: RLAB on every victim, transfer attacks between arms.

Each step writes one record per run directory (``rlab/``, ``rlab-learned/``, ``transfer.json``)
and skips runs that already have it, so a rerun of ``rlrobust reproduce`` resumes. The metrics
they add are gathered by ``extra_metrics`` (per run, in %) for the report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from rlrobust.files import atomic_write_json

#: metric name -> (file under the run directory, how to read the % from its JSON)
EXTRA_METRICS: dict[str, tuple[str, Callable[[dict], float]]] = {
    "rlab_learned_success": (
        "rlab-learned/rlab.json",
        lambda r: 100 * r["rlab"]["success_rate"],
    ),
    "transfer": ("transfer.json", lambda r: 100 * r["robust_accuracy"]),
}


def _finished(run_dir: Path) -> bool:
    from rlrobust.runs import read_state

    state = read_state(run_dir)
    return bool(state and state.get("finished")) and (run_dir / "evaluation.json").is_file()


def run_rlab(sweep_dir: Path, points: list, post: dict, log: Callable[[str], None]) -> int:
    """RLAB on every finished run: the greedy baseline into ``rlab/`` and, when the paper's
    agent is the learned one (``rlab.agent``), a learned agent (trained on the run's training
    images, saved in ``rlab-agent/``) into ``rlab-learned/``. Returns the number of attacks."""
    from rlrobust.attacks.rlab.attack import RLABSettings
    from rlrobust.attacks.rlab.run import RLABExperiment, load_victim
    from rlrobust.attacks.rlab.run import run_rlab as run_one
    from rlrobust.attacks.rlab.train_agent import AgentTraining

    agents = ["greedy"] + (["learned"] if post.get("rlab.agent") == "learned" else [])
    done = 0
    for point in points:
        run_dir = sweep_dir / "runs" / point.slug
        if not _finished(run_dir):
            continue
        for agent in agents:
            out = run_dir / ("rlab" if agent == "greedy" else "rlab-learned")
            if (out / "rlab.json").is_file():
                continue
            model, test, train = load_victim(run_dir, post["rlab.n_examples"])
            settings = RLABSettings(
                patch_size=post["rlab.patch_size"],
                budget=post["rlab.budget"],
                max_steps=post.get("rlab.max_steps"),
            )
            exp = RLABExperiment(
                agent=agent,
                agent_dir=str(run_dir / "rlab-agent") if agent == "learned" else None,
                training=AgentTraining(iterations=post.get("rlab.training_iterations", 100)),
                settings=settings,
                masks=False,
            )
            log(f"  RLAB ({agent}) on {run_dir.name}")
            run_one(model, test, train, exp, out, log=lambda *_: None)
            done += 1
    return done


def run_transfer(sweep_dir: Path, points: list, post: dict, log: Callable[[str], None]) -> int:
    """PGD and momentum PGD crafted on the ``transfer.source_arm`` run of the same seed and grid
    point, against every other arm's run; each result in ``RUN/transfer.json``."""
    from rlrobust.evaluation.suite import run_suite, transfer_attacks
    from rlrobust.runs import load_run

    source_arm, eps = post["transfer.source_arm"], post["transfer.eps"]
    sources = {
        (p.seed, json.dumps(p.values, sort_keys=True)): p for p in points if p.variant == source_arm
    }
    done = 0
    for point in points:
        source = sources.get((point.seed, json.dumps(point.values, sort_keys=True)))
        run_dir = sweep_dir / "runs" / point.slug
        if point.variant == source_arm or source is None or (run_dir / "transfer.json").is_file():
            continue
        source_dir = sweep_dir / "runs" / source.slug
        if not (_finished(run_dir) and _finished(source_dir)):
            continue
        log(f"  transfer from {source.slug} to {point.slug}")
        run = load_run(run_dir)
        result = run_suite(
            run.model,
            run.test,
            attacks=transfer_attacks(str(source_dir), eps, "linf"),
            batch_size=run.config.data.eval_batch_size,
            device=run.device,
            seed=run.config.eval.seed,
        )
        record = dict(result["evaluation"])
        record.pop("per_sample", None)
        atomic_write_json(run_dir / "transfer.json", {"source": source.slug, "eps": eps, **record})
        done += 1
    return done


def extra_metrics(sweep_dir: Path, points: list) -> dict[str, dict[int, dict[str, float]]]:
    """``{group: {seed: {metric: %}}}`` from the post-step records that exist."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    for point in points:
        run_dir = sweep_dir / "runs" / point.slug
        for metric, (name, read) in EXTRA_METRICS.items():
            path = run_dir / name
            if path.is_file():
                value = read(json.loads(path.read_text()))
                out.setdefault(point.group, {}).setdefault(point.seed, {})[metric] = value
    return out
