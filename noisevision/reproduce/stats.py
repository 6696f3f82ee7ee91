"""Means over repetitions, their 95 % Student-t intervals, and paired t-tests between sources.

A reproduction repeats every cell over seeds (independent images, augmentations, initial weights
and probe draws). Two sources are compared on the seeds both have: the per-seed differences share
each seed's probe subsets, so pairing them removes that part of the noise. Pure Python: the
t quantile comes from the regularised incomplete beta function (a continued fraction), so that
no statistics package is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny, eps = 1e-300, 3e-16
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), 0 <= x <= 1."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p (bisection on t_cdf; 1e-12 is far below the digits reported)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    while hi - lo > 1e-12 * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class Interval:
    """The mean of `n` values and its 95 % Student-t interval (low = high = mean when n = 1:
    one value gives no interval)."""

    mean: float
    low: float
    high: float
    n: int
    sd: float | None  # sample standard deviation (n - 1); None for one value

    @property
    def half_width(self) -> float | None:
        return None if self.n < 2 else self.high - self.mean


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Interval:
    """mean ± t_{(1+confidence)/2, n-1} · sd / √n."""
    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(mean, mean, mean, 1, None)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, sd)


@dataclass(frozen=True)
class Paired:
    """A paired t-test of a - b over the seeds both have."""

    diff: Interval  # mean difference a - b and its interval
    p_value: float | None  # two-sided; None with one pair

    @property
    def significant(self) -> bool | None:
        """Whether the interval of the difference excludes 0 (p < 0.05); None with one pair."""
        return None if self.p_value is None else self.p_value < 1.0 - CONFIDENCE


def paired_test(a: Sequence[float], b: Sequence[float]) -> Paired:
    """Student's paired t-test of a[i] - b[i] (the same seed i): mean difference, its 95 %
    interval and the two-sided p-value. Identical differences (sd 0) are significant unless 0."""
    if len(a) != len(b):
        raise ValueError(f"paired values of unequal length: {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    diff = mean_interval(diffs)
    if diff.n < 2:
        return Paired(diff, None)
    if diff.sd == 0.0:
        return Paired(diff, 1.0 if diff.mean == 0.0 else 0.0)
    t = diff.mean / (diff.sd / math.sqrt(diff.n))
    return Paired(diff, 2.0 * t_cdf(-abs(t), diff.n - 1))
