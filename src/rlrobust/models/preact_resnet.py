"""Pre-activation ResNet-18 (He et al. 2016, "Identity Mappings in Deep Residual Networks"), the
model of Wong et al. 2020 ("Fast is better than free: revisiting adversarial training").

Each block applies BN-ReLU *before* its convolutions; the shortcut is taken from the
pre-activated input when it needs a projection. The stem is a bare 3x3 conv, and a final
BN-ReLU precedes the global average pool and the linear layer (11,172,170 parameters for 10
classes on RGB input).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rlrobust.models.common import check_model_args, register_model
from rlrobust.models.normalize import make_normalize


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus shortcut (He et al. 2016b, Fig. 1b)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        # A projected shortcut sees the pre-activated input; an identity shortcut the raw one.
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + shortcut


class PreActResNet(nn.Module):
    """Pre-activation ResNet for (N, C, H, W) inputs in [0, 1]; returns logits."""

    min_image_size = 1

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
        check_model_args("preact_resnet", num_classes, in_channels, image_size, self.min_image_size)
        self.normalize = make_normalize(in_channels, mean, std)
        self.stem = nn.Conv2d(in_channels, 64, 3, padding=1, bias=False)
        stages: list[nn.Module] = []
        c_in = 64
        for i, n in enumerate(blocks):
            c_out = 64 * 2**i
            for j in range(n):
                stages.append(PreActBlock(c_in, c_out, stride=2 if i > 0 and j == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.layers(self.stem(self.normalize(x)))))


register_model("preact_resnet18", PreActResNet, blocks=(2, 2, 2, 2))
