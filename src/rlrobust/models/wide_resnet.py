"""Wide residual networks (Zagoruyko & Komodakis 2016), WRN-34-10 being the CIFAR model of
Madry et al. 2018 and TRADES (Zhang et al. 2019); WRN-28-10 is the other common choice.

WRN-d-k: a 3x3 stem with 16 channels, three groups of n = (d - 4) / 6 pre-activation blocks with
16k, 32k, 64k channels (strides 1, 2, 2), a final BN-ReLU, global average pooling and one linear
layer. ``depth`` and ``widen_factor`` are arguments, so WRN-10-1 builds in milliseconds for tests.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rlrobust.errors import ConfigError
from rlrobust.models.common import check_model_args, register_model
from rlrobust.models.normalize import make_normalize


class WideBlock(nn.Module):
    """BN-ReLU-conv3x3-(dropout)-BN-ReLU-conv3x3 plus shortcut (1x1 conv when shapes change)."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.dropout = dropout
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = F.relu(self.bn2(self.conv1(out)))
        out = F.dropout(out, p=self.dropout, training=self.training)
        return self.conv2(out) + shortcut


class WideResNet(nn.Module):
    """WRN-depth-widen_factor; returns (N, num_classes) logits."""

    min_image_size = 1

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        depth: int = 34,
        widen_factor: int = 10,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_model_args("wideresnet", num_classes, in_channels, image_size, self.min_image_size)
        if depth < 10 or (depth - 4) % 6 != 0 or widen_factor < 1:
            raise ConfigError(
                f"wideresnet: depth={depth}, widen_factor={widen_factor} is not a WRN; depth must "
                "be 6n + 4 (10, 16, 22, 28, 34, 40, ...) and widen_factor a positive integer"
            )
        self.normalize = make_normalize(in_channels, mean, std)
        n = (depth - 4) // 6
        widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.stem = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        c_in = 16
        for g, c_out in enumerate(widths):
            for j in range(n):
                stride = 2 if g > 0 and j == 0 else 1
                blocks.append(WideBlock(c_in, c_out, stride, dropout))
                c_in = c_out
        self.layers = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():  # He init for the convs, as in the WRN reference code
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.layers(self.stem(self.normalize(x)))))


register_model("wideresnet34_10", WideResNet, depth=34, widen_factor=10)
register_model("wideresnet28_10", WideResNet, depth=28, widen_factor=10)
