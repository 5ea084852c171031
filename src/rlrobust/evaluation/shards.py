"""Evaluation that shards: the test points split over processes (torchrun ranks, Ray workers or
separate machines), each shard a resumable unit, merged into one record.

A shard ``K/N`` computes the batches ``b`` with ``b % N == K`` and stores their (batch, attack)
units in the evaluation's partial state (``OUT/NAME.partial/``, ``resume.py``), then leaves a
``shard-K-of-N.done`` marker. The units are seeded per batch start and attack (not per process),
so a shard computes exactly the units a single process would; the record is assembled by an
ordinary resumed evaluation, which finds every unit stored, and its per-sample verdicts equal a
single-process run with the same seed and batch size.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from rlrobust.errors import ConfigError, RLRobustError
from rlrobust.files import atomic_write_text

SHARD_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N."""
    match = SHARD_PATTERN.match(str(text))
    if not match:
        raise ConfigError(f"--shard {text!r} must look like K/N, e.g. 0/4 (the first of four)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {text}: K must lie in 0..N-1 and N be >= 1, e.g. 0/4")
    return index, count


def in_shard(batch: int, shard: tuple[int, int] | None) -> bool:
    return shard is None or batch % shard[1] == shard[0]


def done_marker(state_dir: str | Path, shard: tuple[int, int]) -> Path:
    return Path(state_dir) / f"shard-{shard[0]}-of-{shard[1]}.done"


def mark_done(state_dir: str | Path, shard: tuple[int, int]) -> Path:
    return atomic_write_text(done_marker(state_dir, shard), "done\n")


def missing_shards(state_dir: str | Path, count: int) -> list[int]:
    return [k for k in range(count) if not done_marker(state_dir, (k, count)).is_file()]


def wait_for_shards(
    state_dir: str | Path,
    count: int,
    *,
    timeout: float | None = None,
    poll: float = 2.0,
    log: Callable[[str], None] = print,
) -> None:
    """Block until every shard of ``count`` left its marker (rank 0 of a torchrun job does this
    before it assembles the record); a timeout names the shards still missing."""
    started = time.monotonic()
    announced = False
    while missing := missing_shards(state_dir, count):
        if timeout is not None and time.monotonic() - started > timeout:
            raise RLRobustError(
                f"shards {missing} of {count} did not finish within {timeout:.0f} s; their units "
                f"stay in {state_dir}: rerun those shards, or the command with --resume"
            )
        if not announced:
            log(f"waiting for shards {missing} of {count} ...")
            announced = True
        time.sleep(poll)
