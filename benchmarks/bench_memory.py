"""Peak memory of ``rlrobust.evaluation.protocol.evaluate`` with PGD as the test set grows.

``evaluate`` streams the test set in batches, so its memory should not grow with the number of
test images beyond the uint8 images themselves and one flag per image. Each size (1x, 4x, 16x
a base count of random uint8 MNIST-shaped images) runs in a fresh Python process, because a
process's peak resident set size (``resource.getrusage(...).ru_maxrss``) only ever grows; on a
GPU the figure is ``torch.cuda.max_memory_allocated`` instead. The PGD has few steps: memory
does not depend on the number of steps, only the run time does.

Ratio: peak(16x) / peak(1x); target <= 1.2 (flat). ``eval_mb_*`` is the part of the peak that
appeared during ``evaluate`` (peak minus the resident size just before the call), which shows
the protocol's own footprint without the interpreter and torch.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from common import (
    build_base_parser,
    build_mnist_model,
    finish,
    print_environment,
    report,
    resolve_args,
)

TARGET = "<=1.2"
FACTORS = (1, 4, 16)


def build_parser():
    parser = build_base_parser(__doc__.split("\n\n")[0], repeats=1, warmup=0)
    parser.add_argument("--base", type=int, default=500, help="test images at 1x")
    parser.add_argument("--batch-size", type=int, default=250, help="evaluate's batch size")
    parser.add_argument("--steps", type=int, default=2, help="PGD steps")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def resident_kb() -> int:
    """Current resident set size in KB (Linux: VmRSS in /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def child(args) -> None:
    """Evaluate ``args.child`` images once and print ``PEAK_KB=.. BEFORE_KB=..``."""
    from rlrobust.attacks import PGD
    from rlrobust.data import ImageData
    from rlrobust.evaluation.protocol import evaluate

    generator = torch.Generator().manual_seed(args.seed)
    images = torch.randint(0, 256, (args.child, 1, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (args.child,), generator=generator)
    data = ImageData(images, labels, num_classes=10, name="random", mean=(0.1307,), std=(0.3081,))
    model = build_mnist_model("lenet5", args.seed, args.device)
    attack = PGD(eps=0.1, step_size=0.01, steps=args.steps, seed=args.seed)
    gpu = args.device.type == "cuda"
    if gpu:
        torch.cuda.reset_peak_memory_stats(args.device)
    before = torch.cuda.memory_allocated(args.device) // 1024 if gpu else resident_kb()
    evaluate(model, data, [attack], batch_size=args.batch_size, device=args.device)
    if gpu:
        peak = torch.cuda.max_memory_allocated(args.device) // 1024
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux
    print(f"PEAK_KB={peak} BEFORE_KB={before}")


def child_command(args, n: int) -> list[str]:
    return [
        sys.executable,
        __file__,
        "--child", str(n),
        "--device", str(args.device),
        "--seed", str(args.seed),
        "--batch-size", str(args.batch_size),
        "--steps", str(args.steps),
        "--threads", str(args.threads),
    ]  # fmt: skip


def measure(args, sizes: list[int]) -> dict[int, tuple[float, float]]:
    """Per size, the median over --repeats fresh processes of (peak MB, MB added by evaluate).

    The sizes of one repeat run side by side: each process has its own peak, so running them
    together changes no figure, only the wall time.
    """
    peaks: dict[int, list[float]] = {n: [] for n in sizes}
    added: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(args.repeats):
        running = {
            n: subprocess.Popen(child_command(args, n), stdout=subprocess.PIPE, text=True)
            for n in sizes
        }
        for n, process in running.items():
            out, _ = process.communicate()
            if process.returncode != 0:
                raise SystemExit(
                    f"the child process for {n} images failed (exit {process.returncode})"
                )
            fields = dict(item.split("=") for item in out.strip().splitlines()[-1].split())
            peak, before = int(fields["PEAK_KB"]), int(fields["BEFORE_KB"])
            peaks[n].append(peak / 1024)
            added[n].append(max(peak - before, 0) / 1024)
    return {n: (statistics.median(peaks[n]), statistics.median(added[n])) for n in sizes}


def main() -> int:
    args = resolve_args(build_parser().parse_args(), quick_repeats=1)
    if args.child is not None:
        child(args)
        return 0
    if args.quick:
        args.base, args.batch_size, args.steps = 16, 8, 1
    print_environment(args)
    kind = "torch.cuda.max_memory_allocated" if args.device.type == "cuda" else "ru_maxrss"
    print(f"# lenet5, PGD {args.steps} steps, batch {args.batch_size}, peak by {kind}")
    sizes = [factor * args.base for factor in FACTORS]
    by_size = measure(args, sizes)
    results = {}
    for factor, n in zip(FACTORS, sizes, strict=True):
        results[factor] = by_size[n]
        peak, added = results[factor]
        print(
            f"# {factor:>2}x = {n:>6} images: peak {peak:8.1f} MB, added by evaluate {added:7.1f} MB"
        )
    first, last = results[FACTORS[0]], results[FACTORS[-1]]
    report(
        "eval_memory_16x_vs_1x",
        last[0] / first[0],
        TARGET,
        peak_mb_1x=first[0],
        peak_mb_16x=last[0],
        eval_mb_1x=first[1],
        eval_mb_16x=last[1],
        images_1x=args.base,
    )
    return finish(args)


if __name__ == "__main__":
    sys.exit(main())
