"""A 1-D fully convolutional network for time series: the FCN baseline of Wang, Yan and Oates
2017 ("Time Series Classification from Scratch with Deep Neural Networks: A Strong Baseline",
Sec. 2.2 and Fig. 1).

Three blocks of [Conv1d -> BatchNorm -> ReLU] with 128, 256 and 128 filters of sizes 8, 5 and 3
(stride 1, "same" padding, so the length is kept), then global average pooling over time and a
linear layer to the logits. Because the pooling is global, one network takes any series length
(the UCR sets here run from 24 to 1460 samples); ``image_size`` is the series length L and is
only checked to be >= 1.

Input (N, C, L) in [0, 1]; the first layer normalises it per channel; output (N, num_classes)
logits. BatchNorm makes ``eval()`` deterministic and ``train()`` batch-dependent, as in the
paper. Example::

    model = build_model("cnn1d", num_classes=2, input_shape=(1, 150), mean=[0.54], std=[0.23])
    model(torch.rand(4, 1, 150)).shape  # (4, 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rlrobust.errors import ConfigError
from rlrobust.models.common import check_model_args, register_model
from rlrobust.models.normalize import make_normalize


class CNN1d(nn.Module):
    """Wang et al. 2017 FCN; ``widths`` and ``kernels`` give each block's filters and size."""

    min_length = 1  # "same" padding and global pooling: any length works

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        widths: Sequence[int] = (128, 256, 128),
        kernels: Sequence[int] = (8, 5, 3),
    ) -> None:
        super().__init__()
        check_model_args("cnn1d", num_classes, in_channels, image_size, self.min_length)
        widths, kernels = tuple(widths), tuple(kernels)
        if not widths or len(widths) != len(kernels):
            raise ConfigError(
                f"cnn1d: widths {widths} and kernels {kernels} need the same non-zero length "
                "(one filter count and one kernel size per block)"
            )
        if any(int(v) < 1 for v in widths + kernels):
            raise ConfigError(f"cnn1d: widths and kernels must be >= 1, got {widths}, {kernels}")
        self.normalize = make_normalize(in_channels, mean, std)
        layers: list[nn.Module] = []
        for c_in, c_out, k in zip((in_channels, *widths[:-1]), widths, kernels, strict=True):
            # Keras's "same" padding (the paper's code): (k-1)//2 zeros before, k//2 after, so the
            # length is kept for the even kernel 8 too (torch's padding="same" warns for it).
            pad = nn.ConstantPad1d(((k - 1) // 2, k // 2), 0.0)
            layers += [pad, nn.Conv1d(c_in, c_out, k), nn.BatchNorm1d(c_out), nn.ReLU()]
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ConfigError(
                f"cnn1d takes 1-D signals shaped (N, C, L), got {tuple(x.shape)}; for images "
                "choose an image model (e.g. lenet5), for video cnn3d"
            )
        return self.classifier(self.features(self.normalize(x)))


register_model("cnn1d", CNN1d, input_rank=1)
