"""Localisation-mask quality and white-box saliency baselines for RLAB explanations.

RLAB (Sarkar et al. 2024) reads the set of patches it had to distort to fool a classifier as a
localisation mask, an explanation of where the decision lives, and scores it against a reference
mask with the Dice coefficient and the intersection over union (IoU). The paper compares it with
gradient-based explanations; this module provides those baselines:

- vanilla gradient: |d logit_y / dx| (Simonyan et al. 2014, "Deep inside convolutional networks");
- SmoothGrad: the gradient averaged over Gaussian-noised copies of x (Smilkov et al. 2017);
- Integrated Gradients: (x - x') times the gradient averaged along the straight path from a
  baseline x' to x (Sundararajan et al. 2017, Eq. 1), which satisfies completeness.

A saliency map is turned into a mask with :func:`top_k_mask`, which keeps as many pixels per
sample as the RLAB mask of that sample has, so both explanations are compared at equal size.

Shapes: inputs are batches ``(B, C, *spatial)`` in [0, 1] with 1, 2 or 3 spatial dimensions
(signal, image, video); masks and saliency maps are ``(B, *spatial)`` (channels aggregated).

Example::

    ref = foreground_masks(x)                                   # MNIST objects
    sal = integrated_gradients(model, x, y)
    baseline = top_k_mask(sal, rlab_mask.flatten(1).sum(1))
    scores = mask_scores({"rlab": rlab_mask, "integrated_gradients": baseline}, ref)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real

import torch
from torch import Tensor, nn

from rlrobust.attacks.base import (
    check_inputs,
    check_labels,
    check_positive_int,
    model_frozen,
)
from rlrobust.errors import ConfigError, DataError, RLRobustError
from rlrobust.seeding import make_generator

SPATIAL_DIMS = (1, 2, 3)

# Most inputs sent through the model in one forward pass when SmoothGrad / IG batch their
# noisy copies or path points: large enough to be fast, small enough for a 3-D video model.
DEFAULT_CHUNK = 256

SaliencyFn = Callable[..., Tensor]


# --------------------------------------------------------------------------- argument checks


def _check_batch(x: Tensor, name: str = "x") -> None:
    """A float batch (B, C, *spatial) with 1 to 3 spatial dimensions."""
    if not isinstance(x, Tensor) or not torch.is_floating_point(x):
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise DataError(f"{name} must be a float tensor in [0, 1], got {got}; use x.float() / 255")
    if x.ndim - 2 not in SPATIAL_DIMS:
        raise DataError(
            f"{name} must have shape (B, C, L), (B, C, H, W) or (B, C, T, H, W), got "
            f"{tuple(x.shape)}; add the batch and channel dimensions, e.g. x[None, None]"
        )


def _check_masks(pred: Tensor, ref: Tensor) -> None:
    for name, mask in (("pred", pred), ("ref", ref)):
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            raise DataError(f"{name} must be a boolean mask tensor, got {got}; use mask > 0.5")
        if mask.ndim < 2:
            raise DataError(
                f"{name} must have a batch dimension, shape (B, *spatial), got "
                f"{tuple(mask.shape)}; use mask.unsqueeze(0) for a single mask"
            )
    if pred.shape != ref.shape:
        raise DataError(
            f"mask shapes differ: pred {tuple(pred.shape)} vs ref {tuple(ref.shape)}; both "
            "must be (B, *spatial) for the same batch (drop the channel dimension)"
        )


def _check_saliency_inputs(x: Tensor, y: Tensor) -> None:
    """Validate (x, y) as the attack contract does, and refuse inference mode (no gradients)."""
    if torch.is_inference_mode_enabled():
        raise RLRobustError(
            "saliency maps need input gradients, which torch.inference_mode() forbids; call "
            "them outside inference_mode (torch.no_grad() is fine)"
        )
    _check_batch(x)
    check_inputs(x, y)


# --------------------------------------------------------------------------- reference masks


def foreground_masks(x: Tensor, threshold: float = 0.1) -> Tensor:
    """Reference localisation masks: pixels whose brightest channel exceeds ``threshold``.

    MNIST and Fashion-MNIST objects lie on a black background, so the object's own pixels are the
    natural ground truth against which a localisation mask is scored (Sarkar et al. 2024 report
    Dice and IoU of their masks). Returns a bool tensor (B, *spatial).
    """
    _check_batch(x)
    if isinstance(threshold, bool) or not isinstance(threshold, Real) or not 0 <= threshold < 1:
        raise ConfigError(
            f"threshold must be a number in [0, 1), got {threshold!r}; pixels are in [0, 1], "
            "so e.g. threshold=0.1 keeps everything brighter than 10 % grey"
        )
    return x.amax(dim=1) > threshold


# --------------------------------------------------------------------------- overlap scores


def _overlap_counts(pred: Tensor, ref: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample |pred & ref|, |pred| and |ref| as float64 (exact for any realistic size)."""
    _check_masks(pred, ref)
    inter = (pred & ref).flatten(1).sum(1).double()
    return inter, pred.flatten(1).sum(1).double(), ref.flatten(1).sum(1).double()


def dice(pred: Tensor, ref: Tensor) -> Tensor:
    """Dice coefficient 2 |P & R| / (|P| + |R|) per sample, shape (B,), float32.

    Both masks empty: 1.0 (they agree perfectly, and the limit of the smoothed score is 1).
    Exactly one empty: 0.0 (nothing of the other mask is found). Masks are bool (B, *spatial).
    """
    inter, n_pred, n_ref = _overlap_counts(pred, ref)
    total = n_pred + n_ref
    score = torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total))
    return score.float()


def iou(pred: Tensor, ref: Tensor) -> Tensor:
    """Intersection over union |P & R| / |P | R| per sample, shape (B,), float32.

    Both masks empty: 1.0; exactly one empty: 0.0 (same conventions as :func:`dice`).
    """
    inter, n_pred, n_ref = _overlap_counts(pred, ref)
    union = n_pred + n_ref - inter
    score = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
    return score.float()


def mask_scores(pred_masks: dict[str, Tensor], ref: Tensor) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of Dice and IoU per explanation method.

    Returns ``{method: {"dice_mean", "dice_std", "iou_mean", "iou_std", "n"}}``. The standard
    deviation is the population one (divides by B), so a single sample gives 0, not NaN.
    """
    if not pred_masks:
        raise ConfigError("pred_masks is empty; pass e.g. {'rlab': mask} with one mask per method")
    scores: dict[str, dict[str, float]] = {}
    for method, pred in pred_masks.items():
        d, j = dice(pred, ref), iou(pred, ref)
        scores[method] = {
            "dice_mean": d.mean().item(),
            "dice_std": d.std(correction=0).item(),
            "iou_mean": j.mean().item(),
            "iou_std": j.std(correction=0).item(),
            "n": float(d.numel()),
        }
    return scores


# --------------------------------------------------------------------------- gradients


def _logit_gradient(model: nn.Module, x: Tensor, y: Tensor, chunk: int) -> Tensor:
    """d logit_y / dx for every row of ``x`` (any batch size), computed ``chunk`` rows at a time.

    The model must already be frozen (eval mode, parameters without ``requires_grad``), so
    backward reaches the input only and no parameter ``.grad`` is ever written. Summing the
    selected logits over the batch gives each row its own gradient, since rows do not interact
    in eval mode.
    """
    grads = []
    with torch.enable_grad():
        for start in range(0, x.shape[0], chunk):
            x_in = x[start : start + chunk].detach().requires_grad_(True)
            y_in = y[start : start + chunk]
            logits = model(x_in)
            check_labels(logits, y_in)
            selected = logits.gather(1, y_in[:, None]).sum()
            (grad,) = torch.autograd.grad(selected, x_in)
            grads.append(grad.detach())
    return torch.cat(grads)


def _aggregate(attributions: Tensor, signed: bool) -> Tensor:
    """(B, C, *spatial) -> (B, *spatial): sum of |.| over channels, or the signed sum."""
    return attributions.sum(1) if signed else attributions.abs().sum(1)


def vanilla_gradient(
    model: nn.Module, x: Tensor, y: Tensor, *, chunk: int = DEFAULT_CHUNK
) -> Tensor:
    """|d logit_y / dx| summed over channels, shape (B, *spatial) (Simonyan et al. 2014).

    The logit (pre-softmax score) is differentiated, as in the paper, because the softmax
    probability's gradient also depends on the other classes' scores.
    """
    _check_saliency_inputs(x, y)
    chunk = check_positive_int(chunk, "chunk")
    with model_frozen(model):
        grad = _logit_gradient(model, x.detach(), y.detach(), chunk)
    return _aggregate(grad, signed=False)


def _check_sigma(sigma: float) -> float:
    if (
        isinstance(sigma, bool)
        or not isinstance(sigma, Real)
        or not math.isfinite(sigma)
        or sigma < 0
    ):
        raise ConfigError(
            f"sigma must be a finite number >= 0, got {sigma!r}; Smilkov et al. recommend "
            "10-20 % of the input range, i.e. sigma=0.15 for [0, 1] inputs"
        )
    return float(sigma)


def smoothgrad(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    n: int = 25,
    sigma: float = 0.15,
    generator: torch.Generator | None = None,
    *,
    chunk: int = DEFAULT_CHUNK,
) -> Tensor:
    """SmoothGrad (Smilkov et al. 2017, Eq. 3): |mean_i grad(x + N(0, sigma^2))|, channel-summed.

    The gradient is averaged first and the absolute value taken afterwards, so noise that flips
    a gradient's sign cancels rather than adds up. ``sigma`` is in pixel units of [0, 1] inputs
    (the paper's noise level sigma / (x_max - x_min)). Noisy copies are not clipped to [0, 1], as in
    the paper. All n copies of the batch are sent through the model in chunks of ``chunk`` inputs.
    ``generator=None`` uses a fresh generator seeded with 0, so the map is reproducible and the
    global random stream is left alone.
    """
    _check_saliency_inputs(x, y)
    n = check_positive_int(n, "n")
    sigma = _check_sigma(sigma)
    chunk = check_positive_int(chunk, "chunk")
    if generator is None:
        generator = make_generator(0, x.device)
    x, y = x.detach(), y.detach()
    noise = torch.randn((n, *x.shape), generator=generator, device=x.device, dtype=x.dtype)
    noisy = (x.unsqueeze(0) + sigma * noise).flatten(0, 1)  # (n * B, C, *spatial), sample-major
    with model_frozen(model):
        grads = _logit_gradient(model, noisy, y.repeat(n), chunk)
    mean_grad = grads.view(n, *x.shape).mean(0)
    return _aggregate(mean_grad, signed=False)


def _check_baseline(baseline: Tensor | float | None, x: Tensor) -> Tensor:
    """The IG baseline x' as a tensor shaped like x; ``None`` is the black input (all zeros)."""
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, Real) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    if not isinstance(baseline, Tensor) or not torch.is_floating_point(baseline):
        raise ConfigError(
            f"baseline must be None, a number or a float tensor, got {type(baseline).__name__}; "
            "None uses the black input"
        )
    try:
        return torch.broadcast_to(baseline.to(device=x.device, dtype=x.dtype), x.shape)
    except RuntimeError:
        raise ConfigError(
            f"baseline of shape {tuple(baseline.shape)} cannot be broadcast to x's shape "
            f"{tuple(x.shape)}; pass one baseline per input or one shared (1, C, *spatial)"
        ) from None


def integrated_gradient_attributions(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    steps: int = 32,
    baseline: Tensor | float | None = None,
    *,
    chunk: int = DEFAULT_CHUNK,
) -> Tensor:
    """Signed per-element Integrated Gradients, shape (B, C, *spatial) (Sundararajan Eq. 1).

    IG_i(x) = (x_i - x'_i) * integral_0^1 d logit_y(x' + a (x - x')) / dx_i da, with the integral
    approximated by the midpoint rule over ``steps`` points a_k = (k + 1/2) / steps (the
    paper's Riemann sum, Eq. 3, evaluated at interval centres, which is second-order accurate).
    Completeness (Prop. 1): sum_i IG_i(x) = logit_y(x) - logit_y(x'), up to the quadrature error.
    """
    _check_saliency_inputs(x, y)
    steps = check_positive_int(steps, "steps")
    chunk = check_positive_int(chunk, "chunk")
    x, y = x.detach(), y.detach()
    base = _check_baseline(baseline, x)
    alphas = (torch.arange(steps, device=x.device, dtype=x.dtype) + 0.5) / steps
    alphas = alphas.view(steps, *([1] * x.ndim))
    path = (base.unsqueeze(0) + alphas * (x - base).unsqueeze(0)).flatten(0, 1)  # (steps * B, ...)
    with model_frozen(model):
        grads = _logit_gradient(model, path, y.repeat(steps), chunk)
    mean_grad = grads.view(steps, *x.shape).mean(0)
    return (x - base) * mean_grad


def integrated_gradients(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    steps: int = 32,
    baseline: Tensor | float | None = None,
    *,
    signed: bool = False,
    chunk: int = DEFAULT_CHUNK,
) -> Tensor:
    """Integrated Gradients saliency (Sundararajan et al. 2017), shape (B, *spatial).

    Sum over channels of |IG| by default (a non-negative map, like the other methods); with
    ``signed=True`` the signed channel sum, whose total over all pixels approximates
    logit_y(x) - logit_y(baseline) (completeness). ``baseline=None`` is the black input.
    """
    attributions = integrated_gradient_attributions(model, x, y, steps, baseline, chunk=chunk)
    return _aggregate(attributions, signed=signed)


SALIENCY_METHODS: dict[str, SaliencyFn] = {
    "vanilla_gradient": vanilla_gradient,
    "smoothgrad": smoothgrad,
    "integrated_gradients": integrated_gradients,
}


# --------------------------------------------------------------------------- saliency -> mask


def top_k_mask(saliency: Tensor, k: Tensor | int) -> Tensor:
    """Keep the ``k[i]`` most salient pixels of sample i; bool tensor shaped like ``saliency``.

    ``k`` is a LongTensor (B,) (usually the pixel count of each sample's RLAB mask, so the
    baseline explanation has exactly the same size) or one int for all samples. Ties are broken
    deterministically: among equal values the pixel with the lower flat (row-major) index wins,
    because a stable descending sort keeps equal values in index order.
    """
    if not isinstance(saliency, Tensor) or not torch.is_floating_point(saliency):
        got = saliency.dtype if isinstance(saliency, Tensor) else type(saliency).__name__
        raise DataError(f"saliency must be a float tensor (B, *spatial), got {got}")
    if saliency.ndim < 2:
        raise DataError(
            f"saliency must have shape (B, *spatial), got {tuple(saliency.shape)}; use "
            "saliency.unsqueeze(0) for a single map"
        )
    if torch.isnan(saliency).any():
        raise DataError("saliency contains NaN values; check the model's gradients")
    batch, pixels = saliency.shape[0], saliency[0].numel()
    k = _check_k(k, batch, pixels, saliency.device)
    flat = saliency.flatten(1)
    order = torch.sort(flat, dim=1, descending=True, stable=True).indices
    ranks = torch.empty_like(order)
    positions = torch.arange(pixels, device=flat.device).expand(batch, pixels)
    ranks.scatter_(1, order, positions)  # ranks[b, p] = position of pixel p in the sorted order
    return (ranks < k[:, None]).view(saliency.shape)


def _check_k(k: Tensor | int, batch: int, pixels: int, device: torch.device) -> Tensor:
    if isinstance(k, int) and not isinstance(k, bool):
        k = torch.full((batch,), k, dtype=torch.int64, device=device)
    if not isinstance(k, Tensor) or k.dtype != torch.int64 or k.shape != (batch,):
        got = f"{k.dtype} {tuple(k.shape)}" if isinstance(k, Tensor) else type(k).__name__
        raise DataError(
            f"k must be an int64 tensor of shape ({batch},), one pixel count per sample, got "
            f"{got}; e.g. k = rlab_mask.flatten(1).sum(1)"
        )
    if k.numel() and (k.min() < 0 or k.max() > pixels):
        raise DataError(
            f"k must lie in [0, {pixels}] (the pixels per sample), got values in "
            f"[{k.min().item()}, {k.max().item()}]"
        )
    return k.to(device)
