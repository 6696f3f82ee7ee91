"""The statistical models' spectrum imposition as one fused CPU loop (numba).

As torch operations, imposing the spectrum costs about eight full-size passes over the
coefficients (|X|², its sum, the factor A·std/|X|, the product); this loop reads each
coefficient twice (once for the power, once for the product). It also completes an rfft2 grid to
the full fft2 grid the steerable pyramid needs (half the cost of an fft2 of the real channels).
spectrum.impose_spectrum and full_spectrum call these on CPU and keep the torch operations for
other devices; tests compare both paths.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, boundscheck=False)
def impose_spectrum(spec: np.ndarray, amplitude: np.ndarray, res: int, out: np.ndarray) -> None:
    """spectrum.impose_spectrum: out = spec·A·std/|spec|, DC = the old mean, per channel.

    spec: complex64 [B, C, N, M] (M = N: fft2 grid; M = N/2+1: rfft2 grid, where columns
    1 … N/2-1 stand for two); amplitude: float32 [B, N, M] with unit total power; out: like spec,
    or [B, C, N, N] for an rfft2 spec: the full fft2 grid, its other half filled by symmetry.
    """
    b, c, n, m = spec.shape
    half = m != res
    last = m - 1 if res % 2 == 0 else m  # the Nyquist column of an even rfft2 grid counts once
    for i in range(b):
        amp = amplitude[i]
        for j in range(c):
            x = spec[i, j]
            y = out[i, j]
            total = 0.0  # Σ|X|² over the full spectrum, in float64
            for r in range(n):
                row = 0.0
                twice = 0.0
                for q in range(m):
                    p = np.float64(x[r, q].real) ** 2 + np.float64(x[r, q].imag) ** 2
                    if half and 0 < q < last:
                        twice += p
                    else:
                        row += p
                total += row + 2.0 * twice
            mean = x[0, 0].real
            std = np.float32(np.sqrt(max(total - np.float64(mean) ** 2, 0.0)))
            for r in range(n):
                for q in range(m):
                    v = x[r, q]
                    p = v.real * v.real + v.imag * v.imag
                    f = amp[r, q] * std / np.sqrt(max(p, np.float32(1e-30)))
                    y[r, q] = v * f
            y[0, 0] = mean
            if half and y.shape[1] == res:
                _mirror(y, m, res)


@njit(cache=True, nogil=True, boundscheck=False)
def _mirror(y: np.ndarray, m: int, res: int) -> None:
    """Fill columns m … N-1 of a real image's spectrum y [N, N] from columns 0 … m-1:
    Y(-f) = conj Y(f)."""
    n = y.shape[0]
    for r in range(n):
        src = y[r]
        dst = y[(n - r) % n]
        for q in range(m, res):
            dst[q] = np.conj(src[res - q])


@njit(cache=True, nogil=True, boundscheck=False)
def full_spectrum(spec: np.ndarray, res: int, out: np.ndarray) -> None:
    """out [..., N, N] = the fft2 grid of real images given on the rfft2 grid spec [..., N, M]."""
    m = spec.shape[-1]
    x = spec.reshape(-1, spec.shape[-2], m)
    y = out.reshape(-1, out.shape[-2], res)
    for i in range(x.shape[0]):
        y[i, :, :m] = x[i]
        _mirror(y[i], m, res)
