"""Square Attack (Andriushchenko, Croce, Flammarion & Hein 2020, "Square Attack: a query-efficient
black-box adversarial attack via random search"): score-based, no gradients.

Random search over perturbations on the boundary of the eps-ball. Each iteration changes one
random square window of side s per sample and keeps the change if the attack loss improves
(or the sample becomes misclassified):

- linf (Algorithm 2): start from vertical stripes x + eps * (+-1 per column and channel); a
  proposal sets the window to x + eps * (+-1 per channel).
- l2 (Algorithm 3): start from a grid of squares each filled with the "eta" pattern of two
  stacked concentric-rectangle bumps of opposite sign (Sec. 3.2); a proposal moves the mass of a
  second window into the first one and adds a fresh eta pattern there, then rescales the whole
  perturbation onto the sphere of radius eps.

The window side follows s = round(sqrt(p * H * W)), where the fraction p starts at ``p_init``
and is halved at iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 (Sec. 4; the schedule
is written for 10000 queries, ``rescale_schedule=True`` stretches it to ``n_queries``).

Loss: the margin loss max_{j != y} z_j - z_y (``losses.py``; positive iff misclassified), or
``"ce"``. A sample stops being queried as soon as it is misclassified.

Queries are counted per sample: the evaluation of the initial point is query 1, each proposal one
more, so a sample uses at most ``n_queries + 1`` forward passes (as in the reference code, where
``n_queries`` is the number of iterations after the initialisation). The clean point is never
queried. After a call, ``last_queries`` (int64, (N,)) and ``last_success`` (bool, (N,)) hold the
counts and which samples were fooled.

Defaults: n_queries = 5000 and p_init = 0.8 for both norms, the values of the standard AutoAttack
(Croce & Hein 2020) in which Square is the black-box member; the schedule is not rescaled there.

Differences from the authors' PyTorch code (pyautoattack): window positions, signs and the
transposition of the eta pattern are drawn per sample (the authors' original code does the same
per image; pyautoattack shares one window per batch), positions cover the whole range [0, H - s],
and a linf proposal that would not change the image has its signs redrawn instead of wasting a
query (as the original code). The model is only ever called under ``torch.no_grad()``.

Shapes: x (N, C, H, W) float in [0, 1], y (N,) int64. Signals (N, C, L) are treated as images of
height 1, video (N, C, T, H, W) as images with C * T channels.

Example::

    attack = Square(eps=8 / 255, n_queries=1000, seed=0)
    x_adv = attack(model, x, y)
    attack.last_queries.float().mean(), attack.last_success.float().mean()
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from rlrobust.attacks.base import (
    Attack,
    _per_sample,
    check_labels,
    check_positive_float,
    check_positive_int,
    clamp01,
)
from rlrobust.attacks.losses import get_loss
from rlrobust.errors import ConfigError

# Iterations at which p is halved (Andriushchenko et al. 2020, Sec. 4, for 10000 queries).
P_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
SQUARE_LOSSES = ("margin", "ce")
# The reference code's guard against division by zero when normalising windows.
_TINY = 1e-12
# How often a linf proposal that would leave the image unchanged is redrawn.
_REDRAWS = 10


def p_selection(p_init: float, iteration: int, n_queries: int, rescale: bool) -> float:
    """Fraction of pixels changed at ``iteration``: p_init halved at each passed threshold."""
    if rescale:
        iteration = int(iteration / n_queries * 10000)
    halvings = sum(iteration > threshold for threshold in P_SCHEDULE)
    return p_init / 2**halvings


def eta_rectangles(rows: int, cols: int, device: torch.device | None = None) -> Tensor:
    """Concentric rectangles around the centre, weight sum_{k >= r} 1 / (k + 1)^2 at ring r.

    Ring r of pixel (i, j) is its Chebyshev distance to the centre (rows // 2, cols // 2); the
    result is scaled to unit L2 norm (all-zero when ``rows`` or ``cols`` is 0).
    """
    i = torch.arange(rows, device=device).view(-1, 1)
    j = torch.arange(cols, device=device).view(1, -1)
    ring = torch.maximum((i - rows // 2).abs(), (j - cols // 2).abs())
    rings = max(rows // 2 + 1, cols // 2 + 1)
    weights = 1.0 / torch.arange(1, rings + 1, device=device, dtype=torch.float32) ** 2
    # tail[r] = sum_{k >= r} weights[k]
    tail = weights.flip(0).cumsum(0).flip(0)
    bump = tail[ring]
    return bump / bump.norm().clamp_min(_TINY)


def eta(s: int, device: torch.device | None = None) -> Tensor:
    """The l2 Square pattern (Sec. 3.2): a positive bump over a negative one, unit L2 norm."""
    top = s // 2
    pattern = torch.cat([eta_rectangles(top, s, device), -eta_rectangles(s - top, s, device)])
    return pattern / pattern.norm().clamp_min(_TINY)


class Square(Attack):
    """Score-based black-box random search; see the module docstring.

    Args:
        eps: ball radius in pixel units (default 8/255 for linf, 0.5 for l2).
        norm: ``"linf"`` or ``"l2"``.
        n_queries: iterations after the initial point (default 5000); at most n_queries + 1
            model queries per sample.
        p_init: initial fraction of pixels in a window (default 0.8, as in AutoAttack).
        loss: ``"margin"`` (default) or ``"ce"``; minimised margin z_y - max_{j != y} z_j.
        rescale_schedule: stretch the p schedule (written for 10000 queries) to ``n_queries``.
        seed: seeds the private generator (initialisation, windows, signs).

    After a call: ``last_queries`` (int64 (N,)) and ``last_success`` (bool (N,)).
    """

    name = "square"

    def __init__(
        self,
        eps: float | None = None,
        norm: str = "linf",
        n_queries: int = 5000,
        p_init: float = 0.8,
        loss: str = "margin",
        rescale_schedule: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(eps=eps, norm=norm, seed=seed)
        self.n_queries = check_positive_int(n_queries, "n_queries", minimum=0)
        self.p_init = check_positive_float(p_init, "p_init")
        if self.p_init > 1:
            raise ConfigError(
                f"p_init is a fraction of the image, got {p_init}; use a value in (0, 1], "
                "e.g. 0.8 (AutoAttack) or 0.05 (the paper's ImageNet linf setting)"
            )
        if loss not in SQUARE_LOSSES:
            raise ConfigError(
                f"unknown Square loss {loss!r}; choose one of: {', '.join(SQUARE_LOSSES)}"
            )
        self.loss = loss
        self.rescale_schedule = bool(rescale_schedule)
        self.last_queries: Tensor | None = None
        self.last_success: Tensor | None = None

    # ------------------------------------------------------------------ the search

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        shape = x.shape
        images = as_images(x)
        generator = self.generator(x.device)
        loss_fn = get_loss(self.loss)
        margin_fn = get_loss("margin")

        def query(candidates: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
            """One model query per row: (margin, objective), both to be maximised."""
            with torch.no_grad():
                logits = model(candidates.reshape(-1, *shape[1:])).float()
            margin = margin_fn(logits, labels)
            return margin, margin if self.loss == "margin" else loss_fn(logits, labels)

        with torch.no_grad():
            if self.norm == "linf":
                best = self._linf_init(images, generator)
                # The only two values a linf proposal can give a pixel, computed once.
                low, high = clamp01(images - self.eps), clamp01(images + self.eps)
            else:
                best = self._l2_init(images, generator)
            logits = model(best.reshape(shape))
            check_labels(logits, y)  # once: the labels and the output shape do not change
            margin = margin_fn(logits.float(), y)
            objective = margin if self.loss == "margin" else loss_fn(logits.float(), y)
            queries = torch.ones(len(x), dtype=torch.int64, device=x.device)
            fooled = margin > 0

            for iteration in range(self.n_queries if self.eps > 0 else 0):
                active = (~fooled).nonzero().squeeze(1)
                if active.numel() == 0:
                    break
                p = p_selection(self.p_init, iteration, self.n_queries, self.rescale_schedule)
                if self.norm == "linf":
                    candidate = self._linf_proposal(
                        low[active], high[active], best[active], p, generator
                    )
                else:
                    candidate = self._l2_proposal(images[active], best[active], p, generator)
                new_margin, new_objective = query(candidate, y[active])
                queries[active] += 1
                # Keep a proposal that raises the loss or fools the model (Algorithm 1).
                keep = (new_objective > objective[active]) | (new_margin > 0)
                kept = active[keep]
                best[kept] = candidate[keep]
                margin[kept] = new_margin[keep]
                objective[kept] = new_objective[keep]
                fooled[kept] = new_margin[keep] > 0

        self.last_queries = queries
        self.last_success = fooled
        return best.reshape(shape)

    # ------------------------------------------------------------------ linf

    def _linf_init(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Vertical stripes: +-eps per column and channel (Sec. 3.1)."""
        n, c, _, w = x.shape
        return clamp01(x + self.eps * random_signs((n, c, 1, w), generator, x))

    def _linf_proposal(
        self, low: Tensor, high: Tensor, best: Tensor, p: float, generator: torch.Generator
    ) -> Tensor:
        """Set one random s x s window per sample to x + eps * (+-1 per channel) (Algorithm 2).

        ``low`` and ``high`` are clamp01(x - eps) and clamp01(x + eps).
        """
        n, c, h, w = best.shape
        s = min(max(round(math.sqrt(p * h * w)), 1), h, w)
        mask = window_mask(random_corners(n, h, w, s, generator, best.device), s, h, w)
        up = torch.randint(0, 2, (n, c), generator=generator, device=best.device).bool()
        # A proposal equal to the current point would waste a query: redraw its signs, as the
        # authors' original code does (the window position stays). Per sample and channel: is
        # the window already at +eps (all_high) or at -eps (all_low) everywhere?
        outside = ~mask
        all_high = ((best == high) | outside).flatten(2).all(dim=2)
        all_low = ((best == low) | outside).flatten(2).all(dim=2)
        for _ in range(_REDRAWS):
            same = torch.where(up, all_high, all_low).all(dim=1)
            if not same.any():
                break
            redraw = torch.randint(0, 2, (n, c), generator=generator, device=best.device).bool()
            up = torch.where(same[:, None], redraw, up)
        value = torch.where(up[:, :, None, None], high, low)
        return torch.where(mask, value, best)

    # ------------------------------------------------------------------ l2

    def _l2_init(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """A grid of eta squares of side H // 5 with random signs, scaled to norm eps (Sec. 3.2)."""
        n, c, h, w = x.shape
        s = max(min(h, w) // 5, 1)
        tiles_h, tiles_w = h // s, w // s
        top0, left0 = (h - s * tiles_h) // 2, (w - s * tiles_w) // 2
        pattern = eta(s, x.device).to(x.dtype)
        delta = torch.zeros_like(x)
        for a in range(tiles_h):
            for b in range(tiles_w):
                transpose = torch.rand(n, generator=generator, device=x.device) < 0.5
                tile = torch.where(transpose.view(n, 1, 1, 1), pattern.T, pattern)
                signs = random_signs((n, c, 1, 1), generator, x)
                top, left = top0 + a * s, left0 + b * s
                delta[:, :, top : top + s, left : left + s] = tile * signs
        return clamp01(x + self.eps * unit_l2(delta))

    def _l2_proposal(self, x: Tensor, best: Tensor, p: float, generator: torch.Generator) -> Tensor:
        """Move the mass of window 2 into window 1 plus a fresh eta pattern (Algorithm 3)."""
        n, c, h, w = x.shape
        s = max(round(math.sqrt(p * h * w)), 3)
        s = min(s + 1 if s % 2 == 0 else s, h, w)
        delta = best - x
        corner1 = random_corners(n, h, w, s, generator, x.device)
        corner2 = random_corners(n, h, w, s, generator, x.device)
        index1 = window_index(corner1, n, c, s, x.device)
        union = window_mask(corner1, s, h, w) | window_mask(corner2, s, h, w)

        old_window = delta[index1]  # (n, c, s, s)
        window_norm = channel_norms(old_window)
        image_norm = _per_sample(delta.flatten(1).norm(dim=1), delta)
        union_norm = channel_norms(delta * union)

        pattern = eta(s, x.device).to(x.dtype)
        transpose = torch.rand(n, generator=generator, device=x.device) < 0.5
        fresh = torch.where(transpose.view(n, 1, 1, 1), pattern.T, pattern)
        fresh = fresh * random_signs((n, c, 1, 1), generator, x)
        new_window = fresh + old_window / (_TINY + window_norm)
        # The new window carries the energy of both windows plus whatever budget is left, so
        # that after rescaling the perturbation sits on the sphere of radius eps.
        budget = ((self.eps**2 - image_norm**2).clamp_min(0.0) / c + union_norm**2).sqrt()
        new_window = new_window / (_TINY + channel_norms(new_window)) * budget

        delta = delta.masked_fill(window_mask(corner2, s, h, w), 0.0)
        delta[index1] = new_window
        return clamp01(x + self.eps * unit_l2(delta))

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "n_queries": self.n_queries,
            "p_init": self.p_init,
            "loss": self.loss,
            "rescale_schedule": self.rescale_schedule,
        }


# ---------------------------------------------------------------------- tensor helpers


def as_images(x: Tensor) -> Tensor:
    """View a batch as (N, C, H, W): signals get height 1, extra leading axes join the channels."""
    if x.ndim == 2:
        return x.reshape(x.shape[0], 1, 1, x.shape[1])
    if x.ndim == 3:
        return x.reshape(x.shape[0], x.shape[1], 1, x.shape[2])
    return x.reshape(x.shape[0], -1, x.shape[-2], x.shape[-1])


def random_signs(
    shape: tuple[int, ...] | torch.Size, generator: torch.Generator, like: Tensor
) -> Tensor:
    bits = torch.randint(0, 2, tuple(shape), generator=generator, device=like.device)
    return (2 * bits - 1).to(like.dtype)


def random_corners(
    n: int, h: int, w: int, s: int, generator: torch.Generator, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Top-left corners of s x s windows, uniform over all positions inside the image."""
    top = torch.randint(0, h - s + 1, (n,), generator=generator, device=device)
    left = torch.randint(0, w - s + 1, (n,), generator=generator, device=device)
    return top, left


def window_mask(corner: tuple[Tensor, Tensor], s: int, h: int, w: int) -> Tensor:
    """Boolean (N, 1, H, W) mask of each sample's window."""
    top, left = corner
    rows = torch.arange(h, device=top.device)
    cols = torch.arange(w, device=top.device)
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + s)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + s)
    return (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)


def window_index(
    corner: tuple[Tensor, Tensor], n: int, c: int, s: int, device: torch.device
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Advanced index that reads or writes each sample's s x s window as an (N, C, s, s) block."""
    top, left = corner
    offsets = torch.arange(s, device=device)
    return (
        torch.arange(n, device=device).view(n, 1, 1, 1),
        torch.arange(c, device=device).view(1, c, 1, 1),
        (top[:, None] + offsets).view(n, 1, s, 1),
        (left[:, None] + offsets).view(n, 1, 1, s),
    )


def channel_norms(v: Tensor) -> Tensor:
    """L2 norm over the two spatial axes, per sample and channel: (N, C, 1, 1)."""
    return v.pow(2).sum(dim=(-2, -1), keepdim=True).sqrt()


def unit_l2(v: Tensor) -> Tensor:
    return v / _per_sample(v.flatten(1).norm(dim=1) + _TINY, v)
