"""Sharpness of the loss in weight space: the top Hessian eigenvalue and the Hessian trace.

Kim ("An Analysis of Policy Loss", Eq. 21-28) argues that the reward terms of a policy loss
change the Hessian of the loss (its norm and sign structure) compared with cross-entropy;
Keskar et al. (2017) measure flatness by the Hessian's eigenvalues. Both numbers here need only
Hessian-vector products, which double backward gives without forming the Hessian (Pearlmutter
1994):

    H v = d/dtheta (grad_theta L(theta) . v).

- ``top_eigenvalues``: power iteration, v <- H v / ||H v||, with Rayleigh quotient
  lambda = v . H v; further eigenvalues by deflation (each new vector is kept orthogonal to
  the ones already found). Power iteration converges to the eigenvalue of largest *magnitude*:
  at a point that is not a minimum it can be negative (a concave direction, Kim Fig. 1).
- ``spectrum_ends``: the largest and the smallest *algebraic* eigenvalue. When the largest-
  magnitude eigenvalue lambda_1 is known, power iteration on the shifted operator H - lambda_1 I
  (whose spectrum lambda_i - lambda_1 is one-signed) converges to the other end of the spectrum.
  ``sharpness`` reports both ends; "top eigenvalue" in tables means the largest algebraic one
  (the sharpness of Keskar et al.), the largest-magnitude one is kept beside it.
- ``hessian_trace``: Hutchinson's estimator tr(H) = E[v . H v] for Rademacher v (+-1 entries);
  its variance per probe is 2 (||H||_F^2 - sum_i H_ii^2), so the standard error falls as
  1 / sqrt(probes).

L is the mean loss over a fixed set of batches (``landscape.as_batches``), the model runs in
eval mode, and the derivative is with respect to every parameter (or the ``parameters`` given).
Each module's mode and each parameter's ``requires_grad`` are restored afterwards, and no
``.grad`` is written. The generic ``power_iteration`` and ``hutchinson_trace`` take any
``hvp`` function, so they also serve for Hessians that are not a network's.

Example::

    batches = fixed_batches(load_dataset("digits", "test"), num_samples=256)
    record = sharpness(model, batches, iterations=50, probes=50, seed=0)
    record["top_eigenvalue"]["eigenvalues"][0], record["trace"]["estimate"]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from rlrobust.attacks.base import check_labels, check_positive_int, check_seed
from rlrobust.diagnostics.gradients import LossSpec, _no_inference_mode, resolve_loss, summed_loss
from rlrobust.diagnostics.landscape import as_batches
from rlrobust.errors import ConfigError
from rlrobust.seeding import make_generator

Vectors = list[Tensor]
HVP = Callable[[Vectors], Vectors]


# --------------------------------------------------------------------------- vector algebra


def _dot(a: Vectors, b: Vectors) -> Tensor:
    return sum((x.double() * y.double()).sum() for x, y in zip(a, b, strict=True))


def _norm(a: Vectors) -> Tensor:
    return torch.sqrt(_dot(a, a))


def _scale(a: Vectors, c: float | Tensor) -> Vectors:
    return [x * c for x in a]


def _axpy(a: Vectors, c: float | Tensor, b: Vectors) -> Vectors:
    """a + c b."""
    return [x + c * y for x, y in zip(a, b, strict=True)]


def _random_vectors(like: Vectors, generator: torch.Generator, kind: str) -> Vectors:
    """Gaussian or Rademacher vectors shaped like ``like``, drawn on the CPU, then moved."""
    out = []
    for t in like:
        if kind == "normal":
            draw = torch.randn(t.shape, generator=generator, dtype=t.dtype)
        else:
            draw = 2 * torch.randint(0, 2, t.shape, generator=generator).to(t.dtype) - 1
        out.append(draw.to(t.device))
    return out


# --------------------------------------------------------------------------- generic estimators


def power_iteration(
    hvp: HVP,
    like: Vectors,
    *,
    top_k: int = 1,
    iterations: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``top_k`` eigenvalues of largest magnitude of the symmetric operator ``hvp``.

    Stops an eigenvalue when |lambda_t - lambda_{t-1}| <= tol * (|lambda_{t-1}| + 1e-12), or
    after ``iterations`` products. Returns ``eigenvalues`` (python floats, in the order found),
    ``history`` (the Rayleigh quotient after every product, one list per eigenvalue),
    ``converged`` flags, ``iterations_used`` and the ``eigenvectors`` (tensors; drop them
    before writing JSON, or use ``sharpness``, which does).
    """
    top_k = check_positive_int(top_k, "top_k")
    iterations = check_positive_int(iterations, "iterations")
    if not math.isfinite(tol) or tol < 0:
        raise ConfigError(f"tol must be a finite number >= 0, got {tol}; e.g. tol=1e-4")
    generator = make_generator(check_seed(seed))
    found: list[Vectors] = []
    eigenvalues, histories, converged, used = [], [], [], []
    for _ in range(top_k):
        v = _random_vectors(like, generator, "normal")
        v = _deflate(v, found)
        v = _scale(v, 1.0 / float(_norm(v)))
        history: list[float] = []
        done = False
        value = 0.0
        for _ in range(iterations):
            hv = _deflate(hvp(v), found)
            value = float(_dot(v, hv))  # Rayleigh quotient, v has unit norm
            history.append(value)
            norm = float(_norm(hv))
            if norm == 0.0:  # H v = 0: v lies in the null space, the eigenvalue is 0
                done = True
                break
            v = _scale(hv, 1.0 / norm)
            if len(history) > 1 and abs(history[-1] - history[-2]) <= tol * (
                abs(history[-2]) + 1e-12
            ):
                done = True
                break
        eigenvalues.append(value)
        histories.append(history)
        converged.append(done)
        used.append(len(history))
        found.append(v)
    return {
        "eigenvalues": eigenvalues,
        "history": histories,
        "converged": converged,
        "iterations_used": used,
        "eigenvectors": found,
    }


def spectrum_ends(
    hvp: HVP,
    like: Vectors,
    largest_magnitude: float,
    *,
    iterations: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
) -> dict[str, Any]:
    """The largest and smallest algebraic eigenvalues, given the largest-magnitude one.

    ``largest_magnitude`` (lambda_1, from ``power_iteration``) is one end of the spectrum. The
    shifted operator H - lambda_1 I has eigenvalues lambda_i - lambda_1, all of one sign, and the
    largest in magnitude belongs to the other end; power iteration on it finds that end without
    the oscillation that near-equal positive and negative eigenvalues cause in plain iteration.
    """

    def shifted(v: Vectors) -> Vectors:
        return [hv - largest_magnitude * x for hv, x in zip(hvp(v), v, strict=True)]

    other = power_iteration(shifted, like, top_k=1, iterations=iterations, tol=tol, seed=seed)
    far_end = other["eigenvalues"][0] + largest_magnitude
    return {
        "largest_algebraic": max(largest_magnitude, far_end),
        "smallest_algebraic": min(largest_magnitude, far_end),
        "largest_magnitude": largest_magnitude,
        "converged": bool(other["converged"][0]),
        "iterations_used": other["iterations_used"][0],
    }


def _deflate(v: Vectors, found: Sequence[Vectors]) -> Vectors:
    """Remove the components along the unit vectors already found (Gram-Schmidt)."""
    for u in found:
        v = _axpy(v, -_dot(u, v).to(v[0].dtype), u)
    return v


def hutchinson_trace(
    hvp: HVP,
    like: Vectors,
    *,
    probes: int = 100,
    tol: float = 0.0,
    min_probes: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Hutchinson's estimate of tr(H): the mean of v . H v over Rademacher probes v.

    Runs ``probes`` probes, or stops early once the standard error is below
    ``tol * |estimate|`` (``tol > 0``) after at least ``min_probes``. Returns ``estimate``,
    ``std_error`` (sample std / sqrt(probes); None for one probe), ``probes_used``, ``samples`` (each v . H v) and
    ``history`` (the running mean after each probe).
    """
    probes = check_positive_int(probes, "probes")
    min_probes = check_positive_int(min_probes, "min_probes")
    if not math.isfinite(tol) or tol < 0:
        raise ConfigError(f"tol must be a finite number >= 0, got {tol}; 0 runs every probe")
    generator = make_generator(check_seed(seed))
    samples: list[float] = []
    history: list[float] = []
    std_error: float | None = None
    for k in range(1, probes + 1):
        v = _random_vectors(like, generator, "rademacher")
        samples.append(float(_dot(v, hvp(v))))
        mean = sum(samples) / k
        history.append(mean)
        std_error = _std_error(samples)
        if tol > 0 and k >= min_probes and std_error is not None and std_error <= tol * abs(mean):
            break
    return {
        "estimate": history[-1],
        "std_error": std_error,
        "probes_used": len(samples),
        "samples": samples,
        "history": history,
    }


def _std_error(samples: Sequence[float]) -> float | None:
    """Sample standard deviation / sqrt(k); None for fewer than 2 samples (JSON has no inf)."""
    k = len(samples)
    if k < 2:
        return None
    mean = sum(samples) / k
    variance = sum((s - mean) ** 2 for s in samples) / (k - 1)
    return math.sqrt(variance / k)


# --------------------------------------------------------------------------- network Hessians


@contextmanager
def hessian_mode(model: nn.Module, parameters: Sequence[Tensor]) -> Iterator[None]:
    """Eval mode, gradients on for ``parameters`` only; modes and flags restored on exit."""
    modes = [(module, module.training) for module in model.modules()]
    flags = [(param, param.requires_grad) for param in model.parameters()]
    chosen = {id(p) for p in parameters}
    try:
        model.eval()
        for param, _ in flags:
            param.requires_grad_(id(param) in chosen)
        yield
    finally:
        for module, training in modes:
            module.training = training
        for param, flag in flags:
            param.requires_grad_(flag)


def model_hvp(
    model: nn.Module,
    batches: Any,
    loss: LossSpec = None,
    parameters: Sequence[Tensor] | None = None,
) -> tuple[HVP, Vectors]:
    """(hvp, parameters): H v for the mean loss over the batch set, w.r.t. ``parameters``.

    Call the returned function inside ``hessian_mode(model, parameters)``; ``sharpness`` does.
    Each batch contributes (sum of its losses / total samples), so the result is the Hessian of
    the mean over all samples whatever the batch split.
    """
    pairs = as_batches(batches)
    loss_fn = resolve_loss(loss)
    params = list(model.parameters()) if parameters is None else list(parameters)
    if not params:
        raise ConfigError("the model has no parameters to take a Hessian of")
    total = sum(int(y.shape[0]) for _, y in pairs)

    def hvp(v: Vectors) -> Vectors:
        out = [torch.zeros_like(p) for p in params]
        for x, y in pairs:
            with torch.enable_grad():
                logits = model(x)
                check_labels(logits, y)
                value = summed_loss(loss_fn, logits, y) / total
                grads = torch.autograd.grad(value, params, create_graph=True, allow_unused=True)
                grads = [
                    torch.zeros_like(p) if g is None else g
                    for g, p in zip(grads, params, strict=True)
                ]
                inner = sum((g * u).sum() for g, u in zip(grads, v, strict=True))
                if not inner.requires_grad:  # the loss is linear in these parameters
                    continue
                hv = torch.autograd.grad(inner, params, allow_unused=True)
            out = [o if h is None else o + h.detach() for o, h in zip(out, hv, strict=True)]
        return out

    return hvp, [p.detach() for p in params]


def sharpness(
    model: nn.Module,
    batches: Any,
    loss: LossSpec = None,
    *,
    parameters: Sequence[Tensor] | None = None,
    top_k: int = 1,
    iterations: int = 100,
    tol: float = 1e-4,
    probes: int = 100,
    trace_tol: float = 0.0,
    seed: int = 0,
    trace: bool = True,
) -> dict[str, Any]:
    """Top Hessian eigenvalue(s) by power iteration and the trace by Hutchinson's estimator.

    Args:
        model: any classifier following the contract.
        batches: an (x, y) pair or a list of pairs: the fixed set the loss is averaged over.
        loss: as in ``gradients.resolve_loss`` (cross-entropy by default).
        parameters: the parameters to differentiate (default: all of the model's).
        top_k, iterations, tol: power iteration settings.
        probes, trace_tol: Hutchinson settings (``trace_tol`` > 0 allows an early stop).
        seed: seeds the starting vectors and the probes.
        trace: also estimate the trace (costs ``probes`` Hessian-vector products).

    Returns a JSON-able record: ``top_eigenvalue`` (the largest-magnitude eigenvalues, history,
    converged, iterations_used), ``spectrum_ends`` (largest and smallest algebraic eigenvalues,
    see ``spectrum_ends``), ``trace`` (estimate, std_error, probes_used, history) or None,
    ``num_parameters``, ``n_samples`` and the settings.
    """
    _no_inference_mode("sharpness")
    params = list(model.parameters()) if parameters is None else list(parameters)
    hvp, like = model_hvp(model, batches, loss, params)
    with hessian_mode(model, params):
        eig = power_iteration(hvp, like, top_k=top_k, iterations=iterations, tol=tol, seed=seed)
        eig.pop("eigenvectors")
        ends = spectrum_ends(
            hvp, like, eig["eigenvalues"][0], iterations=iterations, tol=tol, seed=seed + 2
        )
        tr = None
        if trace:
            tr = hutchinson_trace(hvp, like, probes=probes, tol=trace_tol, seed=seed + 1)
            tr.pop("samples")
    return {
        "top_eigenvalue": eig,
        "spectrum_ends": ends,
        "trace": tr,
        "num_parameters": int(sum(p.numel() for p in params)),
        "n_samples": sum(int(y.shape[0]) for _, y in as_batches(batches)),
        "settings": {
            "top_k": top_k,
            "iterations": iterations,
            "tol": tol,
            "probes": probes,
            "trace_tol": trace_tol,
            "seed": int(seed),
        },
    }


__all__ = [
    "hessian_mode",
    "hutchinson_trace",
    "model_hvp",
    "power_iteration",
    "sharpness",
    "spectrum_ends",
]
