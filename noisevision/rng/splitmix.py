"""SplitMix64 as int64 tensor code: the hash that every random number of noisevision comes from.

All arithmetic is int64 tensor code (wrapping multiply, emulated logical shifts), so it runs
batched on any device. `streams` builds the per-image random streams on it; the CPU and CUDA
kernels (`cpu`, `cuda`) compute the same words and are checked against these functions.
"""

from __future__ import annotations

import zlib

import torch
from torch import Tensor

_MASK = (1 << 64) - 1


def _s64(v: int) -> int:
    """A 64-bit constant as the signed value torch.int64 stores."""
    v &= _MASK
    return v - (1 << 64) if v >= 1 << 63 else v


_GAMMA = _s64(0x9E3779B97F4A7C15)
_M1 = _s64(0xBF58476D1CE4E5B9)
_M2 = _s64(0x94D049BB133111EB)


def _srl(x: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (x >> k).bitwise_and_((1 << (64 - k)) - 1)


def mix64_tensor(x: Tensor) -> Tensor:
    """SplitMix64 finaliser as tensor code: a bijective 64-bit mixer on int64 tensors (a new tensor)."""
    x = x ^ _srl(x, 30)  # the only copy: the rest works in place on it
    x.mul_(_M1)
    x.bitwise_xor_(_srl(x, 27)).mul_(_M2)
    return x.bitwise_xor_(_srl(x, 31))


def mix64_int(v: int) -> int:
    """mix64 for one Python int (used to build keys from names and seeds)."""
    v &= _MASK
    v = ((v ^ (v >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    v = ((v ^ (v >> 27)) * 0x94D049BB133111EB) & _MASK
    return _s64(v ^ (v >> 31))


def name_hash(text: str) -> int:
    """A stable 64-bit value for a string (Python's hash() is salted per process)."""
    data = text.encode()
    return mix64_int((zlib.crc32(data) << 32) | zlib.adler32(data))


def hash_words(state: Tensor, n: int) -> Tensor:
    """The n words of a draw per image as tensor code: mix64(state[b] + (i + 1)·γ) -> int64 [B, n]."""
    counter = torch.arange(1, n + 1, device=state.device, dtype=torch.int64) * _GAMMA
    return mix64_tensor(state[:, None] + counter[None, :])


def uniform24(words: Tensor, n: int) -> Tensor:
    """n floats per row from words [B, ceil(n/2)]: two disjoint 24-bit fields per word, ·2^-24."""
    u24 = torch.cat([_srl(words, 40), (words >> 8) & 0xFFFFFF], dim=1)[:, :n]
    return u24.to(torch.float32).mul_(2.0**-24)
