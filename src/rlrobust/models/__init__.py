"""The model zoo: every model takes [0, 1] inputs, normalises them in its first layer
(``Normalize``) and returns logits.

Image models take (N, C, H, W); ``cnn1d`` takes 1-D signals (N, C, L) and ``cnn3d`` video clips
(N, C, T, H, W) (``model_input_rank`` says which). Build by name (the boundary the CLI and
configs use), giving one sample's shape, e.g. ``data.shape`` of an ``ImageData``::

    from rlrobust.models import build_model
    model = build_model("lenet5", num_classes=10, input_shape=(1, 28, 28),
                        mean=[0.1307], std=[0.3081])
    model = build_model("cnn1d", num_classes=2, input_shape=(1, 150))
    model = build_model("cnn3d", num_classes=8, input_shape=(1, 10, 64, 64))

The older form ``in_channels=1, image_size=28`` still works.

Importing this package registers every model in ``rlrobust.registry.MODELS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from rlrobust.models import (  # noqa: F401 - imported to register the models
    cnn1d,
    cnn3d,
    lenet,
    mlp,
    preact_resnet,
    resnet,
    small_cnn,
    vgg,
    wide_resnet,
    zou_cnn,
)
from rlrobust.models.cnn1d import CNN1d
from rlrobust.models.cnn3d import CNN3d
from rlrobust.models.common import INPUT_KINDS, count_parameters
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
    "CNN1d",
    "CNN3d",
    "INPUT_KINDS",
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
    "model_input_rank",
]


def build_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int | None = None,
    image_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    input_shape: Sequence[int] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build the model registered as ``name``; ``mean`` / ``std`` default to 0 / 1 per channel.

    The input is described either by ``input_shape``, one sample's shape channels first
    ((C, L), (C, H, W) or (C, T, H, W): pass ``data.shape``), or by ``in_channels`` and
    ``image_size`` (the side of a square image, the length of a signal, the frame side of a
    clip). Extra keyword arguments go to the model class (e.g. ``dropout=0.25`` for
    ``gupta_cnn``). Raises UnknownNameError for an unknown name and ConfigError for shapes the
    model cannot take (e.g. an image shape for ``cnn1d``, with the fix in the message).
    """
    factory = MODELS.get(name)
    shape = {} if input_shape is None else {"input_shape": tuple(int(v) for v in input_shape)}
    return factory(
        num_classes=num_classes,
        in_channels=in_channels,
        image_size=image_size,
        mean=mean,
        std=std,
        **shape,
        **kwargs,
    )


def model_input_rank(name: str) -> int:
    """1 for a signal model (N, C, L), 2 for an image model (N, C, H, W), 3 for video.

    Factories registered without the attribute (e.g. by a plug-in) count as image models.
    """
    return int(getattr(MODELS.get(name), "input_rank", 2))


def list_models() -> list[str]:
    """Names of all registered models, in registration order."""
    return MODELS.names()
