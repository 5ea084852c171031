"""The model zoo: every model takes [0, 1] images, normalises them in its first layer
(``Normalize``) and returns logits.

Build by name (the boundary the CLI and configs use)::

    from rlrobust.models import build_model
    model = build_model("lenet5", num_classes=10, in_channels=1, image_size=28,
                        mean=[0.1307], std=[0.3081])

Importing this package registers every model in ``rlrobust.registry.MODELS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from rlrobust.models import (  # noqa: F401 - imported to register the models
    lenet,
    mlp,
    preact_resnet,
    resnet,
    small_cnn,
    vgg,
    wide_resnet,
    zou_cnn,
)
from rlrobust.models.common import count_parameters
from rlrobust.models.lenet import LeNet5
from rlrobust.models.mlp import MLP
from rlrobust.models.normalize import Normalize, make_normalize
from rlrobust.models.preact_resnet import PreActResNet
from rlrobust.models.resnet import ResNet
from rlrobust.models.small_cnn import GuptaCNN
from rlrobust.models.vgg import VGG
from rlrobust.models.wide_resnet import WideResNet
from rlrobust.models.zou_cnn import ZouCNN6
from rlrobust.registry import MODELS

__all__ = [
    "MLP",
    "VGG",
    "GuptaCNN",
    "LeNet5",
    "Normalize",
    "PreActResNet",
    "ResNet",
    "WideResNet",
    "ZouCNN6",
    "build_model",
    "count_parameters",
    "list_models",
    "make_normalize",
]


def build_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build the model registered as ``name``; ``mean`` / ``std`` default to 0 / 1 per channel.

    Extra keyword arguments go to the model class (e.g. ``dropout=0.25`` for ``gupta_cnn``).
    Raises UnknownNameError for an unknown name and ConfigError for sizes the model cannot take.
    """
    return MODELS.get(name)(
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        mean=mean,
        std=std,
        **kwargs,
    )


def list_models() -> list[str]:
    """Names of all registered models, in registration order."""
    return MODELS.names()
