"""Timing and reporting helpers shared by the benchmark scripts.

Every script measures two or more contenders in the same process, on the same model, data and
seed, and prints their ratio. Timings are medians over ``--repeats`` rounds after ``--warmup``
untimed rounds. Within a round the contenders run back to back, and the order flips every
round, so background load (other processes on a shared machine) and cache warmth hit every
contender alike instead of biasing the one that happens to run first.

A script ends with one machine-readable line per measured figure, for example::

    RESULT name=pgd_vs_torchattacks ratio=1.07 target>=1.0 ok=true

``ratio`` is always a plain decimal number (or ``nan`` when nothing could be measured),
``target`` states the direction and threshold, and ``ok`` says whether the target was met.
Extra ``key=value`` fields may follow. Timing targets are goals to track, not tests: the
scripts exit 0 whether or not a target is met (``--strict`` turns a miss into exit code 1).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DATA_ENV_VAR = "RLROBUST_DATA"

# Every RESULT line a script printed, so --strict can look at them at the end.
_RESULTS: list[tuple[str, bool]] = []


# --------------------------------------------------------------------------- command line


def build_base_parser(
    description: str, *, repeats: int, warmup: int = 2
) -> argparse.ArgumentParser:
    """The options every benchmark shares: --quick, --device, --repeats, --warmup, --seed."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and few repeats: checks that the script runs, the figures mean little",
    )
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N")
    parser.add_argument("--repeats", type=int, default=repeats, help="timed rounds (median)")
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed rounds first")
    parser.add_argument("--seed", type=int, default=0, help="seed for models and data")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch.set_num_threads before measuring (0: keep torch's default); on a machine "
        "shared with other processes, 1 gives steadier figures",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit with code 1 when a target is missed"
    )
    return parser


def resolve_args(args: argparse.Namespace, quick_repeats: int = 2) -> argparse.Namespace:
    """Shrink repeats in quick mode and check the device before any work starts."""
    if args.quick:
        args.repeats = min(args.repeats, quick_repeats)
        args.warmup = min(args.warmup, 1)
    if args.repeats < 1 or args.warmup < 0:
        raise SystemExit(
            f"--repeats must be >= 1 and --warmup >= 0, got {args.repeats}, {args.warmup}"
        )
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    args.device = torch.device(args.device)
    if args.device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device} was asked for but CUDA is not available; use cpu")
    return args


def print_environment(args: argparse.Namespace) -> None:
    """One line that says where the figures come from."""
    threads = torch.get_num_threads()
    cpus = os.cpu_count()
    gpu = torch.cuda.get_device_name(args.device) if args.device.type == "cuda" else "-"
    print(
        f"# torch {torch.__version__}, device {args.device} ({gpu}), {threads} threads, "
        f"{cpus} cpus, quick={args.quick}, repeats={args.repeats}, warmup={args.warmup}"
    )


# --------------------------------------------------------------------------- timing


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so the clock measures the work and not the launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timing:
    """Seconds per call of one contender, over the timed rounds."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        return min(self.samples)

    @property
    def spread(self) -> float:
        """(max - min) / median: how much the rounds disagreed (load on a shared machine)."""
        return (max(self.samples) - min(self.samples)) / self.median if self.median > 0 else 0.0


def time_interleaved(
    contenders: dict[str, Callable[[], object]],
    *,
    device: torch.device,
    repeats: int,
    warmup: int,
) -> dict[str, Timing]:
    """Time each zero-argument callable ``repeats`` times, interleaved, after ``warmup`` rounds.

    Each round calls every contender once; the order is reversed on odd rounds.
    """
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    synchronize(device)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            synchronize(device)
            started = time.perf_counter()
            contenders[name]()
            synchronize(device)
            samples[name].append(time.perf_counter() - started)
    return {name: Timing(values) for name, values in samples.items()}


# --------------------------------------------------------------------------- reporting


def target_met(ratio: float, target: str) -> bool:
    """``target`` is ``">=1.0"`` or ``"<=1.03"``; a NaN ratio never meets a target."""
    if math.isnan(ratio):
        return False
    if target.startswith(">="):
        return ratio >= float(target[2:])
    if target.startswith("<="):
        return ratio <= float(target[2:])
    raise ValueError(f"target must start with >= or <=, got {target!r}")


def format_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace(" ", "_")


def report(name: str, ratio: float, target: str, **extra: object) -> bool:
    """Print ``RESULT name=.. ratio=.. target.. ok=.. key=value ...``; return whether ok."""
    ok = target_met(ratio, target)
    fields = [f"name={name}", f"ratio={ratio:.4f}", f"target{target}", f"ok={format_value(ok)}"]
    fields += [f"{key}={format_value(value)}" for key, value in extra.items()]
    print("RESULT " + " ".join(fields), flush=True)
    _RESULTS.append((name, ok))
    return ok


def finish(args: argparse.Namespace) -> int:
    """Exit code: 0, or 1 under --strict when any target was missed."""
    missed = [name for name, ok in _RESULTS if not ok]
    if missed:  # to stderr: the RESULT lines stay the last lines of stdout
        print(f"# target missed: {', '.join(missed)}", file=sys.stderr)
    return 1 if args.strict and missed else 0


def milliseconds(seconds: float) -> float:
    return 1000.0 * seconds


# --------------------------------------------------------------------------- data and models


def mnist_like(
    n: int, seed: int, device: torch.device, num_classes: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random MNIST-shaped images (N, 1, 28, 28) in [0, 1] and int64 labels, from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=generator)
    y = torch.randint(0, num_classes, (n,), generator=generator)
    return x.to(device), y.to(device)


def build_mnist_model(
    name: str, seed: int, device: torch.device, **options: object
) -> torch.nn.Module:
    """A model from the zoo for 1x28x28 inputs and 10 classes, initialised from ``seed``."""
    from rlrobust.models import build_model

    torch.manual_seed(seed)
    model = build_model(
        name, num_classes=10, in_channels=1, image_size=28, mean=[0.1307], std=[0.3081], **options
    )
    return model.to(device)


def real_data_dir() -> Path | None:
    """$RLROBUST_DATA when it is set and holds mnist/, else None."""
    value = os.environ.get(DATA_ENV_VAR, "")
    if value and (Path(value).expanduser() / "mnist").is_dir():
        return Path(value).expanduser()
    return None
