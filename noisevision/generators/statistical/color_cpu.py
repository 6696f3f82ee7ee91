"""The colour model's CPU loops (numba): multinomial counts, the band image, its box blur, the
Jacobi rotations of its PCA and the histograms of its decorrelated channels.

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
    proj = np.empty((n, n), np.float32)
    for i in range(b):
        x0, x1, x2 = img[i, 0], img[i, 1], img[i, 2]
        m0, m1, m2 = mean[i, 0], mean[i, 1], mean[i, 2]
        for j in range(3):
            w0, w1, w2 = pc[i, 0, j], pc[i, 1, j], pc[i, 2, j]
            low, high = np.float32(np.inf), np.float32(-np.inf)
            for r in range(n):
                for q in range(n):
                    v = np.float32(0.0) + w0 * (x0[r, q] - m0)
                    v = v + w1 * (x1[r, q] - m1)
                    v = v + w2 * (x2[r, q] - m2)
                    proj[r, q] = v
                    low = min(low, v)
                    high = max(high, v)
            width = max(high - low, np.float32(1e-12)) / np.float32(bins)
            lo[i, j], step[i, j] = low, width
            h = hist[i, j]
            for r in range(n):
                for q in range(n):
                    h[min(max(np.int64((proj[r, q] - low) / width), 0), bins - 1)] += 1
