"""Scoring RLAB's localisation masks against reference masks and saliency baselines.

For each successfully attacked input, the RLAB mask (the union of distorted patches) is compared
with the object's foreground (``explain.foreground_masks``) by Dice and IoU. Each gradient
saliency baseline is cut to the same number of pixels as that input's RLAB mask
(``explain.top_k_mask``), and a chance baseline draws the same number of random patches, so the
methods differ only in *where* they point. The RLAB mask's agreement with each saliency mask is
reported too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from rlrobust.attacks.rlab.explain import (
    SALIENCY_METHODS,
    dice,
    foreground_masks,
    iou,
    mask_scores,
    top_k_mask,
)
from rlrobust.attacks.rlab.patches import PatchGrid
from rlrobust.errors import UnknownNameError


def random_patch_masks(patch_masks: Tensor, grid: PatchGrid, generator: torch.Generator) -> Tensor:
    """As many random patches per input as ``patch_masks`` (B, N) selects; (B, *spatial)."""
    scores = torch.rand(patch_masks.shape, generator=generator)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    chosen = ranks < patch_masks.sum(dim=1, keepdim=True)
    return grid.masks(chosen.to(patch_masks.device))


def score_masks(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    masks: Tensor,
    patch_masks: Tensor,
    grid: PatchGrid,
    methods: Sequence[str] = tuple(SALIENCY_METHODS),
    threshold: float = 0.1,
    seed: int = 0,
) -> dict:
    """Dice / IoU of RLAB, saliency and random masks against the foreground of ``x``.

    ``x``, ``y``, ``masks`` (B, *spatial) and ``patch_masks`` (B, N) hold successful inputs only.
    """
    for name in methods:
        if name not in SALIENCY_METHODS:
            raise UnknownNameError(
                f"unknown saliency method {name!r}; choose from: {', '.join(SALIENCY_METHODS)}"
            )
    reference = foreground_masks(x, threshold)
    size = masks.flatten(1).sum(dim=1)
    candidates = {"rlab": masks}
    for name in methods:
        candidates[name] = top_k_mask(SALIENCY_METHODS[name](model, x, y), size)
    generator = torch.Generator().manual_seed(seed)
    candidates["random_patches"] = random_patch_masks(patch_masks.cpu(), grid, generator).to(
        masks.device
    )
    agreement = {
        name: {
            "dice_mean": float(dice(masks, m).mean()),
            "iou_mean": float(iou(masks, m).mean()),
        }
        for name, m in candidates.items()
        if name != "rlab"
    }
    return {
        "n": int(x.shape[0]),
        "foreground_threshold": threshold,
        "mask_pixels_mean": float(size.float().mean()) if size.numel() else float("nan"),
        "vs_foreground": mask_scores(candidates, reference),
        "rlab_vs_baselines": agreement,
    }
