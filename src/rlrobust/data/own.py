"""What the user-data sets (``folder.py``, ``tensor_file.py``) share: options, split, statistics.

A user's data set becomes an ``ImageData`` pair exactly like the built-in ones:

- train/test split: given by the user (two folders, or ``train_*`` / ``test_*`` arrays), or a
  seeded, stratified split of one pool of samples (``test_fraction``, ``split_seed``);
- ``mean`` / ``std``: per-channel statistics of the *training* split in [0, 1] units, attached
  to both splits, so a model built from either split normalises the same way (the models take
  [0, 1] images and normalise in their first layer);
- labels 0..K-1 and, where known, the class names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlrobust.data.dataset import ImageData, check_split
from rlrobust.errors import DataError

DEFAULT_TEST_FRACTION = 0.2


def parse_options(dataset: str, given: Mapping[str, Any], defaults: dict[str, Any]) -> dict:
    """``defaults`` updated with ``given``; an unknown key is a DataError that lists the known."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        known = ", ".join(f"{key} (default {value!r})" for key, value in defaults.items())
        raise DataError(
            f"data set {dataset!r} has no option(s) {unknown}; its options are: {known}. "
            "Give them as JSON, e.g. --data.options '{\"test_fraction\": 0.25}'"
        )
    return {**defaults, **given}


def require_path(dataset: str, data_dir: str | os.PathLike | None, what: str) -> Path:
    """The user's path from ``data_dir``; unlike the built-in sets there is no default root."""
    if data_dir is None or str(data_dir) == "":
        raise DataError(
            f"data set {dataset!r} reads your own data: give {what} with --data.data_dir PATH "
            "(see docs/own_data.md)"
        )
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise DataError(
            f"{path} does not exist (from --data.data_dir); give {what}. Relative paths are "
            "read from the folder you run rlrobust in"
        )
    return path


def refuse_download(dataset: str, download: bool) -> None:
    if download:
        raise DataError(
            f"data set {dataset!r} reads your own files, there is nothing to download; "
            "drop --data.download"
        )


def check_fraction(fraction: Any) -> float:
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise DataError(f"test_fraction must be a number in (0, 1), got {fraction!r}")
    if not 0.0 < float(fraction) < 1.0:
        raise DataError(
            f"test_fraction must lie strictly between 0 and 1, got {fraction}; for example 0.2 "
            "keeps a fifth of each class for testing"
        )
    return float(fraction)


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"split_seed must be an integer >= 0, got {seed!r}")
    return seed


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): each class gives ``round(test_fraction * count)`` samples to test.

    Stratified because user data sets are often small: a plain random split can leave a class
    out of the test split altogether. A class of two or more samples keeps at least one on each
    side; a class with a single sample stays in train. The draw depends only on ``seed`` and the
    labels, so training and evaluation (separate processes) see the same split. Both index
    arrays are sorted, so samples keep their file order within each split.
    """
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = len(members)
        n_test = int(round(test_fraction * count))
        n_test = min(max(n_test, 1), count - 1) if count >= 2 else 0
        chosen = rng.permutation(count)
        test.append(members[chosen[:n_test]])
        train.append(members[chosen[n_test:]])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images (N, C, ...), in [0, 1] units.

    Computed from a 256-bin histogram per channel, in float64: exact, and it needs no float
    copy of the data set (a float64 copy of CIFAR-10's training set would take 1.2 GB).
    """
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).to(torch.float64)
        total = counts.sum()
        mean = float((counts * values).sum() / total)
        var = float((counts * (values - mean) ** 2).sum() / total)
        means.append(mean)
        stds.append(var**0.5)
    return tuple(means), tuple(stds)


def pick_split(
    name: str,
    split: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    class_names: tuple[str, ...] | None,
) -> ImageData:
    """The ``split`` ImageData of a data set whose two splits are (images NCHW uint8, labels).

    ``mean`` / ``std`` always come from the training split, whichever split is returned.
    """
    check_split(name, split)
    train_images = torch.from_numpy(np.ascontiguousarray(train[0]))
    if len(train_images) == 0 or len(test[0]) == 0:
        empty = "train" if len(train_images) == 0 else "test"
        raise DataError(
            f"{name}: the {empty} split is empty; give it samples (a split made here moves "
            "samples to test only from classes with two or more)"
        )
    mean, std = channel_stats(train_images)
    constant = [c for c, s in enumerate(std) if s == 0.0]
    if constant:
        raise DataError(
            f"{name}: channel(s) {constant} of the training images hold one value only (std 0), "
            "so they cannot be normalised; check that the images are not blank"
        )
    # Without names, labels 0..K-1 are assumed: K is one more than the largest label seen.
    num_classes = (
        len(class_names) if class_names is not None else int(max(train[1].max(), test[1].max())) + 1
    )
    images, labels = (train_images, train[1]) if split == "train" else (test[0], test[1])
    return ImageData(
        images=torch.as_tensor(np.ascontiguousarray(images)),
        labels=torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64)),
        num_classes=num_classes,
        name=name,
        mean=mean,
        std=std,
        class_names=class_names,
    )
