"""RLAB's distortion filters, "bring your own filter" (Sarkar et al. 2024, Sec. 3.2).

A filter maps a batch of whole inputs (B, C, *spatial) in [0, 1] and a severity level to a
distorted batch of the same shape. The environment computes each filter once per episode on the
clean input and copies the distorted values into the chosen patch only, so a distortion touches
its patch alone and removing it restores the clean values exactly. Random filters draw from the
generator they are given, so a fixed seed gives the same episode.

Adding a filter takes a few lines::

    from rlrobust.attacks.rlab.filters import register_filter

    @register_filter("invert", levels=(1.0,))
    def invert(x, level, generator):
        return x + level * (1 - 2 * x)

Outputs are clamped to [0, 1] by the environment; the built-in filters are in range already.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from rlrobust.errors import ConfigError, UnknownNameError

FilterFn = Callable[[Tensor, float, torch.Generator], Tensor]


@dataclass(frozen=True)
class Filter:
    name: str
    fn: FilterFn
    levels: tuple[float, ...]  # severities, mildest first


FILTERS: dict[str, Filter] = {}


def register_filter(name: str, levels: Sequence[float]) -> Callable[[FilterFn], FilterFn]:
    """Decorator: add ``fn(x, level, generator) -> x_distorted`` under ``name``."""
    if not levels:
        raise ConfigError(f"filter {name!r} needs at least one severity level")

    def add(fn: FilterFn) -> FilterFn:
        if name in FILTERS:
            raise ConfigError(f"filter {name!r} is registered twice; pick another name")
        FILTERS[name] = Filter(name, fn, tuple(float(v) for v in levels))
        return fn

    return add


def get_filter(name: str) -> Filter:
    if name not in FILTERS:
        raise UnknownNameError(f"unknown RLAB filter {name!r}; choose one of: {', '.join(FILTERS)}")
    return FILTERS[name]


@register_filter("gaussian_noise", levels=(0.1, 0.25, 0.5))
def gaussian_noise(x: Tensor, level: float, generator: torch.Generator) -> Tensor:
    """Additive N(0, level^2) noise."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return (x + level * noise).clamp(0, 1)


@register_filter("gaussian_blur", levels=(0.5, 1.0, 2.0))
def gaussian_blur(x: Tensor, level: float, generator: torch.Generator) -> Tensor:
    """Separable Gaussian blur with standard deviation ``level`` (in elements), edges replicated;
    a convex combination of values, so it stays in [0, 1]. It runs along the signal's time axis
    (B, C, L), an image's rows and columns (B, C, H, W), and a video's rows and columns only
    (B, C, T, H, W): each frame is blurred on its own, as a camera's defocus would, and frames
    are not smeared into each other."""
    radius = max(1, math.ceil(2 * level))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps / level) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    out = x
    for dim in blur_dims(x.dim()):
        moved = out.movedim(dim, -1)
        rows = moved.reshape(-1, 1, moved.shape[-1])
        rows = F.pad(rows, (radius, radius), mode="replicate")
        blurred = F.conv1d(rows, kernel).reshape(moved.shape)
        out = blurred.movedim(-1, dim)
    return out


def blur_dims(ndim: int) -> tuple[int, ...]:
    """The dims a spatial filter acts along for a (B, C, *spatial) batch: the last two at most
    (time for signals; height and width for images and video frames)."""
    return tuple(range(max(2, ndim - 2), ndim))


@register_filter("dead_pixel", levels=(0.25, 0.5, 1.0))
def dead_pixel(x: Tensor, level: float, generator: torch.Generator) -> Tensor:
    """A fraction ``level`` of elements (all channels together) set to 0, as a dead sensor. On
    video (B, C, T, H, W) a dead pixel stays dead in every frame (a sensor defect, not flicker);
    on a signal it is a dropped sample."""
    shape = [x.shape[0], 1, *x.shape[2:]]
    if x.dim() == 5:
        shape[2] = 1  # one draw per pixel, shared by all frames
    dead = torch.rand(shape, generator=generator, device=x.device) < level
    return x.masked_fill(dead, 0.0)


@register_filter("illuminate", levels=(0.25, 0.5, 1.0))
def illuminate(x: Tensor, level: float, generator: torch.Generator) -> Tensor:
    """Brightness raised by ``level`` and clipped at white."""
    return (x + level).clamp(0, 1)


@dataclass(frozen=True)
class Operation:
    """One add action's distortion: a filter at one severity level."""

    filter: str
    level: float

    @property
    def label(self) -> str:
        return f"{self.filter}@{self.level:g}"


def operations(filter_names: Sequence[str], levels: str = "all") -> list[Operation]:
    """The add operations of the chosen filters: every level, or only the strongest."""
    if levels not in {"all", "strongest"}:
        raise ConfigError(f"levels must be 'all' or 'strongest', not {levels!r}")
    if not filter_names:
        raise ConfigError(f"choose at least one RLAB filter from: {', '.join(FILTERS)}")
    ops = []
    for name in filter_names:
        spec = get_filter(name)
        chosen = spec.levels if levels == "all" else spec.levels[-1:]
        ops += [Operation(name, level) for level in chosen]
    return ops


def distorted_candidates(x: Tensor, ops: Sequence[Operation], generator: torch.Generator) -> Tensor:
    """(B, C, *spatial) -> (B, K, C, *spatial): each operation applied to the whole clean input."""
    outs = []
    for op in ops:
        out = get_filter(op.filter).fn(x, op.level, generator)
        if out.shape != x.shape:
            raise ConfigError(
                f"filter {op.filter!r} returned shape {tuple(out.shape)} for input "
                f"{tuple(x.shape)}; a filter must keep the input's shape"
            )
        outs.append(out.clamp(0, 1).to(x.dtype))
    return torch.stack(outs, dim=1)
