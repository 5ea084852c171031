"""Run every benchmark script in turn and print all their RESULT lines at the end.

Each script runs in its own process (so one script's memory or threads never colour the next
one's figures) with the same --quick / --device / --repeats options. The exit code is 1 if a
script failed, and under --strict also if a target was missed.

    python benchmarks/run_all.py --quick          # seconds: does everything still run?
    python benchmarks/run_all.py                  # the full figures (minutes)
    python benchmarks/run_all.py --only pgd memory
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SCRIPTS = (
    "bench_objectives",
    "bench_pgd",
    "bench_attack_overhead",
    "bench_training",
    "bench_memory",
    "bench_autoattack",
    "bench_fast_paths",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N")
    parser.add_argument("--repeats", type=int, default=None, help="override each script's default")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--only",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"run only these scripts (with or without the bench_ prefix): {', '.join(SCRIPTS)}",
    )
    return parser


def selected(only: list[str] | None) -> list[str]:
    if only is None:
        return list(SCRIPTS)
    names = [name if name.startswith("bench_") else f"bench_{name}" for name in only]
    unknown = [name for name in names if name not in SCRIPTS]
    if unknown:
        raise SystemExit(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(SCRIPTS)}"
        )
    return names


def main() -> int:
    args = build_parser().parse_args()
    options = ["--device", args.device]
    options += ["--quick"] if args.quick else []
    options += ["--repeats", str(args.repeats)] if args.repeats is not None else []
    options += ["--strict"] if args.strict else []
    options += ["--threads", str(args.threads)] if args.threads else []
    results: list[str] = []
    failed: list[str] = []
    for name in selected(args.only):
        command = [sys.executable, str(BENCH_DIR / f"{name}.py"), *options]
        print(f"=== {name} ({' '.join(command[1:])})", flush=True)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        print(done.stdout, end="", flush=True)
        if done.returncode != 0:
            print(done.stderr, end="", file=sys.stderr)
            failed.append(name)
        results += [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        print(
            f"=== {name}: exit {done.returncode}, {time.perf_counter() - started:.1f} s", flush=True
        )
    print("\n=== all results")
    print("\n".join(results))
    if failed:
        print(f"=== failed or missed a target under --strict: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
