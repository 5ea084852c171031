"""Models built to mislead gradient attacks: the adversary's side of the masking calibration.

A sceptical reviewer tries the masking verdict on models designed to look robust to gradient
attacks while not being robust. Each wrapper below takes an honest classifier ``inner`` and keeps
(or nearly keeps) its decisions, so its true robust accuracy is at most the inner model's, while
gradient attacks see something else. They are used by ``diagnostics/zoo.py`` to calibrate the
thresholds of ``masking_checks.py`` and by ``tests/test_masking_calibration.py``.

Families (docs/masking_flags.md, "Evasions considered"):

- ``GradientSwap``: output exactly ``inner(x)``, input gradient from a different path ``proxy``
  (the "straight-through" trick of Athalye et al. 2018, Sec. 4.1, used the other way round: to
  hide, not to attack). Its forward is ``proxy(x) + (inner(x) - proxy(x)).detach()``.
- ``InputSeededNoise``: noise that is a deterministic function of the input (a hash of the
  quantised pixels), added before ``inner``. No two forward passes on the same input differ, so
  the randomness check (M05) and AutoAttack's ``check_randomized`` cannot see it; each PGD
  iterate meets a fresh perturbation, as with a randomised defence.
- ``SignScrambledGradient``: identity forward, backward that flips the sign of the gradient on a
  fixed random subset of pixels (a corrupted BPDA-like backward).
- ``NoGradientPath``: the prediction is computed without autograd (``torch.no_grad`` inside).
- The classic ones (``Quantised``, ``SaturatedSoftmax``, ``DropoutInEval``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# A Mersenne prime: integer hashing modulo it is exact in int64 for the products below.
_PRIME = 2_147_483_647


class GradientSwap(nn.Module):
    """Forward exactly like ``inner``, backward through ``proxy`` (any module with same shapes)."""

    def __init__(self, inner: nn.Module, proxy: nn.Module) -> None:
        super().__init__()
        self.inner, self.proxy = inner, proxy

    def forward(self, x: Tensor) -> Tensor:
        shown = self.inner(x)
        path = self.proxy(x)
        # Value: path + (shown - path) == shown up to one float rounding; gradient: path's only.
        return path + (shown - path).detach()


class _ScrambleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, signs: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(signs)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (signs,) = ctx.saved_tensors
        return grad * signs, None


class SignScrambledGradient(nn.Module):
    """Identity forward into ``inner``; the backward flips the input gradient's sign on a fixed,
    seeded ``fraction`` of pixels, so sign-gradient steps go the wrong way there."""

    def __init__(self, inner: nn.Module, shape: tuple[int, ...], fraction: float = 0.4, seed=0):
        super().__init__()
        self.inner = inner
        generator = torch.Generator().manual_seed(seed)
        flip = torch.rand(shape, generator=generator) < fraction
        self.register_buffer("signs", 1.0 - 2.0 * flip.float())

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(_ScrambleGrad.apply(x, self.signs.to(x.dtype)))


def input_hash_noise(x: Tensor, sigma: float, levels: int = 4096, seed: int = 0) -> Tensor:
    """Noise in [-sigma, sigma], shaped like ``x``, that is a deterministic function of ``x``.

    The pixels are quantised to ``levels`` steps and hashed with integer arithmetic (exact, so
    the same input gives the same noise whatever the batch or device); any change of a pixel by
    more than 1/levels gives unrelated noise. Detached: no gradient flows through it.
    """
    flat = torch.round(x.detach().flatten(1).double() * levels).long()
    d = flat.shape[1]
    generator = torch.Generator().manual_seed(seed)
    a = torch.randint(1, 1 << 20, (d,), generator=generator).to(x.device)
    b = torch.randint(1, 1 << 20, (d,), generator=generator).to(x.device)
    c = torch.randint(0, 1 << 30, (d,), generator=generator).to(x.device)
    key = (flat * a).sum(1, keepdim=True) % _PRIME  # (N, 1), < 2**31
    # A second mixing round per pixel: (key * b + c) mod p, then a xorshift-like fold.
    h = (key * b + c) % _PRIME
    h = (h ^ (h >> 13)) * 1_274_126_177 % _PRIME
    u = h.double() / _PRIME  # in [0, 1)
    return (sigma * (2 * u - 1)).to(x.dtype).view_as(x)


class InputSeededNoise(nn.Module):
    """``inner(clamp(x + noise(x)))`` with noise seeded from ``x`` itself (``input_hash_noise``)."""

    def __init__(self, inner: nn.Module, sigma: float, levels: int = 4096, seed: int = 0):
        super().__init__()
        self.inner, self.sigma, self.levels, self.seed = inner, sigma, levels, seed

    def forward(self, x: Tensor) -> Tensor:
        noise = input_hash_noise(x, self.sigma, self.levels, self.seed)
        return self.inner((x + noise).clamp(0, 1))


class NoGradientPath(nn.Module):
    """Logits computed under ``torch.no_grad``: autograd has nothing to differentiate."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.inner(x)


class Quantised(nn.Module):
    """Shattered gradients: inputs rounded to ``levels + 1`` grey levels (zero gradient)."""

    def __init__(self, inner: nn.Module, levels: int = 4) -> None:
        super().__init__()
        self.inner, self.levels = inner, levels

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(torch.round(x * self.levels) / self.levels)


class SaturatedSoftmax(nn.Module):
    """Returns ``softmax(scale * logits)``: probabilities saturated to one-hot."""

    def __init__(self, inner: nn.Module, scale: float = 1e4) -> None:
        super().__init__()
        self.inner, self.scale = inner, scale

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.scale * self.inner(x), dim=1)


class DropoutInEval(nn.Module):
    """A randomised forward pass: input dropout that stays on in eval mode."""

    def __init__(self, inner: nn.Module, p: float = 0.3) -> None:
        super().__init__()
        self.inner, self.p = inner, p

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(F.dropout(x, self.p, training=True))
