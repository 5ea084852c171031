"""The attack contract and the small helpers every white-box attack shares.

Contract (DESIGN.md): an attack is configured at construction and called as
``attack(model, x, y) -> x_adv`` where

- ``x`` is a float tensor in [0, 1] of shape (N, ...) (images (N, C, H, W), signals (N, C, L),
  video (N, C, T, H, W)); ``y`` is an int64 tensor of shape (N,) with labels in [0, K);
- ``model(x)`` returns logits of shape (N, K);
- ``x_adv`` has the shape of ``x``, lies in the eps-ball around ``x`` in the chosen norm and in
  [0, 1];
- the model is left as it was found (each module's train/eval flag, each parameter's
  ``requires_grad``, no ``.grad`` created), and the caller's ``x`` is never modified;
- the output is a function of (settings, seed, model, x, y) only: every call draws its random
  numbers from a private generator seeded with ``seed``, never from the global RNG, so calling
  the same attack twice on the same batch gives the same ``x_adv``.

Threat models: ``"linf"`` (||x_adv - x||_inf <= eps) and ``"l2"`` (per sample
||x_adv - x||_2 <= eps). eps is in pixel units of [0, 1] images: 8/255 = 0.0314.

Example::

    attack = PGD(eps=8 / 255, norm="linf", steps=10, seed=0)
    x_adv = attack(model, x, y)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from numbers import Integral, Real
from typing import Any

import torch
from torch import Tensor, nn

from rlrobust.errors import ConfigError, DataError, RLRobustError
from rlrobust.seeding import make_generator

NORMS = ("linf", "l2")
TARGET_MODES = ("random", "least_likely")

# Defaults when no eps is given: the common CIFAR-10 budgets (Madry et al. 2018; Croce et al.
# RobustBench) in pixel units of [0, 1] images.
DEFAULT_EPS = {"linf": 8 / 255, "l2": 0.5}

# Added to per-sample norms before dividing, so an all-zero gradient gives a zero step, not NaN.
SAFE_DIVISION = 1e-12

LossFn = Callable[[Tensor, Tensor], Tensor]


# --------------------------------------------------------------------------- argument checks


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise ConfigError(f"unknown norm {norm!r}; choose one of: {', '.join(NORMS)}")
    return norm


def check_eps(eps: float | None, norm: str) -> float:
    """Resolve ``None`` to the default budget and reject budgets that cannot be meant."""
    if eps is None:
        return DEFAULT_EPS[norm]
    if isinstance(eps, bool) or not isinstance(eps, Real) or not math.isfinite(float(eps)):
        raise ConfigError(f"eps must be a finite number, got {eps!r}; pass e.g. eps=8/255")
    eps = float(eps)
    if eps < 0:
        raise ConfigError(
            f"eps must be >= 0, got {eps}; eps is the radius of the perturbation ball, "
            "e.g. eps=8/255 (= 0.0314) for linf or eps=0.5 for l2"
        )
    if norm == "linf" and eps > 1:
        raise ConfigError(
            f"linf eps = {eps} is larger than the whole pixel range; eps is in pixel units of "
            f"[0, 1] images, so write e.g. 8/255 = 0.0314 (did you mean eps={eps:g}/255 = "
            f"{eps / 255:.4f}?)"
        )
    return eps


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise ConfigError(f"seed must be an integer, got {seed!r}; pass e.g. seed=0")
    return int(seed)


def check_positive_int(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive_float(value: float, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, Real)
        or not math.isfinite(float(value))
        or value <= 0
    ):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_target_mode(target: str) -> str:
    if target not in TARGET_MODES:
        raise ConfigError(f"unknown target {target!r}; choose one of: {', '.join(TARGET_MODES)}")
    return target


def check_inputs(x: Tensor, y: Tensor) -> None:
    """Check what can be checked without the model: types, shapes, range, NaN, label sign."""
    if not isinstance(x, Tensor) or not torch.is_floating_point(x):
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise DataError(
            f"x must be a float tensor in [0, 1], got {got}; convert images with x.float() / 255"
        )
    if x.ndim < 2:
        raise DataError(
            f"x must have a batch dimension, shape (N, ...), got shape {tuple(x.shape)}; "
            "use x.unsqueeze(0) for a single example"
        )
    # One transfer to the host for the three checks (on a GPU each .item() waits for the device).
    has_nan, low, high = torch.stack(
        [torch.isnan(x).any().to(x.dtype), x.min(), x.max()]
    ).tolist()
    if has_nan:
        raise DataError("x contains NaN values; clean the input data before attacking it")
    if low < 0 or high > 1:
        raise DataError(
            f"x must lie in [0, 1], got values in [{low:.4g}, {high:.4g}]; feed raw pixels "
            "scaled to [0, 1] and put mean/std normalisation inside the model"
        )
    if not isinstance(y, Tensor) or y.dtype != torch.int64:
        got = y.dtype if isinstance(y, Tensor) else type(y).__name__
        raise DataError(f"y must be an int64 tensor of class labels, got {got}; use y.long()")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DataError(
            f"y must have shape (N,) = ({x.shape[0]},) to match x, got {tuple(y.shape)}; "
            "pass one label per example"
        )


def check_labels(logits: Tensor, y: Tensor) -> None:
    """Check the model's output shape and that every label is a valid class index."""
    if logits.ndim != 2 or logits.shape[0] != y.shape[0]:
        raise DataError(
            f"the model must return logits of shape (N, K) = ({y.shape[0]}, K), got "
            f"{tuple(logits.shape)}; make the model end in a layer with one output per class"
        )
    num_classes = logits.shape[1]
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        bad_labels = sorted(set(y[bad].tolist()))
        shown = ", ".join(str(v) for v in bad_labels[:10])
        raise DataError(
            f"labels {{{shown}}} are outside the model's class range [0, {num_classes - 1}]; "
            "check that the labels and the model's number of classes match"
        )


# --------------------------------------------------------------------------- model handling


@contextmanager
def model_frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and no parameter gradients for the duration of an attack; restored afterwards.

    Each module's own train/eval flag is saved (not just the top-level one), so a model with,
    say, frozen BatchNorm layers inside a training model comes back exactly as it was. Turning
    ``requires_grad`` off means backward computes the input gradient only: faster, and no
    ``.grad`` is ever written onto the parameters. Restoration runs even when the attack raises.
    """
    modes = [(module, module.training) for module in model.modules()]
    grad_flags = [(param, param.requires_grad) for param in model.parameters()]
    try:
        model.eval()
        for param, _ in grad_flags:
            param.requires_grad_(False)
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for param, flag in grad_flags:
            param.requires_grad_(flag)


# --------------------------------------------------------------------------- tensor helpers


def _per_sample(values: Tensor, like: Tensor) -> Tensor:
    """Reshape (N,) to (N, 1, 1, ...) so it broadcasts against a batch shaped like ``like``."""
    return values.view(-1, *([1] * (like.ndim - 1)))


def clamp01(x: Tensor) -> Tensor:
    return x.clamp(0.0, 1.0)


def l2_norms(v: Tensor) -> Tensor:
    """Per-sample Euclidean norms, shape (N,)."""
    return v.flatten(1).norm(p=2, dim=1)


def normalize_l2(g: Tensor) -> Tensor:
    """``g / ||g||_2`` per sample; an all-zero sample stays zero thanks to a tiny denominator."""
    return g / _per_sample(l2_norms(g) + SAFE_DIVISION, g)


def project(x_adv: Tensor, x: Tensor, eps: float, norm: str) -> Tensor:
    """Project ``x_adv`` onto the eps-ball around ``x`` (per sample). Does not clamp to [0, 1].

    linf: clip each coordinate of the perturbation to [-eps, eps].
    l2: scale the perturbation by min(1, eps / ||delta||_2).
    """
    delta = x_adv - x
    if norm == "linf":
        return x + delta.clamp(-eps, eps)
    factor = (eps / l2_norms(delta).clamp_min(SAFE_DIVISION)).clamp(max=1.0)
    return x + delta * _per_sample(factor, delta)


def random_start(x: Tensor, eps: float, norm: str, generator: torch.Generator) -> Tensor:
    """A random point in the eps-ball around ``x``, clamped to [0, 1].

    linf: uniform in the cube [-eps, eps]^d (Madry et al. 2018).
    l2: a uniformly random direction (a normalised Gaussian) times a radius drawn uniformly from
    [0, eps]. This is not uniform in the volume of the ball (that would need radius ~ eps * u^(1/d),
    which concentrates at the surface in high dimension); it is the common choice of PGD codes.
    """
    if norm == "linf":
        noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        delta = (2 * noise - 1) * eps
    else:
        direction = normalize_l2(
            torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        )
        radius = eps * torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
        delta = direction * _per_sample(radius, x)
    return clamp01(x + delta)


def input_gradient(
    model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, *, check: bool = False
) -> Tensor:
    """Gradient of ``sum_i loss_fn(model(x), y)_i`` with respect to ``x``; shape of ``x``.

    The per-sample losses are summed (not averaged), so each sample's gradient does not depend
    on the batch size. Gradients are enabled locally, so attacks also work when the caller runs
    under ``torch.no_grad()``. With ``check=True`` the logits' shape and the label range are
    validated before the loss is computed (an out-of-range label would otherwise surface as an
    index error deep inside the loss, or a device-side assert on GPU).
    """
    return logits_and_input_gradient(model, loss_fn, x, y, check=check)[1]


def logits_and_input_gradient(
    model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, *, check: bool = False
) -> tuple[Tensor, Tensor]:
    """``(model(x), input_gradient(...))`` from one forward pass; both detached.

    The logits come for free with the gradient, so an attack can see which samples its current
    iterate already fools without another forward pass (early exit, ``pgd.py``). Under a bf16
    autocast the loss is still computed on float32 logits; float32 and float64 logits are used
    as they are.
    """
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        logits = model(x_in)
        if check:
            check_labels(logits, y)
        low_precision = logits.dtype not in (torch.float32, torch.float64)
        loss = loss_fn(logits.float() if low_precision else logits, y).sum()
        (grad,) = torch.autograd.grad(loss, x_in)
    return logits.detach(), grad.detach()


def choose_targets(logits: Tensor, y: Tensor, mode: str, generator: torch.Generator) -> Tensor:
    """Target classes for a targeted attack, shape (N,), never equal to ``y``.

    ``"random"``: uniform over the K - 1 wrong classes, drawn from ``generator``.
    ``"least_likely"``: the wrong class with the lowest clean logit (Kurakin et al. 2017).
    """
    num_classes = logits.shape[1]
    if num_classes < 2:
        raise ConfigError("a targeted attack needs a model with at least 2 classes")
    if mode == "random":
        offset = torch.randint(
            1, num_classes, y.shape, generator=generator, device=y.device, dtype=y.dtype
        )
        return (y + offset) % num_classes
    masked = logits.detach().scatter(1, y[:, None], float("inf"))
    return masked.argmin(dim=1)


# --------------------------------------------------------------------------- the base class


class Attack:
    """Base class: stores and validates eps, norm and seed; enforces the contract in ``__call__``.

    Subclasses implement ``perturb(model, x, y)``, which runs with the model already frozen
    (eval mode, parameters without gradients) and receives a detached copy of ``x``. They add
    their own settings to ``describe()``.

    Args:
        eps: radius of the threat model's ball in pixel units of [0, 1] images. ``None`` gives
            8/255 for linf and 0.5 for l2.
        norm: ``"linf"`` or ``"l2"``.
        seed: seeds the private generator that each call creates.
    """

    name = "attack"

    def __init__(self, eps: float | None = None, norm: str = "linf", seed: int = 0) -> None:
        self.norm = check_norm(norm)
        self.eps = check_eps(eps, self.norm)
        self.seed = check_seed(seed)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        if torch.is_inference_mode_enabled():
            raise RLRobustError(
                "attacks need input gradients, which torch.inference_mode() forbids; call the "
                "attack outside inference_mode (torch.no_grad() is fine)"
            )
        check_inputs(x, y)
        # A detached copy: the attack can never write into, or attach a graph to, the caller's x.
        x = x.detach().clone()
        y = y.detach()
        with model_frozen(model):
            x_adv = self.perturb(model, x, y)
        return x_adv.detach()

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        raise NotImplementedError

    def generator(self, device: torch.device) -> torch.Generator:
        """A fresh private generator per call: same seed and inputs give the same output."""
        return make_generator(self.seed, device)

    def describe(self) -> dict[str, Any]:
        """JSON-able settings for result records: the attack's name and its parameters."""
        return {"name": self.name, "eps": self.eps, "norm": self.norm, "seed": self.seed}

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "name")
        return f"{type(self).__name__}({settings})"
