"""rlrobust.stats against scipy, hand computations and a slow bootstrap loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from rlrobust.errors import RLRobustError
from rlrobust.stats import (
    binomial_two_sided_half,
    flags_interval,
    format_seed_summary,
    mcnemar_exact,
    paired_bootstrap,
    seed_summary,
    t_quantile,
    wilson_interval,
)

Z95 = 1.959963984540054  # the 0.975 quantile of the standard normal


# --- Wilson ---------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [0.95, 0.99, 0.8, 0.5])
@pytest.mark.parametrize(
    ("k", "n"), [(0, 1), (1, 1), (0, 10), (10, 10), (3, 7), (50, 100), (973, 1000), (1, 10000)]
)
def test_wilson_matches_scipy(k, n, level):
    ours = wilson_interval(k, n, level)
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    assert ours == pytest.approx((ref.low, ref.high), abs=1e-12)


def test_wilson_hand_computed():
    # 5 / 10: centre 0.5; half = z / (1 + z^2/10) * sqrt(0.025 + z^2/400) = 0.2634069...
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2365931, abs=1e-7)
    assert high == pytest.approx(0.7634069, abs=1e-7)


@pytest.mark.parametrize("n", [1, 7, 60, 10000])
def test_wilson_edges_touch_the_boundary(n):
    # At 0/n the interval is [0, z^2 / (n + z^2)]; at n/n it is [n / (n + z^2), 1].
    assert wilson_interval(0, n) == (0.0, pytest.approx(Z95**2 / (n + Z95**2), rel=1e-12))
    assert wilson_interval(n, n) == (pytest.approx(n / (n + Z95**2), rel=1e-12), 1.0)


def test_wilson_refuses_bad_input():
    with pytest.raises(RLRobustError, match="at least one trial"):
        wilson_interval(0, 0)
    with pytest.raises(RLRobustError, match="not between 0 and n"):
        wilson_interval(11, 10)
    with pytest.raises(RLRobustError, match=r"not in \(0, 1\)"):
        wilson_interval(1, 10, level=95)


def test_flags_interval_counts_the_ones():
    assert flags_interval([1, 0, 1, 1]) == wilson_interval(3, 4)


# --- across seeds -----------------------------------------------------------------------------


@pytest.mark.parametrize("df", [1, 2, 3, 4, 9, 29, 100, 1000])
@pytest.mark.parametrize("level", [0.95, 0.99, 0.9, 0.5])
def test_t_quantile_matches_scipy(df, level):
    assert t_quantile(level, df) == pytest.approx(sps.t.ppf(0.5 + level / 2, df), rel=1e-10)


def test_seed_summary_matches_scipy_t_interval():
    rng = np.random.default_rng(3)
    for n in (2, 3, 5, 12):
        values = rng.normal(70, 3, n)
        out = seed_summary(values)
        sem = values.std(ddof=1) / math.sqrt(n)
        ref = sps.t.interval(0.95, n - 1, loc=values.mean(), scale=sem)
        assert out["n"] == n and out["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert out["std"] == pytest.approx(values.std(ddof=1), rel=1e-12)
        assert out["interval"] == pytest.approx(list(ref), rel=1e-10)


def test_seed_summary_hand_computed():
    # 1, 2, 3: mean 2, std 1, t(0.975, 2) = 4.302653, half-width 4.302653 / sqrt(3) = 2.484138
    out = seed_summary([1.0, 2.0, 3.0])
    assert (out["mean"], out["std"]) == (2.0, 1.0)
    assert out["interval"] == pytest.approx([2 - 2.484138, 2 + 2.484138], abs=1e-6)


def test_one_seed_has_no_interval_and_says_so():
    out = seed_summary([71.5])
    assert out["mean"] == 71.5 and out["std"] is None and out["interval"] is None
    assert "one seed" in out["note"]
    assert format_seed_summary(out) == "71.50 (1 seed: no std, no interval)"
    with pytest.raises(RLRobustError, match="at least one seed"):
        seed_summary([])


def test_format_seed_summary_never_a_bare_mean():
    text = format_seed_summary(seed_summary([1.0, 2.0, 3.0]))
    assert text == "2.00 ± 1.00 [-0.48, 4.48]"


# --- McNemar --------------------------------------------------------------------------------


def test_mcnemar_hand_computed():
    # a alone right on 8, b alone on 2: p = 2 * P(X <= 2 | n = 10) = 2 * (1 + 10 + 45) / 1024
    a = [1] * 8 + [0] * 2 + [1] * 5 + [0] * 3
    b = [0] * 8 + [1] * 2 + [1] * 5 + [0] * 3
    out = mcnemar_exact(a, b)
    assert (out["a_only"], out["b_only"], out["both"], out["neither"]) == (8, 2, 5, 3)
    assert out["p_value"] == 112 / 1024


def test_mcnemar_matches_scipy_binomtest():
    rng = np.random.default_rng(0)
    for _ in range(40):
        n = int(rng.integers(1, 3000))
        a = rng.random(n) < rng.random()
        b = np.where(rng.random(n) < 0.7, a, rng.random(n) < 0.5)
        out = mcnemar_exact(a, b)
        k, m = out["a_only"], out["a_only"] + out["b_only"]
        ref = sps.binomtest(k, m, 0.5).pvalue if m else 1.0
        assert out["p_value"] == pytest.approx(min(ref, 1.0), rel=1e-9, abs=1e-300)


def test_mcnemar_identical_and_huge():
    flags = [1, 0, 1, 1, 0]
    assert mcnemar_exact(flags, flags)["p_value"] == 1.0
    # a one-sided 5000 / 0 split: p = 2 / 2^5000 underflows to 0.0 in float, exactly as it should
    assert binomial_two_sided_half(5000, 5000) == 0.0
    assert binomial_two_sided_half(3, 6) == 1.0


def test_paired_inputs_must_match():
    with pytest.raises(RLRobustError, match="one length"):
        mcnemar_exact([1, 0], [1, 0, 1])
    with pytest.raises(RLRobustError, match="at least one test image"):
        paired_bootstrap([], [])


# --- bootstrap ------------------------------------------------------------------------------


def _planted(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.random(n) < 0.8
    b = a.copy()
    b[rng.choice(np.flatnonzero(a), size=n // 10, replace=False)] = False  # b loses n/10 points
    return a.astype(int), b.astype(int)


def test_bootstrap_matches_a_slow_index_resampling_loop():
    a, b = _planted(200)
    rng = np.random.default_rng(123)
    slow = []
    for _ in range(4000):  # the definition: resample test images with replacement, keep pairs
        idx = rng.integers(0, len(a), len(a))
        slow.append(a[idx].mean() - b[idx].mean())
    ref = np.quantile(slow, [0.025, 0.975])
    out = paired_bootstrap(a, b, n_resamples=4000, seed=7)
    assert out["difference"] == pytest.approx(0.1)
    # two independent Monte Carlo runs: endpoints agree to about one step of 1/200
    assert out["interval"] == pytest.approx(list(ref), abs=0.0075)


def test_bootstrap_agrees_with_the_normal_approximation_for_large_n():
    a, b = _planted(5000, seed=2)
    d = a - b
    half = Z95 * d.std() / math.sqrt(len(d))  # the bootstrap's variance is var_pop(d) / n
    out = paired_bootstrap(a, b, n_resamples=20000, seed=0)
    assert out["interval"] == pytest.approx([d.mean() - half, d.mean() + half], abs=1.5e-3)


def test_bootstrap_is_seeded_and_degenerate_when_runs_agree():
    a, b = _planted(300)
    assert paired_bootstrap(a, b, seed=5) == paired_bootstrap(a, b, seed=5)
    assert paired_bootstrap(a, b, seed=5)["interval"] != paired_bootstrap(a, b, seed=6)["interval"]
    same = paired_bootstrap(a, a, n_resamples=100)
    assert same["difference"] == 0.0 and same["interval"] == [0.0, 0.0]
    with pytest.raises(RLRobustError, match="n_resamples"):
        paired_bootstrap(a, b, n_resamples=0)


def test_seed_interval_is_cut_at_the_bounds_and_says_so():
    from rlrobust.stats import seed_summary

    open_ = seed_summary([98.2, 99.0])
    assert open_["interval"][1] > 100  # two seeds: a wide t interval past 100 %
    cut = seed_summary([98.2, 99.0], bounds=(0.0, 100.0))
    assert cut["interval"][1] == 100.0 and cut["clipped"]
    assert cut["interval"][0] == pytest.approx(open_["interval"][0])
    inside = seed_summary([50.0, 52.0, 51.0], bounds=(0.0, 100.0))
    assert not inside["clipped"]
    assert inside["interval"] == seed_summary([50.0, 52.0, 51.0])["interval"]
