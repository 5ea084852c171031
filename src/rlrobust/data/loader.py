"""Batches straight from tensors on the device: no DataLoader, no worker processes.

MNIST-sized and CIFAR-sized data sets fit on any accelerator as uint8 (CIFAR-10 train is 150 MB),
so ``BatchLoader`` copies the images there once and each batch is an index, a gather and a
uint8 -> float conversion on the device. Everything random is a pure function of
``(seed, epoch)``: a run resumed at epoch k sees the same batches, in the same order, with the
same augmentation, as the run that was interrupted.

Augmentation ``"crop_flip"`` is the standard CIFAR recipe (He et al. 2016, Sec. 4.2): pad 4
pixels with zeros, take a random crop of the original size, flip horizontally with
probability 1/2. It runs on the whole batch at once with one gather. It is an image
augmentation: a 1-D signal (N, C, L) or a video (N, C, T, H, W) is refused with a ConfigError
rather than silently cropped along the wrong axes.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from rlrobust.data.dataset import ImageData
from rlrobust.errors import ConfigError

AUGMENTATIONS: tuple[str, ...] = ("crop_flip",)
CROP_PADDING = 4

# Separate streams, so that turning augmentation on never changes the batch order.
_ORDER_STREAM, _AUGMENT_STREAM = 0, 1


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A 64-bit seed mixed from (seed, epoch, stream) with numpy's SeedSequence hash."""
    if seed < 0 or epoch < 0:
        raise ConfigError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    state = np.random.SeedSequence([int(seed), int(epoch), stream]).generate_state(2, np.uint32)
    return (int(state[0]) << 32 | int(state[1])) & 0x7FFF_FFFF_FFFF_FFFF


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 in [0, 1], on the tensor's own device."""
    return images.to(torch.float32).div_(255.0)


def apply_crop_flip(
    images: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    flip: torch.Tensor,
    padding: int = CROP_PADDING,
) -> torch.Tensor:
    """Crop each zero-padded image at (top, left) and mirror it where ``flip`` is true.

    ``images`` (N, C, H, W); ``top``, ``left`` int64 (N,) in [0, 2 * padding];
    ``flip`` bool (N,). One advanced-indexing gather does all N images: output pixel (i, j) of
    image n is padded pixel (top[n] + i, left[n] + j), or (top[n] + i, left[n] + W - 1 - j)
    when the image is flipped.
    """
    _check_image_batch(images)
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    device = images.device
    rows = top[:, None] + torch.arange(h, device=device)  # (N, H)
    cols = torch.arange(w, device=device).expand(n, w)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + left[:, None]  # (N, W)
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def _check_image_batch(images: torch.Tensor) -> None:
    if images.ndim != 4:
        raise ConfigError(
            f"crop_flip is an image augmentation for (N, C, H, W) batches, got shape "
            f"{tuple(images.shape)}; turn augmentation off (--data.augment none) for 1-D "
            "signals (N, C, L) and video (N, C, T, H, W)"
        )


def crop_flip(
    images: torch.Tensor, generator: torch.Generator, padding: int = CROP_PADDING
) -> torch.Tensor:
    """Random crop with ``padding`` zero pixels plus a random horizontal flip, per image."""
    _check_image_batch(images)
    n = images.shape[0]
    device = images.device
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    flip = torch.randint(0, 2, (n,), generator=generator, device=device).bool()
    return apply_crop_flip(images, top, left, flip, padding)


class BatchLoader:
    """Yield ``(x, y)`` batches of an ``ImageData``: x float32 in [0, 1], y int64, on ``device``.

    Works for every layout ``ImageData`` holds (signals, images, video); only ``crop_flip``
    needs (N, C, H, W) images.

    Args:
        data: the split to iterate over; its uint8 tensors are copied to ``device`` once.
        batch_size: samples per batch (the last batch may be smaller unless ``drop_last``).
        shuffle: draw a fresh permutation every epoch (a pure function of ``(seed, epoch)``).
        seed: base seed for the order and the augmentation.
        device: where the data lives and batches are made.
        augment: ``None`` (batches untouched) or ``"crop_flip"``.
        drop_last: drop a final batch smaller than ``batch_size``.

    Call ``set_epoch(epoch)`` before each epoch (as with PyTorch's DistributedSampler);
    without it every pass repeats epoch 0. Example::

        loader = BatchLoader(train, 128, shuffle=True, seed=0, device="cuda", augment="crop_flip")
        for epoch in range(start_epoch, epochs):
            loader.set_epoch(epoch)
            for x, y in loader:
                ...
    """

    def __init__(
        self,
        data: ImageData,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        device: str | torch.device = "cpu",
        augment: str | None = None,
        drop_last: bool = False,
    ) -> None:
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if augment is not None and augment not in AUGMENTATIONS:
            raise ConfigError(
                f"unknown augmentation {augment!r}; choose one of: None, {', '.join(AUGMENTATIONS)}"
            )
        if int(seed) < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        if augment == "crop_flip":  # refuse now, not at the first batch of the first epoch
            _check_image_batch(data.images[:0])
        self.device = torch.device(device)
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.augment = augment
        self.drop_last = bool(drop_last)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next pass uses."""
        if int(epoch) < 0:
            raise ConfigError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = self.images.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self, epoch: int | None = None) -> torch.Tensor:
        """The sample order of ``epoch`` (default: the current one), int64 on ``device``.

        Drawn on the CPU so that the order is the same whichever device holds the data.
        """
        n = self.images.shape[0]
        if not self.shuffle:
            return torch.arange(n, device=self.device)
        epoch = self.epoch if epoch is None else epoch
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch, _ORDER_STREAM))
        return torch.randperm(n, generator=generator).to(self.device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order()
        generator = None
        if self.augment is not None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(epoch_seed(self.seed, self.epoch, _AUGMENT_STREAM))
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            images = self.images[index]
            if generator is not None:  # augment as uint8: a quarter of the memory traffic
                images = crop_flip(images, generator)
            yield to_unit_float(images), self.labels[index]


def iterate_batches(
    data: ImageData, batch_size: int, device: str | torch.device = "cpu"
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Sequential, unaugmented batches for evaluation; each batch is moved to ``device`` alone,
    so a large test set never has to fit on the device at once."""
    if int(batch_size) < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(data), batch_size):
        images = data.images[start : start + batch_size].to(device, non_blocking=True)
        labels = data.labels[start : start + batch_size].to(device, non_blocking=True)
        yield to_unit_float(images), labels
