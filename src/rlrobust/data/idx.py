"""MNIST and Fashion-MNIST: gzip-compressed IDX files.

IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a big-endian header of a magic
number (0x00000803 for images, 0x00000801 for labels) and one uint32 per dimension, then the
uint8 values in C order. Each file's md5 is checked against the canonical sum before parsing,
so a corrupted or substituted file is named instead of silently training on bad data.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import torch

from rlrobust.data.dataset import ImageData, check_split
from rlrobust.data.download import ensure_file, verify_md5
from rlrobust.data.paths import dataset_dir, describe_source, resolve_data_dir
from rlrobust.data.sources import (
    FASHION_MNIST_FILES,
    IDX_SPLIT_FILES,
    MNIST_FILES,
    RemoteFile,
)
from rlrobust.errors import DataError

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension

# Standard per-channel statistics of the training sets, in [0, 1] pixel units.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)

MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def read_idx(path: str | os.PathLike, expected_magic: int) -> np.ndarray:
    """Parse one gzip-compressed IDX file into a uint8 array of the shape its header gives."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(
            f"{path} is not a readable gzip file ({error}); delete it and run with --data.download"
        ) from error
    ndim = expected_magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path} is truncated (only {len(raw)} bytes); delete it and re-download")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise DataError(
            f"{path} has IDX magic number {magic:#010x}, expected {expected_magic:#010x}; "
            "it is not the file its name says (images and labels swapped?)"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected_size = header_size + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected_size:
        raise DataError(
            f"{path} holds {len(raw)} bytes but its header {dims} needs {expected_size}; "
            "the file is truncated or padded: delete it and re-download"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)


def load_idx_split(
    name: str,
    split: str,
    files: dict[str, RemoteFile],
    data_dir: str | os.PathLike | None,
    download: bool,
    *,
    verify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) and labels (N,) of one split, as uint8 numpy arrays."""
    folder = dataset_dir(name, data_dir)
    images_name, labels_name = IDX_SPLIT_FILES[split]
    paths = []
    for filename in (images_name, labels_name):
        path = ensure_file(files[filename], folder, download=download)
        if not path.is_file():
            root = resolve_data_dir(data_dir)
            raise DataError(
                f"{_display(name)} file {filename} not found in {folder} (data folder {root}, "
                f"{describe_source(data_dir)}); pass --data.data_dir / set RLROBUST_DATA to the "
                f"folder that holds {name}/, or add --data.download"
            )
        if verify:
            verify_md5(path, files[filename].md5)
        paths.append(path)
    images = read_idx(paths[0], IMAGES_MAGIC)
    labels = read_idx(paths[1], LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{paths[0]} has {images.shape[0]} images but {paths[1]} has {labels.shape[0]} "
            "labels; the two files come from different splits: re-download both"
        )
    return images, labels


def _to_image_data(
    images: np.ndarray,
    labels: np.ndarray,
    name: str,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    classes: tuple[str, ...],
) -> ImageData:
    return ImageData(
        images=torch.from_numpy(images.copy()).unsqueeze(1),  # copy: frombuffer is read-only
        labels=torch.from_numpy(labels.astype(np.int64)),
        num_classes=10,
        name=name,
        mean=mean,
        std=std,
        class_names=classes,
    )


def load_mnist(
    split: str, data_dir: str | os.PathLike | None = None, download: bool = False
) -> ImageData:
    """MNIST (LeCun et al. 1998): 60000 train / 10000 test grey 28x28 digits, 10 classes."""
    check_split("mnist", split)
    images, labels = load_idx_split("mnist", split, MNIST_FILES, data_dir, download)
    return _to_image_data(images, labels, "mnist", MNIST_MEAN, MNIST_STD, MNIST_CLASSES)


def load_fashion_mnist(
    split: str, data_dir: str | os.PathLike | None = None, download: bool = False
) -> ImageData:
    """Fashion-MNIST (Xiao et al. 2017): same format as MNIST, 10 clothing classes."""
    check_split("fashion-mnist", split)
    images, labels = load_idx_split("fashion-mnist", split, FASHION_MNIST_FILES, data_dir, download)
    mean, std = FASHION_MNIST_MEAN, FASHION_MNIST_STD
    return _to_image_data(images, labels, "fashion-mnist", mean, std, FASHION_MNIST_CLASSES)


def _display(name: str) -> str:
    return {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}.get(name, name)
