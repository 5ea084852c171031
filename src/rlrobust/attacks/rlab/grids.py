"""Image grids for RLAB reports: original, adversarial and localisation mask side by side.

RLAB (Sarkar et al. 2024) presents each attacked input next to its adversarial version and the
distorted patches overlaid on the original, the localisation mask read as a visual explanation.
:func:`save_grid` draws one such row per example for signals (B, C, L), images (B, C, H, W) with
1 or 3 channels, and videos (B, C, T, H, W), of which up to four evenly spaced frames are shown
as a 2 x 2 tile in each panel (frames read left to right, top to bottom).

Example::

    save_grid("out/rlab_grid.png", x, x_adv, mask, labels=y, predictions=(pred_clean, pred_adv))
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rlrobust.attacks.base import check_positive_int
from rlrobust.errors import DataError
from rlrobust.files import atomic_write_bytes

# Each panel is PANEL_INCHES square and the figure is saved at DPI without tight cropping, so a
# grid of r rows is exactly r * PANEL_INCHES * DPI pixels high (readers and tests rely on it).
PANEL_INCHES = 2.2
DPI = 80
PANELS = 3
MASK_RGBA = (1.0, 0.1, 0.1, 0.45)  # translucent red: the object stays visible under the mask

Labels = Sequence[int] | Tensor | None


# --------------------------------------------------------------------------- checks


def _check_shapes(original: Tensor, adversarial: Tensor, mask: Tensor) -> None:
    if not isinstance(original, Tensor) or not torch.is_floating_point(original):
        raise DataError("original must be a float tensor in [0, 1] of shape (B, C, *spatial)")
    if original.ndim not in (3, 4, 5):
        raise DataError(
            f"original must have shape (B, C, L), (B, C, H, W) or (B, C, T, H, W), got "
            f"{tuple(original.shape)}; add the batch and channel dimensions, e.g. x[None, None]"
        )
    if original.ndim >= 4 and original.shape[1] not in (1, 3):
        raise DataError(
            f"images and videos need 1 (grey) or 3 (RGB) channels to be drawn, got "
            f"{original.shape[1]} in shape {tuple(original.shape)}; select 1 or 3 channels"
        )
    if not isinstance(adversarial, Tensor) or adversarial.shape != original.shape:
        got = tuple(adversarial.shape) if isinstance(adversarial, Tensor) else type(adversarial)
        raise DataError(
            f"adversarial must have the shape of original {tuple(original.shape)}, got {got}"
        )
    expected = (original.shape[0], *original.shape[2:])
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise DataError(f"mask must be a boolean tensor, got {got}; use mask > 0.5")
    if tuple(mask.shape) != expected:
        raise DataError(
            f"mask must have shape (B, *spatial) = {expected} (no channel dimension), got "
            f"{tuple(mask.shape)}"
        )
    if original.shape[0] == 0:
        raise DataError("the batch is empty; pass at least one example to draw")


def _as_list(values: Labels, batch: int, name: str) -> list[int] | None:
    if values is None:
        return None
    out = values.tolist() if isinstance(values, Tensor) else list(values)
    if len(out) != batch:
        raise DataError(f"{name} must hold one entry per example ({batch}), got {len(out)}")
    return [int(v) for v in out]


# --------------------------------------------------------------------------- drawing


def video_frames(frames: int, count: int = 4) -> list[int]:
    """Up to ``count`` evenly spaced frame indices from 0 to frames - 1, first and last included."""
    if frames <= count:
        return list(range(frames))
    return sorted({round(i * (frames - 1) / (count - 1)) for i in range(count)})


def tile_frames(video: Tensor, shown: Sequence[int], gap_value: float | bool) -> Tensor:
    """(B, C, T, H, W) -> (B, C, H', W'): the frames ``shown`` tiled two per row, separated by
    one-element lines of ``gap_value`` (white for pictures, unmasked for masks)."""
    b, c, _, h, w = video.shape
    cols = min(2, len(shown))
    rows = -(-len(shown) // cols)
    out = torch.full(
        (b, c, rows * (h + 1) - 1, cols * (w + 1) - 1),
        gap_value,
        dtype=video.dtype,
        device=video.device,
    )
    for i, t in enumerate(shown):
        r, q = divmod(i, cols)
        out[:, :, r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = video[:, :, t]
    return out


def _to_image(sample: Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) grey or (H, W, 3) RGB, clipped for display."""
    array = sample.detach().float().cpu().clamp(0, 1).numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def _overlay(mask: Tensor) -> np.ndarray:
    """An RGBA layer (H, W, 4): MASK_RGBA on masked pixels, fully transparent elsewhere."""
    rgba = np.zeros((*mask.shape, 4), dtype=np.float32)
    rgba[mask.cpu().numpy()] = MASK_RGBA
    return rgba


def _runs(mask_1d: np.ndarray) -> list[tuple[int, int]]:
    """Half-open [start, stop) index ranges where a 1-D mask is True."""
    padded = np.concatenate([[False], mask_1d, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _draw_image_row(axes, orig: Tensor, adv: Tensor, mask: Tensor) -> None:
    grey = orig.shape[0] == 1
    options = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if grey else {}
    axes[0].imshow(_to_image(orig), **options)
    axes[1].imshow(_to_image(adv), **options)
    axes[2].imshow(_to_image(orig), **options)
    axes[2].imshow(_overlay(mask))
    for ax in axes:
        ax.set_axis_off()


def _draw_signal_row(axes, orig: Tensor, adv: Tensor, mask: Tensor) -> None:
    """Channels as lines; the adversarial signal overlaid dashed; mask spans shaded."""
    orig_np = orig.detach().float().cpu().numpy()
    adv_np = adv.detach().float().cpu().numpy()
    for ax in axes[:2]:
        for channel in range(orig_np.shape[0]):
            ax.plot(orig_np[channel], color="tab:blue", linewidth=0.8)
            ax.plot(adv_np[channel], color="tab:red", linewidth=0.8, linestyle="--")
    for channel in range(orig_np.shape[0]):
        axes[2].plot(orig_np[channel], color="tab:blue", linewidth=0.8)
    for start, stop in _runs(mask.cpu().numpy()):
        axes[2].axvspan(start - 0.5, stop - 0.5, color=MASK_RGBA[:3], alpha=MASK_RGBA[3])
    for ax in axes:
        ax.set_ylim(-0.05, 1.05)  # inputs live in [0, 1]: the same scale in every panel
        ax.set_xticks([])
        ax.tick_params(labelsize=6)


def _titles(
    index: int,
    labels: list[int] | None,
    before: list[int] | None,
    after: list[int] | None,
    mask_pixels: int,
    frame_note: str,
    unit: str,
) -> tuple[str, str, str]:
    details = []
    if labels is not None:
        details.append(f"label {labels[index]}")
    if before is not None:
        details.append(f"pred {before[index]}")
    first = "original" + ("\n" + ", ".join(details) if details else "")
    second = "adversarial" + (f"\npred {after[index]}" if after is not None else "")
    third = f"mask ({mask_pixels} {unit})"
    return first + frame_note, second + frame_note, third + frame_note


def save_grid(
    path: str | os.PathLike,
    original: Tensor,
    adversarial: Tensor,
    mask: Tensor,
    labels: Labels = None,
    predictions: tuple[Labels, Labels] | None = None,
    max_rows: int = 8,
) -> Path:
    """Draw one row (original | adversarial | original with mask) per example; write a PNG.

    Args:
        path: where the PNG goes; written atomically (a reader never sees half a file).
        original, adversarial: (B, C, L) signals, (B, C, H, W) images with 1 or 3 channels, or
            (B, C, T, H, W) videos (up to four evenly spaced frames, tiled 2 x 2; titles say
            which).
        mask: bool (B, *spatial), the distorted pixels (RLAB's localisation mask).
        labels: true labels, one per example, shown in the first panel's title.
        predictions: (before, after): the model's predictions on original and adversarial.
        max_rows: at most this many examples are drawn (the first ones).

    Returns the path written.
    """
    _check_shapes(original, adversarial, mask)
    max_rows = check_positive_int(max_rows, "max_rows")
    batch = original.shape[0]
    labels_list = _as_list(labels, batch, "labels")
    before, after = (None, None)
    if predictions is not None:
        if len(predictions) != 2:
            raise DataError("predictions must be a pair (before, after) of per-example predictions")
        before = _as_list(predictions[0], batch, "predictions[0] (before)")
        after = _as_list(predictions[1], batch, "predictions[1] (after)")

    frame_note = ""
    if original.ndim == 5:  # video: a tile of a few frames per panel
        shown = video_frames(original.shape[2])
        frame_note = f"\n(frames {', '.join(map(str, shown))} of {original.shape[2]})"
        original = tile_frames(original, shown, gap_value=1.0)
        adversarial = tile_frames(adversarial, shown, gap_value=1.0)
        mask = tile_frames(mask[:, None], shown, gap_value=False)[:, 0]

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = min(batch, max_rows)
    fig = Figure(figsize=(PANELS * PANEL_INCHES, rows * PANEL_INCHES), dpi=DPI)
    FigureCanvasAgg(fig)  # attaches the Agg canvas: no pyplot, no global figure state
    axes = fig.subplots(rows, PANELS, squeeze=False)
    signal = original.ndim == 3
    draw = _draw_signal_row if signal else _draw_image_row
    unit = "samples" if signal else "px"
    for i in range(rows):
        draw(axes[i], original[i], adversarial[i], mask[i])
        mask_pixels = int(mask[i].sum().item())
        for ax, title in zip(
            axes[i],
            _titles(i, labels_list, before, after, mask_pixels, frame_note, unit),
            strict=True,
        ):
            ax.set_title(title, fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return atomic_write_bytes(path, buffer.getvalue())
