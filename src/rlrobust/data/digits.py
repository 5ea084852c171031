"""scikit-learn's bundled ``digits`` (UCI optical digits): the offline demo data set.

1797 grey 8x8 images with values 0..16, 10 classes. Pixels are scaled to uint8 0..255 with
``round(v * 255 / 16)`` so they share the [0, 1] contract with every other data set. The
train/test split is fixed: a permutation drawn with seed 0, the last 360 images for test
(1437 train / 360 test), so every run and every machine sees the same split.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from rlrobust.data.dataset import ImageData, check_split

NUM_TEST = 360
SPLIT_SEED = 0
# Statistics of the 1437 training images after scaling to [0, 1] (see test_data.py).
DIGITS_MEAN, DIGITS_STD = (0.3055,), (0.3759,)


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 images as uint8 (N, 1, 8, 8) and labels as int64 (N,), in scikit-learn's order."""
    from sklearn.datasets import load_digits  # imported here: only this data set needs it

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return images, bunch.target.astype(np.int64)


def load_digits_data(
    split: str, data_dir: str | os.PathLike | None = None, download: bool = False
) -> ImageData:
    """The digits split; ``data_dir`` and ``download`` are accepted and unused (bundled data)."""
    check_split("digits", split)
    images, labels = digits_arrays()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    index = order[:-NUM_TEST] if split == "train" else order[-NUM_TEST:]
    return ImageData(
        images=torch.from_numpy(np.ascontiguousarray(images[index])),
        labels=torch.from_numpy(labels[index]),
        num_classes=10,
        name="digits",
        mean=DIGITS_MEAN,
        std=DIGITS_STD,
        class_names=tuple(str(i) for i in range(10)),
    )
