"""Fused CPU kernels of the statistical models' histogram matching (numba).

Matching is most of the statistical models' time: every band of every channel, 10 rounds per image,
≈3.6 M values per 128 px image. As torch operations each value passes through about ten full-size
tensors (min, max, bin position, integer bin, row offset, bincount, gather, map); here one kernel
reads a row twice to find its range and histogram it, a second turns the histograms into the
per-bin lines of the map, and a third reads every row once more to map it.
histmatch.match_histograms calls these on CPU and runs the same steps as
torch operations on other devices.

Rows: x is [G0, n·K] float32, C-contiguous; row (g, c) is x[g, c::K] (K = 2: the real and imaginary
parts of the steerable pyramid's band pairs, interleaved). Source bins are [lo, hi] cut into nb
equal bins, like matlabPyrTools' histoMatch; bin positions t = (x - lo)·scale lie in [0, nb) by
construction (x - lo >= 0 and rounding is monotone), the clamp only guards against NaN.
"""

from __future__ import annotations

import numpy as np
from numba import njit


# Written as plain loops over one row at a time (a row view, its own slice of the counts, explicit
# comparisons rather than min()/max(), which carry NaN semantics): faster under numba than the
# same loops indexing the flat arrays.
@njit(cache=True, nogil=True, boundscheck=False)
def row_histograms(
    x: np.ndarray, k: int, nb: int, lo: np.ndarray, scale: np.ndarray, counts: np.ndarray
) -> None:
    """Per row: its minimum lo[g, c], bin scale scale[g, c] and histogram counts[g·K + c].

    lo, scale: [G0, K] like x's dtype (written); counts: int32 [G0·K, nb], zeros on entry.
    """
    g0 = x.shape[0]
    width = nb * (1.0 - 1e-6)
    for g in range(g0):
        for c in range(k):
            row = x[g, c::k]
            a = row[0]
            b = a
            for v in row:
                if v < a:
                    a = v
                if v > b:
                    b = v
            span = b - a
            if span < 1e-30:
                span = 1e-30
            s = x.dtype.type(width) / x.dtype.type(span)
            lo[g, c] = a
            scale[g, c] = s
            hist = counts[g * k + c]
            for v in row:
                j = np.int64((v - a) * s)
                if j < 0:
                    j = 0
                if j > nb - 1:
                    j = nb - 1
                hist[j] += 1


@njit(cache=True, nogil=True, boundscheck=False)
def quantile_table(
    cdf: np.ndarray, inv_width: np.ndarray, first: np.ndarray, step: np.ndarray, n: int, out: np.ndarray
) -> None:
    """histmatch.quantile_table's tabulation, walking each CDF once instead of gathering.

    cdf: float64 [G, nb+1] at the bin edges; inv_width: 1 / (cdf[j+1] - cdf[j]), [G, nb];
    first, step: float64 [G]; out: float32 [G, n+1], the target value at every rank k/n.
    """
    g, nb = inv_width.shape
    for r in range(g):
        c = cdf[r]
        e = 0  # edges 0 … e-1 have ceil(n·cdf) <= k: rank k lies in bin e - 1
        for k in range(n + 1):
            while e <= nb and np.ceil(c[e] * n) <= k:
                e += 1
            j = min(max(e - 1, 0), nb - 1)
            frac = (np.float64(k) / n - c[j]) * inv_width[r, j]
            if frac < 0.0:
                frac = 0.0
            if frac > 1.0:
                frac = 1.0
            out[r, k] = (frac + j) * step[r] + first[r]


@njit(cache=True, nogil=True, boundscheck=False)
def bin_lines(
    counts: np.ndarray,
    table: np.ndarray,
    row: np.ndarray,
    weight: np.ndarray,
    blend: bool,
    n: int,
    mean: np.ndarray,
    std: np.ndarray,
    standardise: bool,
    offset: np.ndarray,
    slope: np.ndarray,
) -> None:
    """The line offset[r, j] + t·slope[r, j] of every source bin j of every row r.

    Bin edge j goes to the target quantile at its rank (the counts below it): table[row[r], rank],
    or blended with table[row[r] + 1] by weight[r] when `blend` (histmatch.HistogramTarget).
    With `standardise` the edges are then mapped affinely so that the values get mean[r] and
    std[r], the moments taken from the histogram as histmatch._standardise_edges explains.
    counts: int32 [G, nb]; table: [R, n+1]; offset, slope: [G, nb] (written).
    """
    g, nb = counts.shape
    edges = np.empty(nb + 1, np.float64)
    for r in range(g):
        q0 = table[row[r]]
        q1 = table[row[r] + 1] if blend else q0
        w = weight[r] if blend else 0.0
        rank = 0
        for j in range(nb + 1):
            edges[j] = q0[rank] + w * (q1[rank] - q0[rank])
            if j < nb:
                rank += counts[r, j]
        if standardise:
            # values uniform inside each bin, except the minimum and maximum, exactly on the ends
            total = edges[0] + edges[nb]
            power = edges[0] * edges[0] + edges[nb] * edges[nb]
            for j in range(nb):
                inner = counts[r, j] - (j == 0) - (j == nb - 1)
                a = edges[j]
                b = edges[j + 1]
                total += inner * (a + b) * 0.5
                power += inner * (a * a + a * b + b * b) / 3.0
            mu = total / n
            var = power / n - mu * mu
            gain = std[r] / np.sqrt(var if var > 1e-30 else 1e-30)
            shift = mean[r] - mu * gain
            for j in range(nb + 1):
                edges[j] = edges[j] * gain + shift
        for j in range(nb):
            d = edges[j + 1] - edges[j]
            slope[r, j] = d
            offset[r, j] = edges[j] - j * d


@njit(cache=True, nogil=True, boundscheck=False)
def map_rows(
    x: np.ndarray,
    k: int,
    lo: np.ndarray,
    scale: np.ndarray,
    offset: np.ndarray,
    slope: np.ndarray,
    out: np.ndarray,
) -> None:
    """out = offset[j] + t·slope[j] for each value's bin position t and bin j = floor(t) (pointOp).

    offset, slope: [G0·K, nb], the line of every source bin of every row; out like x.
    """
    g0 = x.shape[0]
    nb = offset.shape[1]
    for g in range(g0):
        for c in range(k):
            row = x[g, c::k]
            dst = out[g, c::k]
            a = lo[g, c]
            s = scale[g, c]
            off = offset[g * k + c]
            slo = slope[g * k + c]
            for i in range(row.shape[0]):
                t = (row[i] - a) * s
                j = np.int64(t)
                if j < 0:
                    j = 0
                if j > nb - 1:
                    j = nb - 1
                dst[i] = off[j] + t * slo[j]
