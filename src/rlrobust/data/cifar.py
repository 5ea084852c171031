"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from the canonical "python version" batches.

Each batch file is a (Python 2) pickle of a dict with bytes keys: ``b"data"`` is a uint8 array of
shape (n, 3072) holding the red, green and blue 32x32 planes in row-major order, and the labels
are a list under ``b"labels"`` (CIFAR-10) or ``b"fine_labels"`` (CIFAR-100).

Security: unpickling can run arbitrary code, so these files never go through the unrestricted unpickler.
``RestrictedUnpickler`` resolves only the handful of globals that a numpy array needs, and
refuses everything else with a DataError before it is called.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlrobust.data.dataset import ImageData, check_split
from rlrobust.data.download import ensure_file, safe_extract_tar, verify_md5
from rlrobust.data.paths import EXTRACTED, dataset_dir, describe_source, resolve_data_dir
from rlrobust.data.sources import (
    CIFAR10_MD5,
    CIFAR10_SPLIT_FILES,
    CIFAR10_TARBALL,
    CIFAR100_MD5,
    CIFAR100_SPLIT_FILES,
    CIFAR100_TARBALL,
    RemoteFile,
)
from rlrobust.errors import DataError

try:  # numpy >= 2 moved the array internals to numpy._core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

# Standard per-channel statistics of the training sets, in [0, 1] pixel units.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
# The fine label names, in label order (alphabetical, as in the data set's meta file).
_CIFAR100_NAMES = """
    apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab
    crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard
    lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom
    oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine
    possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake
    spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor
    train trout tulip turtle wardrobe whale willow_tree wolf woman worm"""
CIFAR100_CLASSES = tuple(_CIFAR100_NAMES.split())


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` restricted to latin-1: how Python 3 pickles bytes at protocol 2."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise DataError(f"pickle asks for text encoding {encoding!r}; only latin-1 is allowed")
    return text.encode("latin-1", errors)


# (module, name) -> the object it may resolve to. Nothing else can be loaded.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,  # protocol 5 arrays
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and plain containers, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to load {module}.{name} from a pickle: a CIFAR batch only holds "
                "numpy arrays, lists and bytes, so this file is not a genuine CIFAR batch; "
                "delete it and download the data set again"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError("refusing a pickle with persistent ids: not a genuine CIFAR batch")


def restricted_loads(payload: bytes) -> Any:
    """Unpickle ``payload`` with ``RestrictedUnpickler`` (Python-2 strings become bytes)."""
    return RestrictedUnpickler(io.BytesIO(payload), encoding="bytes").load()


def read_cifar_batch(
    path: str | os.PathLike, label_key: bytes, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> images uint8 (n, 3, 32, 32) and labels int64 (n,)."""
    path = Path(path)
    try:
        batch = restricted_loads(path.read_bytes())
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    except Exception as error:  # truncated or garbage pickles raise many kinds of errors
        raise DataError(
            f"{path} is not a readable CIFAR batch ({type(error).__name__}: {error}); "
            "delete it and run with --data.download"
        ) from error
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(
            f"{path} is not a CIFAR batch: expected a dict with keys b'data' and {label_key!r}, "
            f"got {keys}; check that the file belongs to this data set"
        )
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise DataError(f"{path}: b'data' must be a uint8 array of shape (n, 3072)")
    if data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: b'data' has rows of {data.shape[1]} values, expected 3072")
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if labels.shape != (data.shape[0],):
        raise DataError(
            f"{path}: {data.shape[0]} images but {labels.shape} labels under {label_key!r}; "
            "the file is corrupted: re-download it"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{path}: labels outside [0, {num_classes}) under {label_key!r}; "
            "is this a CIFAR-100 file read as CIFAR-10 (or the reverse)?"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _prepare_folder(name: str, tarball: RemoteFile, data_dir: Any, download: bool) -> Path:
    """The extracted batch folder, fetching and unpacking the tarball when asked or present."""
    parent = dataset_dir(name, data_dir)
    folder = parent / EXTRACTED[name]
    if folder.is_dir():
        return folder
    archive = parent / tarball.filename
    if download:
        ensure_file(tarball, parent, download=True)
    if archive.is_file():  # a tarball copied by hand is unpacked too, once its md5 matches
        verify_md5(archive, tarball.md5)
        safe_extract_tar(archive, parent)
    return folder


def load_cifar_split(
    name: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    *,
    verify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one CIFAR split."""
    check_split(name, split)
    if name == "cifar10":
        tarball, files, md5s, key, classes = (
            CIFAR10_TARBALL, CIFAR10_SPLIT_FILES, CIFAR10_MD5, b"labels", 10,
        )  # fmt: skip
    else:
        tarball, files, md5s, key, classes = (
            CIFAR100_TARBALL, CIFAR100_SPLIT_FILES, CIFAR100_MD5, b"fine_labels", 100,
        )  # fmt: skip
    folder = _prepare_folder(name, tarball, data_dir, download)
    images, labels = [], []
    for filename in files[split]:
        path = folder / filename
        if not path.is_file():
            raise DataError(
                f"{name.upper().replace('CIFAR', 'CIFAR-')} file {filename} not found in {folder} "
                f"(data folder {resolve_data_dir(data_dir)}, {describe_source(data_dir)}); pass "
                f"--data.data_dir / set RLROBUST_DATA to the folder that holds {name}/, or add "
                "--data.download"
            )
        if verify:
            verify_md5(path, md5s[filename])
        batch_images, batch_labels = read_cifar_batch(path, key, classes)
        images.append(batch_images)
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


def load_cifar10(
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    *,
    verify: bool = True,
) -> ImageData:
    """CIFAR-10: 50000 train / 10000 test colour 32x32 images, 10 classes.

    ``verify=False`` skips the md5 check of the batch files (for re-packed or test files).
    """
    images, labels = load_cifar_split("cifar10", split, data_dir, download, verify=verify)
    return ImageData(
        torch.from_numpy(images),
        torch.from_numpy(labels),
        num_classes=10,
        name="cifar10",
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        class_names=CIFAR10_CLASSES,
    )


def load_cifar100(
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    *,
    verify: bool = True,
) -> ImageData:
    """CIFAR-100: 50000 train / 10000 test colour 32x32 images, 100 fine classes."""
    images, labels = load_cifar_split("cifar100", split, data_dir, download, verify=verify)
    return ImageData(
        torch.from_numpy(images),
        torch.from_numpy(labels),
        num_classes=100,
        name="cifar100",
        mean=CIFAR100_MEAN,
        std=CIFAR100_STD,
        class_names=CIFAR100_CLASSES,
    )
