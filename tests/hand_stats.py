"""Statistics by hand for the findings tests, independent of rlrobust.stats: the mean, the sample
standard deviation and the 95 % Student-t interval, with t quantiles from a printed table."""

from __future__ import annotations

import math

#: t_{0.975, df} from a printed table (scipy.stats.t.ppf(0.975, df) agrees)
T975 = {2: 4.302652729911275, 4: 2.7764451051977987}


def hand_summary(values: list[float]) -> tuple[float, float, float, float]:
    """(mean, std, low, high) of ``values`` over seeds."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T975[n - 1] * std / math.sqrt(n)
    return mean, std, mean - half, mean + half
