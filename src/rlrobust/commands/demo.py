"""``rlrobust demo``: the offline demo on scikit-learn's digits (CE vs policy under FGSM, PGD and
AutoAttack, with the masking verdicts and the paired comparison)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlrobust.commands.common import add_quiet, make_logger, progress_enabled

NAME = "demo"


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        NAME,
        help="offline demo on scikit-learn's digits: CE vs policy under FGSM, PGD and "
        "AutoAttack, with masking verdicts and the paired comparison",
    )
    parser.add_argument(
        "--out", default="rlrobust-demo", help="output directory (default: rlrobust-demo)"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="training epochs per model (default: 30)"
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier demo in --out"
    )
    add_quiet(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from rlrobust.demo import run_demo

    run_demo(
        Path(args.out),
        epochs=args.epochs,
        overwrite=args.overwrite,
        progress=progress_enabled(args),
        log=make_logger(args),
    )
    return 0
