"""Data set ``folder``: your own images, one subfolder per class (read with Pillow).

Two layouts, chosen by what ``--data.data_dir PATH`` holds::

    PATH/train/<class>/*.png   and   PATH/test/<class>/*.png    the split is yours
    PATH/<class>/*.png                                          split here, seeded and stratified

Class names are the subfolder names, sorted; label k is the k-th name. Images may sit deeper
inside a class folder; they are read in sorted path order, so every machine sees the same order.
Files whose suffix is not an image suffix (``IMAGE_SUFFIXES``) and names starting with "." are
skipped; a file with an image suffix that Pillow cannot read is an error, never skipped.

Every image must have the same size, or give ``size`` to resize each one on load (bilinear).
Channels: grey-scale images (Pillow modes 1, L, LA) give one channel when all images are grey,
otherwise every image is converted to RGB (alpha is dropped, palettes are expanded); ``channels``
(1 or 3) forces one of the two. 16-bit and float images are refused: the pixel contract is
8 bits (0..255 stands for [0, 1]).

Options (``--data.options '{"test_fraction": 0.25}'`` or ``load_dataset(..., **options)``):
``test_fraction`` (0.2) and ``split_seed`` (0) for the one-folder layout, ``size`` ([H, W] or
an int for square images, default None: keep the size), ``channels`` (None, 1 or 3).
"""

from __future__ import annotations

import os
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

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
GREY_MODES = frozenset({"1", "L", "LA"})
# Modes with more than 8 bits per value: converting them to L or RGB would clip silently.
WIDE_MODES = frozenset({"I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
DEFAULTS: dict[str, Any] = {
    "test_fraction": DEFAULT_TEST_FRACTION,
    "split_seed": 0,
    "size": None,
    "channels": None,
}


def _pillow():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib
        raise DataError(
            "data set 'folder' reads images with Pillow, which is not installed; "
            "pip install 'rlrobust[images]'"
        ) from None
    return Image


def _bilinear(image_module):
    # Image.Resampling appeared in Pillow 9.1; older versions only have the module constant.
    return getattr(image_module, "Resampling", image_module).BILINEAR


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def class_folders(root: Path) -> list[Path]:
    """The class subfolders of ``root``, sorted by name; images lying loose in it are an error."""
    if not root.is_dir():
        raise DataError(
            f"{root} is not a folder; data set 'folder' needs a folder with one subfolder per "
            "class (for a .npz or .safetensors file use --data.name tensors)"
        )
    loose = sorted(p.name for p in root.iterdir() if p.is_file() and _is_image(p))
    if loose:
        raise DataError(
            f"{root} holds images directly ({', '.join(loose[:3])}); put each image in the "
            "subfolder of its class, e.g. PATH/cat/1.png and PATH/dog/2.png"
        )
    folders = sorted(
        (p for p in root.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name
    )
    if len(folders) < 2:
        raise DataError(
            f"{root} has {len(folders)} class subfolder(s); a classifier needs at least two, "
            "one per class, each holding that class's images"
        )
    return folders


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and _visible(path)


def image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (recursively), in sorted path order."""
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file() and _is_image(p) and all(_visible(q) for q in p.relative_to(folder).parents)
    ]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def list_samples(
    root: Path, names: tuple[str, ...] | None = None
) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """(files, labels, class names) of a folder with one subfolder per class.

    With ``names`` (the training folder's classes), the folder must have exactly those classes.
    """
    folders = class_folders(root)
    found = tuple(p.name for p in folders)
    if names is not None and found != names:
        missing = sorted(set(names) - set(found))
        extra = sorted(set(found) - set(names))
        raise DataError(
            f"{root} has other classes than the training folder: missing {missing}, extra "
            f"{extra}; give train/ and test/ the same class subfolders"
        )
    files: list[Path] = []
    labels: list[int] = []
    for label, folder in enumerate(folders):
        members = image_files(folder)
        if not members:
            raise DataError(
                f"class folder {folder} holds no images (suffixes: "
                f"{', '.join(sorted(IMAGE_SUFFIXES))}); add images or remove the folder"
            )
        files += members
        labels += [label] * len(members)
    return files, labels, found


def _size_option(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        size = [size, size]
    if (
        not isinstance(size, (list, tuple))
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size)
    ):
        raise DataError(f"size must be [height, width] or one integer >= 1, got {size!r}")
    return int(size[0]), int(size[1])


def _channels_option(channels: Any) -> int | None:
    if channels not in (None, 1, 3) or isinstance(channels, bool):
        raise DataError(
            f"channels must be 1 (grey), 3 (RGB) or null (decide from the images), got {channels!r}"
        )
    return channels


def image_headers(files: list[Path]) -> list[tuple[str, tuple[int, int]]]:
    """(Pillow mode, (height, width)) of each file, read from its header only (Pillow decodes
    lazily). Unreadable files and images of more than 8 bits per value are errors."""
    image_module = _pillow()
    headers = []
    for path in files:
        try:
            with image_module.open(path) as image:
                mode, height, width = image.mode, image.height, image.width
        except Exception as error:  # Pillow raises many types for broken files
            raise DataError(
                f"{path} is not a readable image ({type(error).__name__}: {error}); fix or "
                "delete it"
            ) from None
        if mode in WIDE_MODES:
            raise DataError(
                f"{path} has {mode} pixels (more than 8 bits); rlrobust reads 8-bit images "
                "(0..255 stands for [0, 1]): convert it to 8-bit grey or RGB first"
            )
        headers.append((mode, (height, width)))
    return headers


def grey_or_rgb(headers: list[tuple[str, tuple[int, int]]]) -> int:
    """1 channel when every image is grey-scale, else 3 (RGB)."""
    return 1 if {mode for mode, _ in headers} <= GREY_MODES else 3


def read_images(
    files: list[Path],
    size: tuple[int, int] | None,
    channels: int | None,
    headers: list[tuple[str, tuple[int, int]]] | None = None,
) -> np.ndarray:
    """Decode ``files`` into uint8 (N, C, H, W); see the module docstring for sizes and channels.

    ``headers``: ``image_headers(files)`` if the caller has them already.
    """
    image_module = _pillow()
    headers = image_headers(files) if headers is None else headers
    sizes: dict[tuple[int, int], Path] = {}
    for path, (_, shape) in zip(files, headers, strict=True):
        sizes.setdefault(shape, path)
    if size is None and len(sizes) > 1:
        examples = ", ".join(f"{p.name} is {h}x{w}" for (h, w), p in list(sizes.items())[:3])
        raise DataError(
            f"the images have {len(sizes)} different sizes ({examples}; height x width); "
            "resize them to one size, or pass --data.options '{\"size\": [H, W]}' to resize "
            "each image on load"
        )
    channels = grey_or_rgb(headers) if channels is None else channels
    height, width = size if size is not None else next(iter(sizes))
    out = np.empty((len(files), height, width, channels), dtype=np.uint8)
    for i, path in enumerate(files):  # decode into the preallocated array
        with image_module.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            if (image.height, image.width) != (height, width):
                image = image.resize((width, height), _bilinear(image_module))
            out[i] = np.asarray(image, dtype=np.uint8).reshape(height, width, channels)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def load_folder(
    split: str, data_dir: str | os.PathLike | None = None, download: bool = False, **options: Any
) -> ImageData:
    """One split of the image folder at ``data_dir`` (see the module docstring)."""
    check_split("folder", split)
    refuse_download("folder", download)
    root = require_path("folder", data_dir, "the folder of your images")
    opts = parse_options("folder", options, DEFAULTS)
    size, channels = _size_option(opts["size"]), _channels_option(opts["channels"])
    name = f"folder:{root.resolve().name}"
    if (root / "train").is_dir() or (root / "test").is_dir():
        if not ((root / "train").is_dir() and (root / "test").is_dir()):
            there, absent = ("train", "test") if (root / "train").is_dir() else ("test", "train")
            raise DataError(
                f"{root} has {there}/ but no {absent}/; give both (each with one subfolder per "
                "class), or put the class folders directly in it to have them split"
            )
        for key in ("test_fraction", "split_seed"):
            if key in options:
                raise DataError(
                    f"option {key} splits one folder of classes, but {root} already has train/ "
                    "and test/; drop the option"
                )
        files, labels, names = list_samples(root / "train")
        test_files, test_labels, _ = list_samples(root / "test", names)
        headers, test_headers = image_headers(files), image_headers(test_files)
        if channels is None:  # both splits need one channel count: grey only if all are grey
            channels = grey_or_rgb(headers + test_headers)
        train = (read_images(files, size, channels, headers), np.asarray(labels))
        test = (read_images(test_files, size, channels, test_headers), np.asarray(test_labels))
        if test[0].shape[2:] != train[0].shape[2:]:
            raise DataError(
                f"{root}: test images are {test[0].shape[2]}x{test[0].shape[3]} but training "
                f"images are {train[0].shape[2]}x{train[0].shape[3]}; resize them to one size"
            )
        return pick_split(name, split, train, test, names)
    fraction, seed = check_fraction(opts["test_fraction"]), check_seed(opts["split_seed"])
    files, labels, names = list_samples(root)
    images, labels_array = read_images(files, size, channels), np.asarray(labels)
    train_index, test_index = stratified_split(labels_array, fraction, seed)
    return pick_split(
        name,
        split,
        (images[train_index], labels_array[train_index]),
        (images[test_index], labels_array[test_index]),
        names,
    )


DATASETS.register("folder")(load_folder)
