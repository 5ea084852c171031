"""VGG13 with BatchNorm, CIFAR-style (Simonyan & Zisserman 2014), the CIFAR-10 model of Kim
("Reinforcement-based Training Approach ...": VGG13 on CIFAR-10).

Conv config [64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M] with 3x3 convs,
BatchNorm and ReLU, then one linear classifier. On 32x32 inputs the five pools leave 512x1x1
features (9.4M parameters for 10 classes). For smaller images a pool is skipped once the
spatial size has reached 1, so the model works down to 1x1 inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rlrobust.models.common import check_model_args, register_model
from rlrobust.models.normalize import make_normalize

VGG13_CONFIG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M",
)  # fmt: skip


class VGG(nn.Module):
    """VGG-BN for (N, C, H, W) inputs in [0, 1]; returns (N, num_classes) logits."""

    min_image_size = 1  # pools are skipped once the feature map is 1x1

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        config: Sequence[int | str] = VGG13_CONFIG,
    ) -> None:
        super().__init__()
        check_model_args("vgg", num_classes, in_channels, image_size, self.min_image_size)
        self.normalize = make_normalize(in_channels, mean, std)
        layers: list[nn.Module] = []
        c_in, size = in_channels, image_size
        for item in config:
            if item == "M":
                if size > 1:  # skip the pool on a 1x1 map instead of failing
                    layers.append(nn.MaxPool2d(2))
                    size //= 2
                continue
            width = int(item)
            layers += [nn.Conv2d(c_in, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            c_in = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        # Size is computed, not probed: a dummy forward would move the BatchNorm statistics.
        self.classifier = nn.Linear(c_in * size * size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


register_model("vgg13", VGG, config=VGG13_CONFIG)
