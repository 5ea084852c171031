"""Opt-in fast paths: channels_last, bf16 autocast and torch.compile (docs/training.md).

DESIGN principle 8: a fast path is opt-in and never changes the numbers silently. Each helper
here is a no-op for the default settings, so the default path runs exactly the code it ran
before; the tolerances the fast paths are tested to are listed in docs/training.md.

- ``channels_last``: stores 4-D weights and image batches as NHWC. The values are the same; only
  the memory layout (and so the order of some floating-point sums inside convolutions) changes.
- ``amp="bf16"``: ``torch.autocast`` with bfloat16 around forward passes. Matrix products run in
  bfloat16 (8 bits of mantissa), so logits differ from float32 at about 1e-2 relative; the
  objectives compute their losses in float32 (``objectives/core.py``).
- ``compile``: ``torch.compile(model)`` for training. The compiled wrapper shares its parameters
  with the plain module, which is what checkpoints save (no ``_orig_mod.`` prefix).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from rlrobust.errors import ConfigError

#: the prefix torch.compile's wrapper puts in front of every state_dict key.
COMPILED_PREFIX = "_orig_mod."


# --------------------------------------------------------------------------- channels_last


def model_to_channels_last(model: nn.Module) -> nn.Module:
    """Switch the model's 4-D parameters and buffers to channels_last (in place; same values)."""
    return model.to(memory_format=torch.channels_last)


def batch_to_channels_last(x: Tensor) -> Tensor:
    """A 4-D image batch (N, C, H, W) in channels_last layout; other shapes are returned as is."""
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


# --------------------------------------------------------------------------- autocast


def autocast(amp: str, device: torch.device | str):
    """The autocast context for ``amp`` ("none": a no-op context, so the default is untouched)."""
    if amp == "none":
        return nullcontext()
    if amp == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    raise ConfigError(f"train.amp = {amp!r} is unknown; choose none or bf16")


def warn_if_amp_on_cpu(amp: str, device: torch.device | str, log: Callable[[str], Any]) -> None:
    """One line: bf16 on a CPU is allowed (it runs), but it is rarely faster there."""
    if amp != "none" and torch.device(device).type == "cpu":
        log(
            f"warning: train.amp = {amp} on a CPU: bf16 autocast mainly pays off on GPUs; "
            "set train.amp none if this run is slower than without it"
        )


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


def plain_module(model: nn.Module) -> nn.Module:
    """The module under a torch.compile wrapper (or the model itself)."""
    return getattr(model, "_orig_mod", model)


def plain_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The state dict without torch.compile's ``_orig_mod.`` key prefix.

    Checkpoints saved from a compiled run then load into a plain model (and vice versa).
    """
    return {
        (key[len(COMPILED_PREFIX) :] if key.startswith(COMPILED_PREFIX) else key): value
        for key, value in model.state_dict().items()
    }
