"""Histogram matching of many rows at once, batched and sort-free (matlabPyrTools' histoMatch).

A histogram of each source row on [min, max] and a per-rank table of the target quantile function
give a per-bin linear map, as matlabPyrTools' `histoMatch` + `pointOp` do. On CPU the steps run
as fused numba kernels (`histmatch_cpu`), elsewhere as torch operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from noisevision.generators.registry import order_free


def _bincount(index: Tensor, size: int) -> Tensor:
    """Counts of each value of a flat int tensor in [0, size) -> [size], int64 on CPU, float32 on CUDA.

    torch.bincount on CPU; on CUDA it reads the maximum back to the host, so there an index_add_
    of ones is used instead (integer-valued float sums: exact and order-independent).
    """
    if index.device.type == "cpu":
        return torch.bincount(index, minlength=size)
    ones = torch.ones(1, device=index.device).expand(index.numel())
    with order_free():  # sums of ones: exact in any order, so the fast atomic kernel is kept
        return torch.zeros(size, device=index.device).index_add_(0, index, ones)


@dataclass(frozen=True)
class HistogramTarget:
    """Targets of a per-row histogram matching of G rows of `n` values.

    The target quantile function is tabulated at every rank k/n (k = 0 … n): linear
    interpolation of the target CDF between bin edges, i.e. MATLAB's interp1(nC, nX, oC) at all
    the CDF values a histogram of n values can take, so matching needs no search.
    table: float32 [R, n+1] quantile tables. Row g of the batch uses table[row[g]], or with
        `weight` the blend (1 - w)·table[row] + w·table[row + 1] (WMM targets share tables
        tabulated on a grid of shapes r, see wmm_targets).
    n_bins: bins of the source histogram (MATLAB: as many as the target has).
    mean, std: [G] when matched rows are standardised to them afterwards (the WMM), else None.
    """

    table: Tensor
    row: Tensor
    n_bins: int
    weight: Tensor | None = None
    mean: Tensor | None = None
    std: Tensor | None = None

    def quantiles(self, ranks: Tensor) -> Tensor:
        """Target values at integer ranks [G, m] (0 … n) -> float32 [G, m]."""
        width = self.table.shape[1]
        flat = self.table.view(-1)
        at = ranks.add((self.row * width)[:, None]).view(-1)
        q = flat.index_select(0, at).view(ranks.shape)  # (advanced indexing flat[at] is slower)
        if self.weight is not None:
            q = torch.lerp(q, flat.index_select(0, at.add_(width)).view(ranks.shape), self.weight[:, None])
        return q


def quantile_table(counts: Tensor, first_edge: Tensor, step: Tensor, n: int) -> Tensor:
    """Quantile function of histograms at every rank k/n: float32 [G, n+1] (see HistogramTarget).

    counts: [G, nb] bin counts (any scale); first_edge, step: [G]: bin j is
    [first_edge + j·step, first_edge + (j+1)·step), the density constant inside it.
    """
    c = counts.to(torch.float64)
    g, nb = c.shape
    c = c + c.mean(-1, keepdim=True) * 1e-8  # histoMatch's hack: no empty bins, CDF strictly increasing
    cdf = torch.cat((c.new_zeros(g, 1), c.cumsum(-1)), -1)
    cdf = cdf / cdf[:, -1:]  # [G, nb+1] at the bin edges
    inv_width = 1.0 / (cdf[:, 1:] - cdf[:, :-1])  # [G, nb]: inside bin j the CDF is linear
    first64, step64 = first_edge.to(torch.float64), step.to(torch.float64)
    if c.device.type == "cpu":
        from noisevision.generators.statistical import histmatch_cpu

        table = torch.empty(g, n + 1)
        arrays = (cdf, inv_width, first64, step64)
        histmatch_cpu.quantile_table(*(a.numpy() for a in arrays), n, table.numpy())
        return table
    return _quantile_table_torch(cdf, inv_width, first64, step64, n)


def _quantile_table_torch(cdf: Tensor, inv_width: Tensor, first: Tensor, step: Tensor, n: int) -> Tensor:
    g, nb = inv_width.shape
    # Bin of rank k: the last edge e with cdf_e <= k/n, i.e. with ceil(n·cdf_e) <= k.
    first_rank = torch.ceil(cdf * n).clamp_(0, n + 1).to(torch.int64)
    first_rank += torch.arange(g, device=cdf.device)[:, None] * (n + 2)
    hits = _bincount(first_rank.view(-1), g * (n + 2)).view(g, n + 2)
    j = hits[:, : n + 1].cumsum(-1).to(torch.int64).sub_(1).clamp_(0, nb - 1)  # [G, n+1]
    # value = edge_j + step·(k/n - cdf_j) / (cdf_{j+1} - cdf_j)
    u = torch.arange(n + 1, device=cdf.device, dtype=torch.float64) / n
    frac = (u - cdf.gather(1, j)).mul_(inv_width.gather(1, j)).clamp_(0.0, 1.0)
    value = frac.add_(j).mul_(step[:, None]).add_(first[:, None])
    return value.to(torch.float32)


def histogram_target(counts: Tensor, first_edge: Tensor, step: Tensor, n: int) -> HistogramTarget:
    """Target for matching rows of n values to the histograms `counts` [G, nb] (one per row)."""
    table = quantile_table(counts, first_edge, step, n)
    return HistogramTarget(table, torch.arange(table.shape[0], device=table.device), counts.shape[1])


def match_histograms(x: Tensor, target: HistogramTarget, overwrite: bool = False) -> Tensor:
    """Histogram-match rows of x to their targets, batched and sort-free.

    x: [G, n] (G rows) or [G, n, K] (G·K rows x[g, :, k], in (g, k) order: e.g. K = 2 for the
    real and imaginary parts of the steerable pyramid's band pairs). Returns the same shape.
    As matlabPyrTools' histoMatch: histogram the row on [min, max] with `n_bins` bins, map every
    bin edge through the target quantile function at the edge's CDF value, then map each value
    by linear interpolation between its bin's edges (pointOp). The map is invariant to affine
    changes of x, so MATLAB's standardisation before matching is implied. With target mean/std
    the result is standardised to them, from the histogram (values assumed uniform inside each
    source bin) so that it folds into the per-bin map instead of costing passes over x.
    On CPU the work runs in the fused kernels of histmatch_cpu, elsewhere as torch operations;
    `overwrite`: x is not needed afterwards, so on CPU the result may take its place (no fresh
    output, better for the cache).
    """
    # the CPU kernels read float32 bits as integer keys, in rows of one value or an interleaved pair
    if x.device.type == "cpu" and x.dtype == torch.float32 and (x.dim() == 2 or x.shape[2] <= 2):
        return _match_histograms_cpu(x, target, overwrite)
    return _match_histograms_torch(x, target)


def _match_histograms_cpu(x: Tensor, target: HistogramTarget, overwrite: bool = False) -> Tensor:
    from noisevision.generators.statistical import histmatch_cpu  # numba compiles (or loads) on first use

    shape = x.shape
    k = shape[2] if x.dim() == 3 else 1
    g0, n, nb = shape[0], shape[1], target.n_bins
    src = x.detach().contiguous()
    xv = src.numpy().reshape(g0, n * k)
    lo = np.empty((g0, k), xv.dtype)
    scale = np.empty_like(lo)
    counts = np.zeros((g0 * k, nb), np.int32)
    bits = xv.view(np.int64 if k == 2 else np.int32)  # the kernel finds ranges on integer keys
    histmatch_cpu.row_histograms(xv, bits, k, nb, lo, scale, counts, np.empty(n * k, np.int32))
    offset = np.empty((g0 * k, nb), xv.dtype)
    slope = np.empty_like(offset)
    none = np.zeros(0, np.float32)
    blend, standardise = target.weight is not None, target.mean is not None
    histmatch_cpu.bin_lines(
        counts,
        target.table.numpy(),
        target.row.numpy(),
        target.weight.numpy() if blend else none,
        blend,
        n,
        target.mean.numpy() if standardise else none,
        target.std.numpy() if standardise else none,
        standardise,
        offset,
        slope,
    )
    out = xv if overwrite else np.empty_like(xv)  # (a copy made by contiguous() is ours anyway)
    histmatch_cpu.map_rows(xv, k, lo, scale, offset, slope, out)
    return torch.from_numpy(out).view(shape)


def _match_histograms_torch(x: Tensor, target: HistogramTarget) -> Tensor:
    shape = x.shape
    k = shape[2] if x.dim() == 3 else 1
    g0, n = shape[0], shape[1]
    g, nb = g0 * k, target.n_bins
    # Work on [G0, n/W, W·K] blocks: a wide contiguous last dimension keeps every pass vectorised
    # (an interleaved K = 2 layout would otherwise make broadcasts and reductions crawl).
    w = math.gcd(n, 128)
    x = x.reshape(g0, n // w, w * k)

    def per_row(v: Tensor) -> Tensor:  # [G0, K] -> [G0, 1, W·K] matching x's layout
        return v.repeat(1, w)[:, None, :]

    lo = x.amin(1).view(g0, w, k).amin(1)  # [G0, K]
    scale = (nb * (1.0 - 1e-6)) / (x.amax(1).view(g0, w, k).amax(1) - lo).clamp_min(1e-30)
    t = torch.addcmul(per_row(-lo * scale), x, per_row(scale))  # [0, nb): position in source bins
    rows = torch.arange(g, device=x.device, dtype=torch.int32).view(g0, k) * nb
    index = t.to(torch.int32).clamp_(0, nb - 1).add_(per_row(rows)).view(-1)
    counts = _bincount(index, g * nb).view(g, nb)
    ranks = torch.nn.functional.pad(counts.cumsum(-1), (1, 0)).to(torch.int64)  # exact integers
    edges = target.quantiles(ranks)  # [G, nb+1] target value at each source edge
    if target.mean is not None:
        edges = _standardise_edges(edges, counts.to(edges.dtype), n, target.mean, target.std)
    slope = edges[:, 1:] - edges[:, :-1]  # [G, nb]
    offset = torch.addcmul(edges[:, :-1], torch.arange(nb, device=x.device), slope, value=-1.0)
    # One gather of (offset, slope) pairs packed as complex numbers costs about as much as one
    # gather of floats, less than two gathers.
    line = torch.view_as_real(torch.index_select(torch.complex(offset, slope).view(-1), 0, index))
    return torch.addcmul(line[:, 0], t.view(-1), line[:, 1]).view(shape)


def _standardise_edges(edges: Tensor, counts: Tensor, n: int, mean: Tensor, std: Tensor) -> Tensor:
    """Map the matched values' bin edges [G, nb+1] affinely so that the values get mean/std [G].

    The moments come from the histogram: values uniform inside each bin, except the row's minimum
    and maximum, which sit exactly on the outer edges (MATLAB maps them to the ends of the
    target's support, ±200, where they weigh heavily on the std). With s = a + b and
    q = a² + ab + b² for bin [a, b]: Σ x ≈ Σ c·s/2 and Σ x² ≈ Σ c·q/3, corrected at both ends.
    """
    a, b = edges[:, :-1], edges[:, 1:]
    s = a + b
    q = torch.addcmul(b * b, a, s)
    e = edges[:, [0, 1, -2, -1]]  # the outermost edges of both end bins
    ends = e.square().mul_(2.0).sub_(e * e[:, [1, 0, 3, 2]]).sub_(e[:, [1, 0, 3, 2]].square())
    # sum of x: Σc·s/2 - (e0 + e1)/2 - (e_nb-1 + e_nb)/2 + e0 + e_nb
    total = torch.linalg.vecdot(counts, s).sub_(e[:, 1]).sub_(e[:, 2]).add_(e[:, 0]).add_(e[:, 3]).mul_(0.5)
    # sum of x²: Σc·q/3 - (q_0 + q_nb-1)/3 + e0² + e_nb², i.e. (2e0² - e0·e1 - e1²)/3 at each end
    power = torch.linalg.vecdot(counts, q).add_(ends[:, 0]).add_(ends[:, 3]).div_(3.0)
    mu = total / n
    gain = std / (power / n - mu * mu).clamp_min(1e-30).sqrt()
    return torch.addcmul((mean - mu * gain)[:, None], edges, gain[:, None])
