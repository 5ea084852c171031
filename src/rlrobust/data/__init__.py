"""Data sets as uint8 tensors, their files (download, md5, safe parsing) and device batch loaders.

Importing this package registers in ``rlrobust.registry.DATASETS``: the images "mnist",
"fashion-mnist", "cifar10", "cifar100", "digits"; the 1-D signals "ucr-gunpoint",
"ucr-arrowhead", "ucr-osuleaf", "ucr-acsf1", "ucr-italypowerdemand", "ecg200", "ecg5000"; and the
video clips "moving-mnist" and "moving-mnist-wrap" (docs/data.md).
"""

from __future__ import annotations

from rlrobust.data.builtin import load_dataset  # isort: skip - registers the image sets first
from rlrobust.data import ecg, moving_mnist, ucr  # noqa: F401, I001 - registers the others
from rlrobust.data import folder, tensor_file  # noqa: F401, I001 - your own data (docs/own_data.md)
from rlrobust.data.cifar import RestrictedUnpickler, load_cifar10, load_cifar100, read_cifar_batch
from rlrobust.data.dataset import (
    SAMPLE_LAYOUTS,
    SPLITS,
    ImageData,
    check_split,
    split_validation,
)
from rlrobust.data.digits import load_digits_data
from rlrobust.data.download import (
    download_file,
    extract_zip_members,
    file_digest,
    md5sum,
    record_or_verify,
    safe_extract_tar,
    verify_digest,
    verify_md5,
)
from rlrobust.data.ecg import load_ecg, prepare_archive
from rlrobust.data.idx import load_fashion_mnist, load_mnist, read_idx
from rlrobust.data.loader import (
    AUGMENTATIONS,
    BatchLoader,
    apply_crop_flip,
    crop_flip,
    iterate_batches,
    to_unit_float,
)
from rlrobust.data.moving_mnist import (
    DIRECTIONS,
    clip_masks,
    clip_trajectory,
    load_moving_mnist,
    make_moving_mnist,
)
from rlrobust.data.paths import ENV_VAR, resolve_data_dir
from rlrobust.data.ts_format import TsProblem, parse_ts, read_ts
from rlrobust.data.ucr import load_ucr

__all__ = [
    "AUGMENTATIONS",
    "DIRECTIONS",
    "ENV_VAR",
    "SAMPLE_LAYOUTS",
    "SPLITS",
    "BatchLoader",
    "ImageData",
    "RestrictedUnpickler",
    "TsProblem",
    "apply_crop_flip",
    "check_split",
    "clip_masks",
    "clip_trajectory",
    "crop_flip",
    "download_file",
    "extract_zip_members",
    "file_digest",
    "iterate_batches",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_digits_data",
    "load_ecg",
    "load_fashion_mnist",
    "load_mnist",
    "load_moving_mnist",
    "load_ucr",
    "make_moving_mnist",
    "md5sum",
    "parse_ts",
    "prepare_archive",
    "read_cifar_batch",
    "read_idx",
    "read_ts",
    "record_or_verify",
    "resolve_data_dir",
    "safe_extract_tar",
    "split_validation",
    "to_unit_float",
    "verify_digest",
    "verify_md5",
]
