"""Where and how tensors compute: the device, bf16 autocast, channels_last, compiled wrappers.

These helpers sit below training and evaluation, which both use them (DESIGN principle 8: a
fast path is opt-in and never changes the numbers silently). Each is a no-op for the default
settings, so the default path runs exactly the code it ran before; the tolerances the fast
paths are tested to are listed in docs/training.md.

- ``channels_last``: stores 4-D weights and image batches as NHWC. The values are the same; only
  the memory layout (and so the order of some floating-point sums inside convolutions) changes.
- ``amp="bf16"``: ``torch.autocast`` with bfloat16 around forward passes. Matrix products run in
  bfloat16 (8 bits of mantissa), so logits differ from float32 at about 1e-2 relative; the
  objectives compute their losses in float32 (``objectives/core.py``).
- ``plain_module`` / ``plain_state_dict``: see through a ``torch.compile`` wrapper (training's
  ``training/fast.py`` compiles), so weights saved from a compiled run load into a plain model.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from rlrobust.errors import ConfigError

#: the prefix torch.compile's wrapper puts in front of every state_dict key.
COMPILED_PREFIX = "_orig_mod."


# --------------------------------------------------------------------------- device


def module_device(model: nn.Module) -> torch.device:
    """Where a model's parameters are (the CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def resolve_device(name: str) -> torch.device:
    """``torch.device`` for a config's device name; "auto" picks CUDA when it is available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} was asked for but CUDA is not available; use --train.device cpu"
        )
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None


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
    """One line where bf16 will not pay: on a CPU it runs but is rarely faster, and on a GPU
    without bf16 arithmetic (before Ampere) torch emulates it, slower than float32."""
    device = torch.device(device)
    if amp == "none":
        return
    if device.type == "cpu":
        log(
            f"warning: train.amp = {amp} on a CPU: bf16 autocast mainly pays off on GPUs; "
            "set train.amp none if this run is slower than without it"
        )
    elif device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        log(
            f"warning: train.amp = {amp}: {torch.cuda.get_device_name(device)} has no native "
            "bf16, so torch emulates it (slower than float32); set train.amp none"
        )


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
