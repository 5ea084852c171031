"""``rlrobust reproduce``: rerun a paper's table and put our numbers beside the published ones."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rlrobust.commands.common import make_logger
from rlrobust.commands.sweep import add_backend_options, check_backend_options, sweep_status

NAME = "reproduce"


def add_parser(sub) -> argparse.ArgumentParser:
    from rlrobust.experiments.presets import PRESETS, SCALES

    parser = sub.add_parser(
        NAME,
        help="rerun a paper's table (Kim, Gupta, Zou et al., L2L, RLAB) and put our numbers "
        "beside theirs",
    )
    parser.add_argument("preset", choices=list(PRESETS), help=f"one of: {', '.join(PRESETS)}")
    parser.add_argument(
        "--scale",
        default="smoke",
        choices=list(SCALES),
        help="smoke: digits + MLP in seconds; laptop: MNIST or Fashion-MNIST (for CIFAR "
        "protocols) with LeNet5, a few epochs; paper: the paper's protocol (default: smoke)",
    )
    parser.add_argument(
        "--plan",
        action="store_true",
        help="print the resolved runs, the paper's numbers and the computed differences from "
        "the paper's protocol; train nothing",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="with --plan: one JSON object {preset, scale, runs, references, differences, ...}",
    )
    parser.add_argument("--out", help="output folder (default: reproduce/PRESET-SCALE)")
    add_backend_options(parser, "1")
    return parser


def run(args: argparse.Namespace) -> int:
    from rlrobust.errors import ConfigError
    from rlrobust.experiments.reproduce import plan, plan_text, reproduce

    check_backend_options(args)
    if args.json and not args.plan:
        raise ConfigError("--json prints the plan: use it with --plan")
    if args.plan:
        resolved = plan(args.preset, args.scale)
        if args.json:
            sys.stdout.write(json.dumps(resolved.to_json(), indent=2, default=str) + "\n")
        else:
            sys.stdout.write(plan_text(resolved))
        return 0
    out = Path(args.out or f"reproduce/{args.preset}-{args.scale}")
    reproduce(
        args.preset,
        args.scale,
        out,
        jobs=1 if args.jobs is None else args.jobs,
        backend=args.backend,
        address=args.address,
        log=make_logger(args),
    )
    status = sweep_status(out, args)
    make_logger(args)(f"report in {out / 'reproduce.md'}")
    return status
