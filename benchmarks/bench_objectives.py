"""Cost of a policy-gradient training step against a cross-entropy step.

One step = forward + objective + backward + optimiser step, run through the package's own
``rlrobust.training.loop.train_one_epoch`` (so the stats bookkeeping is included), on LeNet-5
with random MNIST-shaped batches of 128. The objectives only change the loss head, a (B, 10)
computation next to a convolutional network, so a policy step should cost what a CE step costs.

Ratio: policy_step_time / ce_step_time for each objective; target <= 1.03.
The last RESULT line is the worst objective. ``head_us`` is the loss head alone (objective +
backward on fixed (B, 10) logits): where a step's extra cost, if any, comes from.
"""

from __future__ import annotations

import copy
import sys

import torch
from common import (
    build_base_parser,
    build_mnist_model,
    finish,
    milliseconds,
    mnist_like,
    print_environment,
    report,
    resolve_args,
    time_interleaved,
)

import rlrobust.objectives  # noqa: F401 - importing registers the objectives
from rlrobust.registry import OBJECTIVES
from rlrobust.seeding import make_generator
from rlrobust.training.loop import train_one_epoch

TARGET = "<=1.03"

# label -> (registry name, options)
CASES: dict[str, tuple[str, dict]] = {
    "cross_entropy": ("cross_entropy", {}),
    "gupta_vpg": ("gupta_vpg", {}),
    "kim_policy_greedy": ("kim_policy", {"action": "greedy"}),
    "kim_policy_sample": ("kim_policy", {"action": "sample"}),
    "kim_warmup": ("kim_warmup", {}),
    "zou_pg": ("zou_pg", {}),
}


def build_parser():
    parser = build_base_parser(__doc__.split("\n\n")[0], repeats=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed round")
    return parser


def make_contender(name, options, model, batches, seed):
    """A zero-argument callable that trains ``model`` for ``len(batches)`` steps."""
    model = copy.deepcopy(model)  # same initial weights for every objective
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    objective = OBJECTIVES.create(name, **options)
    generator = make_generator(seed)
    return lambda: train_one_epoch(model, batches, objective, optimizer, generator)


def make_head(name, options, logits, y, seed, calls):
    """A callable that runs the loss head alone ``calls`` times: objective + backward."""
    objective = OBJECTIVES.create(name, **options)
    generator = make_generator(seed)

    def run():
        for _ in range(calls):
            leaf = logits.detach().requires_grad_(True)
            loss, _ = objective(leaf, y, generator=generator)
            loss.backward()

    return run


def main() -> int:
    args = resolve_args(build_parser().parse_args())
    if args.quick:
        args.batch_size, args.steps = 32, 2
    print_environment(args)
    model = build_mnist_model("lenet5", args.seed, args.device)
    x, y = mnist_like(args.batch_size * args.steps, args.seed, args.device)
    batches = list(zip(x.split(args.batch_size), y.split(args.batch_size), strict=True))
    contenders = {
        label: make_contender(name, options, model, batches, args.seed)
        for label, (name, options) in CASES.items()
    }
    timings = time_interleaved(
        contenders, device=args.device, repeats=args.repeats, warmup=args.warmup
    )
    per_step = {label: t.median / args.steps for label, t in timings.items()}
    calls = 2 if args.quick else 50
    logits = torch.randn(args.batch_size, 10, generator=torch.Generator().manual_seed(args.seed))
    heads = {
        label: make_head(
            name, options, logits.to(args.device), y[: args.batch_size], args.seed, calls
        )
        for label, (name, options) in CASES.items()
    }
    head_timings = time_interleaved(heads, device=args.device, repeats=args.repeats, warmup=1)
    per_head = {label: t.median / calls for label, t in head_timings.items()}
    ce = per_step["cross_entropy"]
    print(f"# lenet5, batch {args.batch_size}, {args.steps} steps per round")
    print(f"# {'objective':<20} {'ms/step':>9} {'vs CE':>7} {'spread':>7} {'head us':>8}")
    for label, seconds in per_step.items():
        print(
            f"# {label:<20} {milliseconds(seconds):9.3f} {seconds / ce:7.3f} "
            f"{timings[label].spread:7.2f} {1e6 * per_head[label]:8.1f}"
        )
    ratios = {label: per_step[label] / ce for label in CASES if label != "cross_entropy"}
    for label, ratio in ratios.items():
        report(
            f"objective_step.{label}",
            ratio,
            TARGET,
            ms_per_step=milliseconds(per_step[label]),
            ce_ms_per_step=milliseconds(ce),
            ratio_best=timings[label].best / timings["cross_entropy"].best,
            head_us=1e6 * per_head[label],
            ce_head_us=1e6 * per_head["cross_entropy"],
        )
    worst = max(ratios, key=ratios.get)
    report("objective_step_vs_ce", ratios[worst], TARGET, worst=worst)
    return finish(args)


if __name__ == "__main__":
    sys.exit(main())
