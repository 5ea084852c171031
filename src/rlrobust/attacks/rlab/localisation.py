"""Scoring RLAB's localisation masks against reference masks and saliency baselines.

For each successfully attacked input, the RLAB mask (the union of distorted patches) is compared
by Dice and IoU with a reference: the data set's ground-truth object masks where it has them
(Moving-MNIST's digit masks), else the object's foreground (``explain.foreground_masks``, for
MNIST-like images), or with nothing where no ground truth exists (UCR series). Each gradient
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
from rlrobust.errors import DataError, UnknownNameError


def random_patch_masks(patch_masks: Tensor, grid: PatchGrid, generator: torch.Generator) -> Tensor:
    """As many random patches per input as ``patch_masks`` (B, N) selects; (B, *spatial)."""
    scores = torch.rand(patch_masks.shape, generator=generator)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    chosen = ranks < patch_masks.sum(dim=1, keepdim=True)
    return grid.masks(chosen.to(patch_masks.device))


REFERENCES = ("foreground", "ground_truth", "none")


def reference_masks(
    x: Tensor, kind: str, threshold: float, given: Tensor | None
) -> tuple[Tensor | None, str]:
    """The (B, *spatial) bool reference masks of ``kind`` and a sentence saying what they are."""
    if kind not in REFERENCES:
        raise UnknownNameError(f"unknown mask reference {kind!r}; choose from {REFERENCES}")
    if kind == "ground_truth":
        expected = (x.shape[0], *x.shape[2:])
        if given is None or given.dtype != torch.bool or tuple(given.shape) != expected:
            got = "none" if given is None else f"{given.dtype} {tuple(given.shape)}"
            raise DataError(
                f"ground-truth reference masks must be a bool tensor of shape {expected} (one "
                f"mask per input, no channel dim), got {got}"
            )
        return given.to(x.device), "the data set's ground-truth object masks"
    if kind == "foreground":
        return foreground_masks(x, threshold), f"the foreground (elements above {threshold})"
    return None, "no ground truth exists for these inputs: only agreement with the baselines"


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
    reference: str = "foreground",
    given: Tensor | None = None,
) -> dict:
    """Dice / IoU of RLAB, saliency and random masks against a reference, and RLAB's agreement
    with each baseline.

    ``x``, ``y``, ``masks`` (B, *spatial) and ``patch_masks`` (B, N) hold successful inputs only.
    ``reference``: "foreground" (elements of ``x`` above ``threshold``; MNIST-like images),
    "ground_truth" (``given``, e.g. Moving-MNIST's per-frame digit masks) or "none" (e.g. UCR
    series, which have no ground-truth localisation: only the agreement is reported).
    """
    for name in methods:
        if name not in SALIENCY_METHODS:
            raise UnknownNameError(
                f"unknown saliency method {name!r}; choose from: {', '.join(SALIENCY_METHODS)}"
            )
    ref, description = reference_masks(x, reference, threshold, given)
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
    out = {
        "n": int(x.shape[0]),
        "reference": reference,
        "reference_description": description,
        "mask_pixels_mean": float(size.float().mean()) if size.numel() else float("nan"),
        "rlab_vs_baselines": agreement,
    }
    if ref is not None:
        out["vs_reference"] = mask_scores(candidates, ref)
        out["reference_pixels_mean"] = float(ref.flatten(1).sum(dim=1).float().mean())
    if reference == "foreground":
        out["foreground_threshold"] = threshold
        out["vs_foreground"] = out["vs_reference"]  # the key older readers use
    return out
