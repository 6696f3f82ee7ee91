"""Every set measure of every source in every feature space, each with a 95 % interval.

Intervals come from half-sampling: `bootstraps` times, half of the source's images (and half of
the real ones) are drawn without replacement and every measure is computed again. For a mean,
the spread of half-sample values equals the sampling spread of the full set (the
finite-population factor ½ cancels the halved size), so the interval is the full-set value ±
1.96 standard deviations of the half-sample values: centred on the full-set value even for k-NN
measures, whose level depends on N, and steady with a few dozen half-samples (percentiles would
need hundreds). No image is ever twice in a set (duplicates would fake near-duplicates and
shrink k-NN balls).

The random space's value of a measure is the average over its networks, in every half-sample
alike (the same images for each network).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from noisevision.analyze import measures as M
from noisevision.analyze.statistics import STATISTICS

CONFIDENCE = 0.95
Z = 1.959964  # the normal quantile of a two-sided 95 % interval
VENDI_SIZES = (50, 100, 200, 500, 1000, 2000, 5000)


#: The range of bounded measures: their intervals are clipped to it.
BOUNDS = {
    **{k: (0.0, 1.0) for k in ("near_duplicates", "precision", "recall", "coverage")},
    **{k: (0.0, math.inf) for k in ("density", "fd", "augmentation_gap")},
    **{k: (1.0, math.inf) for k in ("vendi_q1", "vendi_qinf", "effective_rank")},
}


@dataclass
class Estimate:
    """A measure's full-set value and its 95 % half-sampling interval (NaN-free values only)."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | None]:
        return {k: (None if math.isnan(v) else v) for k, v in vars(self).items()}


def interval(
    value: float, halves: list[float], bounds: tuple[float, float] = (-math.inf, math.inf)
) -> Estimate:
    """`value` ± Z × the standard deviation of the half-sample values, clipped to `bounds`."""
    finite = torch.tensor([h for h in halves if math.isfinite(h)], dtype=torch.float64)
    if math.isnan(value) or len(finite) < 2:
        return Estimate(value, math.nan, math.nan)
    half_width = Z * float(finite.std())
    low, high = (min(max(v, bounds[0]), bounds[1]) for v in (value - half_width, value + half_width))
    return Estimate(value, low, high)


@dataclass
class SpaceData:
    """One feature space of one source: features [N, D] per network (one, or several averaged),
    the real set's [M, D] (None without --real) and the two views' [2, A, D]."""

    x: list[Tensor]
    r: list[Tensor] | None
    views: list[Tensor]


def _averaged(fns: list[Callable[[], dict[str, float]]]) -> dict[str, float]:
    """The average over networks of each measure (NaN if any network gives NaN)."""
    results = [f() for f in fns]
    return {k: sum(r[k] for r in results) / len(results) for k in results[0]}


def _measures(pairs: list[M.Pairs], gaps: list[tuple[Tensor, Tensor]], real: bool) -> dict[str, float]:
    def one(p: M.Pairs, g: tuple[Tensor, Tensor]) -> Callable[[], dict[str, float]]:
        return lambda: {
            **M.diversity(p),
            "augmentation_gap": M.augmentation_gap(*g),
            **(M.naturalism(p) if real else {}),
        }

    return _averaged([one(p, g) for p, g in zip(pairs, gaps, strict=True)])


def space_measures(data: SpaceData, bootstraps: int, seed: int, device: torch.device) -> dict[str, Estimate]:
    """Every measure of one source in one space, with intervals. Both sets are cut to the same
    size first (the smaller one's), so that FD and the k-NN measures compare equal N."""
    n = len(data.x[0]) if data.r is None else min(len(data.x[0]), len(data.r[0]))
    pairs = [
        M.Pairs.of(x[:n].to(device), None if data.r is None else data.r[i][:n].to(device))
        for i, x in enumerate(data.x)
    ]
    gaps = [(v[0].to(device), v[1].to(device)) for v in data.views]
    real = data.r is not None
    full = _measures(pairs, gaps, real)
    g = torch.Generator().manual_seed(seed)
    halves: dict[str, list[float]] = {k: [] for k in full}
    a = len(gaps[0][0])
    for _ in range(bootstraps):
        i = torch.randperm(n, generator=g)[: n // 2].to(device)
        j = torch.randperm(n, generator=g)[: n // 2].to(device)
        v = torch.randperm(a, generator=g)[: a // 2].sort().values.to(device)
        one = _measures([p.take(i, j) for p in pairs], [(x[v], y[v]) for x, y in gaps], real)
        for k, value in one.items():
            halves[k].append(value)
    return {k: interval(full[k], halves[k], BOUNDS.get(k, (-math.inf, math.inf))) for k in full}


def statistic_medians(
    stats: dict[str, Tensor], real: dict[str, Tensor] | None, bootstraps: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Per statistic: the median over images with its interval, and the KS distance to the real
    images' values with its interval (the same half-samples)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, values in stats.items():
        v = values.double()
        n = len(v)
        med = float(v.median())
        halves, ks_halves = [], []
        ks = M.ks_distance(v, real[name]) if real is not None else math.nan
        for _ in range(bootstraps):
            i = torch.randperm(n, generator=g)[: n // 2]
            halves.append(float(v[i].median()))
            if real is not None:
                j = torch.randperm(len(real[name]), generator=g)[: len(real[name]) // 2]
                ks_halves.append(M.ks_distance(v[i], real[name][j]))
        out[name] = {"median": interval(med, halves).to_dict()}
        if real is not None:
            out[name]["ks"] = interval(ks, ks_halves, (0.0, 1.0)).to_dict()
    return out


def vendi_curve(x: list[Tensor]) -> dict[int, float]:
    """Vendi (q = 1) of the first n images for growing n, averaged over networks: does the source
    keep adding new images, or repeat itself?"""
    n_all = len(x[0])
    sizes = [s for s in VENDI_SIZES if s < n_all] + [n_all]
    return {s: sum(M.vendi(f[:s].double()) for f in x) / len(x) for s in sizes}


def scalar_measures(source: dict[str, Any]) -> dict[str, float]:
    """A source's numbers as one flat {name: value}: SPACE:measure, median:STATISTIC, ks:STATISTIC."""
    flat = {}
    for sp, ms in source["measures"].items():
        for k, v in ms.items():
            flat[f"{sp}:{k}"] = v["value"]
    for k in STATISTICS:
        st = source["statistics"][k]
        flat[f"median:{k}"] = st["median"]["value"]
        if "ks" in st:
            flat[f"ks:{k}"] = st["ks"]["value"]
    return {k: (float("nan") if v is None else v) for k, v in flat.items()}
