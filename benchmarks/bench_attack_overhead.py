"""How close one step of our PGD comes to the cost of its unavoidable work.

A PGD step must run the model forward, take the loss and backpropagate to the input; the
sign, the projection and the clamp are a few element-wise operations on top. The limit is a
bare ``forward + backward to x`` of the same frozen model (eval mode, parameters without
gradients, as the attack runs it). Our per-step time is the time of a whole ``PGD(steps=S)``
call divided by S, so the per-call overhead (input checks, the copy of x, the clean forward
pass, freezing the model) is included, spread over the steps as a user pays it.

Ratio: bare_time / pgd_step_time; target >= 0.9. ``fixed_ms`` is the per-call overhead alone
(a PGD call with 0 steps).
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
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

from rlrobust.attacks import PGD

TARGET = ">=0.9"


def build_parser():
    parser = build_base_parser(__doc__.split("\n\n")[0], repeats=9)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40, help="PGD steps per call")
    parser.add_argument("--model", default="lenet5", help="model from the zoo (1x28x28 inputs)")
    return parser


def bare_steps(model, x, y, steps):
    """``steps`` times: forward, summed CE, gradient with respect to the input only."""
    for _ in range(steps):
        x_in = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x_in), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_in)
    return grad


def main() -> int:
    args = resolve_args(build_parser().parse_args())
    if args.quick:
        args.batch_size, args.steps = 16, 2
    print_environment(args)
    model = build_mnist_model(args.model, args.seed, args.device)
    x, y = mnist_like(args.batch_size, args.seed, args.device)

    frozen = build_mnist_model(args.model, args.seed, args.device).eval().requires_grad_(False)
    attack = PGD(eps=0.1, step_size=0.01, steps=args.steps, random_start=False)
    no_steps = PGD(eps=0.1, step_size=0.01, steps=0, random_start=False)
    timings = time_interleaved(
        {
            "pgd": lambda: attack(model, x, y),
            "bare": lambda: bare_steps(frozen, x, y, args.steps),
            "fixed": lambda: no_steps(model, x, y),
        },
        device=args.device,
        repeats=args.repeats,
        warmup=args.warmup,
    )
    pgd_step = timings["pgd"].median / args.steps
    bare_step = timings["bare"].median / args.steps
    print(
        f"# {args.model}, batch {args.batch_size}, {args.steps} steps: PGD "
        f"{milliseconds(pgd_step):.3f} ms/step, bare forward+input-backward "
        f"{milliseconds(bare_step):.3f} ms/step, per-call overhead "
        f"{milliseconds(timings['fixed'].median):.3f} ms"
    )
    report(
        "pgd_step_vs_bare",
        bare_step / pgd_step,
        TARGET,
        ratio_best=timings["bare"].best / timings["pgd"].best,
        pgd_step_ms=milliseconds(pgd_step),
        bare_step_ms=milliseconds(bare_step),
        fixed_ms=milliseconds(timings["fixed"].median),
    )
    return finish(args)


if __name__ == "__main__":
    sys.exit(main())
