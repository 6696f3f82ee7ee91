"""Programs' lattice noise on a CPU: value and gradient noise, their fBm and cellular noise, one
compiled pass per field (numba).

As tensor code an octave of noise costs about 25 passes over the field (floors, four gathers,
fades, three lerps), and fBm repeats them for every octave; here each pixel runs all its octaves
in registers. Every float operation is the tensor code's, in its order, in float32: torch's
`lerp` rounds its product-sum once on x86-64's vector code paths, so `fused_math.lerp32` does
too. operators.value_noise, gradient_noise, fbm and voronoi call these on CPU; tests compare
both paths.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from noisevision.generators.fused_math import lerp32

F = np.float32
_WRAP = 31  # operators.LATTICE - 1 (a power of two: wrapping is a bitwise and)
_ROW = 5  # log2(operators.LATTICE)
_CELLS = 1023  # operators.LATTICE² - 1
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


@njit(cache=True, nogil=True, boundscheck=False)
def voronoi(
    x: np.ndarray, y: np.ndarray, values: np.ndarray, angles: np.ndarray, jitter: np.ndarray, out: np.ndarray
) -> None:
    """operators.voronoi before its square roots: out[0] the squared distance to the nearest
    jittered lattice point (F1²), out[1] to the second nearest (F2²), out[2] the nearest cell's
    value. x, y [n, N]; values, angles [n, LATTICE²] (the points' jitter); jitter [n]; out
    [3, n, N]. The cells are visited in the tensor code's order, ties keep the earlier cell."""
    n, npix = x.shape
    big = F(1e9)
    for i in range(n):
        v, a, jit = values[i], angles[i], jitter[i]
        for j in range(npix):
            x0, y0 = np.floor(x[i, j]), np.floor(y[i, j])
            fx, fy = x[i, j] - x0, y[i, j] - y0
            ix, iy = np.int64(x0), np.int64(y0)
            d1, d2, val = big, big, F(0.0)
            for dy in range(-1, 2):
                row = ((iy + dy) & _WRAP) << _ROW
                for dx in range(-1, 2):
                    c = row + ((ix + dx) & _WRAP)
                    px = (F(dx + 0.5) + jit * (v[c] - F(0.5))) - fx
                    py = (F(dy + 0.5) + jit * (a[c] - F(0.5))) - fy
                    d = px * px + py * py
                    if d < d1:
                        d2, val = d1, v[(c * 7 + 13) & _CELLS]
                    else:
                        d2 = _minimum(d2, d)
                    d1 = _minimum(d1, d)
            out[0, i, j], out[1, i, j], out[2, i, j] = d1, d2, val


@njit(cache=True, nogil=True, inline="always")
def _minimum(a: F, b: F) -> F:
    """torch.minimum: the smaller, NaN if either is."""
    if a != a or b != b:
        return a + b
    return a if a <= b else b
