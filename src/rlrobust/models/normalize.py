"""Mean/std normalisation as the first layer of every model.

Keeping normalisation *inside* the model means images cross every boundary (data loaders,
attacks, AutoAttack, torchattacks) in [0, 1] pixel space, so an eps such as 8/255 always means
what it says. The statistics are buffers, not parameters: they travel with the state_dict but an
optimiser never touches them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from rlrobust.errors import ConfigError


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, with ``mean`` and ``std`` stored as (1, C, 1, 1) buffers.

    Args:
        mean: one value per input channel, e.g. ``(0.4914, 0.4822, 0.4465)`` for CIFAR-10.
        std: one strictly positive value per input channel.

    Shapes: (N, C, H, W) -> (N, C, H, W). Inputs with other trailing dimensions, 1-D signals
    (N, C, L) and video (N, C, T, H, W), are normalised per channel as well: the (1, C, 1, 1)
    buffers are viewed as (1, C, 1) or (1, C, 1, 1, 1), so one state_dict serves every layout.

    Example:
        >>> norm = Normalize(mean=[0.5], std=[0.25])
        >>> norm(torch.ones(1, 1, 2, 2)).flatten().tolist()
        [2.0, 2.0, 2.0, 2.0]
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_values = [float(m) for m in mean]
        std_values = [float(s) for s in std]
        if not mean_values or len(mean_values) != len(std_values):
            raise ConfigError(
                f"Normalize needs one mean and one std per channel, got {len(mean_values)} means "
                f"and {len(std_values)} stds; pass two sequences of the same non-zero length "
                "(the number of input channels)"
            )
        if not all(math.isfinite(m) for m in mean_values):
            raise ConfigError(f"Normalize mean must be finite, got {mean_values}; fix the values")
        if not all(math.isfinite(s) and s > 0 for s in std_values):
            raise ConfigError(
                f"Normalize std must be finite and > 0 in every channel, got {std_values}; "
                "use the per-channel standard deviation of the training pixels (or 1.0 for none)"
            )
        channels = len(mean_values)
        self.register_buffer("mean", torch.tensor(mean_values).view(1, channels, 1, 1))
        self.register_buffer("std", torch.tensor(std_values).view(1, channels, 1, 1))

    @property
    def num_channels(self) -> int:
        return self.mean.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_channels:
            raise ConfigError(
                f"Normalize expects inputs shaped (N, {self.num_channels}, ...), got "
                f"{tuple(x.shape)}; feed images with {self.num_channels} channel(s) or build the "
                "model with in_channels equal to the images' channel count"
            )
        # Same buffers for 2-D images and for 1-D signals / video: only the view changes.
        shape = (1, self.num_channels) + (1,) * (x.dim() - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


def make_normalize(
    in_channels: int, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> Normalize:
    """A ``Normalize`` for ``in_channels`` channels; a missing mean / std means 0 / 1 (identity)."""
    mean = [0.0] * in_channels if mean is None else list(mean)
    std = [1.0] * in_channels if std is None else list(std)
    if len(mean) != in_channels or len(std) != in_channels:
        raise ConfigError(
            f"model has in_channels={in_channels} but mean has {len(mean)} and std {len(std)} "
            f"values; give exactly {in_channels} of each (or leave both out for 0 / 1)"
        )
    return Normalize(mean, std)
