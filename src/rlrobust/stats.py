"""Uncertainty for accuracies: intervals over test images, over seeds, and paired tests.

Four tools, each for one question a reader of a results table asks:

- ``wilson_interval``: how sure is one accuracy measured on n test images? (binomial proportion)
- ``seed_summary``: how much does a result move between training seeds? (mean, sample std and a
  Student-t interval over the seeds)
- ``paired_bootstrap``: how large is the gap between two models on *the same* test images, and
  how sure is it? (percentile bootstrap over the images, resampling pairs)
- ``mcnemar_exact``: is that gap distinguishable from zero? (exact McNemar test: a two-sided
  binomial test on the discordant pairs)

Only the standard library and numpy are used (scipy is not a dependency); the tests check every
function against scipy and against hand computations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from rlrobust.errors import RLRobustError

DEFAULT_LEVEL = 0.95


def _check_level(level: float) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:
        raise RLRobustError(
            f"confidence level {level} is not in (0, 1); give e.g. 0.95 for a 95 % interval"
        )
    return level


def normal_quantile(level: float = DEFAULT_LEVEL) -> float:
    """z with P(|Z| <= z) = level for a standard normal Z (1.95996... for 0.95)."""
    return NormalDist().inv_cdf(0.5 + _check_level(level) / 2)


# --- one proportion ------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / n`` (E. B. Wilson 1927).

    The set of p for which the score test |p_hat - p| / sqrt(p (1 - p) / n) <= z does not reject;
    solving that quadratic in p gives

        centre    = (p_hat + z^2 / 2n) / (1 + z^2 / n)
        half-width = z / (1 + z^2 / n) * sqrt(p_hat (1 - p_hat) / n + z^2 / 4n^2)

    Unlike the normal (Wald) interval it stays inside [0, 1] and does not collapse to a point at
    0 / n or n / n, which is exactly where robust accuracies often sit. n = 0 is refused: there
    is no proportion to bound.
    """
    successes, n = int(successes), int(n)
    if n <= 0:
        raise RLRobustError(
            f"a Wilson interval needs at least one trial, got n = {n}; an evaluation on zero "
            "test images has no accuracy to bound (evaluate on a non-empty test set)"
        )
    if not 0 <= successes <= n:
        raise RLRobustError(f"successes = {successes} is not between 0 and n = {n}")
    z = normal_quantile(level)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
    # At 0 / n and n / n the interval touches the boundary exactly; pin it against rounding.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def flags_interval(flags: Sequence[int], level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Wilson interval of the mean of 0/1 per-sample flags."""
    return wilson_interval(int(sum(int(bool(f)) for f in flags)), len(flags), level)


# --- across seeds --------------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta (modified Lentz; Numerical Recipes
    3rd ed., eq. 6.4.5), converging fast for x < (a + 1) / (a + b + 2)."""
    tiny, eps = 1e-300, 1e-16
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_quantile(level: float, df: int) -> float:
    """t with P(|T| <= t) = level for Student's t with ``df`` degrees of freedom.

    Uses P(|T| > t) = I_{df / (df + t^2)}(df / 2, 1 / 2) (Abramowitz & Stegun 26.7.1 with 26.5.27)
    and bisects on x = df / (df + t^2), in which the tail is increasing.
    """
    level = _check_level(level)
    if df < 1:
        raise RLRobustError(f"the t distribution needs df >= 1, got {df}")
    tail = 1.0 - level
    low, high = 0.0, 1.0
    for _ in range(200):  # halving (0, 1) 200 times reaches adjacent floats
        mid = 0.5 * (low + high)
        if mid in (low, high):
            break
        if incomplete_beta(df / 2.0, 0.5, mid) < tail:
            low = mid
        else:
            high = mid
    x = 0.5 * (low + high)
    return math.sqrt(df * (1.0 - x) / x)


def seed_summary(
    values: Sequence[float],
    level: float = DEFAULT_LEVEL,
    bounds: tuple[float, float] | None = None,
) -> dict:
    """Mean, sample standard deviation (n - 1) and a Student-t interval for the mean over seeds.

    The interval is mean -/+ t_{df=n-1} * std / sqrt(n): it treats the seeds as independent draws
    from the distribution of training outcomes, which is what re-running with a new seed is.
    With one seed there is no spread to estimate: ``std`` and ``interval`` are None and ``note``
    says so (a single run's uncertainty over test images is its Wilson interval instead).
    ``bounds`` (e.g. (0, 100) for accuracies in %): the t interval knows no bounds and can
    reach past them with few seeds; it is cut at them and ``clipped`` says so.
    """
    level = _check_level(level)
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise RLRobustError("no values to summarise; give the metric of at least one seed")
    mean = math.fsum(values) / n
    out = {"n": n, "mean": mean, "std": None, "interval": None, "level": level}
    if n < 2:
        out["note"] = "one seed: no spread and no interval across seeds (run more seeds)"
        return out
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(level, n - 1) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    if bounds is not None:
        clipped = low < bounds[0] or high > bounds[1]
        low, high = max(low, bounds[0]), min(high, bounds[1])
        out["clipped"] = clipped
    out.update(std=std, interval=[low, high])
    return out


# --- two models on the same test images ----------------------------------------------------------


def _paired_flags(a: Sequence[int], b: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.int64).astype(bool)
    b = np.asarray(b, dtype=np.int64).astype(bool)
    if a.ndim != 1 or a.shape != b.shape:
        raise RLRobustError(
            f"paired statistics need two 1-D flag lists of one length (one verdict per test "
            f"image for each model), got shapes {a.shape} and {b.shape}"
        )
    if a.size == 0:
        raise RLRobustError("paired statistics need at least one test image, got none")
    return a, b


def paired_bootstrap(
    a: Sequence[int],
    b: Sequence[int],
    *,
    n_resamples: int = 10_000,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict:
    """Percentile bootstrap interval for acc(a) - acc(b) over the same test images.

    The resampling unit is the test image, so each resample keeps a point's two verdicts
    together (a paired bootstrap; Efron & Tibshirani 1993, ch. 13). The difference only depends
    on d_i = a_i - b_i in {-1, 0, +1}: drawing n images with replacement and averaging d is the
    same in distribution as drawing how many of each kind were picked from
    Multinomial(n, observed fractions) and averaging those counts, which costs O(n_resamples)
    instead of O(n_resamples * n). ``tests/test_stats.py`` checks it against an explicit loop
    over index resamples.
    """
    level = _check_level(level)
    if int(n_resamples) < 1:
        raise RLRobustError(f"n_resamples must be at least 1, got {n_resamples}")
    a, b = _paired_flags(a, b)
    n = a.size
    d = a.astype(np.int64) - b.astype(np.int64)
    counts = np.array([(d == -1).sum(), (d == 0).sum(), (d == 1).sum()])
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, counts / n, size=int(n_resamples))
    diffs = (draws[:, 2] - draws[:, 0]) / n
    alpha = 1.0 - level
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return {
        "difference": float(d.mean()),
        "interval": [float(low), float(high)],
        "level": level,
        "n_resamples": int(n_resamples),
        "seed": seed,
    }


def binomial_two_sided_half(k: int, n: int) -> float:
    """Two-sided exact p-value of k successes in n trials when p = 1/2.

    The distribution is symmetric, so the outcomes at most as likely as k are the two tails
    beyond min(k, n - k): p = min(1, 2 P(X <= min(k, n - k))). Summed in exact integers
    (C(n, i) / 2^n), so it is exact for any n.
    """
    if n == 0:
        return 1.0
    m = min(k, n - k)
    term, total = 1, 1  # C(n, 0)
    for i in range(m):
        term = term * (n - i) // (i + 1)
        total += term
    return min(1.0, 2 * total / 2**n)


def mcnemar_exact(a: Sequence[int], b: Sequence[int]) -> dict:
    """Exact McNemar test that models a and b have the same accuracy on these test images.

    Only discordant images carry information: ``a_only`` (a right, b wrong) and ``b_only``
    (a wrong, b right). Under the null each discordant image is equally likely to go either way,
    so a_only ~ Binomial(a_only + b_only, 1/2) and the p-value is the two-sided binomial test
    (McNemar 1947; the exact form recommended by Dietterich 1998 for comparing classifiers).
    """
    a, b = _paired_flags(a, b)
    a_only = int((a & ~b).sum())
    b_only = int((~a & b).sum())
    return {
        "a_only": a_only,
        "b_only": b_only,
        "both": int((a & b).sum()),
        "neither": int((~a & ~b).sum()),
        "p_value": binomial_two_sided_half(a_only, a_only + b_only),
    }


# --- formatting ----------------------------------------------------------------------------------


def format_interval(interval: Sequence[float] | None, scale: float = 100.0, digits: int = 1) -> str:
    """``[95.1, 98.8]`` (scaled to %), or ``""`` when there is no interval."""
    if interval is None:
        return ""
    low, high = interval
    return f"[{scale * low:.{digits}f}, {scale * high:.{digits}f}]"


def format_seed_summary(stat: dict, digits: int = 2) -> str:
    """``72.10 ± 1.20 [69.12, 75.08]`` (values as stored), or the mean with ``(1 seed)`` when no
    spread can be estimated -- never a bare mean."""
    mean = f"{stat['mean']:.{digits}f}"
    if stat.get("std") is None or stat.get("interval") is None or stat.get("n", 0) < 2:
        return f"{mean} (1 seed: no std, no interval)"
    return f"{mean} ± {stat['std']:.{digits}f} {format_interval(stat['interval'], 1.0, digits)}"
