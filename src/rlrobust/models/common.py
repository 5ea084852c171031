"""Small checks and helpers shared by the model files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from rlrobust.errors import ConfigError
from rlrobust.registry import MODELS


def check_model_args(
    model: str, num_classes: int, in_channels: int, image_size: int, min_image_size: int
) -> None:
    """Reject sizes the architecture cannot handle, with a message that says what to change."""
    for name, value, low in (
        ("num_classes", num_classes, 2),
        ("in_channels", in_channels, 1),
        ("image_size", image_size, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{model}: {name} must be an integer >= {low}, got {value!r}")
    if image_size < min_image_size:
        raise ConfigError(
            f"{model}: image_size={image_size} is too small for this architecture (its pooling "
            f"needs at least {min_image_size}); resize the images to >= {min_image_size} pixels "
            "or choose a model with fewer pooling stages (e.g. 'mlp' or 'gupta_cnn')"
        )


def flat_features(features: nn.Module, in_channels: int, image_size: int) -> int:
    """Number of features ``features`` yields for one image, found by a dummy forward.

    Only used for feature stacks without BatchNorm, so the dummy pass changes no state.
    """
    with torch.no_grad():
        out = features(torch.zeros(1, in_channels, image_size, image_size))
    return out[0].numel()


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters (buffers such as the Normalize statistics are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def register_model(name: str, cls: type[nn.Module], **fixed: Any) -> Callable[..., nn.Module]:
    """Register ``cls`` under ``name`` with the keyword signature every model factory shares.

    ``fixed`` holds architecture arguments that the name implies (e.g. ResNet-18's blocks).
    """

    def build(
        *,
        num_classes: int,
        in_channels: int,
        image_size: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> nn.Module:
        return cls(num_classes, in_channels, image_size, mean, std, **fixed, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"{cls.__name__} registered as {name!r}" + (f" with {fixed}" if fixed else "")
    return MODELS.register(name)(build)
