"""``rlrobust findings collect | build | claims``: file run records under ``results/`` and
regenerate ``docs/findings.md`` from them (``rlrobust.findings``)."""

from __future__ import annotations

import argparse

NAME = "findings"
EPILOG = """examples:
  rlrobust findings collect reproduce/kim-mnist-laptop --claim kim-table3 \\
      --command 'rlrobust reproduce kim-mnist --scale laptop --out reproduce/kim-mnist-laptop'
  rlrobust findings collect runs/rl-no-at --claim gupta-no-at --arm RL --preset gupta-fgsm-at \\
      --scale laptop --command 'rlrobust train ...' --note 'shared machine: upper bound'
  rlrobust findings build --results results --out docs/findings.md --html docs/findings.html
  rlrobust findings claims
"""


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        NAME,
        help="file run records under results/ and rebuild docs/findings.md from them",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    collect = actions.add_parser(
        "collect", help="copy a finished run's small records (never weights) into results/"
    )
    collect.add_argument("runs", nargs="+", metavar="RUN", help="run, sweep or reproduce folders")
    collect.add_argument("--claim", required=True, help="claim id (rlrobust findings claims)")
    collect.add_argument(
        "--command",
        dest="run_command",  # not "command": the top-level parser keeps the command's name there
        metavar="COMMAND_LINE",
        required=True,
        help="the exact command line that produced the run(s)",
    )
    collect.add_argument("--results", default="results", help="records folder (default: results)")
    collect.add_argument("--name", help="folder name under results/CLAIM (one RUN only)")
    collect.add_argument("--arm", help="the comparison arm of a single run (a sweep names its own)")
    collect.add_argument("--preset", help="reproduction preset the run followed")
    collect.add_argument("--scale", help="the preset's scale the run followed")
    collect.add_argument("--wall-seconds", type=float, help="wall time of the run, if known")
    collect.add_argument(
        "--note", help="a load note, e.g. 'shared machine, times are upper bounds'"
    )
    collect.add_argument("--overwrite", action="store_true", help="replace an earlier copy")
    build = actions.add_parser("build", help="regenerate docs/findings.md from results/ alone")
    build.add_argument("--results", default="results", help="records folder (default: results)")
    build.add_argument("--out", default="docs/findings.md", help="markdown file to write")
    build.add_argument("--html", help="also write the document as a self-contained HTML page")
    actions.add_parser("claims", help="list the claims with the command that answers each")
    return parser


def run(args: argparse.Namespace) -> int:
    from rlrobust.errors import RLRobustError

    if args.action == "claims":
        from rlrobust.findings.claims import CLAIMS

        for claim in CLAIMS:
            print(f"{claim.id}: {claim.paper}\n  {claim.statement}\n  run: {claim.run}\n")
        return 0
    if args.action == "build":
        from rlrobust.findings.document import build

        written = build(args.results, args.out, args.html)
        print(" and ".join(str(p) for p in written.values()))
        return 0
    from rlrobust.findings.collect import collect

    if args.name and len(args.runs) > 1:
        raise RLRobustError("--name names one collection; give one RUN with it")
    for source in args.runs:
        target = collect(
            source,
            args.claim,
            command=args.run_command,
            results=args.results,
            name=args.name,
            arm=args.arm,
            preset=args.preset,
            scale=args.scale,
            wall_seconds=args.wall_seconds,
            note=args.note,
            overwrite=args.overwrite,
        )
        print(f"collected {source} -> {target}")
    return 0
