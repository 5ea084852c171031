"""``rlrobust report``: an HTML page and markdown from the records of runs or sweeps."""

from __future__ import annotations

import argparse
from pathlib import Path

from rlrobust.commands.common import add_quiet, make_logger

NAME = "report"


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        NAME,
        help="HTML page and markdown from the records of runs or sweeps (nothing is rerun)",
    )
    parser.add_argument(
        "runs", nargs="+", metavar="RUN_OR_SWEEP", help="run directories or sweep folders"
    )
    parser.add_argument(
        "--out",
        help="folder for report.html, report.md, figures/ (default: report/ beside the first)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier report in --out (its report.html, report.md and figures/ are "
        "removed first, so no stale figure survives)",
    )
    add_quiet(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from rlrobust.reporting.run_report import build_report

    out = Path(args.out) if args.out else Path(args.runs[0]).resolve().parent / "report"
    written = build_report(args.runs, out, overwrite=args.overwrite)
    make_logger(args)(f"report: {written['html']} and {written['markdown']}")
    return 0
