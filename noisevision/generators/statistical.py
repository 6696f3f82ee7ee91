"""Statistical image models: 1/f^α spectrum, colour model, wavelet marginals (SPEC §3).

Every image samples a small model (spectrum slopes, a colour model, WMM band shapes), starts from
white noise in a decorrelated colour space and, `n_iter` times, imposes the spectrum, then the
wavelet marginals, then the colour histograms (each only if the variant uses it); the channels are
then rotated back to RGB with the colour model's PCA and mean colour and the whole image is
min–max rescaled to 0..255. This follows the MATLAB code that produced the paper's data.

Everything is batched: per-image parameters (number of colours, blur size, slopes …) live in
tensors and differ inside a batch; histogram matching is sort-free (a histogram of the source
on [min, max] and a per-rank table of the target quantile function, as matlabPyrTools'
`histoMatch` + `pointOp` do); the steerable pyramids run as cached FFT masks (steerable.py;
by default MATLAB's own spatial pyramid, which decides the look of the WMM images). Every random
number comes from the image's own key, so an image is the same bytes at any batch size or order.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from noisevision.errors import NoisevisionError
from noisevision.generators import steerable
from noisevision.generators.registry import Generator, GeneratorSpec, order_free, register
from noisevision.rng import Rng

MAX_COLORS = 22  # K = 3 + floor(20 U) is at most 22
COLOR_BINS = 256  # bins of the colour target histograms (MATLAB get_image_histograms)
WMM_GRID = (-200.0, 200.0, 0.5)  # value grid of the WMM target densities, x = -200:0.5:200


# ============================================================================ helpers
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


# ============================================================================ histogram matching
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
        from noisevision.generators import histmatch_cpu

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
    if x.device.type == "cpu":
        return _match_histograms_cpu(x, target, overwrite)
    return _match_histograms_torch(x, target)


def _match_histograms_cpu(x: Tensor, target: HistogramTarget, overwrite: bool = False) -> Tensor:
    from noisevision.generators import histmatch_cpu  # numba compiles (or loads) on first use

    shape = x.shape
    k = shape[2] if x.dim() == 3 else 1
    g0, n, nb = shape[0], shape[1], target.n_bins
    src = x.detach().contiguous()
    xv = src.numpy().reshape(g0, n * k)
    lo = np.empty((g0, k), xv.dtype)
    scale = np.empty_like(lo)
    counts = np.zeros((g0 * k, nb), np.int32)
    histmatch_cpu.row_histograms(xv, k, nb, lo, scale, counts)
    offset = np.empty((g0 * k, nb), xv.dtype)
    slope = np.empty_like(offset)
    none = np.zeros(0, np.float32)
    blend, standardise = target.weight is not None, target.mean is not None
    histmatch_cpu.bin_lines(
        counts, target.table.numpy(), target.row.numpy(), target.weight.numpy() if blend else none, blend,
        n, target.mean.numpy() if standardise else none, target.std.numpy() if standardise else none,
        standardise, offset, slope,
    )  # fmt: skip
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
    # gather of floats: a quarter less time than two gathers.
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


# ============================================================================ colour model
def box_blur_same(img: Tensor, size: Tensor) -> Tensor:
    """m×m mean filter with zero padding, m per image: MATLAB convn(img, ones(m)/m², 'same').

    img: [B, C, N, N]; size: int [B] (m ≥ 1). 'same' keeps the window [i - ceil(m/2) + 1,
    i + floor(m/2)] (for even m it leans forward, as MATLAB's centre does); pixels outside the
    image count as zeros, so borders darken. Running sums over the zero-padded image, one pass
    per distinct m in the batch (at most 10 sizes).
    """
    out = torch.empty_like(img)
    for m in size.unique().tolist():
        pick = (size == m).nonzero()[:, 0]
        x = img.index_select(0, pick)
        out.index_copy_(0, pick, _window_sums(_window_sums(x, m, -2), m, -1) / float(m * m))
    return out


def _window_sums(x: Tensor, m: int, dim: int) -> Tensor:
    """Sums over the windows [i - ceil(m/2) + 1, i + floor(m/2)] along `dim` (-2 or -1), zeros outside."""
    before = (m + 1) // 2  # the window's ceil(m/2) - 1 pixels back, plus the exclusive start
    pad = (0, 0, before, m - before) if dim == -2 else (before, m - before)
    cs = torch.nn.functional.pad(x, pad).cumsum(dim)  # zeros added to a sum change nothing
    n = x.shape[dim]
    return cs.narrow(dim, m, n) - cs.narrow(dim, 0, n)


def sym3_eigh(a: Tensor, sweeps: int = 6) -> tuple[Tensor, Tensor]:
    """Eigen-decomposition of symmetric 3×3 matrices [B, 3, 3] by cyclic Jacobi rotations.

    Pure elementwise tensor code, so each matrix's result does not depend on the batch (batched
    LAPACK/cuSOLVER choose algorithms by batch size); at most `sweeps` sweeps. Returns
    eigenvalues [B, 3] in descending order and eigenvectors as columns [B, 3, 3], each with a
    non-negative component sum.
    """
    a = a.to(torch.float64).clone()
    v = torch.eye(3, dtype=torch.float64, device=a.device).expand_as(a).clone()
    for _ in range(sweeps):
        for p, q in ((0, 1), (0, 2), (1, 2)):
            apq = a[:, p, q]
            app, aqq = a[:, p, p], a[:, q, q]
            small = apq.abs() < 1e-300
            theta = (aqq - app) / (2.0 * torch.where(small, torch.ones_like(apq), apq))
            t = torch.sign(theta) / (theta.abs() + torch.sqrt(theta * theta + 1.0))
            t = torch.where(theta == 0, torch.ones_like(t), t)
            t = torch.where(small, torch.zeros_like(t), t)
            cos = 1.0 / torch.sqrt(t * t + 1.0)
            sin = t * cos
            rot = torch.eye(3, dtype=torch.float64, device=a.device).repeat(a.shape[0], 1, 1)
            rot[:, p, p], rot[:, q, q], rot[:, p, q], rot[:, q, p] = cos, cos, sin, -sin
            # a <- Rᵀ a R, v <- v R (3×3 products written out: deterministic per matrix)
            a = _mm3(_mm3(rot.transpose(1, 2), a), rot)
            v = _mm3(v, rot)
        # Converged matrices only get identity rotations from here on (exactly), so stopping
        # once all are converged (usually after 4 sweeps) changes no result. On CPU only: on a GPU
        # the test would wait for the device at every sweep.
        if a.device.type == "cpu" and bool((a[:, [0, 0, 1], [1, 2, 2]].abs() < 1e-300).all()):
            break
    w = torch.diagonal(a, dim1=1, dim2=2)
    order = torch.argsort(-w, dim=1, stable=True)
    w = w.gather(1, order)
    v = v.gather(2, order[:, None, :].expand(-1, 3, -1))
    sign = torch.where(v.sum(1, keepdim=True) < 0, -1.0, 1.0)
    return w, v * sign


def _mm3(x: Tensor, y: Tensor) -> Tensor:
    """Batched 3×3 product as broadcast multiply-sum (no batch-size-dependent BLAS path)."""
    return (x[:, :, :, None] * y[:, None, :, :]).sum(2)


def sample_color_model(rng: Rng, res: int) -> dict[str, Tensor]:
    """The colour model of SPEC §3 for each image of the batch.

    K = 3 + floor(20U) colours uniform in RGB, proportions 0.001 + U (normalised), a multinomial
    assignment of the res² pixels sorted into contiguous bands (MATLAB's column-major order:
    vertical stripes), ×256, an m×m box blur (m = ceil(10U)), per-pixel noise 10U, rescaled to
    0..256. Its PCA gives the decorrelated space; the targets are the 256-bin histograms of the
    projected channels. Returns tensors on rng's device:
      n_colors [B] int, colors [B, 22, 3], proportions [B, 22] (0 past K), color_counts [B, 22]
      (pixels per colour), blur [B] int,
      reference [B, 3, N, N] (the blurred image), pc [B, 3, 3] (principal axes as columns,
      descending variance), mean [B, 3], hist_counts [B, 3, 256], hist_lo / hist_step [B, 3].
    """
    dev, b, npix = rng.device, rng.batch, res * res
    n_colors = 3 + (20.0 * rng.uniform()).floor().to(torch.int64)  # [B] 3..22
    slot = torch.arange(MAX_COLORS, device=dev)
    colors = rng.uniform(MAX_COLORS, 3)  # [B, 22, 3]
    props = (0.001 + rng.uniform(MAX_COLORS)) * (slot[None] < n_colors[:, None])
    props = props / props.sum(1, keepdim=True)
    counts = multinomial_counts(props.cumsum(1), rng.uniform(npix))  # [B, 22]
    # Sorted, the pixels of colour k fill a contiguous run of counts_k positions; MATLAB reshapes
    # that column-major: position p -> (row p % N, column p // N).
    ref = torch.repeat_interleave(colors.reshape(-1, 3), counts.view(-1), dim=0, output_size=b * npix)
    ref = (256.0 * ref).view(b, res, res, 3).permute(0, 3, 2, 1).contiguous()  # [B, 3, N, N]
    blur = (10.0 * rng.uniform()).ceil().clamp_min(1).to(torch.int64)  # [B] 1..10
    ref = box_blur_same(ref, blur)
    ref = ref + 10.0 * rng.uniform(3, res, res)  # per-pixel noise (MATLAB, not the port's scalar)
    flat = ref.reshape(b, -1)
    flat = flat - flat.amin(1, keepdim=True)
    ref = (256.0 * flat / flat.amax(1, keepdim=True)).view(b, 3, res, res)
    pc, mean = color_pca(ref)
    proj = project_colors(ref, pc, mean)  # [B, 3, N, N]
    p = proj.reshape(b * 3, -1)
    lo, hi = p.amin(1), p.amax(1)
    step = (hi - lo).clamp_min(1e-12) / COLOR_BINS
    idx = ((p - lo[:, None]) / step[:, None]).to(torch.int64).clamp_(0, COLOR_BINS - 1)
    idx = idx + torch.arange(b * 3, device=dev)[:, None] * COLOR_BINS
    hist = _bincount(idx.view(-1), b * 3 * COLOR_BINS).view(b, 3, COLOR_BINS)
    return {
        "n_colors": n_colors,
        "colors": colors,
        "proportions": props,
        "color_counts": counts,
        "blur": blur,
        "reference": ref,
        "pc": pc,
        "mean": mean,
        "hist_counts": hist,
        "hist_lo": lo.view(b, 3),
        "hist_step": step.view(b, 3),
    }


def multinomial_counts(cdf: Tensor, u: Tensor) -> Tensor:
    """Pixels per colour, int64 [B, K]: pixel p draws colour k = #{j: cdf_j <= u_p}, i.e. u_p in
    [cdf_{k-1}, cdf_k); the last slot takes any pixel past a cdf_K that rounded below 1.

    cdf: [B, K] cumulative proportions; u: [B, P] uniform numbers, one per pixel.
    """
    b, k = cdf.shape
    if cdf.device.type == "cpu":
        from noisevision.generators import color_cpu  # numba compiles (or loads) on first use

        counts = torch.zeros(b, k, dtype=torch.int64)
        color_cpu.multinomial_counts(cdf.contiguous().numpy(), u.contiguous().numpy(), counts.numpy())
        return counts
    return _multinomial_counts_torch(cdf, u)


def _multinomial_counts_torch(cdf: Tensor, u: Tensor) -> Tensor:
    b, k = cdf.shape
    label = torch.searchsorted(cdf, u, right=True).clamp_(max=k - 1)
    label += torch.arange(b, device=cdf.device)[:, None] * k
    return _bincount(label.view(-1), b * k).view(b, k).to(torch.int64)


def color_pca(img: Tensor) -> tuple[Tensor, Tensor]:
    """MATLAB colorPCA: mean colour [B, 3] and principal axes [B, 3, 3] (columns, descending).

    Axis signs matter for the variants without colour histograms: their decorrelated channels
    keep the white-noise mean 128, so the mean colour of an image is 128·(v1 + v2 + v3) + μ.
    MATLAB's eigs (LAPACK) leaves signs unspecified; the first axis pointing away from grey
    (component sum <= 0) and the others towards it reproduces the released images' colour
    saturation (mean chroma of stat-spectrum ≈ 92 vs 90 in paper_gallery, stat-wmm ≈ 50 vs 47;
    all axes towards grey gives ≈ 65 and 40).
    """
    b = img.shape[0]
    x = img.reshape(b, 3, -1).to(torch.float64)
    mean = x.mean(-1)
    x = x - mean[:, :, None]
    pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    dots = torch.stack([torch.linalg.vecdot(x[:, i], x[:, j]) for i, j in pairs], -1)  # [B, 6]
    scatter = dots[:, [0, 1, 2, 1, 3, 4, 2, 4, 5]].view(b, 3, 3)  # x'x, symmetric
    _, pc = sym3_eigh(scatter)  # component sums >= 0
    pc = pc * torch.tensor([-1.0, 1.0, 1.0], dtype=pc.dtype, device=pc.device)
    return pc.to(img.dtype), mean.to(img.dtype)


def project_colors(img: Tensor, pc: Tensor, mean: Tensor) -> Tensor:
    """RGB [B, 3, N, N] -> decorrelated channels c_j = (x - μ)·v_j."""
    x = img - mean[:, :, None, None]
    return (pc[:, :, :, None, None] * x[:, :, None]).sum(1)


def unproject_colors(chan: Tensor, pc: Tensor, mean: Tensor) -> Tensor:
    """Decorrelated channels [B, 3, N, N] -> RGB: MATLAB inv_colorPCA (x = c·PCᵀ + μ)."""
    return (pc[:, :, :, None, None] * chan[:, None]).sum(2) + mean[:, :, None, None]


# ============================================================================ spectrum
def sample_slopes(rng: Rng, slope_range: tuple[float, float], jitter: float) -> dict[str, Tensor]:
    """s ~ U(slope_range), d ~ N(0, jitter²); α_x = s + d, α_y = s − d (SPEC §3). [B] each."""
    s = rng.uniform(low=slope_range[0], high=slope_range[1])
    d = rng.normal(std=jitter)
    return {"slope": s, "slope_jitter": d, "alpha_x": s + d, "alpha_y": s - d}


def spectrum_amplitude(alpha_x: Tensor, alpha_y: Tensor, res: int, onesided: bool = True) -> Tensor:
    """A = 1 / (1e-16 + |f_x/N|^α_x + |f_y/N|^α_y), zero at DC (SPEC §3).

    alpha_x, alpha_y: [B] (α_x for the horizontal frequency, along columns). Returns float32
    [B, N, N/2+1] on the rfft2 grid (onesided) or [B, N, N] on the fft2 grid, scaled to unit
    total power Σ A² (the scale is irrelevant: imposing restores each channel's std).
    """
    dev = alpha_x.device
    fy = torch.fft.fftfreq(res, device=dev, dtype=torch.float64).abs()  # |f_y / N|
    fx = torch.fft.rfftfreq(res, device=dev, dtype=torch.float64) if onesided else fy
    ax = alpha_x.to(torch.float64)[:, None, None]
    ay = alpha_y.to(torch.float64)[:, None, None]
    amp = 1.0 / (1e-16 + fx[None, None, :] ** ax + fy[None, :, None] ** ay)
    amp[:, 0, 0] = 0.0
    amp = amp / _power(amp.square(), res).sqrt()[:, None, None]
    return amp.to(torch.float32)


def _power(p: Tensor, res: int) -> Tensor:
    """Σ|X|² over the whole spectrum from |X|² [..., N, N] (fft2 grid) or [..., N, N/2+1] (rfft2).

    On the rfft2 grid columns 1 … N/2-1 stand for two columns of the full spectrum. With
    norm="forward" this is the mean of x² (Parseval).
    """
    total = p.sum((-2, -1))
    if p.shape[-1] == res:
        return total
    total = 2.0 * total - p[..., 0].sum(-1)
    return total - p[..., -1].sum(-1) if res % 2 == 0 else total


def impose_spectrum(spec: Tensor, amplitude: Tensor, full: bool = False) -> Tensor:
    """Give each channel the amplitude spectrum A, keeping phase, mean and std (SPEC §3).

    spec: complex [B, C, N, M] from torch.fft.rfft2 (M = N/2+1) or fft2 (M = N) with
    norm="forward"; amplitude [B, N, M] on the same grid, Σ A² = 1 (spectrum_amplitude).
    Returns the new channels' spectrum phase(X)·A·std with DC = the old mean: with unit-power A
    and unit-modulus phases the new std is exactly the old one (MATLAB divides by the measured
    std, the same number). An exactly-zero coefficient stays zero (MATLAB: A·e^{i·0}), a
    measure-zero event for these noise images. `full`: spec is on the rfft2 grid and the result
    on the full fft2 grid [B, C, N, N] (for the pyramid; rfft2 is half the cost of fft2).
    """
    res = spec.shape[-2]
    if spec.device.type == "cpu":  # one fused loop instead of ~8 passes
        from noisevision.generators import spectrum_cpu  # numba compiles (or loads) on first use

        spec = spec.contiguous()
        out = spec.new_empty(*spec.shape[:-1], res) if full else torch.empty_like(spec)
        spectrum_cpu.impose_spectrum(spec.numpy(), amplitude.contiguous().numpy(), res, out.numpy())
        return out
    out = _impose_spectrum_torch(spec, amplitude)
    return _full_spectrum_torch(out) if full else out


def full_spectrum(half: Tensor) -> Tensor:
    """The fft2 grid [..., N, N] of real images from their rfft2 grid [..., N, N/2+1]:
    X(-f) = conj X(f) fills the other columns."""
    res = half.shape[-2]
    if half.device.type == "cpu":
        from noisevision.generators import spectrum_cpu

        half = half.contiguous()
        out = half.new_empty(*half.shape[:-1], res)
        spectrum_cpu.full_spectrum(half.numpy(), res, out.numpy())
        return out
    return _full_spectrum_torch(half)


def _full_spectrum_torch(half: Tensor) -> Tensor:
    res, m = half.shape[-2], half.shape[-1]
    rows = torch.arange(res, device=half.device).neg_().remainder_(res)  # row of -f_y
    mirror = half.index_select(-2, rows)[..., 1 : res - m + 1].flip(-1).conj()
    return torch.cat((half, mirror), -1)


def _impose_spectrum_torch(spec: Tensor, amplitude: Tensor) -> Tensor:
    res = spec.shape[-2]
    mean = spec[..., 0, 0].real  # [B, C]
    ri = torch.view_as_real(spec)
    power = torch.addcmul(ri[..., 0].square(), ri[..., 1], ri[..., 1])  # |X|²: cheaper than abs()
    std = (_power(power, res) - mean * mean).clamp_min(0).sqrt()
    factor = (amplitude[:, None] * std[..., None, None]).mul_(power.clamp_min_(1e-30).rsqrt_())
    out = spec * factor  # (complex × real: broadcasting real into the re/im pairs is slower)
    out[..., 0, 0] = mean.to(out.dtype)
    return out


# ============================================================================ WMM
def wmm_band_scales(res: int) -> list[float]:
    """ŝ = 4^(N / band height) for the high-pass band, then each oriented band, level by level."""
    heights = [res] + [res >> lev for lev in range(steerable.pyramid_levels(res)) for _ in range(4)]
    return [4.0 ** (res / h) for h in heights]


WMM_SHAPE_GRID = 65  # shapes r tabulated on this many points; between them tables are blended


def _wmm_density(scale: float, shape: Tensor) -> tuple[Tensor, Tensor]:
    """Target density h ∝ exp(-|x/ŝ|^r) on x = -200:0.5:200 for shapes r [...] -> ([..., 801], x)."""
    lo, hi, step = WMM_GRID
    x = torch.arange(int(round((hi - lo) / step)) + 1, device=shape.device, dtype=torch.float64)
    x = lo + step * x
    return torch.exp(-((x / scale).abs() ** shape.to(torch.float64)[..., None])), x


@functools.lru_cache(maxsize=32)
def _wmm_tables(scale: float, n: int, r_low: float, r_high: float, device: torch.device) -> Tensor:
    """Quantile tables of the WMM target with ŝ = scale for shapes on a grid over [r_low, r_high]."""
    r = torch.linspace(r_low, r_high, WMM_SHAPE_GRID, device=device, dtype=torch.float64)
    dens, _ = _wmm_density(scale, r)
    first = torch.full((WMM_SHAPE_GRID,), WMM_GRID[0] - WMM_GRID[2] / 2, device=device)
    return quantile_table(dens, first, torch.full_like(first, WMM_GRID[2]), n)


def _wmm_target(shape: Tensor, scale: float, n: int, shape_range: tuple[float, float]) -> HistogramTarget:
    """Targets for rows of n coefficients with ŝ = scale and shapes r [G] (see wmm_targets)."""
    r_low, r_high = shape_range
    tables = _wmm_tables(scale, n, r_low, r_high, shape.device)
    pos = ((shape - r_low) / max(r_high - r_low, 1e-12) * (WMM_SHAPE_GRID - 1)).clamp(0, WMM_SHAPE_GRID - 1)
    row = pos.floor().clamp(max=WMM_SHAPE_GRID - 2).to(torch.int64)
    # The density is even on a grid symmetric about 0: mean 0, and the std from x > 0 alone.
    log_x, x2 = _wmm_half_grid(scale, shape.device)
    dens = torch.exp(-torch.exp(shape.to(torch.float64)[:, None] * log_x))  # h(x) for x > 0; h(0) = 1
    std = torch.sqrt(2.0 * (dens * x2).sum(-1) / (1.0 + 2.0 * dens.sum(-1))).to(torch.float32)
    weight = (pos - row).to(torch.float32)
    return HistogramTarget(tables, row, 2 * len(x2) + 1, weight, torch.zeros_like(std), std)


@functools.lru_cache(maxsize=32)
def _wmm_half_grid(scale: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """log(x/ŝ) and x² at the grid points x > 0 (0.5 … 200), float64 [400] each."""
    lo, hi, step = WMM_GRID
    assert lo == -hi, "the WMM value grid must be symmetric about 0"
    x = step * torch.arange(1, int(round(hi / step)) + 1, device=device, dtype=torch.float64)
    return torch.log(x / scale), x * x


def wmm_targets(
    shape: Tensor, res: int, shape_range: tuple[float, float] = (0.4, 0.8)
) -> tuple[HistogramTarget, list[HistogramTarget]]:
    """The WMM band targets (SPEC §3): (high-pass residual, [one per oriented level]).

    shape: r ~ U(shape_range), [B, C, 1 + 4·levels] (high-pass band, then 4 orientations per
    level). Target density on x = -200:0.5:200: h ∝ exp(-|x/ŝ|^r), ŝ = 4^(N / band height),
    bins of 0.5 centred on x; matched bands are standardised to the target's mean and std
    (exact, from the density). Rows follow steerable.Pyramid: (image, channel) for the high-pass
    band, (image, channel, orientation) for a level. Quantile tables are tabulated once per
    (ŝ, band size) on a grid of 65 shapes and blended linearly in between: r moves the
    quantiles smoothly, and no per-image tables are needed.
    """
    scales = wmm_band_scales(res)
    high = _wmm_target(shape[:, :, 0].reshape(-1), scales[0], res * res, shape_range)
    levels = []
    for lev in range(steerable.pyramid_levels(res)):
        bands = slice(1 + 4 * lev, 5 + 4 * lev)
        r = shape[:, :, bands].reshape(-1)
        levels.append(_wmm_target(r, scales[bands.start], (res >> lev) ** 2, shape_range))
    return high, levels


def impose_wmm(
    spec: Tensor, targets: tuple[HistogramTarget, list[HistogramTarget]], pyramid: steerable.SteerablePyramid
) -> Tensor:
    """Impose the band marginals (SPEC §3) on channels given by their fft2 spectrum [B, C, N, N].

    Builds the steerable pyramid, histogram-matches every band but the low-pass residual to its
    target (standardised to the target mean/std) and returns the rebuilt channels [B, C, N, N].
    """
    high, levels = targets
    pyr = pyramid.build_from_spectrum(spec)  # its bands are matched in place: fresh tensors
    hp = pyr.highpass
    rows = hp.view(-1, hp.shape[-2] * hp.shape[-1])
    pyr.highpass = match_histograms(rows, high, overwrite=True).view(hp.shape)
    for lev, target in enumerate(levels):
        z = pyr.levels[lev]  # [B, C, 2, n, n] complex: two orientations per entry
        rows = torch.view_as_real(z).view(-1, z.shape[-2] * z.shape[-1], 2)  # [B·C·2, n², 2]
        matched = match_histograms(rows, target, overwrite=True)
        pyr.levels[lev] = torch.view_as_complex(matched.view(*z.shape, 2))
    return pyramid.reconstruct(pyr)


# ============================================================================ the generator
@dataclass(frozen=True)
class ModelConfig:
    """What a variant imposes and the model's hyper-parameters: the one place their SPEC §3
    values are written."""

    spectrum: bool = True
    wmm: bool = True
    color: bool = True
    n_iter: int = 10  # rounds of spectrum -> WMM -> colour histograms
    slope_range: tuple[float, float] = (0.5, 3.5)  # s ~ U(slope_range)
    slope_jitter: float = 0.05  # d ~ N(0, slope_jitter²): α_x = s + d, α_y = s - d
    wmm_shape_range: tuple[float, float] = (0.4, 0.8)  # band shapes r ~ U(wmm_shape_range)
    pyramid: str = "spatial"  # steerable pyramid of the WMM: "spatial" (MATLAB's) or "frequency"


#: A statistical generator's parameters and their defaults: ModelConfig's, but for the variant's switches.
PARAMETERS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(ModelConfig) if f.name not in ("spectrum", "wmm", "color")
}


def sample_params(rng: Rng, res: int, config: ModelConfig = ModelConfig()) -> dict[str, Tensor]:
    """Every per-image parameter of the model (all variants draw all of them, SPEC §3).

    Keys: the colour model's (see sample_color_model), the slopes' (see sample_slopes),
    wmm_shape [B, 3, 1 + 4·levels] (high-pass band, then 4 orientations per level) and
    init [B, 3, N, N], the white-noise start 256·U. Each part draws from its own child stream.
    """
    params = sample_color_model(rng.child("color"), res)
    params.update(sample_slopes(rng.child("spectrum"), config.slope_range, config.slope_jitter))
    n_bands = 1 + 4 * steerable.pyramid_levels(res)
    lo, hi = config.wmm_shape_range
    params["wmm_shape"] = rng.child("wmm").uniform(3, n_bands, low=lo, high=hi)
    params["init"] = 256.0 * rng.child("init").uniform(3, res, res)
    return params


def impose_model(params: dict[str, Tensor], res: int, config: ModelConfig = ModelConfig()) -> Tensor:
    """Impose the sampled model on the white-noise start (SPEC §3): float32 [B, 3, N, N].

    Returns the decorrelated channels after `n_iter` rounds (see to_rgb8 for the RGB image).
    Each round: the spectrum (on the rfft2 grid of the channels), then the WMM (its pyramid is
    built straight from that spectrum, completed to the full grid), then the colour histograms
    (on pixels).
    """
    b = params["init"].shape[0]
    dev = params["init"].device
    img = params["init"]  # [B, 3, N, N]
    if config.spectrum:
        amplitude = spectrum_amplitude(params["alpha_x"], params["alpha_y"], res)
    if config.wmm:
        pyramid = steerable.steerable_pyramid(res, dev, config.pyramid)
        wmm = wmm_targets(params["wmm_shape"], res, config.wmm_shape_range)
    if config.color:
        color_target = histogram_target(
            params["hist_counts"].reshape(b * 3, COLOR_BINS),
            params["hist_lo"].reshape(-1),
            params["hist_step"].reshape(-1),
            res * res,
        )
    for _ in range(config.n_iter):
        if config.wmm:  # the pyramid takes the full fft2 grid [B, 3, N, N]
            spec = torch.fft.rfft2(img, norm="forward")
            spec = impose_spectrum(spec, amplitude, full=True) if config.spectrum else full_spectrum(spec)
            img = impose_wmm(spec, wmm, pyramid)
        elif config.spectrum:
            spec = impose_spectrum(torch.fft.rfft2(img, norm="forward"), amplitude)
            img = torch.fft.irfft2(spec, s=(res, res), norm="forward")
        if config.color:
            img = match_histograms(img.reshape(b * 3, -1), color_target, overwrite=True).view(b, 3, res, res)
    return img


def synthesize(params: dict[str, Tensor], res: int, config: ModelConfig = ModelConfig()) -> Tensor:
    """The images of a sampled model: uint8 RGB [B, 3, N, N] (impose_model, then to_rgb8)."""
    return to_rgb8(impose_model(params, res, config), params["pc"], params["mean"])


def to_rgb8(chan: Tensor, pc: Tensor, mean: Tensor) -> Tensor:
    """Decorrelated channels -> RGB (PCA inverse + mean colour) -> joint min-max to uint8 0..255."""
    b, _, n, _ = chan.shape
    rgb = unproject_colors(chan, pc, mean).reshape(b, -1)
    rgb = rgb - rgb.amin(1, keepdim=True)
    rgb = rgb.mul_(255.0 / rgb.amax(1, keepdim=True).clamp_min(1e-12))
    return rgb.add_(0.5).floor_().clamp_(0, 255).to(torch.uint8).view(b, 3, n, n)


# name: (paper label, what it imposes, description)
VARIANTS: dict[str, tuple[str, tuple[bool, bool, bool], str]] = {
    "stat-spectrum": (
        "Spectrum", (True, False, False),
        "1/f^a noise with random slopes; channels correlated by a random colour model",
    ),
    "stat-wmm": (
        "WMM", (False, True, False),
        "sparse steerable-wavelet marginals (generalised-Laplacian bands)",
    ),
    "stat-spectrum_color": (
        "Spectrum + Color", (True, False, True),
        "1/f^a spectrum plus the colour histograms of a random colour model",
    ),
    "stat-spectrum_color_wmm": (
        "Spectrum + Color + WMM", (True, True, True),
        "1/f^a spectrum, wavelet marginals and colour histograms together",
    ),
}


class StatisticalModel(Generator):
    """The four statistical-model datasets (SPEC §3); the registered name picks what is imposed.

    Parameters: those of ModelConfig (`PARAMETERS`, SPEC §3's values by default).
    `sample_params(rng, res)` gives the per-image model, `render` the images (dead_leaves-textures
    renders its texture bank with it).
    """

    # GPUs need large batches (their time goes to launching kernels). Each 128 px image needs
    # ≈10 MB of bands and temporaries, so on a GPU chunks shrink with the pixel count (512 at
    # 128 px, 128 at 256 px: ≈5 GB). On CPU, chunks of 16 images at 128 px (64 at 64 px; at
    # least 8): per-call costs spread over more images, while the temporaries stay in cache.
    cpu_pixels = 16 * 128 * 128
    cpu_chunk = 8
    gpu_pixels = 512 * 128 * 128
    single_cpu_thread = True  # a multi-threaded irfft2 rounds differently; histogram matching shows it

    def __init__(self, spec: GeneratorSpec, **params: Any):
        unknown = set(params) - set(PARAMETERS)
        if unknown:
            known = ", ".join(PARAMETERS)
            raise TypeError(f"unexpected parameter(s) {', '.join(sorted(unknown))}; known: {known}")
        values = {**PARAMETERS, **params}
        n_iter, pyramid, slope_jitter = values["n_iter"], values["pyramid"], values["slope_jitter"]
        slope_range, wmm_shape_range = values["slope_range"], values["wmm_shape_range"]
        if int(n_iter) < 1:
            raise NoisevisionError(f"n_iter must be at least 1, not {n_iter}")
        slope_range = (float(slope_range[0]), float(slope_range[1]))
        wmm_shape_range = (float(wmm_shape_range[0]), float(wmm_shape_range[1]))
        if not 0 < slope_range[0] <= slope_range[1]:
            raise NoisevisionError(f"slope_range must be (low, high) with 0 < low <= high, not {slope_range}")
        if not 0 < wmm_shape_range[0] <= wmm_shape_range[1]:
            raise NoisevisionError(
                f"wmm_shape_range must be (low, high) with 0 < low <= high, not {wmm_shape_range}"
            )
        if pyramid not in steerable.KINDS:
            raise NoisevisionError(f"unknown pyramid '{pyramid}': use {' or '.join(steerable.KINDS)}")
        super().__init__(
            spec, n_iter=int(n_iter), slope_range=slope_range, slope_jitter=float(slope_jitter),
            wmm_shape_range=wmm_shape_range, pyramid=pyramid,
        )
        spectrum, wmm, color = VARIANTS[spec.name][1]
        self.config = ModelConfig(spectrum, wmm, color, **self.params)

    def check_res(self, res: int) -> int:
        res = super().check_res(res)
        levels = steerable.pyramid_levels(res)
        if self.config.wmm and res % 2 ** (levels + 1):
            raise NoisevisionError(
                f"'{self.name}' needs a resolution divisible by {2 ** (levels + 1)} at {res} px "
                f"({levels} pyramid levels), e.g. {2 ** (levels + 1) * round(res / 2 ** (levels + 1))}"
            )
        return res

    def device_block(self, res: int) -> int:
        return max(1, self.gpu_pixels // max(res, 64) ** 2)

    def sample_params(self, rng: Rng, res: int) -> dict[str, Tensor]:
        """Per-image model parameters for the keys of `rng` (see module-level sample_params)."""
        return sample_params(rng, res, self.config)

    def render(self, rng: Rng, res: int) -> Tensor:
        """uint8 [B, 3, res, res] for the keys of `rng` (each image depends on its key only)."""
        if rng.device.type == "cpu":
            chunk = max(self.cpu_chunk, self.cpu_pixels // (res * res))
        else:
            chunk = self.device_block(res)
        if rng.batch > chunk:
            return torch.cat([self._render(Rng(keys), res) for keys in rng.keys.split(chunk)])
        return self._render(rng, res)

    def batch_invariant(self, device: torch.device) -> bool:
        # On a GPU, cuFFT and the reductions round by the batch's shape and an image's place in
        # it, and the ten rounds of spectrum and histogram matching carry last bits into visible
        # differences: the same request gives the same bytes, another batch statistically the
        # same image (generate renders fixed blocks; see Generator.device_block).
        return torch.device(device).type == "cpu"

    def _render(self, rng: Rng, res: int) -> Tensor:
        return synthesize(self.sample_params(rng, res), res, self.config)


for _name, (_label, _, _description) in VARIANTS.items():
    register(_name, family="statistical", label=_label, description=_description, min_res=32)(
        StatisticalModel
    )
