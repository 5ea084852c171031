"""Out-of-memory back-off: halve the batch and retry instead of dying after an hour of work.

The retry starts the failed computation again at half the batch size, so its result is the
result of a run with the smaller batch from the start (each batch is a pure function of its
points and the seeds: docs/evaluation.md, "Memory"). A batch of one that still does not fit is
a real error and is raised.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


class MemoryBackoffWarning(UserWarning):
    """An evaluation ran out of memory and is retried with half the batch size."""


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's ``torch.OutOfMemoryError``, and the RuntimeError other backends (MPS, CPU
    allocators) raise with "out of memory" in the message."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def halve_batch(
    batch_size: int, error: BaseException, what: str, device=None, note: str = ""
) -> int:
    """The smaller batch size after ``error``, with a warning; re-raises when nothing is left."""
    if batch_size <= 1:
        raise error
    smaller = batch_size // 2
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.empty_cache()  # give the failed batch's cached blocks back before retrying
    warnings.warn(
        f"out of memory during {what} with batch size {batch_size}; retrying with batch size "
        f"{smaller}{note}. The result equals a run with batch size {smaller} from the start; "
        f"set --data.eval_batch_size {smaller} (or batch_size={smaller}) to skip this retry",
        MemoryBackoffWarning,
        stacklevel=3,
    )
    return smaller


def with_oom_backoff(
    run: Callable[[int], T], batch_size: int, what: str, device=None, enabled: bool = True
) -> T:
    """``run(batch_size)``, halving ``batch_size`` after each out-of-memory error."""
    while True:
        try:
            return run(batch_size)
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not enabled or not is_out_of_memory(error):
                raise
            batch_size = halve_batch(batch_size, error, what, device)
