"""The 6-layer CNN of Zou et al. ("Reinforcement Learning Disrupts Gradient-Based Adversarial
Optimization"): 4 convolutional layers and 2 fully connected layers.

Assumption: the paper names the depth (4 conv + 2 fc) but its published text gives no widths.
We use conv 64, 64, max-pool, conv 128, 128, max-pool (3x3 kernels, padding 1, ReLU), then
fc 256 -> ReLU -> fc num_classes. Pass ``widths`` / ``hidden`` to match other choices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rlrobust.models.common import check_model_args, flat_features, register_model
from rlrobust.models.normalize import make_normalize


class ZouCNN6(nn.Module):
    """Zou et al.'s 6-layer CNN (widths assumed, see module docstring); returns logits."""

    min_image_size = 4  # two 2x2 pools

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        widths: tuple[int, int] = (64, 128),
        hidden: int = 256,
    ) -> None:
        super().__init__()
        check_model_args("zou_cnn6", num_classes, in_channels, image_size, self.min_image_size)
        self.normalize = make_normalize(in_channels, mean, std)
        layers: list[nn.Module] = []
        c_in = in_channels
        for width in widths:  # each stage: two conv layers, then a 2x2 pool
            layers += [nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU()]
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = width
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.classifier = nn.Sequential(
            nn.Linear(flat_features(self.features, in_channels, image_size), hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


register_model("zou_cnn6", ZouCNN6)
