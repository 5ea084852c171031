"""``rlrobust train``: train a model as its config says (resumable); optionally evaluate it."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlrobust.commands.common import (
    CONFIG_NAMES,
    add_config_options,
    add_quiet,
    is_main_process,
    make_logger,
    overrides_from,
    progress_enabled,
    registry_names,
)
from rlrobust.config import load_config
from rlrobust.errors import RLRobustError

NAME = "train"
EPILOG = """examples:
  rlrobust train --data.name mnist --model.name lenet5 --train.epochs 10 --out runs/ce
  rlrobust train --config kim.json --objective.options '{"lam": 1.5, "action": "greedy"}' --out runs/kim
  rlrobust train --out runs/kim --resume          # continue an interrupted run
"""


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        NAME,
        help="train a model",
        epilog=EPILOG
        + "\n"
        + registry_names(*CONFIG_NAMES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", help="JSON or TOML config file; command-line options override it"
    )
    parser.add_argument(
        "--out", help="run directory to create (default: runs/DATA-MODEL-OBJECTIVE-sSEED)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished run in --out from its last complete epoch",
    )
    parser.add_argument(
        "--device",
        help="with --resume: continue on this device (cpu, cuda, cuda:N, auto) instead of the "
        "saved one, e.g. a run trained on a GPU resumed on a CPU-only host",
    )
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="after training, run the attacks of the eval section and write evaluation.json",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the available data sets, models, objectives and attacks, then exit",
    )
    add_quiet(parser)
    add_config_options(parser)
    return parser


def list_names() -> int:
    import rlrobust.attacks  # noqa: F401 - registration
    import rlrobust.data  # noqa: F401
    import rlrobust.models  # noqa: F401
    import rlrobust.objectives  # noqa: F401
    from rlrobust.registry import ATTACKS, DATASETS, MODELS, OBJECTIVES

    for registry in (DATASETS, MODELS, OBJECTIVES, ATTACKS):
        print(f"{registry.kind}s: {', '.join(registry.names())}")
    return 0


def run(args: argparse.Namespace) -> int:
    from rlrobust.commands.evaluate import defaults as evaluate_defaults
    from rlrobust.commands.evaluate import run as evaluate_run
    from rlrobust.runs import saved_config
    from rlrobust.training.run import train_run

    if args.list:
        return list_names()
    overrides = overrides_from(args)
    if args.resume:
        if not args.out:
            raise RLRobustError("--resume needs --out RUN_DIR: the run directory to continue")
        if args.config or overrides:
            raise RLRobustError(
                "--resume continues with the run's saved config.json; drop --config and the "
                "--section.key options (or start a new run in another --out)"
            )
        cfg = saved_config(Path(args.out))
        if args.device:
            cfg.train.device = args.device
    else:
        if args.device:
            raise RLRobustError("--device goes with --resume; for a new run use --train.device")
        cfg = load_config(args.config, overrides)
    out = Path(
        args.out or f"runs/{cfg.data.name}-{cfg.model.name}-{cfg.objective.name}-s{cfg.train.seed}"
    )
    # Under torchrun only rank 0 speaks (training itself also logs on rank 0 only).
    log = make_logger(args) if is_main_process() else (lambda *_: None)
    log(f"training into {out}")
    state = train_run(cfg, out, resume=args.resume, progress=progress_enabled(args), log=log)
    log(f"finished {state['epoch']} epochs; weights in {out / 'model.safetensors'}")
    if args.evaluate and is_main_process():  # one evaluation, by rank 0, after training
        return evaluate_run(evaluate_defaults(run=str(out), quiet=args.quiet, single_process=True))
    return 0
