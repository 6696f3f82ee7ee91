"""The spatial steerable pyramid's per-level mask products as fused CPU loops (numba).

Around its FFTs, a level of the pyramid is a handful of elementwise products over the spectrum:
as torch operations each is a pass of its own, with its own temporaries (the band pairs' masks,
the low-pass fold, the high-pass mask in analysis; the up-sampled low-pass, two band pairs and the
high-pass in synthesis). Here each level is one loop that reads every coefficient once per row.
steerable.SpatialPyramid calls these on CPU and keeps the torch operations for other devices; a
test compares both paths.

Spectra are complex64 [G, n, n] (G images × channels), masks as steerable.SpatialPyramid
stores them. Products with a real mask scale the real and imaginary parts (no complex product).
Synthesis takes its complex arrays as float32 views (real and imaginary parts interleaved), where
the products written out per part vectorise; analysis is bound by memory and keeps complex types.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, boundscheck=False)
def analyse_level(
    spec: np.ndarray,
    pair_masks: np.ndarray,
    lof: np.ndarray,
    hp_mask: np.ndarray,
    pairs: np.ndarray,
    low: np.ndarray,
    hp: np.ndarray,
) -> None:
    """One analysis level: band pairs, the next level's spectrum, and optionally the high-pass.

    pairs[g, p] = spec[g]·pair_masks[p] ([G, 2, n, n], to be inverse-transformed); low[g] =
    spec[g]·lof folded 2×2 ([G, n/2, n/2]: filtering, then keeping every 2nd pixel); hp[g] =
    spec[g, :, :m]·hp_mask ([G, n, m], the rfft2 grid of the high-pass band) unless hp has no rows.
    """
    g_count, n = spec.shape[0], spec.shape[1]
    h = n // 2
    m = hp.shape[2] if hp.shape[0] > 0 else 0
    for g in range(g_count):
        x = spec[g]
        for r in range(n):
            row = x[r]
            a0 = pair_masks[0, r]
            a1 = pair_masks[1, r]
            d0 = pairs[g, 0, r]
            d1 = pairs[g, 1, r]
            for q in range(n):
                v = row[q]
                d0[q] = v * a0[q]
                d1[q] = v * a1[q]
            if m:
                dst = hp[g, r]
                mask = hp_mask[r]
                for q in range(m):
                    dst[q] = complex(row[q].real * mask[q], row[q].imag * mask[q])
        # The fold: the sum of the four quadrants of spec·lof, rows first (as steerable._fold).
        for r in range(h):
            top = x[r]
            bottom = x[r + h]
            ft = lof[r]
            fb = lof[r + h]
            dst = low[g, r]
            for q in range(h):
                left = complex(top[q].real * ft[q], top[q].imag * ft[q]) + complex(
                    bottom[q].real * fb[q], bottom[q].imag * fb[q]
                )
                u = q + h
                right = complex(top[u].real * ft[u], top[u].imag * ft[u]) + complex(
                    bottom[u].real * fb[u], bottom[u].imag * fb[u]
                )
                dst[q] = left + right


@njit(cache=True, nogil=True, boundscheck=False)
def synthesise_level(
    low: np.ndarray,
    lof: np.ndarray,
    bands: np.ndarray,
    pair_masks: np.ndarray,
    hp: np.ndarray,
    hp_mask: np.ndarray,
    out: np.ndarray,
) -> None:
    """One synthesis level: out[g] = up(low[g])·lof + Σ_p bands[g, p]·pair_masks[p] (+ hp[g]·hp_mask).

    Complex arrays as float32 views with the real and imaginary parts interleaved (…, 2·width):
    low: [G, n/2, n], the level below (its zero-insertion up-sampling repeats it 2×2); lof:
    float32 [n, n]; bands: [G, 2, n, 2n], the fft2 of the band pairs; pair_masks: [2, n, 2n];
    hp: [G, n, 2m] (the high-pass band's rfft2, added on columns < m) unless it has no rows;
    out: [G, n, 2n]. Complex products written out as numba's complex multiply computes them,
    (a + ib)(c + id) = (ac - bd) + i(ad + bc): the same bytes, in loops that vectorise.
    """
    g_count, n = out.shape[0], out.shape[1]
    h = n // 2
    m = hp.shape[2] // 2 if hp.shape[0] > 0 else 0
    for g in range(g_count):
        for r in range(n):
            src = low[g, r % h]
            f = lof[r]
            w0 = bands[g, 0, r]
            w1 = bands[g, 1, r]
            s0 = pair_masks[0, r]
            s1 = pair_masks[1, r]
            dst = out[g, r]
            for half in range(2):  # columns q and q + n/2 up-sample the same column of the level below
                for p in range(h):
                    q = p + half * h
                    re = src[2 * p] * f[q]
                    im = src[2 * p + 1] * f[q]
                    br, bi, cr, ci = w0[2 * q], w0[2 * q + 1], s0[2 * q], s0[2 * q + 1]
                    re = re + (br * cr - bi * ci)
                    im = im + (br * ci + bi * cr)
                    br, bi, cr, ci = w1[2 * q], w1[2 * q + 1], s1[2 * q], s1[2 * q + 1]
                    dst[2 * q] = re + (br * cr - bi * ci)
                    dst[2 * q + 1] = im + (br * ci + bi * cr)
            if m:
                band = hp[g, r]
                mask = hp_mask[r]
                for q in range(m):
                    dst[2 * q] += band[2 * q] * mask[q]
                    dst[2 * q + 1] += band[2 * q + 1] * mask[q]
