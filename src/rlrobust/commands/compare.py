"""``rlrobust compare RUN_A RUN_B``: is A more robust than B on the same test images? The paired
difference with a bootstrap interval and McNemar's exact test on the per-sample verdicts."""

from __future__ import annotations

import argparse

NAME = "compare"
EPILOG = """examples:
  rlrobust compare runs/mnist-kim runs/mnist-ce
  rlrobust compare runs/mnist-kim runs/mnist-ce --name standard --out runs/compare-kim-ce
  rlrobust compare runs/a/evaluation.json runs/b/evaluation.json --json

Both runs must have been evaluated on the same test images (same data set, test subset and
eval.n_examples / eval.seed); the comparison refuses otherwise.
"""


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        NAME,
        help="paired comparison of two evaluated runs: difference, bootstrap interval, McNemar",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_a", help="run directory (or evaluation .json) of model A")
    parser.add_argument("run_b", help="run directory (or evaluation .json) of model B")
    parser.add_argument(
        "--name", default="evaluation", help="which evaluation record (default: evaluation)"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON record")
    parser.add_argument("--out", help="also write compare.json and compare.md into this folder")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier comparison in --out"
    )
    parser.add_argument(
        "--resamples", type=int, default=10_000, help="bootstrap resamples (default: 10000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    return parser


def run(args: argparse.Namespace) -> int:
    from rlrobust.compare import compare_command
    from rlrobust.outputs import claim_outputs

    if args.out:  # the overwrite rule of every command (rlrobust/outputs.py), before any work
        claim_outputs(args.out, ["compare.json", "compare.md"], args.overwrite, "comparison")
    print(
        compare_command(
            args.run_a,
            args.run_b,
            name=args.name,
            json_output=args.json,
            out=args.out,
            n_resamples=args.resamples,
            seed=args.seed,
        )
    )
    return 0
