"""torch.compile for training (docs/training.md), opt-in like every fast path.

The layout and precision helpers that evaluation shares (channels_last, bf16 autocast, seeing
through a compiled wrapper) live in ``rlrobust/devices.py``; they are re-exported here for the
training modules that import them from this file.

- ``compile``: ``torch.compile(model)`` for training. The compiled wrapper shares its parameters
  with the plain module, which is what checkpoints save (no ``_orig_mod.`` prefix).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from rlrobust.devices import (  # noqa: F401 - re-exported for the training modules
    COMPILED_PREFIX,
    autocast,
    batch_to_channels_last,
    model_to_channels_last,
    plain_module,
    plain_state_dict,
    warn_if_amp_on_cpu,
)
from rlrobust.errors import ConfigError

# --------------------------------------------------------------------------- torch.compile


def _compile_failed(error: BaseException) -> ConfigError:
    return ConfigError(
        f"train.compile: torch.compile could not compile the model ({type(error).__name__}: "
        f"{str(error).strip().splitlines()[0] if str(error).strip() else 'no message'}); it "
        "needs a working compiler toolchain (a C++ compiler on CPU, Triton on GPU). Set "
        "train.compile false to train without it"
    )


def compile_model(model: nn.Module, backend: str | Callable = "inductor") -> nn.Module:
    """``torch.compile(model)``; a failure to set the compiler up is a ConfigError.

    Compilation itself happens at the first call; wrap the calls in ``compile_errors()`` so a
    compiler that fails there is reported the same way.
    """
    try:
        return torch.compile(model, backend=backend)
    except (RuntimeError, ImportError) as error:
        raise _compile_failed(error) from error


@contextmanager
def compile_errors() -> Iterator[None]:
    """Turn a backend compiler failure inside the block into a ConfigError that names the fix."""
    try:
        yield
    except torch._dynamo.exc.BackendCompilerFailed as error:
        raise _compile_failed(error) from error
