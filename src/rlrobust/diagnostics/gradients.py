"""Static and dynamic gradient indicators (Zou et al. 2026, "Reinforcement Learning Disrupts
Gradient-Based Adversarial Optimization", Sec. "static and dynamic gradient indicators").

Zou et al. explain the robustness of policy-trained classifiers by *unstable gradient
directions* and *smaller gradient magnitudes* in input space. This module measures both:

Static indicators (at clean test points x, gradient g(x) = d L(f(x), y) / dx):

- ``gradient_norms``: per-sample ||g||_1, ||g||_2, ||g||_inf, their summaries, and the fraction
  of (near-)zero gradients, per sample (||g||_inf <= threshold) and per coordinate.
- ``gradient_sign_agreement``: for random points x' = clamp01(x + u), u ~ U[-r, r]^d, the
  fraction of coordinates with sign(g(x')_i) = sign(g(x)_i) and the cosine cos(g(x), g(x')).

Dynamic indicators (along an attack):

- ``pgd_trajectory``: along the PGD iterates x_0, ..., x_T (Madry et al. 2018, the same update
  as ``rlrobust.attacks.PGD``): the loss at every iterate, cos(g(x_k), g(x_{k-1})) per step, the
  first step at which the prediction differs from the clean one, and how many steps flip it.
- ``gradient_noise_stability``: mean cos(g(x), g(x + sigma * n)), n ~ N(0, I), over several
  noise draws: how stable the gradient *direction* is under small input noise.

The loss is cross-entropy by default; any attack loss name ("ce", "margin", "dlr"), any
registered objective name (``rlrobust.objectives``) or any callable ``(logits, y) -> loss`` can
be given (see ``resolve_loss``). Every function runs the model in eval mode with its parameters
frozen and restores each module's mode and each parameter's ``requires_grad`` afterwards
(``rlrobust.attacks.model_frozen``). Random numbers come from a private generator seeded with
``seed`` (drawn on the CPU, so a seed gives the same numbers on every device).

Records are JSON-able dicts of python floats and lists; the tensors behind them are available
from ``input_gradients``.

Example::

    record = gradient_norms(model, x, y)             # CE input gradients at clean points
    record["l2"]["summary"]["median"]
    trajectory = pgd_trajectory(model, x, y, eps=0.1, steps=20, step_size=0.01)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from rlrobust.attacks.base import (
    check_eps,
    check_inputs,
    check_labels,
    check_norm,
    check_positive_float,
    check_positive_int,
    check_seed,
    clamp01,
    model_frozen,
    normalize_l2,
    project,
    random_start,
)
from rlrobust.attacks.losses import LOSSES
from rlrobust.errors import ConfigError, RLRobustError
from rlrobust.seeding import make_generator

#: A loss as the diagnostics take it: ``(logits, y) -> (N,) per-sample losses or a scalar batch
#: mean`` (objectives return ``(loss, stats)``; the tuple is unpacked).
LossSpec = str | Callable[..., Any] | None
LossFn = Callable[[Tensor, Tensor], Tensor]

DEFAULT_BATCH_SIZE = 256
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# Added to denominators of cosines so that an all-zero gradient gives cosine 0, not NaN.
COSINE_EPS = 1e-12

# --------------------------------------------------------------------------- shared helpers


def resolve_loss(loss: LossSpec = None, **options: Any) -> LossFn:
    """Turn a loss specification into ``(logits, y) -> (N,) or scalar`` tensor.

    - ``None`` or ``"ce"``: per-sample cross-entropy.
    - ``"margin"``, ``"dlr"``: the attack losses of ``rlrobust.attacks.losses``.
    - a registered objective name (``"kim_policy"``, ``"zou_pg"``, ...) with ``options``: the
      objective's scalar training loss. A stochastic objective is called with a fresh generator
      seeded with ``options["seed"]`` (default 0) at every call, so repeated evaluations draw
      the same exploration numbers; choose greedy actions (``action="greedy"``, ``epsilon=0``)
      for a loss that is a deterministic function of the logits.
    - any callable ``(logits, y)`` returning a tensor or a ``(loss, stats)`` tuple.
    """
    if loss is None:
        loss = "ce"
    if isinstance(loss, str):
        if loss in LOSSES and not options:
            return LOSSES[loss]
        from rlrobust.objectives import OBJECTIVES  # imported here: objectives are optional

        if loss not in OBJECTIVES.names():
            raise ConfigError(
                f"unknown loss {loss!r}; choose an attack loss ({', '.join(LOSSES)}), an "
                f"objective ({', '.join(OBJECTIVES.names())}) or pass a callable (logits, y)"
            )
        seed = check_seed(options.pop("seed", 0))
        objective = OBJECTIVES.create(loss, **options)

        def objective_loss(logits: Tensor, y: Tensor) -> Tensor:
            generator = make_generator(seed) if objective.stochastic else None
            return objective(logits, y, generator=generator)[0]

        return objective_loss
    if not callable(loss):
        raise ConfigError(
            f"loss must be a name or a callable (logits, y) -> loss, got {type(loss).__name__}"
        )

    def unpacked(logits: Tensor, y: Tensor) -> Tensor:
        value = loss(logits, y)
        return value[0] if isinstance(value, tuple) else value

    return unpacked


def summed_loss(loss_fn: LossFn, logits: Tensor, y: Tensor) -> Tensor:
    """Sum of the per-sample losses, so each sample's input gradient is that of its own loss.

    A scalar result is read as the batch mean and multiplied by N (exact for a mean of
    per-sample terms; for a loss that couples samples, e.g. a batch baseline, it is the
    gradient of N times that loss).
    """
    value = loss_fn(logits, y)
    return value.sum() if value.ndim > 0 else value * logits.shape[0]


def mean_loss(loss_fn: LossFn, logits: Tensor, y: Tensor) -> Tensor:
    """Batch mean of the loss (the loss itself when it is already a scalar)."""
    value = loss_fn(logits, y)
    return value.mean() if value.ndim > 0 else value


def summarize(values: Tensor | Sequence[float]) -> dict[str, float | int | None]:
    """Count, mean, std, min, max and the 5/25/50/75/95 % quantiles as python numbers.

    An empty input gives ``count = 0`` and ``None`` elsewhere (JSON has no NaN).
    """
    t = torch.as_tensor(values, dtype=torch.float64).flatten().cpu()
    keys = ["mean", "std", "min", "max", "median", "q05", "q25", "q75", "q95"]
    if t.numel() == 0:
        return {"count": 0, **dict.fromkeys(keys)}
    q = torch.quantile(t, torch.tensor(QUANTILES, dtype=torch.float64)).tolist()
    return {
        "count": int(t.numel()),
        "mean": float(t.mean()),
        "std": float(t.std(unbiased=False)),
        "min": float(t.min()),
        "max": float(t.max()),
        "median": q[2],
        "q05": q[0],
        "q25": q[1],
        "q75": q[3],
        "q95": q[4],
    }


def per_sample_cosine(a: Tensor, b: Tensor) -> Tensor:
    """cos(a_i, b_i) for each sample i, (N,); 0 where either vector is zero."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    denominator = a.norm(dim=1) * b.norm(dim=1)
    return (a * b).sum(dim=1) / denominator.clamp_min(COSINE_EPS)


def random_like(
    x: Tensor, generator: torch.Generator, kind: str = "normal", dtype: torch.dtype | None = None
) -> Tensor:
    """Random tensor shaped like ``x`` drawn on the generator's device (the CPU), then moved.

    ``kind``: "normal" (N(0, 1)), "uniform" (U[-1, 1]) or "rademacher" (+-1).
    """
    dtype = dtype or x.dtype
    if kind == "normal":
        draw = torch.randn(x.shape, generator=generator, dtype=dtype)
    elif kind == "uniform":
        draw = 2 * torch.rand(x.shape, generator=generator, dtype=dtype) - 1
    elif kind == "rademacher":
        draw = 2 * torch.randint(0, 2, x.shape, generator=generator).to(dtype) - 1
    else:
        raise ConfigError(f"unknown noise {kind!r}; choose normal, uniform or rademacher")
    return draw.to(x.device)


def check_batch_size(batch_size: int) -> int:
    return check_positive_int(batch_size, "batch_size")


def _chunks(n: int, batch_size: int) -> Iterable[slice]:
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _no_inference_mode(what: str) -> None:
    if torch.is_inference_mode_enabled():
        raise RLRobustError(
            f"{what} needs gradients, which torch.inference_mode() forbids; call it outside "
            "inference_mode (torch.no_grad() is fine)"
        )


# --------------------------------------------------------------------------- input gradients


def _gradient_and_logits(
    model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """(input gradient, logits, per-sample loss) for a frozen model.

    A loss that returns only a scalar batch mean has no per-sample values: that mean is then
    repeated for every sample of the batch.
    """
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        logits = model(x_in)
        check_labels(logits, y)
        value = loss_fn(logits, y)
        total = value.sum() if value.ndim > 0 else value * logits.shape[0]
        (grad,) = torch.autograd.grad(total, x_in)
    per_sample = value.detach() if value.ndim > 0 else value.detach().expand(y.shape[0])
    return grad.detach(), logits.detach(), per_sample


def input_gradients(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss: LossSpec = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Tensor:
    """d L(f(x_i), y_i) / d x_i for every sample, shaped like ``x`` (eval mode, frozen model)."""
    _no_inference_mode("input_gradients")
    check_inputs(x, y)
    loss_fn = resolve_loss(loss)
    batch_size = check_batch_size(batch_size)
    with model_frozen(model):
        parts = [
            _gradient_and_logits(model, loss_fn, x[s], y[s])[0]
            for s in _chunks(x.shape[0], batch_size)
        ]
    return torch.cat(parts) if parts else torch.empty_like(x)


# --------------------------------------------------------------------------- static indicators


def gradient_norms(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss: LossSpec = None,
    *,
    zero_threshold: float = 1e-8,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, Any]:
    """Distribution of input-gradient norms at clean points (Zou et al.: smaller magnitudes).

    Returns ``{"l1", "l2", "linf"}``, each ``{"per_sample": [...], "summary": {...}}``, and
    ``zero_fraction_samples`` (fraction of samples with ||g||_inf <= zero_threshold),
    ``zero_fraction_coordinates`` (fraction of all input coordinates with |g_i| <= threshold),
    ``zero_threshold`` and ``n``.
    """
    if zero_threshold < 0 or not math.isfinite(zero_threshold):
        raise ConfigError(f"zero_threshold must be a finite number >= 0, got {zero_threshold}")
    grads = input_gradients(model, x, y, loss, batch_size=batch_size).flatten(1).double()
    norms = {
        "l1": grads.abs().sum(dim=1),
        "l2": grads.norm(dim=1),
        "linf": grads.abs().amax(dim=1) if grads.shape[1] else grads.new_zeros(len(grads)),
    }
    record: dict[str, Any] = {
        name: {"per_sample": values.tolist(), "summary": summarize(values)}
        for name, values in norms.items()
    }
    near_zero = grads.abs() <= zero_threshold
    record["zero_fraction_samples"] = float((norms["linf"] <= zero_threshold).double().mean())
    record["zero_fraction_coordinates"] = float(near_zero.double().mean())
    record["zero_threshold"] = float(zero_threshold)
    record["n"] = int(grads.shape[0])
    return record


def _nearby_agreement(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss: LossSpec,
    *,
    radius: float,
    draws: int,
    noise: str,
    seed: int,
    batch_size: int,
) -> dict[str, Any]:
    """Sign agreement and cosine between g(x) and g(x') for ``draws`` noisy copies x' per sample.

    noise "uniform": x' = clamp01(x + u), u ~ U[-radius, radius]^d (the linf ball);
    noise "normal":  x' = clamp01(x + radius * n), n ~ N(0, I).
    """
    _no_inference_mode("gradient agreement")
    check_inputs(x, y)
    radius = float(radius)
    if radius < 0 or not math.isfinite(radius):
        raise ConfigError(f"radius must be a finite number >= 0, got {radius}; e.g. 0.01")
    draws = check_positive_int(draws, "draws")
    batch_size = check_batch_size(batch_size)
    loss_fn = resolve_loss(loss)
    generator = make_generator(check_seed(seed))
    cosines, agreements, agreements_nonzero = [], [], []
    with model_frozen(model):
        for s in _chunks(x.shape[0], batch_size):
            xb, yb = x[s], y[s]
            g0 = _gradient_and_logits(model, loss_fn, xb, yb)[0].flatten(1)
            cos_b, agree_b, agree_nz_b = [], [], []
            for _ in range(draws):
                x_near = clamp01(xb + radius * random_like(xb, generator, noise))
                g1 = _gradient_and_logits(model, loss_fn, x_near, yb)[0].flatten(1)
                same = g0.sign() == g1.sign()
                # Coordinates where both gradients are zero agree trivially; the second number
                # leaves them out, so a model with mostly dead gradients does not look stable.
                active = (g0 != 0) | (g1 != 0)
                cos_b.append(per_sample_cosine(g0, g1))
                agree_b.append(same.double().mean(dim=1))
                agree_nz_b.append(
                    (same & active).double().sum(dim=1) / active.double().sum(dim=1).clamp_min(1)
                )
            cosines.append(torch.stack(cos_b, dim=1))
            agreements.append(torch.stack(agree_b, dim=1))
            agreements_nonzero.append(torch.stack(agree_nz_b, dim=1))
    cos = torch.cat(cosines).cpu()  # (N, draws)
    agree = torch.cat(agreements).cpu()
    agree_nz = torch.cat(agreements_nonzero).cpu()
    return {
        "cosine": {"per_sample": cos.mean(dim=1).tolist(), "summary": summarize(cos.mean(dim=1))},
        "sign_agreement": {
            "per_sample": agree.mean(dim=1).tolist(),
            "summary": summarize(agree.mean(dim=1)),
        },
        "sign_agreement_nonzero": {
            "per_sample": agree_nz.mean(dim=1).tolist(),
            "summary": summarize(agree_nz.mean(dim=1)),
        },
        "cosine_per_draw": cos.mean(dim=0).tolist(),
        "radius": radius,
        "draws": draws,
        "noise": noise,
        "seed": int(seed),
        "n": int(x.shape[0]),
    }


def gradient_sign_agreement(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss: LossSpec = None,
    *,
    radius: float = 0.01,
    draws: int = 4,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, Any]:
    """Static indicator: do gradients at nearby points x' = clamp01(x + u), u ~ U[-r, r]^d,
    point the same way as at x?

    Per sample (averaged over ``draws`` points): ``sign_agreement`` = mean_i [sign g(x')_i =
    sign g(x)_i] over all coordinates, ``sign_agreement_nonzero`` over coordinates where either
    gradient is non-zero, and ``cosine`` = cos(g(x), g(x')). 1 means a locally linear loss
    (an FGSM step is reliable); 0.5 sign agreement and cosine near 0 mean an uninformative sign.
    """
    return _nearby_agreement(
        model,
        x,
        y,
        loss,
        radius=radius,
        draws=draws,
        noise="uniform",
        seed=seed,
        batch_size=batch_size,
    )


def gradient_noise_stability(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss: LossSpec = None,
    *,
    sigma: float = 0.01,
    draws: int = 8,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, Any]:
    """Dynamic indicator: stability of the gradient direction under Gaussian input noise.

    ``cosine`` per sample is mean_k cos(g(x), g(clamp01(x + sigma * n_k))), n_k ~ N(0, I),
    k = 1..draws; ``cosine_per_draw`` the mean over samples of each draw. Zou et al.'s claim
    (unstable gradient directions) predicts lower values for policy-trained models.
    """
    return _nearby_agreement(
        model,
        x,
        y,
        loss,
        radius=sigma,
        draws=draws,
        noise="normal",
        seed=seed,
        batch_size=batch_size,
    )


# --------------------------------------------------------------------------- dynamic indicators


def pgd_trajectory(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss: LossSpec = None,
    *,
    eps: float | None = None,
    norm: str = "linf",
    steps: int = 20,
    step_size: float | None = None,
    random_start: bool = False,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, Any]:
    """Follow PGD (the update of ``rlrobust.attacks.PGD``) and record what the attacker sees.

    Iterates x_0 (x, or a random start), ..., x_T with T = ``steps``:
    x_{k+1} = clamp01(P_eps(x_k + step_size * dir(g_k))), dir = sign (linf) or g / ||g||_2 (l2),
    g_k = grad_x L(f(x_k), y). The gradient is also taken at x_T, so every iterate has one.

    Returns per step k (lists over k, means over samples) and per sample (nested lists):

    - ``loss``: mean L at x_0..x_T (length T + 1); ``loss_per_sample`` (N x (T + 1)).
    - ``cosine``: mean cos(g_k, g_{k-1}) for k = 1..T (length T); ``cosine_per_sample``.
    - ``first_change``: per sample, the first k >= 1 at which argmax f(x_k) differs from the
      clean prediction argmax f(x), or -1 if it never does; ``changed_fraction`` the share of
      samples whose prediction changes at some step.
    - ``flips``: per sample, the number of steps k with argmax f(x_k) != argmax f(x_{k-1});
      many flips mean the attack oscillates across the decision boundary.
    - ``success_rate``: fraction with argmax f(x_T) != y; ``x_final`` is not stored (records
      stay small); ``final_distance`` is the largest ||x_T - x|| in the attack's norm, a check
      of the projection (it must not exceed eps).
    """
    _no_inference_mode("pgd_trajectory")
    check_inputs(x, y)
    norm = check_norm(norm)
    eps = check_eps(eps, norm)
    steps = check_positive_int(steps, "steps")
    if step_size is None:
        step_size = 0.01 if norm == "linf" else 2.5 * eps / steps
    step_size = check_positive_float(step_size, "step_size")
    batch_size = check_batch_size(batch_size)
    loss_fn = resolve_loss(loss)
    generator = make_generator(check_seed(seed))

    losses, cosines, firsts, flip_counts, success, final_distance = [], [], [], [], [], 0.0
    with model_frozen(model):
        for s in _chunks(x.shape[0], batch_size):
            xb, yb = x[s].detach(), y[s]
            with torch.no_grad():
                clean_prediction = model(xb).argmax(dim=1)
            # Drawn on the CPU generator, so the start does not depend on the device.
            start = random_start_cpu(xb, eps, norm, generator) if random_start else xb
            x_k = start
            loss_k, cos_k, predictions = [], [], []
            previous_grad = None
            for k in range(steps + 1):
                grad, logits, per_sample = _gradient_and_logits(model, loss_fn, x_k, yb)
                loss_k.append(per_sample.double())
                predictions.append(logits.argmax(dim=1))
                if previous_grad is not None:
                    cos_k.append(per_sample_cosine(grad, previous_grad))
                previous_grad = grad
                if k == steps:
                    break
                direction = grad.sign() if norm == "linf" else normalize_l2(grad)
                x_k = clamp01(project(x_k + step_size * direction, xb, eps, norm))
            preds = torch.stack(predictions, dim=1)  # (B, T + 1)
            changed = preds[:, 1:] != clean_prediction[:, None]
            first = torch.where(
                changed.any(dim=1),
                changed.double().argmax(dim=1) + 1,  # argmax finds the first True
                torch.full_like(yb, -1),
            )
            losses.append(torch.stack(loss_k, dim=1).cpu())
            cosines.append(torch.stack(cos_k, dim=1).cpu())
            firsts.append(first.cpu())
            flip_counts.append((preds[:, 1:] != preds[:, :-1]).sum(dim=1).cpu())
            success.append((preds[:, -1] != yb).cpu())
            delta = (x_k - xb).flatten(1)
            size = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
            final_distance = max(final_distance, float(size.max()) if size.numel() else 0.0)
    loss_all = torch.cat(losses)
    cos_all = torch.cat(cosines)
    first_all = torch.cat(firsts)
    flips = torch.cat(flip_counts)
    changed_any = first_all >= 0
    return {
        "loss": loss_all.mean(dim=0).tolist(),
        "loss_per_sample": loss_all.tolist(),
        "cosine": cos_all.mean(dim=0).tolist(),
        "cosine_per_sample": cos_all.tolist(),
        "cosine_summary": summarize(cos_all),
        "first_change": first_all.tolist(),
        "first_change_summary": summarize(first_all[changed_any]),
        "changed_fraction": float(changed_any.double().mean()),
        "flips": flips.tolist(),
        "flips_summary": summarize(flips),
        "success_rate": float(torch.cat(success).double().mean()),
        "final_distance": final_distance,
        "settings": {
            "eps": eps,
            "norm": norm,
            "steps": steps,
            "step_size": step_size,
            "random_start": bool(random_start),
            "seed": int(seed),
        },
        "n": int(x.shape[0]),
    }


def random_start_cpu(x: Tensor, eps: float, norm: str, generator: torch.Generator) -> Tensor:
    """``rlrobust.attacks.base.random_start`` with the draws made on the CPU generator."""
    return random_start(x.cpu(), eps, norm, generator).to(x.device)


# --------------------------------------------------------------------------- all at once


def static_indicators(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss: LossSpec = None,
    *,
    zero_threshold: float = 1e-8,
    radius: float = 0.01,
    draws: int = 4,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, Any]:
    """``gradient_norms`` and ``gradient_sign_agreement`` in one record."""
    return {
        "norms": gradient_norms(
            model, x, y, loss, zero_threshold=zero_threshold, batch_size=batch_size
        ),
        "sign_agreement": gradient_sign_agreement(
            model, x, y, loss, radius=radius, draws=draws, seed=seed, batch_size=batch_size
        ),
    }


def dynamic_indicators(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss: LossSpec = None,
    *,
    eps: float | None = None,
    norm: str = "linf",
    steps: int = 20,
    step_size: float | None = None,
    sigma: float = 0.01,
    draws: int = 8,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, Any]:
    """``pgd_trajectory`` and ``gradient_noise_stability`` in one record."""
    return {
        "trajectory": pgd_trajectory(
            model,
            x,
            y,
            loss,
            eps=eps,
            norm=norm,
            steps=steps,
            step_size=step_size,
            seed=seed,
            batch_size=batch_size,
        ),
        "noise_stability": gradient_noise_stability(
            model, x, y, loss, sigma=sigma, draws=draws, seed=seed, batch_size=batch_size
        ),
    }


__all__ = [
    "LossFn",
    "LossSpec",
    "dynamic_indicators",
    "gradient_noise_stability",
    "gradient_norms",
    "gradient_sign_agreement",
    "input_gradients",
    "mean_loss",
    "per_sample_cosine",
    "pgd_trajectory",
    "random_like",
    "resolve_loss",
    "static_indicators",
    "summarize",
    "summed_loss",
]
