"""Report grids of original / adversarial / mask (rlrobust.attacks.rlab.grids)."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from rlrobust.attacks.rlab.grids import DPI, PANEL_INCHES, PANELS, save_grid
from rlrobust.errors import DataError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROW_PIXELS = PANEL_INCHES * DPI


def example(shape: tuple[int, ...], seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=gen)
    x_adv = (x + 0.2 * torch.rand(shape, generator=gen)).clamp(0, 1)
    mask = torch.zeros((shape[0], *shape[2:]), dtype=torch.bool)
    return x, x_adv, mask


def read_png(path) -> np.ndarray:
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    return mpimg.imread(path)


def assert_rows(image: np.ndarray, rows: int) -> None:
    assert abs(image.shape[0] - rows * ROW_PIXELS) <= 1
    assert abs(image.shape[1] - PANELS * ROW_PIXELS) <= 1


@pytest.mark.parametrize(
    "shape",
    [(3, 2, 20), (2, 1, 8, 8), (2, 3, 8, 8), (2, 3, 4, 6, 6)],
    ids=["signal", "grey", "rgb", "video"],
)
def test_grid_written_for_every_input_kind(tmp_path, shape):
    x, x_adv, mask = example(shape)
    mask[:, ..., :2] = True
    path = save_grid(
        tmp_path / "sub" / "grid.png",
        x,
        x_adv,
        mask,
        labels=torch.arange(shape[0]),
        predictions=(torch.arange(shape[0]), [9] * shape[0]),
    )
    assert path == tmp_path / "sub" / "grid.png"
    assert_rows(read_png(path), rows=shape[0])
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]  # no temporary file left


def test_height_grows_with_rows_and_max_rows_caps_it(tmp_path):
    x, x_adv, mask = example((5, 1, 8, 8))
    heights = []
    for rows in (1, 3):
        image = read_png(save_grid(tmp_path / f"{rows}.png", x[:rows], x_adv[:rows], mask[:rows]))
        assert_rows(image, rows)
        heights.append(image.shape[0])
    assert heights[1] > heights[0]
    assert_rows(read_png(save_grid(tmp_path / "capped.png", x, x_adv, mask, max_rows=2)), 2)


def _redness(image: np.ndarray) -> float:
    """Pixels where red clearly dominates (the translucent mask over white is pink)."""
    rgb = image[..., :3]
    return float((rgb[..., 0] - rgb[..., 1:].max(axis=-1) > 0.2).sum())


@pytest.mark.parametrize("shape", [(1, 1, 8, 8), (1, 1, 30)], ids=["image", "signal"])
def test_mask_is_drawn(tmp_path, shape):
    x, x_adv, mask = example(shape)
    x_adv = x.clone()  # no red adversarial line in the signal panels
    empty = read_png(save_grid(tmp_path / "empty.png", x, x_adv, mask))
    mask[:] = True
    full = read_png(save_grid(tmp_path / "full.png", x, x_adv, mask))
    assert _redness(full) > _redness(empty) + 100


def test_bad_shapes_give_clear_errors(tmp_path):
    x, x_adv, mask = example((2, 1, 8, 8))
    path = tmp_path / "bad.png"
    with pytest.raises(DataError, match="1 \\(grey\\) or 3 \\(RGB\\) channels"):
        save_grid(path, torch.rand(2, 2, 8, 8), torch.rand(2, 2, 8, 8), mask)
    with pytest.raises(DataError, match="shape"):
        save_grid(path, x.flatten(1), x_adv.flatten(1), mask)
    with pytest.raises(DataError, match="adversarial must have the shape"):
        save_grid(path, x, x_adv[:1], mask)
    with pytest.raises(DataError, match="no channel dimension"):
        save_grid(path, x, x_adv, mask[:, None])
    with pytest.raises(DataError, match="boolean"):
        save_grid(path, x, x_adv, mask.float())
    with pytest.raises(DataError, match="one entry per example"):
        save_grid(path, x, x_adv, mask, labels=[1, 2, 3])
    with pytest.raises(DataError, match="pair"):
        save_grid(path, x, x_adv, mask, predictions=([1, 2],))
    with pytest.raises(DataError, match="empty"):
        save_grid(path, x[:0], x_adv[:0], mask[:0])
    assert not path.exists()
