"""``rlrobust attack rlab RUN ...``: the command-line face of ``run.run_rlab``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """examples:
  rlrobust attack rlab runs/ce --n-examples 500 --square-eps 0.1 0.3
  rlrobust attack rlab runs/ce --agent learned --agent-dir agents/ce --train-iterations 150
  rlrobust attack rlab runs/kim --filters gaussian_noise dead_pixel --patch-size 7 --budget 500
  rlrobust attack rlab runs/ce --retrain-epochs 2 --retrain-examples 2000 --eps 0.1
  rlrobust attack rlab runs/ce --max-steps 50 --stacking stack --reprobe --budget 20000
  rlrobust attack rlab runs/gunpoint --patch-size 10 --agent learned --agent-dir agents/gp

writes into --out (default RUN/rlab-AGENT): rlab.json and rlab.md (metrics, Square at the same
budget, mask scores, retraining), examples.safetensors (x, x_adv, masks, queries, predictions),
grid.png (original | adversarial | mask), retrained.safetensors when retraining. An earlier
attack's outputs in --out are refused unless --overwrite is given (then they are removed first).
Every argument is checked before any work starts.
"""

#: the files an RLAB experiment writes into --out (refused without --overwrite, removed with it)
RLAB_OUTPUTS = (
    "rlab.json",
    "rlab.md",
    "examples.safetensors",
    "grid.png",
    "retrained.safetensors",
)


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
        nargs="+",
        default=[4],
        metavar="SIZE",
        help="patch edge in elements (samples for signals, pixels for images, voxels for "
        "videos), or one size per spatial dim, e.g. 5 16 16 for (T, H, W) clips (default: 4)",
    )
    p.add_argument(
        "--budget",
        type=int,
        default=1000,
        help="queries per input, the first included; the episode fails when it is spent",
    )
    p.add_argument(
        "--max-steps",
        type=int,
        help="step budget: agent actions per input, the paper's budget unit (default: no cap; "
        "the query budget still applies, and probes and refine trials cost queries, not steps)",
    )
    p.add_argument(
        "--stacking",
        choices=["none", "escalate", "stack"],
        default="none",
        help="what an add may do to an already-distorted patch: nothing (none), raise its "
        "severity (escalate), or also put a second filter on top (stack) (default: none)",
    )
    p.add_argument(
        "--reprobe",
        action="store_true",
        help="greedy: re-score every patch after each step (N x filters queries per step) "
        "instead of probing once",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="inputs attacked together (lower it for videos: memory grows with it; default 256)",
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
        help="skip scoring the localisation masks against the reference and saliency baselines",
    )
    p.add_argument(
        "--mask-reference",
        choices=["auto", "ground_truth", "foreground", "none"],
        default="auto",
        help="what masks are scored against: auto uses the data set's ground-truth masks if it "
        "has them (moving-mnist), else the foreground for images and videos and nothing for "
        "signals (UCR: agreement with the saliency baselines only)",
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
        "--device",
        default="cpu",
        help="cpu, cuda, cuda:N or auto: where the victim, the agent and the episodes run "
        "(default: cpu)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier attack's outputs in --out (removed first: no stale grid.png or "
        "retrained.safetensors survives)",
    )
    p.add_argument(
        "--quiet", action="store_true", help="print nothing but errors (the results are in --out)"
    )


def cmd_attack(args: argparse.Namespace) -> int:
    from rlrobust.attacks.rlab.attack import RLABSettings
    from rlrobust.attacks.rlab.retrain import Retraining
    from rlrobust.attacks.rlab.run import RLABExperiment, load_victim, run_rlab
    from rlrobust.attacks.rlab.train_agent import AgentTraining
    from rlrobust.devices import resolve_device
    from rlrobust.outputs import claim_outputs, remove_outputs

    check_arguments(args)
    run_dir = Path(args.run)
    exp = RLABExperiment(
        agent=args.agent,
        agent_dir=args.agent_dir,
        training=AgentTraining(iterations=args.train_iterations, batch_size=args.train_batch),
        settings=RLABSettings(
            patch_size=args.patch_size[0] if len(args.patch_size) == 1 else tuple(args.patch_size),
            filters=list(args.filters),
            levels=args.levels,
            budget=args.budget,
            max_steps=args.max_steps,
            stacking=args.stacking,
            reprobe=args.reprobe,
            penalty=args.penalty,
            refine=not args.no_refine,
            seed=args.seed,
            batch_size=args.batch_size,
        ),
        square_eps=list(args.square_eps),
        masks=not args.no_masks,
        foreground_threshold=args.foreground_threshold,
        mask_reference=args.mask_reference,
        retrain=Retraining(epochs=args.retrain_epochs, lr=args.retrain_lr, seed=args.seed)
        if args.retrain_epochs > 0
        else None,
        retrain_examples=args.retrain_examples,
        check_eps=args.eps,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    exp.check()  # budgets, step cap, stacking, penalty, batch size, mask reference
    exp.settings.operations()  # the filters and levels exist
    if exp.retrain is not None:
        exp.retrain.check()
    out = Path(args.out) if args.out else run_dir / f"rlab-{args.agent}"
    device = resolve_device(args.device)  # before any work: an unknown or absent device fails
    stale = claim_outputs(out, RLAB_OUTPUTS, args.overwrite, "`rlrobust attack rlab`")
    model, test, train = load_victim(run_dir, args.n_examples, args.seed)
    model = model.to(device)
    check_fits(model, test, exp)  # the patch size and the greedy probes fit these inputs
    remove_outputs(stale)
    log = (lambda *_: None) if args.quiet else print
    run_rlab(model, test, train, exp, out, log=log)
    if not args.quiet:
        print((out / "rlab.md").read_text())
    return 0


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse every bad argument before any work: nothing is loaded, attacked or trained yet.

    (``--eps 2`` used to be found only by the PGD check after the attack and the retraining
    had run, and their results were lost.)
    """
    import math

    from rlrobust.attacks.rlab.filters import FILTERS
    from rlrobust.errors import ConfigError

    for name in ("n_examples", "train_iterations", "train_batch", "retrain_examples", "batch_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    if args.retrain_epochs < 0:
        raise ConfigError("--retrain-epochs must be >= 0 (0 skips retraining)")
    if args.budget < 2:
        raise ConfigError(
            f"--budget must be at least 2 queries (the first query only reads the clean "
            f"prediction), got {args.budget}"
        )
    if args.max_steps is not None and args.max_steps < 1:
        raise ConfigError(
            f"--max-steps must be at least 1, got {args.max_steps}; omit it for no cap"
        )
    if not 1 <= len(args.patch_size) <= 3 or min(args.patch_size) < 1:
        raise ConfigError(
            f"--patch-size takes one positive size or one per spatial dim (1 to 3), got "
            f"{' '.join(map(str, args.patch_size))}"
        )
    unknown = [f for f in args.filters if f not in FILTERS]
    if unknown:
        raise ConfigError(
            f"unknown RLAB filter(s) {', '.join(unknown)}; choose from: {', '.join(FILTERS)}"
        )
    twice = sorted({f for f in args.filters if args.filters.count(f) > 1})
    if twice:
        raise ConfigError(f"--filters lists {', '.join(twice)} more than once; give each once")
    # eps radii are in pixel units of [0, 1] inputs (linf): outside (0, 1] no budget is meant
    for option, values in (
        ("--eps", [] if args.eps is None else [args.eps]),
        ("--square-eps", args.square_eps),
    ):
        for eps in values:
            if not (math.isfinite(eps) and 0 < eps <= 1):
                raise ConfigError(
                    f"{option} {eps:g} is outside (0, 1]: eps is an linf radius in pixel units of "
                    "[0, 1] inputs, e.g. 0.1 for MNIST or 8/255 = 0.0314 for CIFAR-10"
                )
    if len(set(args.square_eps)) != len(args.square_eps):
        raise ConfigError("--square-eps lists a radius more than once; give each once")
    if args.eps is not None and args.retrain_epochs == 0:
        raise ConfigError(
            "--eps sets the FGSM / PGD-40 check before and after retraining: add "
            "--retrain-epochs N, or drop --eps (use --square-eps for Square at the same budget)"
        )
    if not (math.isfinite(args.penalty) and args.penalty >= 0):
        raise ConfigError(f"--penalty must be a finite number >= 0, got {args.penalty}")
    if not (math.isfinite(args.retrain_lr) and args.retrain_lr > 0):
        raise ConfigError(f"--retrain-lr must be a finite number > 0, got {args.retrain_lr}")
    if not 0 <= args.foreground_threshold < 1:
        raise ConfigError(
            f"--foreground-threshold must lie in [0, 1) (a pixel brightness), got "
            f"{args.foreground_threshold}"
        )
    if args.agent == "greedy":
        if args.agent_dir:
            raise ConfigError(
                "--agent-dir holds a learned agent: use it with --agent learned (the greedy "
                "agent has nothing to save)"
            )
    else:
        if args.reprobe:
            raise ConfigError("--reprobe is a greedy-agent option; drop it with --agent learned")
        if args.agent_dir:
            check_agent_dir(Path(args.agent_dir))


def check_agent_dir(directory: Path) -> None:
    """A learned agent's folder must hold a saved agent, or be creatable and writable (the agent
    trained now is saved there): found before the training, not after it."""
    import os

    from rlrobust.attacks.rlab.policy import AGENT_WEIGHTS
    from rlrobust.errors import ConfigError

    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"--agent-dir {directory} is a file, not a folder; give a folder")
    if (directory / AGENT_WEIGHTS).is_file():
        return  # an agent to load
    existing = next(p for p in (directory, *directory.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(
            f"--agent-dir {directory} cannot be created: {existing} is a file, not a folder"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--agent-dir {directory}: no permission to write in {existing}, so the agent "
            "trained now could not be saved; choose a writable folder"
        )


def check_fits(model, test, exp) -> None:
    """The checks that need the data, run on one input before the real work: the mask reference
    exists, the patch size fits the spatial dims, and the greedy agent's probes (every patch x
    the strongest level of every filter) fit the query budget."""
    import torch

    from rlrobust.attacks.rlab.attack import make_env
    from rlrobust.attacks.rlab.greedy import GreedyAgent
    from rlrobust.attacks.rlab.run import mask_reference

    if exp.masks:  # --mask-reference ground_truth on a data set without masks
        mask_reference(test, exp.mask_reference)
    x = test.images[:1].float() / 255.0
    env = make_env(model.eval(), x, test.labels[:1], exp.settings, torch.Generator())
    if exp.agent == "greedy":
        probes = GreedyAgent(reprobe=exp.settings.reprobe).probe_ops(env)
        needed = env.grid.num_patches * len(probes) + 2
        if needed > exp.settings.budget:
            from rlrobust.errors import ConfigError

            raise ConfigError(
                f"the greedy agent probes {env.grid.num_patches} patches x {len(probes)} "
                f"operations and needs a budget of at least {needed} queries (got "
                f"{exp.settings.budget}): raise --budget, use a larger --patch-size or fewer "
                "--filters"
            )
