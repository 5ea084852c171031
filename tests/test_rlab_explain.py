"""Localisation-mask scores and saliency baselines (rlrobust.attacks.rlab.explain).

Expected values come from hand-made masks and from models whose input gradient is known in
closed form (a linear model), or from per-sample loops that do not share the batched code path.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from rlrobust.attacks.rlab.explain import (
    SALIENCY_METHODS,
    dice,
    foreground_masks,
    integrated_gradient_attributions,
    integrated_gradients,
    iou,
    mask_scores,
    smoothgrad,
    top_k_mask,
    vanilla_gradient,
)
from rlrobust.errors import ConfigError, DataError, RLRobustError
from rlrobust.seeding import make_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NUM_CLASSES = 4


def linear_model(shape: tuple[int, ...], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(shape), NUM_CLASSES))


def tanh_model(shape: tuple[int, ...], seed: int = 0) -> nn.Module:
    """A small smooth nonlinear model; dropout makes train mode visibly different from eval."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(shape), 16),
        nn.Tanh(),
        nn.Dropout(0.5),
        nn.Linear(16, NUM_CLASSES),
    )


def batch(shape: tuple[int, ...], n: int = 3, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *shape), generator=gen)
    y = torch.arange(n) % NUM_CLASSES
    return x, y


def logit(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x).gather(1, y[:, None]).squeeze(1)


def per_sample_gradient(model: nn.Module, x: torch.Tensor, label: int) -> torch.Tensor:
    """d logit_label / dx for one input (C, *spatial), computed alone (independent reference)."""
    model.eval()
    x_in = x[None].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x_in)[0, label], x_in)
    return grad[0]


# --------------------------------------------------------------------------- masks and scores


def test_dice_and_iou_hand_made_values():
    pred = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]])
    ref = torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0], [0, 1, 1, 0], [1, 1, 1, 0]])
    pred, ref = pred.bool(), ref.bool()
    # overlap 1 of 2+2 | identical | both empty | pred empty | 1 of 1+3
    expected_dice = torch.tensor([0.5, 1.0, 1.0, 0.0, 0.5])
    expected_iou = torch.tensor([1 / 3, 1.0, 1.0, 0.0, 1 / 3])
    torch.testing.assert_close(dice(pred, ref), expected_dice)
    torch.testing.assert_close(iou(pred, ref), expected_iou)
    # Symmetric, including "exactly one empty" in the other direction.
    torch.testing.assert_close(dice(ref, pred), expected_dice)
    torch.testing.assert_close(iou(ref, pred), expected_iou)


def test_dice_and_iou_on_2d_masks():
    pred = torch.zeros(1, 4, 4, dtype=torch.bool)
    ref = torch.zeros(1, 4, 4, dtype=torch.bool)
    pred[0, :2, :2] = True  # 4 pixels
    ref[0, :2, :] = True  # 8 pixels, contains pred
    torch.testing.assert_close(dice(pred, ref), torch.tensor([2 * 4 / 12]))
    torch.testing.assert_close(iou(pred, ref), torch.tensor([4 / 8]))


def test_mask_checks_give_clear_errors():
    a = torch.zeros(2, 4, 4, dtype=torch.bool)
    with pytest.raises(DataError, match="shapes differ"):
        dice(a, torch.zeros(2, 4, 5, dtype=torch.bool))
    with pytest.raises(DataError, match="shapes differ"):
        iou(a, torch.zeros(2, 1, 4, 4, dtype=torch.bool))
    with pytest.raises(DataError, match="boolean"):
        dice(a.float(), a)
    with pytest.raises(DataError, match="batch dimension"):
        iou(torch.zeros(4, dtype=torch.bool), torch.zeros(4, dtype=torch.bool))


def test_mask_scores_mean_and_std():
    ref = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0]]).bool()
    perfect_then_half = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0]]).bool()  # dice 1 and 2/3
    scores = mask_scores({"rlab": perfect_then_half, "empty": torch.zeros_like(ref)}, ref)
    assert set(scores) == {"rlab", "empty"}
    rlab = scores["rlab"]
    assert rlab["dice_mean"] == pytest.approx((1 + 2 / 3) / 2)
    assert rlab["dice_std"] == pytest.approx((1 - 2 / 3) / 2)  # population std of two values
    assert rlab["iou_mean"] == pytest.approx(0.75)
    assert rlab["iou_std"] == pytest.approx(0.25)
    assert rlab["n"] == 2
    assert scores["empty"]["dice_mean"] == 0.0 and scores["empty"]["iou_std"] == 0.0
    with pytest.raises(ConfigError, match="empty"):
        mask_scores({}, ref)


def test_foreground_masks_hand_made_image():
    x = torch.zeros(1, 2, 3, 3)
    x[0, 0, 0, 0] = 0.5  # bright in channel 0 only
    x[0, 1, 1, 1] = 0.11  # just above the threshold in channel 1 only
    x[0, 0, 2, 2] = 0.1  # exactly the threshold: not foreground (strict >)
    x[0, 1, 2, 0] = 0.05
    expected = torch.zeros(1, 3, 3, dtype=torch.bool)
    expected[0, 0, 0] = expected[0, 1, 1] = True
    assert torch.equal(foreground_masks(x, threshold=0.1), expected)
    assert foreground_masks(x, threshold=0.0).sum() == 4
    signal = torch.tensor([[[0.0, 0.3, 0.9, 0.05]]])
    assert foreground_masks(signal).tolist() == [[False, True, True, False]]
    for bad in (1.0, -0.1, True, "0.1"):
        with pytest.raises(ConfigError, match="threshold"):
            foreground_masks(x, threshold=bad)
    with pytest.raises(DataError, match="shape"):
        foreground_masks(torch.zeros(3, 3))


# --------------------------------------------------------------------------- saliency maps


@pytest.mark.parametrize("shape", [(2, 8), (1, 4, 4), (3, 4, 4), (2, 2, 3, 3)])
def test_vanilla_gradient_of_linear_model_is_abs_weights(shape):
    model = linear_model(shape)
    x, y = batch(shape)
    weights = model[1].weight.detach()  # (K, C * prod(spatial))
    expected = torch.stack([weights[c].view(shape).abs().sum(0) for c in y.tolist()])
    saliency = vanilla_gradient(model, x, y)
    assert saliency.shape == (x.shape[0], *shape[1:])
    torch.testing.assert_close(saliency, expected, rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(2, 8), (3, 4, 4), (2, 2, 3, 3)])
def test_integrated_gradients_of_linear_model_is_exact(shape):
    model = linear_model(shape)
    x, y = batch(shape)
    baseline = torch.full_like(x, 0.25)
    weights = model[1].weight.detach()
    w_y = torch.stack([weights[c].view(shape) for c in y.tolist()])
    expected = ((x - baseline) * w_y).abs().sum(1)
    torch.testing.assert_close(
        integrated_gradients(model, x, y, steps=5, baseline=baseline), expected
    )
    # Default baseline: the black input.
    torch.testing.assert_close(integrated_gradients(model, x, y, steps=3), (x * w_y).abs().sum(1))


def test_integrated_gradients_completeness_nonlinear():
    shape = (1, 5, 5)
    model = tanh_model(shape)
    x, y = batch(shape, n=4)
    baseline = torch.zeros_like(x)
    diff = logit(model, x, y) - logit(model, baseline, y)
    assert diff.abs().min() > 0.05  # the check below is meaningful only for a real change
    signed = integrated_gradients(model, x, y, steps=64, signed=True)
    assert signed.shape == (4, 5, 5)
    total = signed.flatten(1).sum(1)
    assert ((total - diff).abs() / diff.abs()).max() < 0.02
    # One midpoint is a poor approximation of the path integral: completeness must get
    # visibly worse (guards against a test that passes whatever the number of steps).
    coarse = integrated_gradients(model, x, y, steps=1, signed=True).flatten(1).sum(1)
    assert (coarse - diff).abs().max() > (total - diff).abs().max()


def test_integrated_gradients_matches_per_sample_loop():
    shape = (2, 3, 3)
    model = tanh_model(shape)
    x, y = batch(shape, n=3)
    steps = 4
    expected = []
    for i in range(x.shape[0]):
        grads = [
            per_sample_gradient(model, x[i] * (k + 0.5) / steps, int(y[i])) for k in range(steps)
        ]
        expected.append(x[i] * torch.stack(grads).mean(0))
    expected = torch.stack(expected)
    # chunk=5 splits the (steps * B = 12) path points unevenly across forward passes.
    attributions = integrated_gradient_attributions(model, x, y, steps=steps, chunk=5)
    torch.testing.assert_close(attributions, expected)
    torch.testing.assert_close(
        integrated_gradients(model, x, y, steps=steps), expected.abs().sum(1)
    )


def test_smoothgrad_matches_per_sample_loop():
    shape = (1, 4, 4)
    model = tanh_model(shape)
    x, y = batch(shape, n=2)
    n, sigma = 3, 0.2
    noise = torch.randn((n, *x.shape), generator=make_generator(7))
    expected = []
    for i in range(x.shape[0]):
        grads = [
            per_sample_gradient(model, x[i] + sigma * noise[j, i], int(y[i])) for j in range(n)
        ]
        expected.append(torch.stack(grads).mean(0).abs().sum(0))
    expected = torch.stack(expected)
    got = smoothgrad(model, x, y, n=n, sigma=sigma, generator=make_generator(7), chunk=4)
    torch.testing.assert_close(got, expected)


def test_smoothgrad_with_tiny_sigma_equals_vanilla_gradient():
    shape = (2, 4, 4)
    model = tanh_model(shape)
    x, y = batch(shape)
    vanilla = vanilla_gradient(model, x, y)
    torch.testing.assert_close(
        smoothgrad(model, x, y, n=4, sigma=1e-6), vanilla, atol=1e-5, rtol=1e-4
    )
    torch.testing.assert_close(smoothgrad(model, x, y, n=2, sigma=0.0), vanilla)
    # Real noise changes the map, and the default generator makes it reproducible.
    noisy = smoothgrad(model, x, y, n=4, sigma=0.5)
    assert not torch.allclose(noisy, vanilla, atol=1e-4)
    torch.testing.assert_close(smoothgrad(model, x, y, n=4, sigma=0.5), noisy, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(SALIENCY_METHODS))
def test_model_left_as_found_and_no_parameter_gradients(name):
    shape = (1, 4, 4)
    model = tanh_model(shape)
    model.train()
    model[1].weight.requires_grad_(True)
    model[4].bias.requires_grad_(False)  # a deliberately frozen parameter stays frozen
    x, y = batch(shape)
    method = SALIENCY_METHODS[name]
    first = method(model, x, y)
    second = method(model, x, y)
    torch.testing.assert_close(first, second, rtol=0, atol=0)  # eval mode: dropout is off
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, False]
    assert not x.requires_grad and x.grad is None
    assert (first >= 0).all()


def _conv_model(dims: int) -> nn.Module:
    torch.manual_seed(0)
    conv = {1: nn.Conv1d, 3: nn.Conv3d}[dims]
    pool = {1: nn.AdaptiveAvgPool1d, 3: nn.AdaptiveAvgPool3d}[dims]
    return nn.Sequential(
        conv(2, 4, 3, padding=1), nn.ReLU(), pool(1), nn.Flatten(), nn.Linear(4, 3)
    )


@pytest.mark.parametrize(("dims", "shape"), [(1, (2, 12)), (3, (2, 3, 4, 4))])
@pytest.mark.parametrize("name", sorted(SALIENCY_METHODS))
def test_signals_and_videos(dims, shape, name):
    model = _conv_model(dims)
    x, y = batch(shape, n=2)
    y = y % 3
    saliency = SALIENCY_METHODS[name](model, x, y)
    assert saliency.shape == (2, *shape[1:])
    assert torch.isfinite(saliency).all() and (saliency >= 0).all() and saliency.sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_saliency_input_checks():
    shape = (1, 4, 4)
    model = linear_model(shape)
    x, y = batch(shape)
    with pytest.raises(DataError, match="shape"):
        vanilla_gradient(model, x.flatten(1), y)
    with pytest.raises(DataError, match="outside the model's class range"):
        vanilla_gradient(model, x, torch.full_like(y, NUM_CLASSES))
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        integrated_gradients(model, x * 3, y)
    with pytest.raises(ConfigError, match="sigma"):
        smoothgrad(model, x, y, sigma=-0.1)
    with pytest.raises(ConfigError, match="steps"):
        integrated_gradients(model, x, y, steps=0)
    with pytest.raises(ConfigError, match="broadcast"):
        integrated_gradients(model, x, y, baseline=torch.zeros(2, 4))
    with torch.inference_mode(), pytest.raises(RLRobustError, match="inference_mode"):
        vanilla_gradient(model, x, y)
    # torch.no_grad() around the call is fine: gradients are enabled locally.
    with torch.no_grad():
        assert vanilla_gradient(model, x, y).shape == (3, 4, 4)


# --------------------------------------------------------------------------- top-k masks


def test_top_k_mask_selects_exactly_k_top_pixels():
    gen = torch.Generator().manual_seed(3)
    saliency = torch.randperm(30, generator=gen).float().view(1, 5, 6).repeat(3, 1, 1)
    saliency[1] = -saliency[1]  # a different ordering for the second sample
    k = torch.tensor([0, 7, 30])
    mask = top_k_mask(saliency, k)
    assert mask.dtype == torch.bool and mask.shape == saliency.shape
    assert mask.flatten(1).sum(1).tolist() == [0, 7, 30]
    top7 = saliency[1].flatten().topk(7).indices
    expected = torch.zeros(30, dtype=torch.bool)
    expected[top7] = True
    assert torch.equal(mask[1].flatten(), expected)
    # Every selected pixel is at least as salient as every unselected one.
    assert saliency[1][mask[1]].min() > saliency[1][~mask[1]].max()


def test_top_k_mask_breaks_ties_by_index():
    saliency = torch.zeros(2, 2, 3)
    saliency[1, 1, 2] = 1.0  # one clear winner, then ties among zeros
    mask = top_k_mask(saliency, torch.tensor([3, 2]))
    assert mask[0].flatten().tolist() == [True, True, True, False, False, False]
    assert mask[1].flatten().tolist() == [True, False, False, False, False, True]
    torch.testing.assert_close(top_k_mask(saliency, 2).sum(), torch.tensor(4))  # int k broadcasts


def test_top_k_mask_checks():
    saliency = torch.rand(2, 4)
    with pytest.raises(DataError, match=r"\[0, 4\]"):
        top_k_mask(saliency, torch.tensor([1, 5]))
    with pytest.raises(DataError, match="shape \\(2,\\)"):
        top_k_mask(saliency, torch.tensor([1, 2, 3]))
    with pytest.raises(DataError, match="int64"):
        top_k_mask(saliency, torch.tensor([1.0, 2.0]))
    with pytest.raises(DataError, match="NaN"):
        top_k_mask(torch.full((2, 4), float("nan")), torch.tensor([1, 1]))
