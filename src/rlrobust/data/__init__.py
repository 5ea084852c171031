"""Data sets as uint8 tensors, their files (download, md5, safe parsing) and device batch loaders.

Importing this package registers "mnist", "fashion-mnist", "cifar10", "cifar100" and "digits"
in ``rlrobust.registry.DATASETS``.
"""

from __future__ import annotations

from rlrobust.data.builtin import load_dataset
from rlrobust.data.cifar import RestrictedUnpickler, load_cifar10, load_cifar100, read_cifar_batch
from rlrobust.data.dataset import SPLITS, ImageData, check_split, split_validation
from rlrobust.data.digits import load_digits_data
from rlrobust.data.download import download_file, md5sum, safe_extract_tar, verify_md5
from rlrobust.data.idx import load_fashion_mnist, load_mnist, read_idx
from rlrobust.data.loader import (
    AUGMENTATIONS,
    BatchLoader,
    apply_crop_flip,
    crop_flip,
    iterate_batches,
    to_unit_float,
)
from rlrobust.data.paths import ENV_VAR, resolve_data_dir

__all__ = [
    "AUGMENTATIONS",
    "ENV_VAR",
    "SPLITS",
    "BatchLoader",
    "ImageData",
    "RestrictedUnpickler",
    "apply_crop_flip",
    "check_split",
    "crop_flip",
    "download_file",
    "iterate_batches",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_digits_data",
    "load_fashion_mnist",
    "load_mnist",
    "md5sum",
    "read_cifar_batch",
    "read_idx",
    "resolve_data_dir",
    "safe_extract_tar",
    "split_validation",
    "to_unit_float",
    "verify_md5",
]
