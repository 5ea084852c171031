"""ResNet-18, CIFAR-style (He et al. 2016, "Deep Residual Learning for Image Recognition").

Differences from the ImageNet model, as is standard for 32x32 inputs: a 3x3 stride-1 stem and no
stem max-pool. BasicBlocks [2, 2, 2, 2] with 64, 128, 256, 512 channels, adaptive average
pooling, one linear layer (11,173,962 parameters for 10 classes on RGB input). Kim uses it as
the TRADES backbone (Table 6).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rlrobust.models.common import check_model_args, register_model
from rlrobust.models.normalize import make_normalize


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus a (projected when shapes change) shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet with BasicBlocks; returns (N, num_classes) logits."""

    min_image_size = 1  # stride-2 3x3 convs with padding 1 and adaptive pooling accept any size

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        blocks: Sequence[int] = (2, 2, 2, 2),
    ) -> None:
        super().__init__()
        check_model_args("resnet", num_classes, in_channels, image_size, self.min_image_size)
        self.normalize = make_normalize(in_channels, mean, std)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU()
        )
        stages: list[nn.Module] = []
        c_in = 64
        for i, n in enumerate(blocks):
            c_out = 64 * 2**i
            for j in range(n):
                stages.append(BasicBlock(c_in, c_out, stride=2 if i > 0 and j == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.layers(self.stem(self.normalize(x)))))


register_model("resnet18", ResNet, blocks=(2, 2, 2, 2))
