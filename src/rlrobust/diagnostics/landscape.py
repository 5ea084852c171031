"""Loss landscapes in weight space (Kim Eq. 30; Li et al. 2018) and in input space.

Weight space. Kim ("An Analysis of Policy Loss", Eq. 30) plots

    f(a, b) = L(theta* + a d1 + b d2)

around trained weights theta* for two random directions d1, d2 on a 50 x 50 grid over
[-1, 1]^2, and states that d1 and d2 "are standard Gaussian random vectors". Two kinds of
directions are offered, and every record and figure says which one it used:

- ``directions="gaussian"`` (Kim Eq. 30 as written): plain N(0, I) entries, not rescaled, for
  every parameter, biases and BatchNorm included (Kim perturbs all of theta*).
- ``directions="filter_normalized"`` (the default; Li, Xu, Taylor, Studer & Goldstein,
  "Visualizing the Loss Landscape of Neural Nets", NeurIPS 2018, which Kim cites): random
  directions are only comparable across models when they are scaled like the weights, so for
  every filter i of a weight tensor (a row along the output axis: one output channel of a
  convolution, one output unit of a linear layer)

      d_i <- d_i / ||d_i|| * ||theta_i||,

  and one-dimensional parameters (biases, BatchNorm scales and shifts) get a zero direction, as
  in Li et al. This is Li et al.'s method, not Kim's stated one: label plots accordingly.

``include_bias_bn`` overrides the bias rule of either kind (filter-normalised 1-D parameters
then get +-|theta_j|, each entry its own filter). Kim reads a more concave landscape (loss
falling away from theta* along some directions) as a sign of robustness; ``landscape_shape``
summarises curvature numerically.

The loss is evaluated in eval mode on a *fixed* set of batches (the same images at every grid
point), as the mean over all samples. The weights are recomputed from a saved copy of theta* at
every point (no drift from adding and subtracting) and copied back bit for bit afterwards, even
when an error interrupts the sweep.

Input space. ``input_landscape_2d`` evaluates L(f(clamp01(x + a s + b r)), y) on a grid around
each test point, with s = sign(grad_x L) (the FGSM direction, Goodfellow et al. 2015) and r a
random +-1 direction: the surface a sign-gradient attacker walks on. A flat surface along s, or
one no steeper along s than along r, means the gradient sign carries little information.

Records: ``alphas`` (and ``betas``), and ``loss`` (``loss[i][j] = f(alphas[i], betas[j])``);
weight-space records also hold ``settings["directions"]`` and ``directions_label``.
Grid coordinates are ``span * (2k - (n - 1)) / (n - 1)``, so an odd ``points`` puts an exact
0 in the middle, and the centre value is the loss at theta* (or at x) itself.

Example::

    batches = fixed_batches(load_dataset("digits", "test"), num_samples=256)
    record = weight_landscape_2d(model, batches, points=21, seed=0)
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from rlrobust.attacks.base import (
    check_inputs,
    check_labels,
    check_positive_int,
    check_seed,
    clamp01,
    model_frozen,
)
from rlrobust.data import ImageData, to_unit_float
from rlrobust.diagnostics.gradients import (
    DEFAULT_BATCH_SIZE,
    LossFn,
    LossSpec,
    _no_inference_mode,
    check_batch_size,
    input_gradients,
    random_like,
    resolve_loss,
    summed_loss,
)
from rlrobust.errors import ConfigError, DataError
from rlrobust.seeding import make_generator

#: kinds of random weight directions, and how records and figures name them.
DIRECTIONS = ("filter_normalized", "gaussian")
DIRECTION_LABELS = {
    "filter_normalized": "filter-normalised Gaussian directions (Li et al. 2018)",
    "gaussian": "standard Gaussian directions, not normalised (Kim Eq. 30)",
}
# Keeps the division finite for an all-zero random filter (probability 0, but cheap insurance).
FILTER_EPS = 1e-10

Batches = Sequence[tuple[Tensor, Tensor]]

# --------------------------------------------------------------------------- batch sets


def as_batches(batches: Any) -> list[tuple[Tensor, Tensor]]:
    """Accept one ``(x, y)`` pair or a sequence of pairs; check each against the contract."""
    if isinstance(batches, tuple) and len(batches) == 2 and isinstance(batches[0], Tensor):
        batches = [batches]
    try:
        pairs = [(x, y) for x, y in batches]
    except (TypeError, ValueError) as error:
        raise DataError(
            "batches must be an (x, y) pair or a list of (x, y) pairs of tensors; build them "
            "with fixed_batches(data, num_samples)"
        ) from error
    if not pairs:
        raise DataError("the batch set is empty; pass at least one (x, y) pair")
    for x, y in pairs:
        check_inputs(x, y)
    return pairs


def fixed_batches(
    data: ImageData,
    num_samples: int = 512,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device = "cpu",
) -> list[tuple[Tensor, Tensor]]:
    """The first ``num_samples`` images of ``data`` as [0, 1] float batches on ``device``.

    Taking the first images (not a random subset) makes the set a function of the data alone,
    so every model of a comparison is measured on the same images.
    """
    num_samples = min(check_positive_int(num_samples, "num_samples"), len(data))
    batch_size = check_batch_size(batch_size)
    return [
        (
            to_unit_float(data.images[i : min(i + batch_size, num_samples)].to(device)),
            data.labels[i : min(i + batch_size, num_samples)].to(device),
        )
        for i in range(0, num_samples, batch_size)
    ]


@torch.no_grad()
def batch_set_loss(model: nn.Module, loss_fn: LossFn, batches: Batches) -> tuple[float, float]:
    """(mean loss, greedy accuracy) over every sample of the batch set, in float64.

    Each batch's loss is weighted by its size, so the result is the mean over samples whatever
    the batch split (exact for per-sample losses and for losses that are batch means).
    """
    total, correct, count = 0.0, 0, 0
    for x, y in batches:
        logits = model(x)
        check_labels(logits, y)
        total += float(summed_loss(loss_fn, logits, y).double())
        correct += int((logits.argmax(dim=1) == y).sum())
        count += y.shape[0]
    return total / count, correct / count


# --------------------------------------------------------------------------- directions


def grid_coordinates(points: int, span: float) -> list[float]:
    """``points`` coordinates from -span to span; exact 0 in the middle for odd ``points``."""
    points = check_positive_int(points, "points")
    if not math.isfinite(span) or span <= 0:
        raise ConfigError(f"span must be a finite number > 0, got {span}; e.g. span=1.0")
    if points == 1:
        return [0.0]
    return [span * (2 * k - (points - 1)) / (points - 1) for k in range(points)]


def filter_normalize(direction: Tensor, weight: Tensor) -> Tensor:
    """Scale each filter (row along dim 0) of ``direction`` to the norm of ``weight``'s filter.

    For a 1-D tensor every entry is its own filter: the result is sign(d_j) |w_j|.
    """
    if direction.shape != weight.shape:
        raise ConfigError(
            f"direction shape {tuple(direction.shape)} does not match weight shape "
            f"{tuple(weight.shape)}; draw one direction tensor per parameter"
        )
    if weight.ndim == 0:
        return direction.sign() * weight.abs()
    d = direction.reshape(direction.shape[0], -1)
    w = weight.reshape(weight.shape[0], -1)
    scale = w.norm(dim=1, keepdim=True) / (d.norm(dim=1, keepdim=True) + FILTER_EPS)
    return (d * scale).reshape(direction.shape)


def check_directions(directions: str) -> str:
    if directions not in DIRECTIONS:
        raise ConfigError(
            f"unknown directions {directions!r}; choose one of: {', '.join(DIRECTIONS)} "
            "(gaussian: Kim Eq. 30 as written; filter_normalized: Li et al. 2018)"
        )
    return directions


def random_direction(
    model: nn.Module,
    generator: torch.Generator,
    *,
    directions: str = "filter_normalized",
    include_bias_bn: bool | None = None,
) -> list[Tensor]:
    """One Gaussian direction per parameter of ``model`` (in ``model.parameters()`` order).

    ``directions="filter_normalized"``: Li et al.'s (2018) filter normalisation, 1-D parameters
    (biases, BatchNorm) zeroed; ``"gaussian"``: Kim's plain N(0, I) for every parameter.
    ``include_bias_bn`` (default: per kind, as just said) overrides whether 1-D parameters
    move. Draws are made on the CPU generator, so a seed gives the same direction on every
    device, and the weights' numbers do not depend on the kind or on ``include_bias_bn``.
    """
    kind = check_directions(directions)
    if include_bias_bn is None:
        include_bias_bn = kind == "gaussian"
    directions = []
    for param in model.parameters():
        weight = param.detach()
        # Always draw, even for parameters that end up zero, so including or excluding biases
        # never shifts the random numbers the weight directions get.
        d = random_like(weight, generator, "normal")
        if weight.ndim <= 1 and not include_bias_bn:
            d = torch.zeros_like(weight)
        elif kind == "filter_normalized":
            d = filter_normalize(d, weight)
        directions.append(d)
    return directions


@contextmanager
def weights_restored(model: nn.Module) -> Iterator[list[Tensor]]:
    """Save every parameter, yield the saved copies, and copy them back bit for bit on exit.

    The parameter tensors themselves are kept (values are copied in place), so an optimizer or
    anything else holding references to them still sees the same objects.
    """
    saved = [param.detach().clone() for param in model.parameters()]
    try:
        yield saved
    finally:
        with torch.no_grad():
            for param, value in zip(model.parameters(), saved, strict=True):
                param.copy_(value)


@torch.no_grad()
def _set_weights(
    model: nn.Module, theta: list[Tensor], moves: Sequence[tuple[float, list[Tensor]]]
) -> None:
    """theta + sum_k c_k d_k, written into the model's parameters."""
    for index, (param, base) in enumerate(zip(model.parameters(), theta, strict=True)):
        value = base.clone()
        for coefficient, direction in moves:
            if coefficient != 0.0:
                value.add_(direction[index], alpha=coefficient)
        param.copy_(value)


# --------------------------------------------------------------------------- shape summaries


def landscape_shape(record: dict[str, Any]) -> dict[str, Any]:
    """Numbers that summarise a 1-D or 2-D landscape (Kim: "flatter or more concave").

    - ``max_increase`` / ``mean_increase``: max and mean of f - f(0) over the grid; small values
      mean a flat neighbourhood (Keskar et al.'s sharpness is a max over a neighbourhood).
    - ``curvature_at_origin``: the central second difference (f(h) - 2 f(0) + f(-h)) / h^2 along
      each axis (needs an odd number of points >= 3).
    - ``concave_fraction``, ``convex_fraction`` (and ``saddle_fraction`` in 2-D): the share of
      interior grid points whose discrete second derivative (1-D) or discrete 2x2 Hessian (2-D)
      is negative definite, positive definite, or indefinite.
    """
    loss = torch.tensor(record["loss"], dtype=torch.float64)
    alphas = torch.tensor(record["alphas"], dtype=torch.float64)
    origin = _origin_value(record)
    out: dict[str, Any] = {
        "max_increase": float(loss.max() - origin),
        "mean_increase": float(loss.mean() - origin),
    }
    if len(alphas) < 3:
        return out
    h = float(alphas[1] - alphas[0])
    if loss.ndim == 1:
        second = (loss[2:] - 2 * loss[1:-1] + loss[:-2]) / h**2
        out["concave_fraction"] = float((second < 0).double().mean())
        out["convex_fraction"] = float((second > 0).double().mean())
        mid = len(alphas) // 2
        out["curvature_at_origin"] = float(second[mid - 1]) if len(alphas) % 2 else None
        return out
    betas = torch.tensor(record["betas"], dtype=torch.float64)
    if len(betas) < 3:
        return out
    k = float(betas[1] - betas[0])
    faa = (loss[2:, 1:-1] - 2 * loss[1:-1, 1:-1] + loss[:-2, 1:-1]) / h**2
    fbb = (loss[1:-1, 2:] - 2 * loss[1:-1, 1:-1] + loss[1:-1, :-2]) / k**2
    fab = (loss[2:, 2:] - loss[2:, :-2] - loss[:-2, 2:] + loss[:-2, :-2]) / (4 * h * k)
    determinant = faa * fbb - fab**2
    convex = (determinant > 0) & (faa > 0)
    concave = (determinant > 0) & (faa < 0)
    out["convex_fraction"] = float(convex.double().mean())
    out["concave_fraction"] = float(concave.double().mean())
    out["saddle_fraction"] = float((determinant < 0).double().mean())
    if len(alphas) % 2 and len(betas) % 2:
        i, j = len(alphas) // 2 - 1, len(betas) // 2 - 1
        out["curvature_at_origin"] = [float(faa[i, j]), float(fbb[i, j])]
    return out


def _origin_value(record: dict[str, Any]) -> float:
    if "loss_at_origin" in record:
        return float(record["loss_at_origin"])
    loss = torch.tensor(record["loss"], dtype=torch.float64)
    return float(loss[tuple(s // 2 for s in loss.shape)])


# --------------------------------------------------------------------------- weight landscapes


def _weight_landscape(
    model: nn.Module,
    batches: Any,
    loss: LossSpec,
    *,
    dims: int,
    points: int,
    span: float,
    seed: int,
    directions: str,
    include_bias_bn: bool | None,
) -> dict[str, Any]:
    kind = check_directions(directions)
    if include_bias_bn is None:
        include_bias_bn = kind == "gaussian"
    pairs = as_batches(batches)
    loss_fn = resolve_loss(loss)
    coords = grid_coordinates(points, float(span))
    generator = make_generator(check_seed(seed))
    directions = [
        random_direction(model, generator, directions=kind, include_bias_bn=include_bias_bn)
        for _ in range(dims)
    ]
    with model_frozen(model), weights_restored(model) as theta:
        loss_at_origin, accuracy_at_origin = batch_set_loss(model, loss_fn, pairs)
        if dims == 1:
            losses, accuracies = [], []
            for a in coords:
                _set_weights(model, theta, [(a, directions[0])])
                value, accuracy = batch_set_loss(model, loss_fn, pairs)
                losses.append(value)
                accuracies.append(accuracy)
        else:
            losses, accuracies = [], []
            for a in coords:
                row_loss, row_accuracy = [], []
                for b in coords:
                    _set_weights(model, theta, [(a, directions[0]), (b, directions[1])])
                    value, accuracy = batch_set_loss(model, loss_fn, pairs)
                    row_loss.append(value)
                    row_accuracy.append(accuracy)
                losses.append(row_loss)
                accuracies.append(row_accuracy)
    record: dict[str, Any] = {
        "space": "weight",
        "alphas": coords,
        "loss": losses,
        "accuracy": accuracies,
        "loss_at_origin": loss_at_origin,
        "accuracy_at_origin": accuracy_at_origin,
        "directions_label": DIRECTION_LABELS[kind],
        "settings": {
            "points": len(coords),
            "span": float(span),
            "seed": int(seed),
            "directions": kind,
            "include_bias_bn": bool(include_bias_bn),
            "n_samples": sum(int(y.shape[0]) for _, y in pairs),
        },
        "direction_norms": [
            float(torch.sqrt(sum((d.double() ** 2).sum() for d in direction)))
            for direction in directions
        ],
        "weight_norm": float(torch.sqrt(sum((t.double() ** 2).sum() for t in theta))),
    }
    if dims == 2:
        record["betas"] = coords
    record["shape"] = landscape_shape(record)
    return record


def weight_landscape_1d(
    model: nn.Module,
    batches: Any,
    loss: LossSpec = None,
    *,
    points: int = 21,
    span: float = 1.0,
    seed: int = 0,
    directions: str = "filter_normalized",
    include_bias_bn: bool | None = None,
) -> dict[str, Any]:
    """f(a) = L(theta* + a d) for a in [-span, span] (``points`` values), d a random direction
    of the kind ``directions`` names (module docstring, which also describes the record)."""
    return _weight_landscape(
        model,
        batches,
        loss,
        dims=1,
        points=points,
        span=span,
        seed=seed,
        directions=directions,
        include_bias_bn=include_bias_bn,
    )


def weight_landscape_2d(
    model: nn.Module,
    batches: Any,
    loss: LossSpec = None,
    *,
    points: int = 21,
    span: float = 1.0,
    seed: int = 0,
    directions: str = "filter_normalized",
    include_bias_bn: bool | None = None,
) -> dict[str, Any]:
    """Kim Eq. 30: f(a, b) = L(theta* + a d1 + b d2) on a ``points`` x ``points`` grid over
    [-span, span]^2 (Kim: 50 x 50 on [-1, 1]^2 with ``directions="gaussian"``).
    ``loss[i][j] = f(alphas[i], betas[j])``."""
    return _weight_landscape(
        model,
        batches,
        loss,
        dims=2,
        points=points,
        span=span,
        seed=seed,
        directions=directions,
        include_bias_bn=include_bias_bn,
    )


# --------------------------------------------------------------------------- input landscape


def input_landscape_2d(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss: LossSpec = None,
    *,
    radius: float = 8 / 255,
    points: int = 21,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    keep_per_sample: bool = True,
) -> dict[str, Any]:
    """Loss surface in input space around each test point.

    L(f(clamp01(x + a s + b r)), y) for a, b in [-radius, radius] (pixel units), with
    s = sign(grad_x L(f(x), y)) and r a random +-1 vector per sample (seeded).

    Returns ``alphas`` (gradient-sign axis), ``betas`` (random axis), ``loss`` (mean over
    samples, ``loss[i][j]`` at (alphas[i], betas[j])), ``changed_fraction`` (share of samples
    whose prediction differs from the clean one at each point), ``per_sample`` loss grids
    (N x points x points, if ``keep_per_sample`` and the loss is per sample),
    ``zero_gradient_fraction`` (samples whose gradient sign is all zero, so the a-axis is
    flat by construction) and ``shape`` (``landscape_shape``).
    """
    _no_inference_mode("input_landscape_2d")
    check_inputs(x, y)
    radius = float(radius)
    coords = grid_coordinates(points, radius)
    loss_fn = resolve_loss(loss)
    batch_size = check_batch_size(batch_size)
    generator = make_generator(check_seed(seed))
    n = x.shape[0]
    sign = input_gradients(model, x, y, loss_fn, batch_size=batch_size).sign()
    random_sign = random_like(x, generator, "rademacher")
    size = len(coords)
    total = torch.zeros(size, size, dtype=torch.float64)
    changed = torch.zeros(size, size, dtype=torch.float64)
    per_sample = torch.zeros(n, size, size, dtype=torch.float64)
    has_per_sample = True
    with model_frozen(model), torch.no_grad():
        for start in range(0, n, batch_size):
            s = slice(start, min(start + batch_size, n))
            xb, yb = x[s], y[s]
            clean_prediction = model(xb).argmax(dim=1)
            for i, a in enumerate(coords):
                for j, b in enumerate(coords):
                    logits = model(clamp01(xb + a * sign[s] + b * random_sign[s]))
                    value = loss_fn(logits, yb)
                    if value.ndim > 0:
                        per_sample[s, i, j] = value.double().cpu()
                        total[i, j] += float(value.double().sum())
                    else:
                        has_per_sample = False
                        total[i, j] += float(value.double()) * yb.shape[0]
                    changed[i, j] += float((logits.argmax(dim=1) != clean_prediction).sum())
    record: dict[str, Any] = {
        "space": "input",
        "alphas": coords,
        "betas": coords,
        "loss": (total / n).tolist(),
        "changed_fraction": (changed / n).tolist(),
        "zero_gradient_fraction": float((sign.flatten(1) == 0).all(dim=1).double().mean()),
        "settings": {"radius": radius, "points": size, "seed": int(seed)},
        "n": int(n),
    }
    if keep_per_sample and has_per_sample:
        record["per_sample"] = per_sample.tolist()
    record["shape"] = landscape_shape(record)
    return record


__all__ = [
    "DIRECTIONS",
    "DIRECTION_LABELS",
    "as_batches",
    "batch_set_loss",
    "check_directions",
    "filter_normalize",
    "fixed_batches",
    "grid_coordinates",
    "input_landscape_2d",
    "landscape_shape",
    "random_direction",
    "weight_landscape_1d",
    "weight_landscape_2d",
    "weights_restored",
]
