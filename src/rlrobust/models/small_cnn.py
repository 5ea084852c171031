"""The small VGG-style CNN of Gupta 2020 ("Reinforcement Based Learning on Classification Task
Could Yield Better Generalization and Adversarial Accuracy", Fig. 2).

Three blocks of [conv 3x3 -> ReLU -> conv 3x3 -> ReLU -> max-pool 2x2] with 32, 64 and 128
channels, then fc 512 (256 also used) and fc num_classes. The last layer is a LayerNorm over the
logits ("layer normalization just before the softmax"), which Gupta found to avoid obfuscated
gradients. The paper's figure gives the layer types, 3x3 kernels and 2x2 pools; the widths here
follow the VGG doubling pattern it describes. Dropout is optional and off by default.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rlrobust.errors import ConfigError
from rlrobust.models.common import check_model_args, flat_features, register_model
from rlrobust.models.normalize import make_normalize


def _block(c_in: int, c_out: int, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
    ]
    return layers + ([nn.Dropout(dropout)] if dropout > 0 else [])


class GuptaCNN(nn.Module):
    """Gupta 2020 Fig. 2 CNN; returns (N, num_classes) layer-normalised logits."""

    min_image_size = 8  # three 2x2 pools: 8 -> 4 -> 2 -> 1

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        hidden: int = 512,
        dropout: float = 0.0,
        widths: Sequence[int] = (32, 64, 128),
    ) -> None:
        super().__init__()
        check_model_args("gupta_cnn", num_classes, in_channels, image_size, self.min_image_size)
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"gupta_cnn: dropout must be in [0, 1), got {dropout}; use e.g. 0.25")
        self.normalize = make_normalize(in_channels, mean, std)
        layers: list[nn.Module] = []
        for c_in, c_out in zip((in_channels, *widths[:-1]), widths, strict=True):
            layers += _block(c_in, c_out, dropout)
        self.features = nn.Sequential(*layers, nn.Flatten())
        head: list[nn.Module] = [
            nn.Linear(flat_features(self.features, in_channels, image_size), hidden),
            nn.ReLU(),
        ]
        head += [nn.Dropout(dropout)] if dropout > 0 else []
        self.classifier = nn.Sequential(*head, nn.Linear(hidden, num_classes))
        # Registered last so that it is also the last module: Gupta's LayerNorm on the logits.
        self.logit_norm = nn.LayerNorm(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit_norm(self.classifier(self.features(self.normalize(x))))


register_model("gupta_cnn", GuptaCNN)
