"""Data set ``tensors``: your own images and labels in one ``.npz`` or ``.safetensors`` file.

``--data.data_dir FILE`` names the file. Its arrays, by name::

    images, labels                                   one pool, split here (seeded, stratified)
    train_images, train_labels, test_images, test_labels     the split is yours

``*images``: uint8 (0..255 stands for [0, 1]), shape (N, H, W) for grey-scale or (N, C, H, W) /
(N, H, W, C). Which of the last two is meant is read from the shape: the channel axis is the one
of axes 1 and 3 that has at most 4 entries while the other has more; when both or neither do
(e.g. 4x4 images), give ``layout`` ("nchw" or "nhwc"). ``*labels``: integers 0..K-1, shape (N,).
An optional ``class_names`` gives the K names: a string array in a .npz file, or a JSON list
in the ``class_names`` metadata entry of a .safetensors file. Any other array name is refused,
so a misspelt name cannot be ignored silently.

Security: a .npz file is read with ``allow_pickle=False`` (an object array is refused, never
unpickled); torch ``.pt`` files are pickles and are refused by suffix.

Options: ``test_fraction`` (0.2) and ``split_seed`` (0) for the one-pool layout, ``layout``
("auto", "nchw", "nhwc").
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from rlrobust.data.dataset import ImageData, check_split
from rlrobust.data.own import (
    DEFAULT_TEST_FRACTION,
    check_fraction,
    check_seed,
    parse_options,
    pick_split,
    refuse_download,
    require_path,
    stratified_split,
)
from rlrobust.errors import DataError
from rlrobust.registry import DATASETS

SUFFIXES = (".npz", ".safetensors")
POOLED = ("images", "labels")
SPLIT = ("train_images", "train_labels", "test_images", "test_labels")
LAYOUTS = ("auto", "nchw", "nhwc")
MAX_CHANNELS = 4
DEFAULTS: dict[str, Any] = {
    "test_fraction": DEFAULT_TEST_FRACTION,
    "split_seed": 0,
    "layout": "auto",
}


def read_arrays(path: Path) -> tuple[dict[str, np.ndarray], tuple[str, ...] | None]:
    """The arrays of a .npz or .safetensors file, and its class names if it has any."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"{path}: data set 'tensors' reads .npz or .safetensors files, not {suffix or 'files without a suffix'!r}; "
            "save the arrays with numpy.savez or safetensors.numpy.save_file (torch .pt files "
            "are pickles and are never loaded)"
        )
    if suffix == ".npz":
        return _read_npz(path)
    return _read_safetensors(path)


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], tuple[str, ...] | None]:
    # np.load would read a non-zip file as .npy or as a pickle (refused without allow_pickle,
    # with a message about pickles); a check first gives the real problem.
    if not zipfile.is_zipfile(path):
        raise DataError(
            f"{path} is not a readable .npz file (not a zip archive); save the arrays with "
            "numpy.savez(path, images=..., labels=...)"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise DataError(
                f"{path} holds an object (pickled) array, which is never loaded; save plain "
                "numeric arrays (and class_names as a string array, e.g. np.array(names))"
            ) from None
        raise DataError(f"{path} is not a readable .npz file ({error})") from None
    except (OSError, EOFError) as error:
        raise DataError(f"{path} is not a readable .npz file ({error}); save it again") from None
    names = arrays.pop("class_names", None)
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DataError(
                f"{path}: class_names must be a 1-D string array, got dtype {names.dtype} and "
                f"shape {names.shape}; save it as np.array(['cat', 'dog', ...])"
            )
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist())
    return arrays, names


def _read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], tuple[str, ...] | None]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
            metadata = handle.metadata() or {}
    except Exception as error:  # safetensors raises its own error types for broken headers
        raise DataError(
            f"{path} is not a readable .safetensors file ({type(error).__name__}: {error}); "
            "save it again with safetensors.numpy.save_file"
        ) from None
    names = None
    if "class_names" in metadata:
        try:
            names = json.loads(metadata["class_names"])
        except json.JSONDecodeError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(
                f"{path}: the class_names metadata must be a JSON list of strings, e.g. "
                'metadata={"class_names": json.dumps(["cat", "dog"])}'
            )
        names = tuple(names)
    return arrays, names


def to_nchw(images: np.ndarray, layout: str, what: str) -> np.ndarray:
    """uint8 (N, H, W), (N, C, H, W) or (N, H, W, C) -> contiguous uint8 (N, C, H, W)."""
    if images.dtype != np.uint8:
        hint = (
            "for floats in [0, 1] use (x * 255).round().astype(np.uint8)"
            if images.dtype.kind == "f"
            else "scale the values to 0..255 and use .astype(np.uint8)"
        )
        raise DataError(
            f"{what} must be uint8 (0..255 stands for [0, 1]), got {images.dtype}; {hint}"
        )
    if images.ndim == 3:
        return np.ascontiguousarray(images[:, None])
    if images.ndim != 4:
        raise DataError(
            f"{what} has shape {images.shape}; give (N, H, W) for grey-scale images or "
            "(N, C, H, W) / (N, H, W, C)"
        )
    if layout == "auto":
        first, last = images.shape[1] <= MAX_CHANNELS, images.shape[3] <= MAX_CHANNELS
        if first == last:
            raise DataError(
                f"{what} has shape {images.shape}: cannot tell (N, C, H, W) from (N, H, W, C); "
                'give --data.options \'{"layout": "nchw"}\' or \'{"layout": "nhwc"}\''
            )
        layout = "nchw" if first else "nhwc"
    if layout == "nhwc":
        images = images.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images)


def check_labels(labels: np.ndarray, count: int, what: str) -> np.ndarray:
    if labels.dtype.kind not in "iu":
        raise DataError(
            f"{what} must hold integers 0..K-1, got dtype {labels.dtype}; convert with "
            ".astype(np.int64) (or map class names to 0..K-1 first)"
        )
    if labels.ndim != 1 or labels.shape[0] != count:
        raise DataError(
            f"{what} has shape {labels.shape} but there are {count} images; give one label per "
            f"image, shape ({count},)"
        )
    return labels.astype(np.int64)


def load_tensor_file(
    split: str, data_dir: str | os.PathLike | None = None, download: bool = False, **options: Any
) -> ImageData:
    """One split of the arrays in the file ``data_dir`` (see the module docstring)."""
    check_split("tensors", split)
    refuse_download("tensors", download)
    path = require_path("tensors", data_dir, "the .npz or .safetensors file")
    opts = parse_options("tensors", options, DEFAULTS)
    if opts["layout"] not in LAYOUTS:
        raise DataError(f"layout must be one of {', '.join(LAYOUTS)}, got {opts['layout']!r}")
    if path.is_dir():
        raise DataError(
            f"{path} is a folder; data set 'tensors' reads one .npz or .safetensors file (for a "
            "folder of images use --data.name folder)"
        )
    arrays, names = read_arrays(path)
    keys = set(arrays)
    name = f"tensors:{path.stem}"
    if keys == set(SPLIT):
        for key in ("test_fraction", "split_seed"):
            if key in options:
                raise DataError(
                    f"option {key} splits one pool of images, but {path} already has train_* "
                    "and test_* arrays; drop the option"
                )
        splits = []
        for prefix in ("train", "test"):
            images = to_nchw(arrays[f"{prefix}_images"], opts["layout"], f"{path}: {prefix}_images")
            labels = check_labels(
                arrays[f"{prefix}_labels"], len(images), f"{path}: {prefix}_labels"
            )
            splits.append((images, labels))
        if splits[0][0].shape[1:] != splits[1][0].shape[1:]:
            raise DataError(
                f"{path}: train_images are {splits[0][0].shape[1:]} (C, H, W) per image but "
                f"test_images are {splits[1][0].shape[1:]}; give both splits one shape"
            )
        return pick_split(name, split, splits[0], splits[1], names)
    if keys == set(POOLED):
        fraction, seed = check_fraction(opts["test_fraction"]), check_seed(opts["split_seed"])
        images = to_nchw(arrays["images"], opts["layout"], f"{path}: images")
        labels = check_labels(arrays["labels"], len(images), f"{path}: labels")
        train_index, test_index = stratified_split(labels, fraction, seed)
        return pick_split(
            name,
            split,
            (images[train_index], labels[train_index]),
            (images[test_index], labels[test_index]),
            names,
        )
    raise DataError(
        f"{path} holds the arrays {sorted(keys)}; give either {', '.join(POOLED)} (split here) "
        f"or {', '.join(SPLIT)}, plus optionally class_names, and nothing else"
    )


DATASETS.register("tensors")(load_tensor_file)
