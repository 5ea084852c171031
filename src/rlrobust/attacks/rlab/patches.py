"""The patch grid of RLAB: an input's spatial dims cut into fixed-size blocks.

RLAB acts on patches, not pixels (Sarkar et al. 2024, Sec. 3: "fixed-size patches"), which keeps
the action space linear in the number of patches. Inputs are (C, *spatial) with one spatial dim
(signal), two (image) or three (video); a patch size that does not divide a dim leaves a smaller
patch at the end, so every element belongs to exactly one patch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from rlrobust.errors import ConfigError


class PatchGrid:
    """Patches of size ``patch_size`` over ``spatial_shape`` (1, 2 or 3 dims)."""

    def __init__(self, spatial_shape: Sequence[int], patch_size: int | Sequence[int]) -> None:
        shape = tuple(int(s) for s in spatial_shape)
        if not 1 <= len(shape) <= 3 or min(shape) < 1:
            raise ConfigError(
                f"RLAB works on 1-D signals, 2-D images and 3-D videos, shaped (C, *spatial) with "
                f"1 to 3 spatial dims; got spatial shape {shape}"
            )
        size = (int(patch_size),) * len(shape) if isinstance(patch_size, int) else tuple(patch_size)
        if len(size) != len(shape) or min(size) < 1:
            raise ConfigError(
                f"patch size {patch_size!r} does not fit spatial shape {shape}: give one positive "
                f"int or {len(shape)} positive ints"
            )
        self.spatial_shape = shape
        self.patch_size = size
        self.counts = tuple(math.ceil(s / p) for s, p in zip(shape, size, strict=True))
        self.num_patches = math.prod(self.counts)
        self.patch_ids = self._patch_id_map()

    def _patch_id_map(self) -> Tensor:
        """(*spatial) long tensor: the patch index of every element (row-major over patches)."""
        ids = torch.zeros(self.spatial_shape, dtype=torch.long)
        stride = 1
        for dim in reversed(range(len(self.spatial_shape))):
            along = torch.arange(self.spatial_shape[dim]) // self.patch_size[dim]
            view = [1] * len(self.spatial_shape)
            view[dim] = -1
            ids = ids + along.view(view) * stride
            stride *= self.counts[dim]
        return ids

    def masks(self, chosen: Tensor) -> Tensor:
        """(B, N) bool patch selection -> (B, *spatial) bool element mask."""
        ids = self.patch_ids.to(chosen.device)
        return chosen[:, ids.flatten()].view(chosen.shape[0], *self.spatial_shape)

    def sizes(self) -> Tensor:
        """(N,) number of spatial elements in each patch (edge patches may be smaller)."""
        return torch.bincount(self.patch_ids.flatten(), minlength=self.num_patches)

    def centres(self) -> Tensor:
        """(N, 3) patch centres in [0, 1] per spatial dim, zero-padded to three dims."""
        out = torch.zeros(self.num_patches, 3)
        grids = torch.meshgrid(*[torch.arange(c) for c in self.counts], indexing="ij")
        for dim, index in enumerate(grids):
            p, s = self.patch_size[dim], self.spatial_shape[dim]
            start = index.flatten() * p
            end = torch.clamp(start + p, max=s)
            out[:, dim] = (start + end).float() / (2 * s)
        return out

    def patch_means(self, values: Tensor) -> Tensor:
        """(B, *spatial) -> (B, N): the mean of ``values`` over each patch."""
        flat = values.flatten(1)
        ids = self.patch_ids.to(values.device).flatten().expand_as(flat)
        sums = torch.zeros(values.shape[0], self.num_patches, device=values.device)
        sums.scatter_add_(1, ids, flat.float())
        return sums / self.sizes().to(values.device)

    def patch_max(self, values: Tensor) -> Tensor:
        """(B, *spatial) -> (B, N): the maximum of ``values`` over each patch."""
        flat = values.flatten(1).float()
        ids = self.patch_ids.to(values.device).flatten().expand_as(flat)
        out = torch.full((values.shape[0], self.num_patches), -torch.inf, device=values.device)
        return out.scatter_reduce(1, ids, flat, reduce="amax", include_self=True)
