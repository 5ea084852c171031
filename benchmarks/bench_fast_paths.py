"""Throughput of each opt-in fast path against the plain path, measured in the same run.

Training rows: images/s of ``train_one_epoch`` on random MNIST-shaped batches, a small CNN
(``zou_cnn6``, widths 16/32, hidden 128), batch 128, SGD with momentum, built through the
package (``training.optim.build_optimizer`` and ``devices`` and ``training.fast``): plain, ``channels_last``,
``amp=bf16``, ``optim.fused`` and ``compile`` (torch.compile; it compiles in a first call
before the timed rounds, reported as ``compile_s``). Every contender starts from the same
weights and trains on the same batches.

Evaluation row: ``evaluation.protocol.evaluate`` with PGD (linf, eps 0.15, 20 steps of 0.03,
random start) on an MLP trained for a second on the offline digits set, with and without
``early_exit``; the per-sample verdicts of the two are checked to be identical
(``verdicts_equal``).

Ratio: fast images/s / plain images/s, target >= 1.0 for each (a goal: on a CPU, channels_last
and bf16 rarely help; they are meant for GPUs). The last line, ``fast_paths``, gives the best
ratio and repeats every ratio as a field.
"""

from __future__ import annotations

import copy
import sys

import torch
from common import (
    build_base_parser,
    build_mnist_model,
    finish,
    mnist_like,
    print_environment,
    report,
    resolve_args,
    time_interleaved,
)

from rlrobust.config import OptimConfig
from rlrobust.training import fast
from rlrobust.training.loop import train_one_epoch
from rlrobust.training.optim import build_optimizer

TARGET = ">=1.0"
SMALL_CNN = {"widths": (16, 32), "hidden": 128}
PGD_SETTINGS = {"eps": 0.15, "steps": 20, "step_size": 0.03, "random_start": True, "seed": 0}


def build_parser():
    parser = build_base_parser(__doc__.split("\n\n")[0], repeats=3, warmup=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=10, help="batches per timed epoch")
    parser.add_argument(
        "--skip-compile",
        action="store_true",
        help="leave out the torch.compile row (its compilation takes tens of seconds on a CPU; "
        "--quick skips it too)",
    )
    return parser


def cross_entropy(logits, y, generator=None):
    return torch.nn.functional.cross_entropy(logits.float(), y), {}


def training_runner(
    model, batches, *, channels_last=False, amp="none", fused=False, compiled=False
):
    """One epoch over ``batches`` with the fast paths given; a private copy of ``model``."""
    model = copy.deepcopy(model)
    optimizer = build_optimizer(
        OptimConfig(name="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, fused=fused),
        model.parameters(),
    )
    if channels_last:
        fast.model_to_channels_last(model)
    train_model = fast.compile_model(model) if compiled else model

    def run():
        with fast.compile_errors():
            train_one_epoch(
                train_model, batches, cross_entropy, optimizer, channels_last=channels_last, amp=amp
            )

    return run


def trained_digits_mlp(seed: int, device: torch.device, steps: int):
    from rlrobust.data import load_dataset
    from rlrobust.models import build_model

    train = load_dataset("digits", "train")
    torch.manual_seed(seed)
    model = build_model(
        "mlp", num_classes=10, in_channels=1, image_size=8, mean=train.mean, std=train.std
    ).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = (train.images.float() / 255).to(device), train.labels.to(device)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), load_dataset("digits", "test")


def main() -> int:
    args = resolve_args(build_parser().parse_args())
    if args.quick:
        args.batch_size, args.batches, args.skip_compile = 32, 2, True
    print_environment(args)

    # ---- training step throughput
    x, y = mnist_like(args.batch_size * args.batches, args.seed, args.device)
    batches = list(zip(x.split(args.batch_size), y.split(args.batch_size), strict=True))
    model = build_mnist_model("zou_cnn6", args.seed, args.device, **SMALL_CNN)
    runners = {
        "plain": training_runner(model, batches),
        "channels_last": training_runner(model, batches, channels_last=True),
        "bf16": training_runner(model, batches, amp="bf16"),
        "fused": training_runner(model, batches, fused=True),
    }
    if not args.skip_compile:
        runners["compile"] = training_runner(model, batches, compiled=True)
        started = time_interleaved(
            {"compile": runners["compile"]}, device=args.device, repeats=1, warmup=0
        )
        compile_seconds = started["compile"].median  # the first call compiles
    timings = time_interleaved(
        runners, device=args.device, repeats=args.repeats, warmup=args.warmup
    )
    images = len(x)
    throughput = {name: images / t.median for name, t in timings.items()}
    best = {name: images / t.best for name, t in timings.items()}
    print(f"# zou_cnn6 {SMALL_CNN}, batch {args.batch_size}, {images} images per epoch, SGD")
    print(f"# {'path':<14} {'images/s':>10} {'vs plain':>9}")
    for name, value in throughput.items():
        print(f"# {name:<14} {value:10.0f} {value / throughput['plain']:9.3f}")
    ratios = {}
    for name in runners:
        if name == "plain":
            continue
        ratios[name] = throughput[name] / throughput["plain"]
        extra = {"compile_s": compile_seconds} if name == "compile" else {}
        report(
            f"fast_path_{name}",
            ratios[name],
            TARGET,
            ratio_best=best[name] / best["plain"],
            images_per_s=throughput[name],
            plain_images_per_s=throughput["plain"],
            **extra,
        )
    if args.skip_compile:
        print("# compile: skipped (--skip-compile or --quick)")

    # ---- PGD evaluation with and without early exit
    from rlrobust.evaluation.protocol import evaluate

    mlp, test = trained_digits_mlp(args.seed, args.device, 30 if args.quick else 150)
    if args.quick:
        test = test.take(64, seed=args.seed)
    spec = [{"name": "pgd", "settings": PGD_SETTINGS}]
    records = {}

    def evaluation(early_exit):
        def run():
            records[early_exit] = evaluate(
                mlp, test, spec, batch_size=500, device=args.device, early_exit=early_exit
            )

        return run

    eval_timings = time_interleaved(
        {"plain": evaluation(False), "early_exit": evaluation(True)},
        device=args.device,
        repeats=args.repeats,
        warmup=args.warmup,
    )
    same = records[True]["per_sample"] == records[False]["per_sample"]
    ratios["early_exit"] = eval_timings["plain"].median / eval_timings["early_exit"].median
    print(
        f"# PGD {PGD_SETTINGS} on {len(test)} digits test images: robust accuracy "
        f"{records[True]['robust_accuracy']:.3f} (clean {records[True]['clean_accuracy']:.3f})"
    )
    report(
        "fast_path_early_exit",
        ratios["early_exit"],
        TARGET,
        ratio_best=eval_timings["plain"].best / eval_timings["early_exit"].best,
        plain_ms=1000 * eval_timings["plain"].median,
        early_exit_ms=1000 * eval_timings["early_exit"].median,
        verdicts_equal=same,
    )
    winner = max(ratios, key=ratios.get)
    report("fast_paths", ratios[winner], TARGET, best=winner, **ratios)
    if not same:
        print(
            "# early exit changed a verdict: a bug, see tests/test_fast_paths.py", file=sys.stderr
        )
        return 1
    return finish(args)


if __name__ == "__main__":
    sys.exit(main())
