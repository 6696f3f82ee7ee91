"""SplitMix64 hashing of Rng keys and draws on CPU as numba loops (streams.mix64, Rng.bits, …).

As int64 tensor code every hash costs about ten full passes (xor, emulated logical shifts,
wrapping multiplies); this loop keeps each word in registers. It computes exactly the same
words: uint64 arithmetic wraps like torch's int64 (two's complement).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, nogil=True, inline="always")
def _mix(x: np.uint64) -> np.uint64:
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


@njit(cache=True, nogil=True, boundscheck=False)
def mix_keys(x: np.ndarray, salt: np.uint64, out: np.ndarray) -> None:
    """out[i] = mix64(x[i] ^ salt), uint64 [n] (written): a batch's keys or draw states in one
    call, where the tensor code takes ten small ops (most of a draw's cost for small batches)."""
    for i in range(x.shape[0]):
        out[i] = _mix(x[i] ^ salt)


@njit(cache=True, nogil=True, boundscheck=False)
def hash_words(state: np.ndarray, out: np.ndarray) -> None:
    """out[b, i] = mix64(state[b] + (i + 1)·γ): uint64 [B] -> uint64 [B, n] (written)."""
    for b in range(out.shape[0]):
        s = state[b]
        for i in range(out.shape[1]):
            out[b, i] = _mix(s + np.uint64(i + 1) * _GAMMA)


@njit(cache=True, nogil=True, boundscheck=False)
def uniform24(state: np.ndarray, out: np.ndarray) -> None:
    """The floats of Rng.uniform from the words hash_words would give, float32 [B, n] (written).

    Word i gives two 24-bit fields: bits 40-63 for element i, bits 8-31 for element i + m
    (m = ceil(n / 2) words); each becomes field·2^-24, exact in float32.
    """
    n = out.shape[1]
    m = (n + 1) // 2
    scale = np.float32(2.0**-24)
    for b in range(out.shape[0]):
        s = state[b]
        for i in range(m):
            w = _mix(s + np.uint64(i + 1) * _GAMMA)
            out[b, i] = np.float32(w >> np.uint64(40)) * scale
            if i + m < n:
                out[b, i + m] = np.float32((w >> np.uint64(8)) & np.uint64(0xFFFFFF)) * scale


@njit(cache=True, nogil=True, boundscheck=False)
def randint(state: np.ndarray, low: int, span: int, out: np.ndarray) -> None:
    """The integers of Rng.randint from the words hash_words would give, int64 [B, n] (written):
    low + (word >> 33) mod span."""
    lo, m = np.int64(low), np.uint64(span)
    for b in range(out.shape[0]):
        s = state[b]
        for i in range(out.shape[1]):
            out[b, i] = lo + np.int64((_mix(s + np.uint64(i + 1) * _GAMMA) >> np.uint64(33)) % m)
