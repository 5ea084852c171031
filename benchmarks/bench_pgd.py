"""Our PGD against torchattacks' PGD, same settings, same model, same batch.

Settings: linf, eps 0.1, step 0.01, 40 steps, no random start (so both runs are deterministic
and their outputs can be compared pixel by pixel). Models: LeNet-5 and a small CNN (Zou et al.'s
6-layer CNN with widths 16/32) on random MNIST-shaped data; with $RLROBUST_DATA set (and without
--quick) also a LeNet-5 trained for one short epoch on real MNIST, attacked on real test digits.

Ratio: throughput ours / theirs = their_time / our_time; target >= 1.0. Each RESULT line also
gives max |x_ours - x_theirs| and how many pixels differ. torchattacks averages the loss over
the batch where we sum it; with a power-of-two batch the scaling is exact, so the gradient signs
and hence the outputs should agree, up to rare sign flips of gradients that are numerically 0.
"""

from __future__ import annotations

import sys

import torch
from common import (
    build_base_parser,
    build_mnist_model,
    finish,
    milliseconds,
    mnist_like,
    print_environment,
    real_data_dir,
    report,
    resolve_args,
    time_interleaved,
)

from rlrobust.attacks import PGD

TARGET = ">=1.0"
EPS, STEP, STEPS = 0.1, 0.01, 40
SMALL_CNN = {"widths": (16, 32), "hidden": 128}


def build_parser():
    parser = build_base_parser(__doc__.split("\n\n")[0], repeats=5, warmup=1)
    parser.add_argument("--batch-size", type=int, default=128, help="images per attack call")
    return parser


def trained_lenet_on_mnist(data_dir, seed, device, train_images=20000):
    """LeNet-5 after one epoch of cross-entropy on ``train_images`` MNIST digits, and test data."""
    from rlrobust.data import BatchLoader, load_dataset
    from rlrobust.objectives import cross_entropy_loss
    from rlrobust.training.loop import train_one_epoch

    train = load_dataset("mnist", "train", data_dir=data_dir).take(train_images, seed)
    test = load_dataset("mnist", "test", data_dir=data_dir)
    model = build_mnist_model("lenet5", seed, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = BatchLoader(train, 128, shuffle=True, seed=seed, device=device)
    train_one_epoch(
        model, loader, lambda logits, y, generator=None: cross_entropy_loss(logits, y), optimizer
    )
    return model.eval(), test


def compare(label, model, x, y, args):
    """Time both attacks on (x, y) and print one RESULT line."""
    import torchattacks

    steps = 2 if args.quick else STEPS
    ours = PGD(eps=EPS, step_size=STEP, steps=steps, random_start=False)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=STEP, steps=steps, random_start=False)
    outputs = {}  # the last output of each, compared below (both are deterministic)

    def run_ours():
        outputs["ours"] = ours(model, x, y)

    def run_theirs():
        outputs["theirs"] = theirs(x, y)

    timings = time_interleaved(
        {"ours": run_ours, "theirs": run_theirs},
        device=args.device,
        repeats=args.repeats,
        warmup=args.warmup,
    )
    diff = (outputs["ours"] - outputs["theirs"]).abs()
    ratio = timings["theirs"].median / timings["ours"].median
    images_per_s = len(x) / timings["ours"].median
    print(
        f"# {label}: ours {milliseconds(timings['ours'].median):.1f} ms, theirs "
        f"{milliseconds(timings['theirs'].median):.1f} ms per call of {len(x)} images x {steps} steps"
    )
    report(
        f"pgd_vs_torchattacks.{label}",
        ratio,
        TARGET,
        ratio_best=timings["theirs"].best / timings["ours"].best,
        ours_images_per_s=images_per_s,
        max_abs_diff=diff.max().item(),
        differing_pixels=int((diff > 0).sum()),
        pixels=diff.numel(),
    )
    return ratio


def main() -> int:
    args = resolve_args(build_parser().parse_args())
    if args.quick:
        args.batch_size = 16
    print_environment(args)
    print(f"# linf eps {EPS}, step {STEP}, {STEPS if not args.quick else 2} steps, no random start")
    x, y = mnist_like(args.batch_size, args.seed, args.device)
    ratios = [
        compare(
            "lenet5_random", build_mnist_model("lenet5", args.seed, args.device).eval(), x, y, args
        ),
        compare(
            "small_cnn_random",
            build_mnist_model("zou_cnn6", args.seed, args.device, **SMALL_CNN).eval(),
            x,
            y,
            args,
        ),
    ]
    data_dir = real_data_dir()
    if data_dir is not None and not args.quick:
        model, test = trained_lenet_on_mnist(data_dir, args.seed, args.device)
        images = test.images[: args.batch_size].to(args.device).float() / 255
        labels = test.labels[: args.batch_size].to(args.device)
        ratios.append(compare("lenet5_mnist", model, images, labels, args))
    else:
        print(
            f"# real MNIST case skipped ({'--quick' if args.quick else '$RLROBUST_DATA not set'})"
        )
    report("pgd_vs_torchattacks", min(ratios), TARGET, cases=len(ratios))
    return finish(args)


if __name__ == "__main__":
    sys.exit(main())
