"""Programs' lattice noise on a CPU: value and gradient noise and their fBm, one compiled pass
per field (numba).

As tensor code an octave of noise costs about 25 passes over the field (floors, four gathers,
fades, three lerps), and fBm repeats them for every octave; here each pixel runs all its octaves
in registers. Every float operation is the tensor code's, in its order, in float32: torch's
`lerp` rounds its product-sum once on x86-64's vector code paths, so `fused_math.lerp32` does
too. operators.value_noise, gradient_noise and fbm call these on CPU; tests compare both paths.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from noisevision.generators.fused_math import lerp32

F = np.float32
_WRAP = 31  # operators.LATTICE - 1 (a power of two: wrapping is a bitwise and)
_ROW = 5  # log2(operators.LATTICE)
_COS, _SIN = F(math.cos(0.6)), F(math.sin(0.6))  # fBm's turn between octaves


@njit(cache=True, nogil=True, inline="always")
def _value(x: F, y: F, values: np.ndarray) -> F:
    """operators.value_noise at one point of one image's lattice values [LATTICE²]."""
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    ix, iy = np.int64(x0), np.int64(y0)
    c0, c1 = ix & _WRAP, (ix + 1) & _WRAP
    r0, r1 = (iy & _WRAP) << _ROW, ((iy + 1) & _WRAP) << _ROW
    sx = (fx * fx) * (F(3.0) - F(2.0) * fx)
    sy = (fy * fy) * (F(3.0) - F(2.0) * fy)
    top = lerp32(values[r0 + c0], values[r0 + c1], sx)
    bottom = lerp32(values[r1 + c0], values[r1 + c1], sx)
    return lerp32(top, bottom, sy) * F(2.0) - F(1.0)


@njit(cache=True, nogil=True, inline="always")
def _gradient(x: F, y: F, gx: np.ndarray, gy: np.ndarray) -> F:
    """operators.gradient_noise at one point, given one image's unit gradients [LATTICE²]."""
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    ix, iy = np.int64(x0), np.int64(y0)
    c0, c1 = ix & _WRAP, (ix + 1) & _WRAP
    r0, r1 = (iy & _WRAP) << _ROW, ((iy + 1) & _WRAP) << _ROW
    fx1, fy1 = fx - F(1.0), fy - F(1.0)
    d00 = gx[r0 + c0] * fx + gy[r0 + c0] * fy
    d10 = gx[r0 + c1] * fx1 + gy[r0 + c1] * fy
    d01 = gx[r1 + c0] * fx + gy[r1 + c0] * fy1
    d11 = gx[r1 + c1] * fx1 + gy[r1 + c1] * fy1
    sx = ((fx * fx) * fx) * (fx * (fx * F(6.0) - F(15.0)) + F(10.0))
    sy = ((fy * fy) * fy) * (fy * (fy * F(6.0) - F(15.0)) + F(10.0))
    return lerp32(lerp32(d00, d10, sx), lerp32(d01, d11, sx), sy) * F(1.4)


@njit(cache=True, nogil=True, boundscheck=False)
def noise(
    x: np.ndarray,
    y: np.ndarray,
    values: np.ndarray,
    gx: np.ndarray,
    gy: np.ndarray,
    gradient: bool,
    octaves: int,
    gain: np.ndarray,
    out: np.ndarray,
) -> None:
    """out [n, N] = value or gradient noise at x, y [n, N] (octaves 0), or their fBm over
    `octaves` octaves with per-image gain [n] (operators.fbm). values, gx, gy: [n, LATTICE²]
    (gx, gy are read for gradient noise only)."""
    n, npix = x.shape
    for i in range(n):
        v, ga, gb = values[i], gx[i], gy[i]
        for j in range(npix):
            px, py = x[i, j], y[i, j]
            if octaves == 0:
                out[i, j] = _gradient(px, py, ga, gb) if gradient else _value(px, py, v)
                continue
            total, amp, norm = F(0.0), F(1.0), F(0.0)
            for o in range(octaves):
                ox, oy = px + F(7.3 * o), py + F(3.1 * o)
                f = _gradient(ox, oy, ga, gb) if gradient else _value(ox, oy, v)
                total = total + amp * f
                norm = norm + amp
                amp = amp * gain[i]
                px, py = F(2.0) * (_COS * px - _SIN * py), F(2.0) * (_SIN * px + _COS * py)
            out[i, j] = total / norm
