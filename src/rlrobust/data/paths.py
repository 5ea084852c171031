"""Where data sets live on disk.

One root folder holds every data set, one sub-folder each::

    <root>/mnist/train-images-idx3-ubyte.gz ... t10k-labels-idx1-ubyte.gz
    <root>/fashion-mnist/train-images-idx3-ubyte.gz ... (same four names)
    <root>/cifar10/cifar-10-python.tar.gz            (kept after download)
    <root>/cifar10/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    <root>/cifar100/cifar-100-python.tar.gz
    <root>/cifar100/cifar-100-python/{train, test, meta}

The root is, in order of precedence: the ``data_dir`` argument (the CLI's ``--data.data_dir``), the
environment variable ``RLROBUST_DATA``, then ``~/.cache/rlrobust/data``.
"""

from __future__ import annotations

import os
from pathlib import Path

from rlrobust.data.sources import CIFAR10_FOLDER, CIFAR100_FOLDER

ENV_VAR = "RLROBUST_DATA"
DEFAULT_DATA_DIR = Path("~/.cache/rlrobust/data")

# Data set name -> its sub-folder under the root.
SUBDIRS: dict[str, str] = {
    "mnist": "mnist",
    "fashion-mnist": "fashion-mnist",
    "cifar10": "cifar10",
    "cifar100": "cifar100",
}
# Name -> the folder that the canonical tarball extracts to, inside the sub-folder.
EXTRACTED: dict[str, str] = {"cifar10": CIFAR10_FOLDER, "cifar100": CIFAR100_FOLDER}


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The root data folder: explicit argument > $RLROBUST_DATA > ~/.cache/rlrobust/data."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR, "")
    if env:
        return Path(env).expanduser()
    return DEFAULT_DATA_DIR.expanduser()


def describe_source(data_dir: str | os.PathLike | None) -> str:
    """Say where the root came from, so a 'file not found' message points at the right knob."""
    if data_dir is not None and str(data_dir) != "":
        return "from --data.data_dir"
    if os.environ.get(ENV_VAR, ""):
        return f"from ${ENV_VAR}"
    return "the default; neither --data.data_dir nor $RLROBUST_DATA was set"


def dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The sub-folder for one data set, e.g. ``<root>/mnist``."""
    return resolve_data_dir(data_dir) / SUBDIRS[name]
