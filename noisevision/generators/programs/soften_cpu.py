"""Programs' softening blur on a CPU: render.soften's four 3-tap passes in one compiled loop (numba).

As tensor code each pass copies the image twice (the repeated edges, then the neighbours' mean)
before its lerp; here each pass reads the image once. The arithmetic is the tensor code's, in
float32: the neighbours' sum halved, then torch's `lerp` (`fused_math.lerp32`). render.soften
calls it on CPU; a test compares both paths.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from noisevision.generators.fused_math import lerp32

F = np.float32


@njit(cache=True, nogil=True, boundscheck=False)
def soften(img: np.ndarray, weight: np.ndarray, out: np.ndarray) -> None:
    """out [B, C, H, W] = img blurred along H, W, H, W by [w, 1 − 2w, w], edges repeated: each
    pixel lerped towards the mean of its two neighbours by weight[b] = 2w (float32)."""
    b, c, h, w = img.shape
    tmp = np.empty((h, w), np.float32)
    for i in range(b):
        t = weight[i]
        for j in range(c):
            src, dst = img[i, j], out[i, j]
            _down(src, t, tmp)
            _across(tmp, t, dst)
            _down(dst, t, tmp)
            _across(tmp, t, dst)


@njit(cache=True, nogil=True, inline="always")
def _down(src: np.ndarray, t: F, dst: np.ndarray) -> None:
    """One pass along the rows' axis (H): dst[r] = lerp(src[r], (src[r-1] + src[r+1]) / 2, t)."""
    h, w = src.shape
    for r in range(h):
        up, down = src[max(r - 1, 0)], src[min(r + 1, h - 1)]
        for q in range(w):
            dst[r, q] = lerp32(src[r, q], (up[q] + down[q]) * F(0.5), t)


@njit(cache=True, nogil=True, inline="always")
def _across(src: np.ndarray, t: F, dst: np.ndarray) -> None:
    """One pass along the columns' axis (W)."""
    h, w = src.shape
    for r in range(h):
        row, out = src[r], dst[r]
        for q in range(w):
            out[q] = lerp32(row[q], (row[max(q - 1, 0)] + row[min(q + 1, w - 1)]) * F(0.5), t)
