"""RLAB on 1-D signals and 3-D videos: filter axes, masks against ground truth, saliency and
patch grids, and the whole experiment on tiny victims trained on the real UCR GunPoint series
and on Moving-MNIST clips."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rlrobust.attacks.rlab.attack import RLABSettings
from rlrobust.attacks.rlab.explain import SALIENCY_METHODS
from rlrobust.attacks.rlab.filters import FILTERS, blur_dims
from rlrobust.attacks.rlab.grids import tile_frames, video_frames
from rlrobust.attacks.rlab.localisation import score_masks
from rlrobust.attacks.rlab.patches import PatchGrid
from rlrobust.attacks.rlab.run import RLABExperiment, mask_reference, run_rlab
from rlrobust.attacks.rlab.train_agent import AgentTraining
from rlrobust.data.dataset import ImageData
from rlrobust.errors import DataError

pytestmark = pytest.mark.usefixtures("one_torch_thread")
GEN = torch.Generator


# --- filters along the right axes -----------------------------------------------------------


def test_blur_runs_along_time_for_signals_and_within_frames_for_video():
    assert blur_dims(3) == (2,) and blur_dims(4) == (2, 3) and blur_dims(5) == (3, 4)
    blur = FILTERS["gaussian_blur"].fn
    flicker = torch.zeros(1, 1, 6, 5, 5)
    flicker[:, :, 1::2] = 1.0  # frames alternate black / white: a temporal blur would mix them
    assert torch.equal(blur(flicker, 2.0, GEN()), flicker)
    spot = torch.zeros(1, 1, 3, 9, 9)
    spot[0, 0, 1, 4, 4] = 1.0
    out = blur(spot, 1.0, GEN())
    assert out[0, 0, 1, 4, 3] > 0 and out[0, 0, 1, 3, 4] > 0  # spreads within its frame
    assert out[0, 0, 0].abs().sum() == 0 and out[0, 0, 2].abs().sum() == 0  # not across frames
    step = torch.zeros(1, 1, 20)
    step[..., 10:] = 1.0
    smooth = blur(step, 2.0, GEN())
    assert 0 < smooth[0, 0, 9] < 1 and smooth[0, 0, 0] == 0  # a signal blurs along time


def test_dead_pixels_of_a_video_stay_dead_in_every_frame():
    dead = FILTERS["dead_pixel"].fn(torch.ones(2, 3, 5, 8, 8), 0.5, GEN().manual_seed(0))
    off = dead == 0
    assert torch.equal(off, off[:, :1, :1].expand_as(off))  # same pixels, all channels, frames
    assert 0.2 < off.float().mean() < 0.8
    signal = FILTERS["dead_pixel"].fn(torch.ones(2, 1, 100), 0.25, GEN().manual_seed(0))
    assert 0.1 < (signal == 0).float().mean() < 0.4


# --- patch grids and saliency on (N, C, L) and (N, C, T, H, W) -----------------------------


@pytest.mark.parametrize("shape,patch", [((2, 30), 7), ((1, 4, 10, 10), (2, 5, 5))])
def test_saliency_baselines_and_grids_work_on_signals_and_videos(shape, patch):
    conv = nn.Conv1d if len(shape) == 2 else nn.Conv3d
    torch.manual_seed(0)
    model = nn.Sequential(
        conv(shape[0], 3, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.LazyLinear(4)
    )
    x = torch.rand(3, *shape, generator=GEN().manual_seed(1))
    model(x)  # materialise the lazy layer
    model.eval()
    y = torch.tensor([0, 1, 2])
    for name, method in SALIENCY_METHODS.items():
        sal = method(model, x, y)
        assert sal.shape == (3, *shape[1:]) and torch.isfinite(sal).all(), name
    grid = PatchGrid(shape[1:], patch)
    assert int(grid.sizes().sum()) == torch.Size(shape[1:]).numel()
    chosen = torch.zeros(3, grid.num_patches, dtype=torch.bool)
    chosen[:, -1] = True
    masks = grid.masks(chosen)
    scores = score_masks(model, x, y, masks, chosen, grid, reference="none")
    assert "vs_reference" not in scores and scores["reference"] == "none"
    for name in (*SALIENCY_METHODS, "random_patches"):
        agree = scores["rlab_vs_baselines"][name]
        assert 0 <= agree["iou_mean"] <= agree["dice_mean"] <= 1


# --- masks against ground truth -------------------------------------------------------------


def test_a_perfect_mask_scores_one_and_a_disjoint_one_zero_against_ground_truth():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 8 * 8, 3)).eval()
    x = torch.rand(2, 1, 2, 8, 8, generator=GEN().manual_seed(0))
    y = torch.tensor([0, 2])
    grid = PatchGrid((2, 8, 8), (1, 4, 4))
    chosen = torch.zeros(2, grid.num_patches, dtype=torch.bool)
    chosen[0, [0, 5]] = True
    chosen[1, 3] = True
    masks = grid.masks(chosen)
    perfect = score_masks(model, x, y, masks, chosen, grid, reference="ground_truth", given=masks)
    rlab = perfect["vs_reference"]["rlab"]
    assert rlab["dice_mean"] == 1.0 and rlab["iou_mean"] == 1.0
    disjoint = score_masks(model, x, y, masks, chosen, grid, reference="ground_truth", given=~masks)
    assert disjoint["vs_reference"]["rlab"]["dice_mean"] == 0.0
    half = masks.clone()
    half[0] = grid.masks(chosen[:1] & (torch.arange(grid.num_patches) == 0))[0]  # 1 of 2 patches
    scores = score_masks(model, x, y, masks, chosen, grid, reference="ground_truth", given=half)
    # sample 0: |P| = 32, |R| = 16, overlap 16 -> Dice 2*16/48, IoU 16/32; sample 1 perfect
    assert scores["vs_reference"]["rlab"]["dice_mean"] == pytest.approx((2 / 3 + 1) / 2)
    assert scores["vs_reference"]["rlab"]["iou_mean"] == pytest.approx((0.5 + 1) / 2)
    with pytest.raises(DataError, match="ground-truth reference masks"):
        score_masks(model, x, y, masks, chosen, grid, reference="ground_truth", given=masks[:1])


def test_mask_reference_follows_the_data_set():
    def data(shape, masks=None):
        images = torch.zeros(shape, dtype=torch.uint8)
        labels = torch.zeros(shape[0], dtype=torch.long)
        return ImageData(images, labels, 2, "toy", (0.5,), (0.25,), masks=masks)

    clip_masks = torch.zeros(2, 1, 3, 4, 4, dtype=torch.bool)
    clip_masks[0, 0, 1, 2, 2] = True
    kind, given = mask_reference(data((2, 1, 3, 4, 4), clip_masks))
    assert kind == "ground_truth" and torch.equal(given, clip_masks[:, 0])
    assert mask_reference(data((2, 1, 10))) == ("none", None)  # UCR: no ground truth
    assert mask_reference(data((2, 1, 4, 4))) == ("foreground", None)
    with pytest.raises(Exception, match="no ground-truth"):
        mask_reference(data((2, 1, 4, 4)), "ground_truth")


def test_video_grids_tile_a_few_frames():
    assert video_frames(16) == [0, 5, 10, 15] and video_frames(3) == [0, 1, 2]
    video = torch.arange(5.0).view(1, 1, 5, 1, 1).expand(1, 1, 5, 2, 2)
    tiled = tile_frames(video, [0, 2, 4], gap_value=-1.0)
    assert tiled.shape == (1, 1, 5, 5)
    assert tiled[0, 0, :2, :2].eq(0).all() and tiled[0, 0, :2, 3:].eq(2).all()
    assert tiled[0, 0, 3:, :2].eq(4).all() and tiled[0, 0, 2].eq(-1).all()


# --- the whole experiment on tiny victims trained on real data ------------------------------


def _fit(model: nn.Module, data: ImageData, steps: int, lr: float) -> nn.Module:
    x, y = data.images.float() / 255, data.labels
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    generator = GEN().manual_seed(0)
    model.train()
    for _ in range(steps):
        index = torch.randint(0, len(data), (16,), generator=generator)
        loss = F.cross_entropy(model(x[index]), y[index])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def _correct(model: nn.Module, data: ImageData, n: int) -> ImageData:
    with torch.no_grad():
        right = model(data.images.float() / 255).argmax(dim=1) == data.labels
    index = right.nonzero().squeeze(1)[:n]
    assert index.numel() > 0, "the tiny victim got every test input wrong"
    return data.subset(index)


def _experiment(agent: str, tmp_path, **settings) -> RLABExperiment:
    return RLABExperiment(
        agent=agent,
        agent_dir=str(tmp_path / "agent") if agent == "learned" else None,
        training=AgentTraining(iterations=2, batch_size=8),
        settings=RLABSettings(**settings),
        square_eps=[0.3],
    )


def _check_record(record: dict, out, reference: str) -> None:
    assert record["rlab"]["n_attacked"] >= 1
    assert (out / "rlab.json").is_file() and (out / "examples.safetensors").is_file()
    assert json.loads((out / "rlab.json").read_text())["rlab"] == record["rlab"]
    if record["rlab"]["n_success"]:
        assert record["masks"]["reference"] == reference
        assert (out / "grid.png").stat().st_size > 1000
    assert record["rlab"]["queries_all"]["mean"] >= record["rlab"]["steps_all"]["mean"]


def test_rlab_on_a_cnn1d_trained_on_gunpoint(tmp_path):
    from rlrobust.data import load_dataset
    from rlrobust.models import build_model

    train, test = load_dataset("ucr-gunpoint", "train"), load_dataset("ucr-gunpoint", "test")
    torch.manual_seed(0)
    model = build_model("cnn1d", num_classes=2, input_shape=train.shape, widths=(8, 8, 8))
    model = _fit(model, train, steps=30, lr=0.01)
    test = _correct(model, test, 6)
    for agent in ("greedy", "learned"):
        exp = _experiment(agent, tmp_path, patch_size=15, budget=200, max_steps=10)
        record = run_rlab(model, test, train, exp, tmp_path / agent, log=lambda *_: None)
        _check_record(record, tmp_path / agent, "none")
        assert agent != "greedy" or record["rlab"]["n_success"] >= 1
        assert record["rlab"]["steps_all"]["mean"] <= 10
        if "masks" in record:
            assert "vs_reference" not in record["masks"]  # series have no ground truth
            assert "integrated_gradients" in record["masks"]["rlab_vs_baselines"]


def test_rlab_on_a_cnn3d_trained_on_moving_mnist(tmp_path, shared_data_dir):
    from rlrobust.data import load_dataset
    from rlrobust.models import build_model

    options = {"data_dir": str(shared_data_dir), "frames": 4, "size": 36}
    train = load_dataset("moving-mnist", "train", num_clips=64, **options)
    test = load_dataset("moving-mnist", "test", num_clips=32, **options)
    torch.manual_seed(0)
    model = build_model("cnn3d", num_classes=8, input_shape=train.shape, widths=(4, 8, 8))
    model = _fit(model, train, steps=20, lr=0.01)
    test = _correct(model, test, 3)
    for agent in ("greedy", "learned"):
        exp = _experiment(
            agent, tmp_path, patch_size=(2, 12, 12), budget=150, stacking="escalate", batch_size=2
        )
        record = run_rlab(model, test, train, exp, tmp_path / agent, log=lambda *_: None)
        _check_record(record, tmp_path / agent, "ground_truth")
        assert agent != "greedy" or record["rlab"]["n_success"] >= 1
        if "masks" in record:
            scores = record["masks"]["vs_reference"]
            assert {"rlab", "smoothgrad", "random_patches"} <= set(scores)
