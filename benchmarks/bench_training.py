"""Training throughput (images per second) of the package's epoch loop.

Rows: cross-entropy and the Kim Eq. 4 policy objective (``kim_policy``, greedy actions), each a
full ``train_one_epoch`` over a ``BatchLoader`` of random uint8 MNIST-shaped images (so the
uint8 -> float batch path is included), LeNet-5, batch 128, SGD with momentum. Adversarial
training (PGD-AT, TRADES, with the CE objective) runs the same loop with the package's
adversarial training step (``training.setup.build_step``), eps 0.1, 10 PGD steps; its rows are
printed as "not yet implemented" on a package without adversarial training.

Ratio: policy images/s / CE images/s; target >= 0.97 (a policy epoch costs what a CE epoch
costs). Adversarial rows report their images/s and their slowdown against CE (no target: a
PGD-AT epoch with k attack steps costs about k + 1 CE epochs by construction).
"""

from __future__ import annotations

import copy
import sys

import torch
from common import (
    build_base_parser,
    build_mnist_model,
    finish,
    print_environment,
    report,
    resolve_args,
    time_interleaved,
)

import rlrobust.objectives  # noqa: F401 - importing registers the objectives
from rlrobust.data import BatchLoader, ImageData
from rlrobust.registry import OBJECTIVES
from rlrobust.seeding import make_generator
from rlrobust.training.loop import train_one_epoch

TARGET = ">=0.97"
ADV_EPS = 0.1  # MNIST-scale Linf budget; the PGD step is the package default (eps / 4)


def build_parser():
    parser = build_base_parser(__doc__.split("\n\n")[0], repeats=3, warmup=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=20, help="batches per timed epoch")
    parser.add_argument("--attack-steps", type=int, default=10, help="PGD steps of PGD-AT, TRADES")
    return parser


def random_mnist(n: int, seed: int) -> ImageData:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (n,), generator=generator)
    return ImageData(
        images, labels, num_classes=10, name="random-mnist", mean=(0.1307,), std=(0.3081,)
    )


def epoch_runner(model, loader, objective, seed, step=None):
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = make_generator(seed)
    extra = {} if step is None else {"step": step}
    return lambda: train_one_epoch(model, loader, objective, optimizer, generator, **extra)


def adversarial_steps(data: ImageData, seed: int, attack_steps: int) -> dict[str, object]:
    """PGD-AT and TRADES training steps built as a run would build them (``setup.build_step``).

    Empty when the package has no adversarial training yet.
    """
    try:
        from rlrobust.config import RunConfig
        from rlrobust.training.setup import build_step
    except ImportError:
        return {}
    steps = {}
    for row, method in (("pgd_at", "pgd_at"), ("trades", "trades")):
        cfg = RunConfig()
        if not hasattr(cfg, "adversarial"):
            return {}
        cfg.train.seed = seed
        cfg.adversarial.method = method
        cfg.adversarial.eps = ADV_EPS
        cfg.adversarial.steps = attack_steps
        steps[row] = build_step(cfg, data)
    return steps


def main() -> int:
    args = resolve_args(build_parser().parse_args())
    if args.quick:
        args.batch_size, args.batches, args.attack_steps = 32, 2, 1
    print_environment(args)
    data = random_mnist(args.batch_size * args.batches, args.seed)
    loader = BatchLoader(data, args.batch_size, shuffle=True, seed=args.seed, device=args.device)
    model = build_mnist_model("lenet5", args.seed, args.device)
    ce = OBJECTIVES.create("cross_entropy")
    runners = {
        "cross_entropy": epoch_runner(model, loader, ce, args.seed),
        "kim_policy": epoch_runner(
            model, loader, OBJECTIVES.create("kim_policy", action="greedy"), args.seed
        ),
    }
    adversarial = adversarial_steps(data, args.seed, args.attack_steps)
    for row, step in adversarial.items():
        runners[row] = epoch_runner(model, loader, ce, args.seed, step)
    timings = time_interleaved(
        runners, device=args.device, repeats=args.repeats, warmup=args.warmup
    )
    throughput = {name: len(data) / t.median for name, t in timings.items()}
    print(f"# lenet5, batch {args.batch_size}, {len(data)} images per epoch")
    if adversarial:
        print(
            f"# PGD-AT and TRADES (CE objective): linf eps {ADV_EPS}, {args.attack_steps} attack steps"
        )
    print(f"# {'row':<16} {'images/s':>10} {'vs CE':>7}")
    for name, value in throughput.items():
        print(f"# {name:<16} {value:10.0f} {value / throughput['cross_entropy']:7.3f}")
    if not adversarial:
        for row in ("pgd_at", "trades"):
            print(f"# {row:<16} {'-':>10}  not yet implemented in rlrobust.training")
    report(
        "training_policy_vs_ce",
        throughput["kim_policy"] / throughput["cross_entropy"],
        TARGET,
        ce_images_per_s=throughput["cross_entropy"],
        policy_images_per_s=throughput["kim_policy"],
        **{
            f"{row}_images_per_s": throughput.get(row, "not_implemented")
            for row in ("pgd_at", "trades")
        },
    )
    return finish(args)


if __name__ == "__main__":
    sys.exit(main())
