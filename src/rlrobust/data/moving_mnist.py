"""Moving-MNIST clips (Srivastava et al. 2015, "Unsupervised Learning of Video Representations
using LSTMs", Sec. 3), generated deterministically from the real MNIST digits.

Each clip is ``frames`` grey frames of ``size`` x ``size`` pixels (default 10 frames of 64 x 64)
in which one 28 x 28 MNIST digit moves in a straight line at a constant integer speed and
bounces off the walls (the reflecting dynamics of Srivastava et al., with one digit instead of
two). Shape (N, 1, T, H, W), uint8; train clips use digits of the MNIST train split, test clips
digits of the test split.

**Label: the direction of motion, 8 classes** (``DIRECTIONS``: right, up-right, up, up-left,
left, down-left, down, down-right; "up" is towards row 0). It is the direction of the first
step, from frame 0 to frame 1: the start position is drawn so that this step never touches a
wall. The digit's identity is independent of the label, so a single frame shows *which* digit
but not *where it is going*: the label needs the time axis.

One honest caveat, measured (docs/data.md): with bouncing, *where* the digit is in a later
frame depends a little on where it started going (a digit that set off to the right is, a few
frames later, more often on the right), so a one-frame classifier gets above chance on
mid-clip frames (LeNet-5 on frame 5: 32% test accuracy; on frame 0: 11%; chance 12.5%; cnn3d
on whole clips: 97%). ``motion="wrap"`` (registered as ``moving-mnist-wrap``) removes that cue
exactly: the digit leaves one edge and re-enters at the opposite one (a torus), so its position
in every frame is uniform whatever the direction.

Motion (``"bounce"``, Srivastava et al.): the digit's top-left corner ``p`` lives in
[0, size - 28] on each axis; each frame ``p += v``, and a coordinate that leaves the range is
reflected back (``p -> -p`` or ``p -> 2 * (size - 28) - p``) with that velocity component
negated. Motion ``"wrap"``: ``p = (p0 + v t) mod size`` and the digit is drawn wrapped around the
edges. Velocity ``v = speed * (dx, dy)`` with ``(dx, dy)`` in {-1, 0, 1}^2 the direction's unit
step (diagonals move ``speed`` pixels on both axes) and ``speed`` drawn from ``SPEEDS``.

Determinism: clip ``i`` of a split is a pure function of ``(seed, split, i)`` (its own
``numpy.random.default_rng([seed, split_id, i])``), so the first 100 clips are the same whether
100 or 10,000 are asked for.

**Ground-truth localisation:** ``data.masks`` is a bool tensor shaped like the clips, true
exactly where the digit's pixels are (digit pixel > 0 after placement) in each frame. Since the
background is 0 and there is one digit, ``masks == (images > 0)``. ``clip_masks(data)`` returns
it (and fails clearly for data without masks); ``clip_trajectory`` gives the corner positions.

``mean`` / ``std`` are exact expectations, not sample estimates: a digit covers 784 of
``size**2`` pixels and the rest are 0, so mean = MNIST mean * 784 / size**2 and
E[x^2] = (MNIST std^2 + MNIST mean^2) * 784 / size**2.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from rlrobust.data.dataset import ImageData, check_split
from rlrobust.data.idx import MNIST_MEAN, MNIST_STD, load_mnist
from rlrobust.errors import DataError
from rlrobust.registry import DATASETS

DIGIT = 28
# Direction k: (dx, dy) in image coordinates (column, row), counter-clockwise from "right".
DIRECTIONS: tuple[str, ...] = (
    "right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right",
)  # fmt: skip
UNIT_STEPS: tuple[tuple[int, int], ...] = (
    (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1),
)  # fmt: skip
SPEEDS: tuple[int, ...] = (2, 3, 4)
DEFAULT_CLIPS = {"train": 1000, "test": 200}
MOTIONS: tuple[str, ...] = ("bounce", "wrap")
_SPLIT_ID = {"train": 0, "test": 1}


@dataclass(frozen=True)
class Trajectory:
    """One clip's motion: ``corners`` int64 (T, 2) as (x, y) of the digit's top-left corner,
    the ``direction`` label, the ``speed``, and the index of the MNIST digit it shows."""

    corners: np.ndarray
    direction: int
    speed: int
    digit_index: int


def _check_motion(motion: str) -> None:
    if motion not in MOTIONS:
        raise DataError(f"moving-mnist: unknown motion {motion!r}; choose one of: bounce, wrap")


def _check_sizes(frames: int, size: int) -> None:
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 2:
        raise DataError(f"moving-mnist: frames must be an integer >= 2, got {frames!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < DIGIT + 2 * max(SPEEDS):
        raise DataError(
            f"moving-mnist: size must be an integer >= {DIGIT + 2 * max(SPEEDS)} (a 28-pixel "
            f"digit plus room to move), got {size!r}"
        )


def clip_trajectory(
    index: int,
    split: str,
    num_digits: int,
    *,
    frames: int = 10,
    size: int = 64,
    seed: int = 0,
    motion: str = "bounce",
) -> Trajectory:
    """The motion of clip ``index`` of ``split`` (a pure function of its arguments)."""
    check_split("moving-mnist", split)
    _check_sizes(frames, size)
    _check_motion(motion)
    rng = np.random.default_rng([int(seed), _SPLIT_ID[split], int(index)])
    digit_index = int(rng.integers(num_digits))
    direction = int(rng.integers(len(DIRECTIONS)))
    speed = int(SPEEDS[int(rng.integers(len(SPEEDS)))])
    room = size - DIGIT  # the corner lives in [0, room] on each axis
    velocity = np.array(UNIT_STEPS[direction], dtype=np.int64) * speed
    if motion == "wrap":  # a torus: any start, and the position is uniform in every frame
        start = rng.integers(0, size, 2)
        corners = np.mod(start[None, :] + velocity[None, :] * np.arange(frames)[:, None], size)
        return Trajectory(corners.astype(np.int64), direction, speed, digit_index)
    # Start so that the first step (which defines the label) stays inside the canvas.
    low = np.maximum(0, -velocity)
    high = np.minimum(room, room - velocity)
    position = np.array([rng.integers(lo, hi + 1) for lo, hi in zip(low, high, strict=True)])
    corners = np.empty((frames, 2), dtype=np.int64)
    for t in range(frames):
        corners[t] = position
        position = position + velocity
        for axis in range(2):  # reflect off the walls (speed <= room: one reflection suffices)
            if position[axis] < 0:
                position[axis], velocity[axis] = -position[axis], -velocity[axis]
            elif position[axis] > room:
                position[axis] = 2 * room - position[axis]
                velocity[axis] = -velocity[axis]
    return Trajectory(corners, direction, speed, digit_index)


def render_clip(
    digit: np.ndarray, corners: np.ndarray, size: int, wrap: bool = False
) -> np.ndarray:
    """uint8 (T, size, size): ``digit`` (28, 28) pasted with its top-left corner at each (x, y);
    with ``wrap`` the parts beyond the right or bottom edge re-enter at the left or top."""
    clip = np.zeros((len(corners), size, size), dtype=np.uint8)
    for t, (x, y) in enumerate(corners):
        if wrap:
            clip[t, :DIGIT, :DIGIT] = digit
            clip[t] = np.roll(clip[t], (int(y), int(x)), axis=(0, 1))
        else:
            clip[t, y : y + DIGIT, x : x + DIGIT] = digit
    return clip


def moving_mnist_stats(size: int) -> tuple[float, float]:
    """Exact mean and std of a frame pixel, in [0, 1] units (see the module docstring)."""
    share = DIGIT * DIGIT / (size * size)
    mean = MNIST_MEAN[0] * share
    second = (MNIST_STD[0] ** 2 + MNIST_MEAN[0] ** 2) * share
    return mean, math.sqrt(second - mean * mean)


def make_moving_mnist(
    digits: ImageData,
    split: str,
    *,
    num_clips: int,
    frames: int = 10,
    size: int = 64,
    seed: int = 0,
    motion: str = "bounce",
) -> ImageData:
    """``num_clips`` clips made from the MNIST ``digits`` of ``split`` (with masks)."""
    check_split("moving-mnist", split)
    _check_sizes(frames, size)
    _check_motion(motion)
    if isinstance(num_clips, bool) or not isinstance(num_clips, int) or num_clips < 1:
        raise DataError(f"moving-mnist: num_clips must be an integer >= 1, got {num_clips!r}")
    if digits.shape != (1, DIGIT, DIGIT):
        raise DataError(f"moving-mnist needs 28 x 28 grey digits, got {digits.shape}")
    source = digits.images[:, 0].numpy()
    clips = np.zeros((num_clips, 1, frames, size, size), dtype=np.uint8)
    labels = np.empty(num_clips, dtype=np.int64)
    for i in range(num_clips):
        path = clip_trajectory(
            i, split, len(digits), frames=frames, size=size, seed=seed, motion=motion
        )
        clips[i, 0] = render_clip(source[path.digit_index], path.corners, size, motion == "wrap")
        labels[i] = path.direction
    images = torch.from_numpy(clips)
    mean, std = moving_mnist_stats(size)
    return ImageData(
        images=images,
        labels=torch.from_numpy(labels),
        num_classes=len(DIRECTIONS),
        name="moving-mnist" if motion == "bounce" else "moving-mnist-wrap",
        mean=(mean,),
        std=(std,),
        class_names=DIRECTIONS,
        masks=images > 0,  # one digit on a zero background: exactly where its pixels are
    )


def clip_masks(data: ImageData) -> torch.Tensor:
    """The ground-truth localisation masks of clips, bool (N, 1, T, H, W); see the docstring."""
    if data.masks is None:
        raise DataError(
            f"{data.name} has no ground-truth masks; only generated sets such as moving-mnist "
            "carry them"
        )
    return data.masks


@DATASETS.register("moving-mnist")
def load_moving_mnist(
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    *,
    num_clips: int | None = None,
    frames: int = 10,
    size: int = 64,
    seed: int = 0,
    motion: str = "bounce",
) -> ImageData:
    """Moving-MNIST clips of ``split`` (default 1000 train / 200 test clips of 10 x 64 x 64).

    Needs the MNIST files (``data_dir`` / ``download`` as for ``mnist``). Example::

        test = load_dataset("moving-mnist", "test", num_clips=50, frames=16)
        test.shape, test.class_names[int(test.labels[0])]  # (1, 16, 64, 64), a direction
    """
    check_split("moving-mnist", split)
    _check_sizes(frames, size)
    _check_motion(motion)
    digits = load_mnist(split, data_dir=data_dir, download=download)
    count = DEFAULT_CLIPS[split] if num_clips is None else num_clips
    return make_moving_mnist(
        digits, split, num_clips=count, frames=frames, size=size, seed=seed, motion=motion
    )


@DATASETS.register("moving-mnist-wrap")
def load_moving_mnist_wrap(
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    **options,
) -> ImageData:
    """Moving-MNIST with wrap-around motion: no single frame says anything about the label."""
    return load_moving_mnist(split, data_dir, download, motion="wrap", **options)
