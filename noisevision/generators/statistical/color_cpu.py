"""The colour model's CPU loops (numba): multinomial counts, the band image, its box blur and
noise, the moments and Jacobi rotations of its PCA, the histograms of its decorrelated channels,
and the way back from those channels to RGB bytes.

As tensor code each of these is a string of small ops (a binary search per pixel and a bincount;
a repeat and a permuted copy; ~10 ops per blur size; ~25 ops on 3×3 matrices per rotation; a
broadcast product, its range and a bincount) whose per-call cost and passes over memory outweigh
the arithmetic at the model's batch sizes. Each loop here does the tensor
code's IEEE operations in its order; color.py calls them on CPU and keeps the tensor code for
other devices, and tests compare both paths.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from noisevision.generators.statistical.histmatch_cpu import range_keys

BUCKETS = 4096  # a power of two: u·BUCKETS is exact for float32 u in [0, 1)


@njit(cache=True, nogil=True, boundscheck=False)
def multinomial_counts(cdf: np.ndarray, u: np.ndarray, counts: np.ndarray) -> None:
    """counts[b, k] += #{p: label(u[b, p]) = k}, label(u) = #{j: cdf[b, j] <= u} clamped to K-1.

    cdf: float32 [B, K] non-decreasing; u: float32 [B, P] in [0, 1); counts: int64 [B, K], zeros.
    """
    b, k = cdf.shape
    start = np.empty(BUCKETS, np.int64)  # label of each bucket's lower end
    for i in range(b):
        c = cdf[i]
        label = 0
        for q in range(BUCKETS):
            edge = np.float32(q) / np.float32(BUCKETS)
            while label < k and c[label] <= edge:
                label += 1
            start[q] = label
        hist = counts[i]
        for v in u[i]:
            label = start[min(np.int64(v * np.float32(BUCKETS)), BUCKETS - 1)]
            while label < k and c[label] <= v:  # a CDF value inside this bucket
                label += 1
            hist[min(label, k - 1)] += 1


@njit(cache=True, nogil=True, boundscheck=False)
def jacobi_sweeps(a: np.ndarray, v: np.ndarray, sweeps: int) -> None:
    """color._jacobi in place: cyclic Jacobi rotations of symmetric 3×3 matrices a [B, 3, 3]
    (float64), accumulated into v [B, 3, 3] (the identity on entry).

    The tensor code's IEEE operations in its order, products summed from zero as its reduction
    does, and the whole batch stops after the first sweep that leaves every matrix converged.
    The one difference is the square root: this one is correctly rounded, while torch's CPU
    sqrt of float64 is one unit in the last place off in about 1 % of cases. The float64 axes
    can then differ in their last bits; the float32 axes the images use are the same but where
    a value lies within that of a float32 rounding boundary (tests check a few thousand models).
    """
    b = a.shape[0]
    rot = np.empty((3, 3))
    tmp = np.empty((3, 3))
    for _ in range(sweeps):
        for p, q in ((0, 1), (0, 2), (1, 2)):
            for i in range(b):
                x = a[i]
                apq, app, aqq = x[p, q], x[p, p], x[q, q]
                small = abs(apq) < 1e-300
                theta = (aqq - app) / (2.0 * (1.0 if small else apq))
                t = np.sign(theta) / (abs(theta) + np.sqrt(theta * theta + 1.0))
                if theta == 0:
                    t = 1.0
                if small:
                    t = 0.0
                cos = 1.0 / np.sqrt(t * t + 1.0)
                sin = t * cos
                rot[:] = 0.0
                for k in range(3):
                    rot[k, k] = 1.0
                rot[p, p], rot[q, q], rot[p, q], rot[q, p] = cos, cos, sin, -sin
                _mm3(rot.T, x, tmp)  # a <- Rᵀ a R
                _mm3(tmp, rot, x)
                tmp[:] = v[i]
                _mm3(tmp, rot, v[i])  # v <- v R
        done = True
        for i in range(b):
            x = a[i]
            if not (abs(x[0, 1]) < 1e-300 and abs(x[0, 2]) < 1e-300 and abs(x[1, 2]) < 1e-300):
                done = False
        if done:
            break


@njit(cache=True, nogil=True, inline="always")
def _mm3(x: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """out = x @ y for 3×3 matrices, each entry summed from zero in k order (out is not x or y)."""
    for r in range(3):
        for c in range(3):
            acc = 0.0
            for k in range(3):
                acc += x[r, k] * y[k, c]
            out[r, c] = acc


@njit(cache=True, nogil=True, boundscheck=False)
def paint_bands(colors: np.ndarray, counts: np.ndarray, out: np.ndarray) -> None:
    """color.band_image, transposed: colour k of image b, ×256, at its run of counts[b, k]
    positions p of out[b, j] in row-major order, i.e. at (row p % N, column p // N) of the image.
    colors float32 [B, K, 3], counts int64 [B, K], out float32 [B, 3, N, N] (written). Runs
    are contiguous here; written straight into the image they would stride by a row."""
    b, k, _ = colors.shape
    for i in range(b):
        for j in range(3):
            flat = out[i, j].reshape(-1)
            p = 0
            for q in range(k):
                flat[p : p + counts[i, q]] = np.float32(256.0) * colors[i, q, j]
                p += counts[i, q]


@njit(cache=True, nogil=True, boundscheck=False)
def box_blur(img: np.ndarray, size: np.ndarray, out: np.ndarray) -> None:
    """color.box_blur_same: out [B, C, N, N] = the m×m zero-padded mean of img (float32), m = size[b].

    The tensor code's arithmetic: running sums along columns, then rows, over the zero-padded
    image, accumulated in float64 and stored as float32 (torch's CPU cumsum), window sums as
    float32 differences, then one float32 division by m². The row pass runs down the columns of
    the transposed sums, so that both passes add whole rows of independent sums (vectorised)
    rather than one long chain of dependent additions.
    """
    b, c, n, _ = img.shape
    acc = np.empty(n)
    sums = np.empty((n, n), np.float32)
    for i in range(b):
        m = size[i]
        cs = np.empty((n + m, n), np.float32)
        area = np.float32(m * m)
        for j in range(c):
            _window_sums_down(img[i, j], m, acc, cs, sums)
            _window_sums_down(sums.T.copy(), m, acc, cs, sums)  # along rows, transposed
            y = out[i, j]
            for r in range(n):
                for q in range(n):
                    y[r, q] = sums[q, r] / area


@njit(cache=True, nogil=True, inline="always")
def _window_sums_down(x: np.ndarray, m: int, acc: np.ndarray, cs: np.ndarray, out: np.ndarray) -> None:
    """out[r] = cs[m + r] - cs[r], cs[k] the float64 running sum (stored as float32) down x's
    columns padded with ceil(m/2) zero rows ahead and the rest of m after: color._window_sums."""
    n = x.shape[0]
    before = (m + 1) // 2
    acc[:] = 0.0
    for k in range(n + m):
        if before <= k < before + n:
            for q in range(n):
                acc[q] += np.float64(x[k - before, q])
        for q in range(n):
            cs[k, q] = np.float32(acc[q])
    for r in range(n):
        for q in range(n):
            out[r, q] = cs[m + r, q] - cs[r, q]


@njit(cache=True, nogil=True, boundscheck=False)
def projected_histograms(
    img: np.ndarray, pc: np.ndarray, mean: np.ndarray, lo: np.ndarray, step: np.ndarray, hist: np.ndarray
) -> None:
    """color.projected_histograms: the 256-bin histograms of the decorrelated channels
    c_j = Σ_i (x_i - μ_i)·pc[i, j] (summed from zero in i order, as the tensor code's reduction),
    over their own range. img float32 [B, 3, N, N], pc [B, 3, 3], mean [B, 3]; lo, step float32
    [B, 3] and hist int64 [B, 3, bins] (zeros) are written."""
    b, _, n, _ = img.shape
    bins = hist.shape[2]
    proj = np.empty(n * n, np.float32)
    index = np.empty(n * n, np.int32)
    for i in range(b):
        x0, x1, x2 = img[i, 0].reshape(-1), img[i, 1].reshape(-1), img[i, 2].reshape(-1)
        m0, m1, m2 = mean[i, 0], mean[i, 1], mean[i, 2]
        for j in range(3):
            w0, w1, w2 = pc[i, 0, j], pc[i, 1, j], pc[i, 2, j]
            for p in range(n * n):
                v = np.float32(0.0) + w0 * (x0[p] - m0)
                v = v + w1 * (x1[p] - m1)
                proj[p] = v + w2 * (x2[p] - m2)
            low, high = _float_range(proj)
            width = max(high - low, np.float32(1e-12)) / np.float32(bins)
            lo[i, j], step[i, j] = low, width
            for p in range(n * n):  # vectorised bins, then a scatter
                index[p] = min(max(np.int32((proj[p] - low) / width), np.int32(0)), np.int32(bins - 1))
            h = hist[i, j]
            for p in range(n * n):
                h[index[p]] += 1


@njit(cache=True, nogil=True, boundscheck=False)
def noise_and_rescale(img: np.ndarray, noise: np.ndarray, out: np.ndarray) -> None:
    """The colour model's last step: v = img + 10·noise, then 256·(v - min) / (max - min) over
    each image's three channels, in float32 with the tensor code's roundings in its order (its
    max of v - min is the rounded max(v) - min: rounding is monotone). img, noise, out float32
    [B, 3, N, N] (out written; it may be img)."""
    b = img.shape[0]
    ten, scale = np.float32(10.0), np.float32(256.0)
    for i in range(b):
        x, u, y = img[i].reshape(-1), noise[i].reshape(-1), out[i].reshape(-1)
        for p in range(x.shape[0]):
            y[p] = x[p] + ten * u[p]
        low, high = _float_range(y)
        span = high - low
        for p in range(y.shape[0]):
            y[p] = scale * (y[p] - low) / span


@njit(cache=True, nogil=True, inline="always")
def _float_range(x: np.ndarray) -> tuple[np.float32, np.float32]:
    """(min, max) of a contiguous float32 array, on integer order keys (histmatch_cpu.range_keys,
    which vectorises where float min/max does not)."""
    keys = np.empty(4, np.int32)
    range_keys(x.view(np.int32), 1, keys)
    ends = keys.view(np.float32)
    return ends[0], ends[1]


LANES = 8  # independent float64 partial sums, so that the moment loops vectorise


@njit(cache=True, nogil=True, boundscheck=False)
def pca_moments(img: np.ndarray, mean: np.ndarray, scatter: np.ndarray) -> None:
    """color_pca's moments in float64: each image's channel means [B, 3] and the scatter of the
    centred channels Σ (x_i - μ_i)(x_j - μ_j) [B, 3, 3] (written).

    Summed in LANES interleaved partial sums, then the lanes in order: a fixed order, not the
    tensor reduction's, so the float64 results can differ from it in their last bits (the means
    rarely: sums of float32 values in 0..256 are mostly exact in float64); the float32 mean and
    axes the images use are the same but within a float64 rounding of a float32 one (the tests
    compare both paths). img float32 [B, 3, N, N]."""
    b = img.shape[0]
    acc = np.zeros((6, LANES))
    for i in range(b):
        x0, x1, x2 = img[i, 0].reshape(-1), img[i, 1].reshape(-1), img[i, 2].reshape(-1)
        n = x0.shape[0]
        acc[:3] = 0.0
        for p in range(n):  # lane p % LANES: whole blocks of LANES vectorise
            q = p % LANES
            acc[0, q] += np.float64(x0[p])
            acc[1, q] += np.float64(x1[p])
            acc[2, q] += np.float64(x2[p])
        m0, m1, m2 = acc[0].sum() / n, acc[1].sum() / n, acc[2].sum() / n
        acc[:] = 0.0
        for p in range(n):
            q = p % LANES
            a = np.float64(x0[p]) - m0
            c = np.float64(x1[p]) - m1
            d = np.float64(x2[p]) - m2
            acc[0, q] += a * a
            acc[1, q] += a * c
            acc[2, q] += a * d
            acc[3, q] += c * c
            acc[4, q] += c * d
            acc[5, q] += d * d
        mean[i, 0], mean[i, 1], mean[i, 2] = m0, m1, m2
        s = scatter[i]
        s[0, 0], s[0, 1], s[0, 2] = acc[0].sum(), acc[1].sum(), acc[2].sum()
        s[1, 1], s[1, 2], s[2, 2] = acc[3].sum(), acc[4].sum(), acc[5].sum()
        s[1, 0], s[2, 0], s[2, 1] = s[0, 1], s[0, 2], s[1, 2]


@njit(cache=True, nogil=True, boundscheck=False)
def to_rgb8(chan: np.ndarray, pc: np.ndarray, mean: np.ndarray, rgb: np.ndarray, out: np.ndarray) -> None:
    """model.to_rgb8: RGB x_i = Σ_j pc[i, j]·c_j + μ_i (summed from zero in j order, as the
    tensor reduction), then (x - min)·(255 / (max - min)) + 0.5 floored into 0..255 over each
    image's three channels, in float32 with the tensor code's roundings (255 / d is its
    reciprocal times 255). chan float32 [B, 3, N, N], pc [B, 3, 3], mean [B, 3]; rgb float32
    [3, N, N] scratch; out uint8 [B, 3, N, N] (written)."""
    b = chan.shape[0]
    zero, half, top = np.float32(0.0), np.float32(0.5), np.float32(255.0)
    for i in range(b):
        c0, c1, c2 = chan[i, 0].reshape(-1), chan[i, 1].reshape(-1), chan[i, 2].reshape(-1)
        for k in range(3):
            w0, w1, w2, mu = pc[i, k, 0], pc[i, k, 1], pc[i, k, 2], mean[i, k]
            x = rgb[k].reshape(-1)
            for p in range(x.shape[0]):
                x[p] = zero + w0 * c0[p] + w1 * c1[p] + w2 * c2[p] + mu
        flat = rgb.reshape(-1)
        low, high = _float_range(flat)
        scale = np.float32(1.0) / max(high - low, np.float32(1e-12)) * top
        y = out[i].reshape(-1)
        for p in range(flat.shape[0]):
            v = np.floor((flat[p] - low) * scale + half)
            y[p] = np.uint8(min(max(v, zero), top))
