"""A small multilayer perceptron (Flatten -> 256 -> 128 -> num_classes) for fast tests and the
offline digits demo. Not from the papers; it is the cheapest model that meets the contract.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rlrobust.models.common import check_model_args, register_model
from rlrobust.models.normalize import make_normalize


class MLP(nn.Module):
    """Two hidden ReLU layers on the flattened image; returns (N, num_classes) logits."""

    min_image_size = 1

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        hidden: Sequence[int] = (256, 128),
    ) -> None:
        super().__init__()
        check_model_args("mlp", num_classes, in_channels, image_size, self.min_image_size)
        self.normalize = make_normalize(in_channels, mean, std)
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * image_size * image_size
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.net = nn.Sequential(*layers, nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


register_model("mlp", MLP)
