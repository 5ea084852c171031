"""The data sets every install knows, registered by name in ``rlrobust.registry.DATASETS``.

Images: mnist, fashion-mnist, cifar10, cifar100, digits (registered here). 1-D signals:
ucr-gunpoint, ucr-arrowhead, ucr-osuleaf, ucr-acsf1, ucr-italypowerdemand (``ucr.py``), ecg200,
ecg5000 (``ecg.py``). Video: moving-mnist, moving-mnist-wrap (``moving_mnist.py``). Those
modules register themselves; the package's ``__init__`` imports them after this one, so the
listing keeps this order.

Each entry is a function ``(split, data_dir=None, download=False) -> ImageData`` with
``split`` in {"train", "test"}; ``load_dataset`` is the one front door the CLI and configs use.
"""

from __future__ import annotations

import os
from typing import Any

from rlrobust.data.cifar import load_cifar10, load_cifar100
from rlrobust.data.dataset import ImageData
from rlrobust.data.digits import load_digits_data
from rlrobust.data.idx import load_fashion_mnist, load_mnist
from rlrobust.registry import DATASETS

DATASETS.register("mnist")(load_mnist)
DATASETS.register("fashion-mnist")(load_fashion_mnist)
DATASETS.register("cifar10")(load_cifar10)
DATASETS.register("cifar100")(load_cifar100)
DATASETS.register("digits")(load_digits_data)


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    **options: Any,
) -> ImageData:
    """Load split ``split`` of the data set registered as ``name``.

    ``data_dir`` overrides $RLROBUST_DATA (see ``paths.resolve_data_dir``); ``download=True``
    fetches missing or corrupted files from the canonical mirrors. Extra ``options`` go to the
    loader (e.g. ``verify=False`` for CIFAR batches that were re-packed by hand, ``num_clips=50``
    or ``frames=16`` for moving-mnist, ``margin=0.05`` for the UCR and ECG sets).

    Example::

        test = load_dataset("mnist", "test", data_dir="~/data")
        len(test), test.shape  # 10000, (1, 28, 28)
    """
    return DATASETS.get(name)(split, data_dir=data_dir, download=download, **options)
