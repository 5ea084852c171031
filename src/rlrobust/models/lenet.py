"""LeNet-5 (LeCun et al. 1998), the MNIST model of Kim ("Reinforcement-based Training Approach
for Improving Adversarial Robustness without Sacrificing Accuracy", Sec. Experiments: LeNet5 on
MNIST).

Classic layout: conv 6@5x5 -> ReLU -> max-pool 2 -> conv 16@5x5 -> ReLU -> max-pool 2 ->
fc 120 -> fc 84 -> fc num_classes. The first conv is padded by 2 so that a 28x28 MNIST digit
sees the same 32x32 field as the original, giving 16x5x5 features and 61,706 parameters for 10
classes. ReLU replaces the original tanh/sigmoid, as in current LeNet-5 implementations.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rlrobust.models.common import check_model_args, flat_features, register_model
from rlrobust.models.normalize import make_normalize


class LeNet5(nn.Module):
    """LeNet-5 for (N, C, H, W) inputs in [0, 1]; returns (N, num_classes) logits."""

    # conv5 (pad 2) keeps s, pool -> s // 2, conv5 -> s // 2 - 4, pool needs >= 2 of those.
    min_image_size = 12

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        first_padding: int = 2,
    ) -> None:
        super().__init__()
        check_model_args("lenet5", num_classes, in_channels, image_size, self.min_image_size)
        self.normalize = make_normalize(in_channels, mean, std)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=first_padding),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(flat_features(self.features, in_channels, image_size), 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)))


register_model("lenet5", LeNet5)
