"""The colour model's multinomial pixel counts as one CPU loop (numba).

torch.searchsorted of every pixel's uniform number among the ≤ 22 CDF values, then a bincount,
is a binary search per pixel; a lookup table over 4096 buckets of [0, 1) finds the label of
almost every pixel with one read. color.sample_color_model calls it on CPU and keeps
the torch operations for other devices; a test compares both paths.
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
