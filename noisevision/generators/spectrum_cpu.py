"""The statistical models' spectrum imposition as one fused CPU loop (numba).

As torch operations, imposing the spectrum costs about eight full-size passes over the
coefficients (|X|², its sum, the factor A·std/|X|, the product); this loop reads each
coefficient twice (once for the power, once for the product). statistical.impose_spectrum calls
it on CPU and keeps the torch operations for other devices; a test compares both paths.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, boundscheck=False)
def impose_spectrum(spec: np.ndarray, amplitude: np.ndarray, res: int, out: np.ndarray) -> None:
    """statistical.impose_spectrum: out = spec·A·std/|spec|, DC = the old mean, per channel.

    spec, out: complex64 [B, C, N, M] (M = N: fft2 grid; M = N/2+1: rfft2 grid, where columns
    1 … N/2-1 stand for two); amplitude: float32 [B, N, M] with unit total power.
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

