"""``ImageData``: one split of a data set (images, 1-D signals or video), held as uint8 tensors.

Samples stay uint8 in memory: a quarter of the float32 size, and the conversion to [0, 1] floats
happens per batch on the device (see ``loader.py``). Three layouts are accepted:

    (N, C, L)         1-D signals (e.g. the UCR time series in ``ucr.py``)
    (N, C, H, W)      images
    (N, C, T, H, W)   video clips (e.g. ``moving_mnist.py``)

Real-valued signals are min-max scaled into [0, 1] and quantised to uint8 by their loader (see
``ucr.py`` for the scaling and its error bound), so every consumer can keep reading
``images.float() / 255``. ``mean`` and ``std`` are the per-channel statistics in [0, 1] units that
a model's ``Normalize`` layer uses; they travel with the data so that the model and the data
cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from rlrobust.errors import DataError


@dataclass
class ImageData:
    """One split of a classification data set of images, 1-D signals or video clips.

    Attributes:
        images: torch.uint8, shape (N, C, H, W) for images, (N, C, L) for 1-D signals or
            (N, C, T, H, W) for video; values 0..255 stand for 0..1.
        labels: torch.int64, shape (N,), values in [0, num_classes).
        num_classes: number of classes.
        name: data set name, e.g. ``"mnist"`` or ``"mnist/test"``.
        mean, std: per-channel statistics in [0, 1] units (one value per channel).
        class_names: optional human-readable class names (length num_classes).
        masks: optional torch.bool tensor shaped like ``images``: a ground-truth localisation
            of the evidence (``moving-mnist`` sets it to where the digit's pixels are in each
            frame). ``subset``, ``take`` and ``to`` keep it aligned with the samples.
        value_range: optional (low, high) in the source's own units that 0 and 1 stand for
            (set by loaders that rescale real-valued signals): ``low + x * (high - low)``.

    Example::

        data = ImageData(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 2, 1]),
                         num_classes=3, name="toy", mean=(0.5,), std=(0.25,))
        data.shape  # (1, 8, 8)
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    name: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] | None = field(default=None)
    masks: torch.Tensor | None = field(default=None, repr=False)
    value_range: tuple[float, float] | None = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8:
            got = self.images.dtype if isinstance(self.images, torch.Tensor) else type(self.images)
            raise DataError(
                f"{self.name}: images must be a torch.uint8 tensor, got {got}; convert with "
                "(x * 255).round().to(torch.uint8) for [0, 1] floats"
            )
        if self.images.ndim not in SAMPLE_LAYOUTS:
            raise DataError(
                f"{self.name}: images must have shape (N, C, H, W), (N, C, L) or (N, C, T, H, W), "
                f"got {tuple(self.images.shape)}; add a channel axis with images.unsqueeze(1) "
                "for grey-scale (N, H, W) images or single-channel (N, L) signals"
            )
        if not isinstance(self.labels, torch.Tensor) or self.labels.dtype != torch.int64:
            got = self.labels.dtype if isinstance(self.labels, torch.Tensor) else type(self.labels)
            raise DataError(
                f"{self.name}: labels must be a torch.int64 tensor, got {got}; "
                "convert with labels.long()"
            )
        if self.labels.ndim != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise DataError(
                f"{self.name}: labels must have shape ({self.images.shape[0]},) to match the "
                f"images, got {tuple(self.labels.shape)}; pass one integer class per image"
            )
        if int(self.num_classes) < 1:
            raise DataError(f"{self.name}: num_classes must be >= 1, got {self.num_classes}")
        self.num_classes = int(self.num_classes)
        self.mean = tuple(float(m) for m in self.mean)
        self.std = tuple(float(s) for s in self.std)
        channels = self.images.shape[1]
        if len(self.mean) != channels or len(self.std) != channels:
            raise DataError(
                f"{self.name}: mean and std need one value per channel ({channels}), got "
                f"{len(self.mean)} and {len(self.std)}; give per-channel statistics"
            )
        if any(s <= 0 for s in self.std):
            raise DataError(f"{self.name}: std must be positive, got {self.std}")
        if self.class_names is not None:
            self.class_names = tuple(self.class_names)
            if len(self.class_names) != self.num_classes:
                raise DataError(
                    f"{self.name}: {len(self.class_names)} class names for {self.num_classes} "
                    "classes; give one name per class or none"
                )
        self._check_masks()
        if self.value_range is not None:
            low, high = (float(v) for v in self.value_range)
            if not low < high:
                raise DataError(f"{self.name}: value_range needs low < high, got {(low, high)}")
            self.value_range = (low, high)
        bad = (self.labels < 0) | (self.labels >= self.num_classes)
        if bool(bad.any()):
            values = torch.unique(self.labels[bad]).tolist()
            shown = ", ".join(str(v) for v in values[:10]) + (" ..." if len(values) > 10 else "")
            raise DataError(
                f"{self.name}: {int(bad.sum())} labels lie outside [0, {self.num_classes}) "
                f"(values: {shown}); remap the labels to 0..{self.num_classes - 1} or raise "
                "num_classes"
            )

    def _check_masks(self) -> None:
        if self.masks is None:
            return
        if not isinstance(self.masks, torch.Tensor) or self.masks.dtype != torch.bool:
            got = self.masks.dtype if isinstance(self.masks, torch.Tensor) else type(self.masks)
            raise DataError(f"{self.name}: masks must be a torch.bool tensor, got {got}")
        if self.masks.shape != self.images.shape:
            raise DataError(
                f"{self.name}: masks must have the images' shape {tuple(self.images.shape)}, got "
                f"{tuple(self.masks.shape)}; give one flag per input value"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one sample: (C, H, W), (C, L) or (C, T, H, W)."""
        return tuple(self.images.shape[1:])

    @property
    def layout(self) -> str:
        """``"signal"`` (N, C, L), ``"image"`` (N, C, H, W) or ``"video"`` (N, C, T, H, W)."""
        return SAMPLE_LAYOUTS[self.images.ndim]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> ImageData:
        """The samples at ``indices`` (in that order), with the same metadata."""
        index = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        if index.ndim != 1:
            raise DataError(f"{self.name}: subset() needs a 1-D list of indices")
        if index.numel() and (int(index.min()) < -len(self) or int(index.max()) >= len(self)):
            raise DataError(
                f"{self.name}: subset() index out of range for {len(self)} samples; "
                f"use indices in [0, {len(self)})"
            )
        images = self.images[index.to(self.images.device)]
        masks = None if self.masks is None else self.masks[index.to(self.masks.device)]
        labels = self.labels[index.to(self.labels.device)]
        return replace(self, images=images, labels=labels, masks=masks)

    def take(self, n: int, seed: int = 0) -> ImageData:
        """A random subset of ``n`` distinct samples; the same (n, seed) gives the same subset."""
        if n < 0 or n > len(self):
            raise DataError(
                f"{self.name}: cannot take {n} samples from a set of {len(self)}; "
                f"ask for between 0 and {len(self)}"
            )
        generator = torch.Generator().manual_seed(int(seed))
        return self.subset(torch.randperm(len(self), generator=generator)[:n])

    def class_counts(self) -> torch.Tensor:
        """Number of samples per class, int64 of shape (num_classes,)."""
        return torch.bincount(self.labels.cpu(), minlength=self.num_classes)

    def to(self, device: str | torch.device) -> ImageData:
        """The same data with its tensors on ``device``."""
        masks = None if self.masks is None else self.masks.to(device)
        return replace(
            self, images=self.images.to(device), labels=self.labels.to(device), masks=masks
        )


# images.ndim -> the name of the layout (the number of dimensions after (N, C) is 1, 2 or 3).
SAMPLE_LAYOUTS: dict[int, str] = {3: "signal", 4: "image", 5: "video"}


SPLITS: tuple[str, ...] = ("train", "test")


def check_split(name: str, split: str) -> str:
    """Return ``split`` if it is one every data set knows, else raise DataError listing them."""
    if split not in SPLITS:
        raise DataError(
            f"{name}: unknown split {split!r}; choose one of: {', '.join(SPLITS)} "
            "(carve a validation set out of train with split_validation)"
        )
    return split


def split_validation(
    data: ImageData, fraction: float, seed: int = 0
) -> tuple[ImageData, ImageData]:
    """Split ``data`` at random into (train, val), ``round(fraction * len)`` samples in val.

    Deterministic in ``seed``; the two parts are disjoint and together are all of ``data``.
    Not stratified: with thousands of samples per class the class shares stay close.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise DataError(
            f"validation fraction must lie strictly between 0 and 1, got {fraction}; "
            "for example 0.1 holds out a tenth of the training set"
        )
    num_val = int(round(float(fraction) * len(data)))
    if num_val < 1 or num_val >= len(data):
        raise DataError(
            f"{data.name}: a fraction of {fraction} of {len(data)} samples leaves an empty "
            "train or validation part; choose a fraction that keeps both non-empty"
        )
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(data), generator=generator)
    return data.subset(order[num_val:]), data.subset(order[:num_val])
