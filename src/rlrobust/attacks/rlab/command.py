"""``rlrobust attack rlab RUN ...``: the command-line face of ``run.run_rlab``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """examples:
  rlrobust attack rlab runs/ce --n-examples 500 --eps 0.1 --square-eps 0.1 0.3
  rlrobust attack rlab runs/ce --agent learned --agent-dir agents/ce --train-iterations 150
  rlrobust attack rlab runs/kim --filters gaussian_noise dead_pixel --patch-size 7 --budget 500
  rlrobust attack rlab runs/ce --retrain-epochs 2 --retrain-examples 2000 --eps 0.1

writes into --out (default RUN/rlab-AGENT): rlab.json and rlab.md (metrics, Square at the same
budget, mask scores, retraining), examples.safetensors (x, x_adv, masks, queries, predictions),
grid.png (original | adversarial | mask), retrained.safetensors when retraining.
"""


def add_rlab_parser(attack_sub) -> None:
    from rlrobust.attacks.rlab.filters import FILTERS

    p = attack_sub.add_parser(
        "rlab",
        help="RLAB: a query-only RL attack with patch filter distortions and localisation masks",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", help="run directory of the victim (the --out of `rlrobust train`)")
    p.add_argument("--out", help="output folder (default: RUN/rlab-AGENT)")
    p.add_argument(
        "--agent",
        choices=["greedy", "learned"],
        default="greedy",
        help="greedy: patch-sensitivity baseline (probes every patch); learned: a policy trained "
        "with REINFORCE on the run's training images (default: greedy)",
    )
    p.add_argument(
        "--agent-dir",
        help="learned: load the agent from this folder, or train it and save it here",
    )
    p.add_argument(
        "--train-iterations",
        type=int,
        default=100,
        help="learned: REINFORCE iterations when training a new agent (default: 100)",
    )
    p.add_argument(
        "--train-batch",
        type=int,
        default=64,
        help="learned: training images per iteration (default: 64)",
    )
    p.add_argument(
        "--filters",
        nargs="+",
        default=list(FILTERS)[:4],
        metavar="FILTER",
        help=f"distortion filters, from: {', '.join(FILTERS)} (default: all four built-in)",
    )
    p.add_argument(
        "--levels",
        choices=["all", "strongest"],
        default="all",
        help="severity levels the agent may use: every level of each filter or only the strongest",
    )
    p.add_argument(
        "--patch-size",
        type=int,
        default=4,
        help="patch edge in pixels (samples for signals, voxels for videos) (default: 4)",
    )
    p.add_argument(
        "--budget",
        type=int,
        default=1000,
        help="queries per input, the first included; the episode fails when it is spent",
    )
    p.add_argument(
        "--penalty",
        type=float,
        default=0.01,
        help="reward's weight on the growth of the L2 distortion (default: 0.01)",
    )
    p.add_argument(
        "--no-refine",
        action="store_true",
        help="skip the pass that removes and softens needless distortions after a success",
    )
    p.add_argument(
        "--n-examples",
        type=int,
        default=500,
        help="test images to attack (a seeded random subset; default: 500)",
    )
    p.add_argument(
        "--square-eps",
        type=float,
        nargs="*",
        default=[],
        help="also run Square (linf) at these eps with the same query budget",
    )
    p.add_argument(
        "--no-masks",
        action="store_true",
        help="skip scoring the localisation masks against the foreground and saliency baselines",
    )
    p.add_argument(
        "--foreground-threshold",
        type=float,
        default=0.1,
        help="a pixel is foreground (the reference mask) above this brightness (default: 0.1)",
    )
    p.add_argument(
        "--retrain-epochs",
        type=int,
        default=0,
        help="fine-tune the victim on RLAB examples for this many epochs (0: no retraining)",
    )
    p.add_argument(
        "--retrain-examples",
        type=int,
        default=2000,
        help="training images to craft RLAB examples on for retraining (default: 2000)",
    )
    p.add_argument(
        "--retrain-lr",
        type=float,
        default=0.001,
        help="SGD (momentum 0.9) learning rate of the fine-tuning (default: 0.001; 0.01 cost an "
        "MNIST LeNet5 2.4 points of clean and 14 of PGD accuracy, 0.001 cost 1.0 and 5.6)",
    )
    p.add_argument(
        "--eps",
        type=float,
        help="linf radius of the FGSM / PGD-40 check before and after retraining",
    )
    p.add_argument("--seed", type=int, default=0, help="seeds the subset, filters and agent")
    p.add_argument(
        "--quiet", action="store_true", help="print nothing but errors (the results are in --out)"
    )


def cmd_attack(args: argparse.Namespace) -> int:
    from rlrobust.attacks.rlab.attack import RLABSettings
    from rlrobust.attacks.rlab.retrain import Retraining
    from rlrobust.attacks.rlab.run import RLABExperiment, load_victim, run_rlab
    from rlrobust.attacks.rlab.train_agent import AgentTraining
    from rlrobust.errors import ConfigError

    for name in ("n_examples", "train_iterations", "train_batch", "retrain_examples"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if args.retrain_epochs < 0:
        raise ConfigError("--retrain-epochs must be >= 0 (0 skips retraining)")
    run_dir = Path(args.run)
    model, test, train = load_victim(run_dir, args.n_examples, args.seed)
    exp = RLABExperiment(
        agent=args.agent,
        agent_dir=args.agent_dir,
        training=AgentTraining(iterations=args.train_iterations, batch_size=args.train_batch),
        settings=RLABSettings(
            patch_size=args.patch_size,
            filters=list(args.filters),
            levels=args.levels,
            budget=args.budget,
            penalty=args.penalty,
            refine=not args.no_refine,
            seed=args.seed,
        ),
        square_eps=list(args.square_eps),
        masks=not args.no_masks,
        foreground_threshold=args.foreground_threshold,
        retrain=Retraining(epochs=args.retrain_epochs, lr=args.retrain_lr, seed=args.seed)
        if args.retrain_epochs > 0
        else None,
        retrain_examples=args.retrain_examples,
        check_eps=args.eps,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    out = Path(args.out) if args.out else run_dir / f"rlab-{args.agent}"
    log = (lambda *_: None) if args.quiet else print
    run_rlab(model, test, train, exp, out, log=log)
    if not args.quiet:
        print((out / "rlab.md").read_text())
    return 0
