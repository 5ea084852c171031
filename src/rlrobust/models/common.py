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
) -> None:  # image_size is the length L for signal models
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


# Input rank (the number of dimensions after the channel axis) -> what the model takes.
INPUT_KINDS: dict[int, str] = {
    1: "1-D signals (N, C, L)",
    2: "images (N, C, H, W)",
    3: "video clips (N, C, T, H, W)",
}


def shape_arguments(
    model: str,
    rank: int,
    in_channels: int | None,
    image_size: int | None,
    input_shape: Sequence[int] | None,
) -> tuple[int, int, dict[str, int]]:
    """``(in_channels, image_size, extra)`` for a model of input ``rank`` from either form.

    ``input_shape`` is one sample's shape, ``ImageData.shape``: (C, L), (C, H, W) or
    (C, T, H, W). ``image_size`` is then L, H (= W, the image models are square) or H (= W),
    and ``extra`` holds ``frames=T`` for video models. Without ``input_shape``, ``in_channels``
    and ``image_size`` are used as given (the older form).
    """
    if input_shape is None:
        if in_channels is None or image_size is None:
            raise ConfigError(
                f"{model}: give input_shape (one sample's shape, e.g. data.shape) or both "
                "in_channels and image_size"
            )
        return in_channels, image_size, {}
    shape = tuple(input_shape)
    if len(shape) != rank + 1 or not all(isinstance(v, int) and v >= 1 for v in shape):
        kinds = ", ".join(f"{k}-D: {v}" for k, v in INPUT_KINDS.items())
        raise ConfigError(
            f"{model} takes {INPUT_KINDS[rank]}, so input_shape must have {rank + 1} positive "
            f"sizes (channels first), got {shape}; choose a model for this input ({kinds}; "
            "see `rlrobust train --list`)"
        )
    if in_channels is not None and in_channels != shape[0]:
        raise ConfigError(f"{model}: in_channels={in_channels} but input_shape is {shape}")
    extra: dict[str, int] = {}
    if rank == 1:
        size = shape[1]
    else:
        if shape[-1] != shape[-2]:
            raise ConfigError(
                f"{model} takes square frames, got {shape[-2]} x {shape[-1]}; resize or crop "
                "them to a square"
            )
        size = shape[-1]
        if rank == 3:
            extra["frames"] = shape[1]
    if image_size is not None and image_size != size:
        raise ConfigError(f"{model}: image_size={image_size} but input_shape is {shape}")
    return shape[0], size, extra


def register_model(
    name: str, cls: type[nn.Module], input_rank: int = 2, **fixed: Any
) -> Callable[..., nn.Module]:
    """Register ``cls`` under ``name`` with the keyword signature every model factory shares.

    ``input_rank`` is 1 for signal models, 2 for image models, 3 for video models; it is kept
    as the factory's ``input_rank`` attribute (see ``models.model_input_rank``). ``fixed`` holds
    architecture arguments that the name implies (e.g. ResNet-18's blocks).
    """
    if input_rank not in INPUT_KINDS:
        raise ValueError(f"input_rank must be 1, 2 or 3, got {input_rank}")

    def build(
        *,
        num_classes: int,
        in_channels: int | None = None,
        image_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        input_shape: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> nn.Module:
        channels, size, extra = shape_arguments(
            name, input_rank, in_channels, image_size, input_shape
        )
        return cls(num_classes, channels, size, mean, std, **fixed, **extra, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"{cls.__name__} registered as {name!r}" + (f" with {fixed}" if fixed else "")
    build.input_rank = input_rank  # type: ignore[attr-defined]
    return MODELS.register(name)(build)
