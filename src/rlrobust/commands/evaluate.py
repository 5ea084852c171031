"""``rlrobust evaluate``: attack a trained run (or any model) and write its evaluation record."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlrobust.commands.common import (
    add_config_options,
    add_quiet,
    make_logger,
    overrides_from,
    progress_enabled,
    registry_names,
)
from rlrobust.config import load_config, set_by_path, validate
from rlrobust.errors import RLRobustError
from rlrobust.evaluation.shards import wait_for_shards

NAME = "evaluate"
EPILOG = """examples:
  rlrobust evaluate runs/ce
  rlrobust evaluate runs/ce --name standard --eval.preset standard --eval.eps 0.3 --eval.n_examples 1000
  rlrobust evaluate runs/kim --eval.preset quick --eval.eps 0.1 --eval.surrogate runs/ce --eval.masking
  rlrobust evaluate runs/kim --eval.eps_curve '[0.05, 0.1, 0.2, 0.3]' --eval.attacks '[]'
  rlrobust evaluate --model mypkg.models:build --weights w.safetensors --data.name mnist \\
      --eval.preset standard --eval.eps 0.3 --out results/mine
  rlrobust evaluate runs/ce --eval.attacks '[{"name": "pgd", "settings": {"eps": 0.3, "steps": 100}}]'
"""
CONFIG_KEYS = {
    "eval",
    "data.name",
    "data.data_dir",
    "data.options",
    "data.eval_batch_size",
    "train.device",
}


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        NAME,
        help="attack a trained run (or any model) and write its evaluation record",
        epilog=EPILOG + "\n" + registry_names("attacks", "eval_presets", "datasets"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", nargs="?", help="run directory written by `rlrobust train`")
    parser.add_argument(
        "--model",
        help="bring your own model: MODULE:FUNCTION that returns an nn.Module taking [0, 1] images "
        "and returning logits (called without arguments); use with --data.name and --out",
    )
    parser.add_argument("--weights", help="safetensors weights to load into --model")
    parser.add_argument(
        "--out", help="result folder for --model (default for runs: the run directory)"
    )
    parser.add_argument(
        "--name",
        default="evaluation",
        help="base name of the result files (default: evaluation)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing result files of that name"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted evaluation of the same name from its partial state "
        "(OUT/NAME.partial/); the finished record equals an uninterrupted run's",
    )
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="compute only shard K of N of the test points into the partial state (e.g. one "
        "per machine); then the same command with --resume and no --shard assembles the "
        "record. Under torchrun each rank takes its own shard and rank 0 assembles",
    )
    parser.add_argument(
        "--shards",
        type=int,
        metavar="N",
        help="with --backend ray: split the test points into N shards run as Ray tasks, then "
        "assemble the record here",
    )
    parser.add_argument(
        "--backend", default="local", choices=["local", "ray"], help="where --shards run"
    )
    parser.add_argument("--address", help="ray only: address of a running Ray cluster")
    add_quiet(parser)
    add_config_options(parser, CONFIG_KEYS)
    return parser


def defaults(**values) -> argparse.Namespace:
    """The namespace ``evaluate`` would parse with no options, updated with ``values`` (used by
    ``train --evaluate``)."""
    base = dict(
        run=None,
        model=None,
        weights=None,
        out=None,
        name="evaluation",
        overwrite=False,
        resume=False,
        shard=None,
        shards=None,
        backend="local",
        address=None,
        quiet=False,
    )
    return argparse.Namespace(**{**base, **values})


def run(args: argparse.Namespace) -> int:
    from rlrobust.devices import resolve_device
    from rlrobust.evaluation.report import write_evaluation
    from rlrobust.evaluation.suite import run_suite_for_config

    cfg, model, test, out, source = evaluation_target(args)
    suffixes = (".json", ".md", "-per-sample.json", "-curve.png")
    outputs = [out / f"{args.name}{suffix}" for suffix in suffixes]
    if not args.overwrite and any(p.exists() for p in outputs):
        raise RLRobustError(
            f"{outputs[0]} already exists; pass --name NEW_NAME to keep both, or --overwrite to replace it"
        )
    device = resolve_device(cfg.train.device)
    model = model.to(device)
    log = make_logger(args)
    for warning in source.get("warnings", []):
        print(f"WARNING: {warning}", file=sys.stderr)
    log(f"evaluating {args.run or args.model} on {len(test)} {cfg.data.name} test inputs")
    resume = args.resume
    shard, rank = sharding(args)
    if shard is not None:  # this process's shard of the attack units (evaluation/shards.py)
        run_suite_for_config(model, test, cfg, device=device, out=out, name=args.name, shard=shard)
        state_dir = out / f"{args.name}.partial"
        if rank is None:
            log(
                f"shard {shard[0]}/{shard[1]} stored in {state_dir}; once every shard is "
                "done, run the same command with --resume and without --shard for the record"
            )
            return 0
        if rank != 0:
            return 0  # rank 0 assembles the record
        wait_for_shards(state_dir, shard[1], log=log)
        resume = True
    elif args.shards:
        run_ray_shards(args, cfg, out, log)
        resume = True
    result = run_suite_for_config(
        model,
        test,
        cfg,
        device=device,
        progress=progress_enabled(args),
        out=out,
        name=args.name,
        resume=resume,
    )
    result["evaluation"]["model_source"] = source
    for stale in outputs:  # --overwrite: no earlier NAME-curve.png survives a run without a curve
        stale.unlink(missing_ok=True)
    table = write_evaluation(
        out, args.name, result, cfg, title=Path(args.run).name if args.run else args.model
    )
    log(table)
    if not result["evaluation"]["audit_passed"]:
        print(f"WARNING: the constraint audit failed; see {outputs[0]}", file=sys.stderr)
        return 3
    return 0


def sharding(args: argparse.Namespace) -> tuple[tuple[int, int] | None, int | None]:
    """(shard, torchrun rank): ``--shard K/N``, or under torchrun this rank's shard."""
    import os

    from rlrobust.evaluation.shards import parse_shard

    if args.shard and args.shards:
        raise RLRobustError("--shard K/N is one shard of a split; --shards N splits with Ray")
    if args.shards and args.backend != "ray":
        raise RLRobustError("--shards N runs its shards as Ray tasks: add --backend ray")
    if args.shard:
        return parse_shard(args.shard), None
    if getattr(args, "single_process", False):  # `train --evaluate` on rank 0 after training
        return None, None
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not args.shards:
        rank = int(os.environ.get("RANK", "0"))
        return (rank, world), rank
    return None, None


def run_ray_shards(args: argparse.Namespace, cfg, out: Path, log) -> None:
    """``--shards N --backend ray``: each shard a Ray task (one GPU each where the cluster has
    GPUs), all writing units into the same partial state, which then holds every unit."""
    if args.run is None:
        raise RLRobustError("--shards with Ray needs a run directory (the tasks load it)")
    from rlrobust.experiments.sweep import connect_ray, gpus_per_task, import_ray

    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        connect_ray(ray, args.address, jobs=args.shards, threads=1)
    try:
        task = ray.remote(num_cpus=1, num_gpus=gpus_per_task(ray))(evaluate_shard)
        config = cfg.to_dict()
        pending = [
            task.remote(args.run, config, (k, args.shards), str(out), args.name)
            for k in range(args.shards)
        ]
        for k, done in enumerate(ray.get(pending)):
            log(f"  shard {k}/{args.shards}: {done['batches']} batches")
    finally:
        if started_here:
            ray.shutdown()


def evaluate_shard(run: str, config: dict, shard: tuple[int, int], out: str, name: str) -> dict:
    """One shard of a run's evaluation in this process (a Ray task calls it)."""
    from rlrobust.config import RunConfig, from_dict
    from rlrobust.evaluation.suite import run_suite_for_config
    from rlrobust.runs import load_run

    loaded = load_run(run, from_dict(RunConfig, config))  # on the config's device
    result = run_suite_for_config(
        loaded.model,
        loaded.test,
        loaded.config,
        device=loaded.device,
        out=out,
        name=name,
        shard=shard,
    )
    return result["shard"]


def evaluation_target(args: argparse.Namespace):
    """(config, model, test images, output folder, model source) for a run directory or a
    user's MODULE:FUNCTION; the source (what was evaluated, with the weights' sha256 and any
    warnings) goes into the record."""
    from rlrobust.data.download import file_digest
    from rlrobust.models.external import load_model_function
    from rlrobust.runs import WEIGHTS_FILE, load_run, load_test_split, read_state, saved_config
    from rlrobust.weights import load_weights

    overrides = overrides_from(args)
    if (args.run is None) == (args.model is None):
        raise RLRobustError("give either a run directory or --model MODULE:FUNCTION (not both)")
    if args.model is not None:
        if not args.out:
            raise RLRobustError("--model needs --out DIR: the folder for the result files")
        cfg = load_config(overrides=overrides)
        model = load_model_function(args.model)
        module, _, function = args.model.partition(":")
        source = {"kind": "module_function", "module": module, "function": function}
        if args.weights:
            load_weights(model, args.weights)
            digest = file_digest(args.weights, "sha256")
            source["weights"] = {"path": str(args.weights), "sha256": digest}
        else:
            source["weights"] = None
            source["warnings"] = [
                f"no --weights given: {args.model} is evaluated with the weights it builds "
                "itself; if those are untrained, every number of this record is meaningless"
            ]
        return cfg, model, load_test_split(cfg), Path(args.out), source
    run_dir = Path(args.run)
    if not (run_dir / "config.json").is_file():
        raise RLRobustError(
            f"{run_dir} is not a run directory (no config.json); give the --out of `rlrobust train`"
        )
    if args.weights:
        raise RLRobustError(
            "--weights goes with --model; a run directory brings its own model.safetensors"
        )
    cfg = saved_config(run_dir)
    if "data.name" in overrides and overrides["data.name"] != cfg.data.name:
        raise RLRobustError(f"{run_dir} was trained on {cfg.data.name}; drop --data.name")
    for key, value in overrides.items():
        set_by_path(cfg, key, value)
    validate(cfg)
    loaded = load_run(run_dir, cfg, device="cpu")  # moved to the evaluation's device later
    weights = run_dir / WEIGHTS_FILE
    state = read_state(run_dir) or {}
    source = {
        "kind": "run",
        "run": str(run_dir),
        "weights": {"path": str(weights), "sha256": file_digest(weights, "sha256")},
        "epochs_trained": state.get("epoch"),
        "epochs_configured": cfg.train.epochs,
        "finished": bool(state.get("finished")),
    }
    if not source["finished"]:
        source["warnings"] = [
            f"{run_dir} is unfinished: its newest checkpoint (epoch {state.get('epoch')} of "
            f"{cfg.train.epochs}) is evaluated; the record says so (model_source.finished false)"
        ]
    return cfg, loaded.model, loaded.test, Path(args.out) if args.out else run_dir, source
