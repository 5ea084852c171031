"""UCR/UEA time-series classification problems as (N, C, L) uint8 ``ImageData``.

Where the files come from, in order:

1. ``<root>/ucr/<Name>/<Name>_TRAIN.ts`` and ``_TEST.ts`` under the data root (``--data.data_dir``,
   else ``$RLROBUST_DATA``, else ``~/.cache/rlrobust/data``): unzip any archive download from
   https://www.timeseriesclassification.com there.
2. The copies that the ``aeon`` package ships inside its wheel
   (``aeon/datasets/data/<Name>/``): GunPoint, ArrowHead, OSULeaf, ACSF1, ItalyPowerDemand and
   a few more. aeon is located with ``importlib.util.find_spec``, never imported (importing it
   pulls in numba and scikit-learn); install it with ``pip install "rlrobust[signals]"``.

Registered names: ``ucr-gunpoint``, ``ucr-arrowhead``, ``ucr-osuleaf``, ``ucr-acsf1``,
``ucr-italypowerdemand`` (all bundled with aeon), and ``ecg200`` / ``ecg5000`` (downloaded, see
``ecg.py``). ``load_ucr(problem, split)`` reads any other problem laid out as in 1.

Storage (the choice every loader here makes; see docs/data.md): each channel is min-max scaled
with the **training split's** minimum and maximum, ``u = (v - low) / (high - low)``, clipped to
[0, 1] and quantised to uint8, ``round(255 * u)``. So the inputs obey the [0, 1] contract, an eps
means a fraction of the training range, and every consumer reads ``images.float() / 255``
unchanged. The cost, stated plainly:

* quantisation: the stored value differs from the exact one by at most half a step,
  ``(high - low) / 510`` in the source's units (GunPoint: 0.0087 on z-normalised series whose
  std is 1, i.e. under 1% of a standard deviation);
* clipping: test values outside the training range are clipped to 0 or 1 (GunPoint: 0.58% of
  the test values, ArrowHead 0.05%, OSULeaf 0.006%, ACSF1 0.001%). Pass ``margin=0.05`` to widen
  the range by 5% of its width on each side.

``value_range`` on the returned data holds ``(low, high)`` for single-channel problems, so
``low + x * (high - low)`` maps a [0, 1] input back to the source's units. Labels are mapped to
0..K-1 in sorted label order (numeric order when every label is a number) and the original
labels are kept as ``class_names``. ``mean`` / ``std`` are those of the stored training values.
"""

from __future__ import annotations

import importlib.util
import os
from functools import partial
from pathlib import Path

import numpy as np
import torch

from rlrobust.data.dataset import ImageData, check_split
from rlrobust.data.paths import describe_source, resolve_data_dir
from rlrobust.data.ts_format import TsProblem, label_order, read_ts
from rlrobust.errors import DataError
from rlrobust.registry import DATASETS

UCR_SUBDIR = "ucr"
# Registered name -> the archive's problem name (the folder and file prefix).
AEON_BUNDLED: dict[str, str] = {
    "ucr-gunpoint": "GunPoint",
    "ucr-arrowhead": "ArrowHead",
    "ucr-osuleaf": "OSULeaf",
    "ucr-acsf1": "ACSF1",
    "ucr-italypowerdemand": "ItalyPowerDemand",
}
_SPLIT_SUFFIX = {"train": "TRAIN", "test": "TEST"}


def aeon_data_dir() -> Path | None:
    """aeon's bundled ``datasets/data`` folder, or None when aeon is not installed.

    ``find_spec`` reads the package's location without running its ``__init__``.
    """
    try:
        spec = importlib.util.find_spec("aeon")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return folder if folder.is_dir() else None


def problem_folders(problem: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """The folders searched for ``<problem>_TRAIN.ts`` / ``_TEST.ts``, in order."""
    folders = [resolve_data_dir(data_dir) / UCR_SUBDIR / problem]
    bundled = aeon_data_dir()
    if bundled is not None:
        folders.append(bundled / problem)
    return folders


def find_problem(problem: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The first folder that holds both split files of ``problem``; DataError if none does."""
    folders = problem_folders(problem, data_dir)
    for folder in folders:
        if all((folder / f"{problem}_{s}.ts").is_file() for s in _SPLIT_SUFFIX.values()):
            return folder
    tried = "\n  ".join(str(f) for f in folders)
    aeon_hint = (
        ""
        if aeon_data_dir() is not None
        else "; aeon (pip install 'rlrobust[signals]') "
        "bundles GunPoint, ArrowHead, OSULeaf, ACSF1 and ItalyPowerDemand"
    )
    raise DataError(
        f"UCR problem {problem!r}: {problem}_TRAIN.ts and {problem}_TEST.ts not found; looked "
        f"in (data root {describe_source(data_dir)}):\n  {tried}\nUnzip the archive from "
        f"https://www.timeseriesclassification.com/aeon-toolkit/{problem}.zip into the first "
        f"folder{aeon_hint}"
    )


def ucr_to_image_data(
    train: TsProblem,
    part: TsProblem,
    name: str,
    margin: float = 0.0,
) -> ImageData:
    """Scale ``part`` with ``train``'s per-channel range (see the module docstring) and wrap it.

    ``part`` is ``train`` itself for the training split, or the test file.
    """
    if not 0.0 <= float(margin) < 1.0:
        raise DataError(f"{name}: margin must lie in [0, 1), got {margin}; e.g. 0.05")
    if train.series.shape[1:] != part.series.shape[1:]:
        raise DataError(
            f"{name}: the train series are (C, L) = {train.series.shape[1:]} but this split's "
            f"are {part.series.shape[1:]}; the two files are not from one problem"
        )
    if set(part.class_labels) != set(train.class_labels):
        raise DataError(
            f"{name}: the splits declare different classes ({' '.join(train.class_labels)} vs "
            f"{' '.join(part.class_labels)}); the two files are not from one problem"
        )
    low = train.series.min(axis=(0, 2))
    high = train.series.max(axis=(0, 2))
    if np.any(high <= low):
        raise DataError(f"{name}: a channel is constant over the training split; cannot scale")
    pad = float(margin) * (high - low)
    low, high = low - pad, high + pad
    unit = (part.series - low[None, :, None]) / (high - low)[None, :, None]
    images = np.rint(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)
    # Normalize statistics of the stored training values, per channel, in [0, 1] units.
    train_unit = np.clip((train.series - low[None, :, None]) / (high - low)[None, :, None], 0, 1)
    train_stored = np.rint(train_unit * 255.0) / 255.0
    mean = train_stored.mean(axis=(0, 2))
    std = np.maximum(train_stored.std(axis=(0, 2)), 1e-6)
    order = label_order(train.class_labels)
    index = {label: k for k, label in enumerate(order)}
    labels = np.array([index[label] for label in part.labels], dtype=np.int64)
    value_range = (float(low[0]), float(high[0])) if len(low) == 1 else None
    return ImageData(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        num_classes=len(order),
        name=name,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        class_names=order,
        value_range=value_range,
    )


def load_ucr(
    problem: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    *,
    name: str | None = None,
    margin: float = 0.0,
) -> ImageData:
    """Split ``split`` of the UCR problem ``problem`` (e.g. ``"GunPoint"``), shape (N, C, L).

    ``download`` is accepted for the shared loader signature; files found here are never
    downloaded (``ecg.py`` registers the problems that are). Example::

        train = load_ucr("GunPoint", "train")
        train.shape, train.num_classes, train.class_names  # (1, 150), 2, ('1', '2')
    """
    name = name or f"ucr-{problem.lower()}"
    check_split(name, split)
    folder = find_problem(problem, data_dir)
    return load_ucr_folder(folder, problem, split, name=name, margin=margin)


def load_ucr_folder(
    folder: str | os.PathLike, problem: str, split: str, *, name: str, margin: float = 0.0
) -> ImageData:
    """Read ``<folder>/<problem>_{TRAIN,TEST}.ts``: the train file always (for the scaling)."""
    folder = Path(folder)
    train = read_ts(folder / f"{problem}_TRAIN.ts")
    part = train if split == "train" else read_ts(folder / f"{problem}_TEST.ts")
    return ucr_to_image_data(train, part, name, margin)


def _bundled_loader(
    registered: str,
    problem: str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    **options,
) -> ImageData:
    return load_ucr(problem, split, data_dir, download, name=registered, **options)


for _registered, _problem in AEON_BUNDLED.items():
    _loader = partial(_bundled_loader, _registered, _problem)
    _loader.__doc__ = f"UCR {_problem} (bundled with aeon, or <root>/ucr/{_problem}/)."
    DATASETS.register(_registered)(_loader)
