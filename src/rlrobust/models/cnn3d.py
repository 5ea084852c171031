"""A small 3-D CNN for short video clips such as moving-mnist (N, C, T, H, W).

Spatio-temporal 3x3x3 convolutions (Tran et al. 2015, "Learning Spatiotemporal Features with
3D Convolutional Networks", C3D: 3x3x3 kernels throughout), kept small enough to train on a CPU:

    stem   Conv3d(C, w1, kernel (3, 5, 5), stride (1, 2, 2)) -> BN -> ReLU -> MaxPool (1, 2, 2)
    block  Conv3d(w1, w2, 3x3x3) -> BN -> ReLU -> MaxPool (1, 2, 2)
    block  Conv3d(w2, w3, 3x3x3) -> BN -> ReLU
    head   average pool over (H, W) and into ``time_bins`` equal spans of T -> Linear

Time is never subsampled by the convolutions, so a kernel always sees three consecutive frames
(motion). The head keeps *when* as well as *what*: pooling the whole clip into one vector would
make "moves right, then bounces left" indistinguishable from "moves left, then bounces right",
and moving-mnist's label is the direction at the start. Adaptive pooling lets one network take
any clip length and any square frame size >= 8 (``image_size`` is the frame side, ``frames``
the clip length, both only checked). Default widths (16, 32, 64) and 4 time bins: 72,712
parameters for 8 classes and ~83M multiply-adds per 10 x 64 x 64 clip.

Input in [0, 1], normalised per channel by the first layer; output (N, num_classes) logits;
``eval()`` is deterministic. Example::

    model = build_model("cnn3d", num_classes=8, input_shape=(1, 10, 64, 64))
    model(torch.rand(2, 1, 10, 64, 64)).shape  # (2, 8)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rlrobust.errors import ConfigError
from rlrobust.models.common import check_model_args, register_model
from rlrobust.models.normalize import make_normalize


class CNN3d(nn.Module):
    """Small C3D-style network for (N, C, T, H, W) clips; see the module docstring."""

    min_image_size = 8  # stride 2 and two 2x2 pools: 8 -> 4 -> 2 -> 1

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        frames: int | None = None,
        widths: Sequence[int] = (16, 32, 64),
        time_bins: int = 4,
    ) -> None:
        super().__init__()
        check_model_args("cnn3d", num_classes, in_channels, image_size, self.min_image_size)
        if frames is not None and (isinstance(frames, bool) or int(frames) < 1):
            raise ConfigError(f"cnn3d: frames must be >= 1, got {frames!r}")
        widths = tuple(int(w) for w in widths)
        if len(widths) != 3 or min(widths) < 1:
            raise ConfigError(f"cnn3d: widths must be three positive filter counts, got {widths}")
        if isinstance(time_bins, bool) or not isinstance(time_bins, int) or time_bins < 1:
            raise ConfigError(f"cnn3d: time_bins must be an integer >= 1, got {time_bins!r}")
        w1, w2, w3 = widths
        self.normalize = make_normalize(in_channels, mean, std)
        self.features = nn.Sequential(
            nn.Conv3d(in_channels, w1, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2)),
            nn.BatchNorm3d(w1),
            nn.ReLU(),
            nn.MaxPool3d((1, 2, 2)),
            nn.Conv3d(w1, w2, 3, padding=1),
            nn.BatchNorm3d(w2),
            nn.ReLU(),
            nn.MaxPool3d((1, 2, 2)),
            nn.Conv3d(w2, w3, 3, padding=1),
            nn.BatchNorm3d(w3),
            nn.ReLU(),
            nn.AdaptiveAvgPool3d((time_bins, 1, 1)),  # (N, w3, bins, 1, 1): order kept
            nn.Flatten(),
        )
        self.classifier = nn.Linear(w3 * time_bins, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ConfigError(
                f"cnn3d takes video clips shaped (N, C, T, H, W), got {tuple(x.shape)}; for "
                "images choose an image model (e.g. lenet5), for 1-D signals cnn1d"
            )
        return self.classifier(self.features(self.normalize(x)))


register_model("cnn3d", CNN3d, input_rank=3)
