"""``rlrobust sweep``: train (and evaluate) a grid of configs x seeds, resumably."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rlrobust.commands.common import (
    CONFIG_NAMES,
    add_config_options,
    make_logger,
    overrides_from,
    registry_names,
)
from rlrobust.config import load_config

NAME = "sweep"
EPILOG = """examples:
  rlrobust sweep --data.name digits --model.name mlp --train.epochs 5 \\
      --grid 'optim.lr=[0.1, 0.01]' --seeds 0,1,2 --evaluate --out sweeps/lr
  rlrobust sweep --config kim.json --grid 'two_stage.warmup_options.lam=[0.25, 0.75]' \\
      --grid 'objective.options.lam=[0.75, 1.5]' --evaluate --jobs 4 --out sweeps/kim-lambda
"""


def add_backend_options(parser: argparse.ArgumentParser, default_jobs: str) -> None:
    """--jobs, --backend and --address: shared with ``reproduce``."""
    parser.add_argument(
        "--jobs", type=int, default=None, help=f"parallel runs (default: {default_jobs})"
    )
    parser.add_argument(
        "--backend", default="local", choices=["local", "ray"], help="local process pool or Ray"
    )
    parser.add_argument("--address", help="ray only: address of a running Ray cluster")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")


def check_backend_options(args: argparse.Namespace) -> None:
    """--jobs and --address checked before any run starts (``--jobs 0`` used to fall back to
    the default silently, a negative count failed only inside the pool)."""
    from rlrobust.errors import ConfigError

    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {args.jobs}; omit it for the default")
    if args.address and args.backend != "ray":
        raise ConfigError("--address is the address of a Ray cluster: add --backend ray")


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        NAME,
        help="train (and evaluate) a grid of configs x seeds, resumably; mean ± std over seeds",
        epilog=EPILOG
        + "\n"
        + registry_names(*CONFIG_NAMES),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", help="base JSON or TOML config; --section.key options override it"
    )
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=JSON_LIST",
        help="a config key and its values (repeatable: the cartesian product); keys may go "
        "inside option dicts, e.g. objective.options.lam=[0.5,1.5]",
    )
    parser.add_argument("--seeds", default="0", help="seeds, comma-separated (default: 0)")
    parser.add_argument("--out", required=True, help="sweep directory (rerun it to resume)")
    parser.add_argument(
        "--evaluate", action="store_true", help="attack every run as its eval section says"
    )
    add_backend_options(parser, "the number of GPUs, else the number of cores")
    add_config_options(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from rlrobust.experiments.sweep import (
        SweepSpec,
        gpu_count,
        parse_grid,
        parse_seeds,
        run_sweep,
    )

    check_backend_options(args)
    base = load_config(args.config, overrides_from(args)).to_dict()
    spec = SweepSpec(
        base=base, grid=parse_grid(args.grid), seeds=parse_seeds(args.seeds), evaluate=args.evaluate
    )
    # One job per GPU where there are GPUs, else one per core (each job then gets one thread).
    jobs = args.jobs if args.jobs is not None else (gpu_count() or os.cpu_count() or 1)
    run_sweep(
        spec,
        Path(args.out),
        jobs=jobs,
        backend=args.backend,
        address=args.address,
        log=make_logger(args),
    )
    return sweep_status(Path(args.out), args)


def sweep_status(out: Path, args: argparse.Namespace) -> int:
    """Exit status of a sweep (or reproduce) folder: 1 and the failed points if any failed."""
    manifest = json.loads((out / "sweep.json").read_text())
    failed = [slug for slug, p in manifest["points"].items() if p.get("status") == "failed"]
    if failed:
        print(
            f"{len(failed)} point(s) failed: {', '.join(failed)}; see {out / 'sweep.json'}; "
            "rerun the same command to retry them",
            file=sys.stderr,
        )
        return 1
    make_logger(args)(f"summary in {out / 'summary.md'}")
    return 0
