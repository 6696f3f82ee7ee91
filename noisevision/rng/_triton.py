"""Triton kernels of `noisevision.rng.cuda` (a module of their own: Triton resolves the helpers
a kernel calls among its module's globals, and importing it costs time that only CUDA runs pay)."""

import triton
import triton.language as tl


@triton.jit
def mix(x):
    """SplitMix64's finaliser on uint64."""
    x = x ^ (x >> 30)
    x = x * 0xBF58476D1CE4E5B9
    x = x ^ (x >> 27)
    x = x * 0x94D049BB133111EB
    return x ^ (x >> 31)


@triton.jit
def draw_kernel(keys_ptr, out_ptr, salt, n, m, total, low, span, MODE: tl.constexpr, BLOCK: tl.constexpr):
    """out[b, j] of a draw with `salt`, n values per key (UNIFORM: from m = ceil(n/2) words).

    MODE 0: the words; 1: uniform floats (word j's high 24 bits, then for j >= m word j - m's low
    24 bits, times 2^-24); 2: integers low + (word >>> 33) % span.
    """
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < total
    row = offs // n
    j = offs - row * n
    key = tl.load(keys_ptr + row, mask=inside, other=0).to(tl.uint64, bitcast=True)
    state = mix(key ^ salt.to(tl.int64).to(tl.uint64, bitcast=True))  # (a small salt comes as int32)
    gamma = 0x9E3779B97F4A7C15
    if MODE == 1:
        low_half = j >= m
        word = mix(state + (tl.where(low_half, j - m, j) + 1).to(tl.uint64) * gamma)
        bits24 = tl.where(low_half, (word >> 8) & 0xFFFFFF, word >> 40)
        tl.store(out_ptr + offs, bits24.to(tl.float32) * (1.0 / 16777216.0), mask=inside)
    else:
        word = mix(state + (j + 1).to(tl.uint64) * gamma)
        if MODE == 2:
            value = (word >> 33).to(tl.int64) % span + low
            tl.store(out_ptr + offs, value, mask=inside)
        else:
            tl.store(out_ptr + offs, word.to(tl.int64, bitcast=True), mask=inside)


@triton.jit
def mix_kernel(x_ptr, out_ptr, total, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < total
    x = tl.load(x_ptr + offs, mask=inside, other=0).to(tl.uint64, bitcast=True)
    tl.store(out_ptr + offs, mix(x).to(tl.int64, bitcast=True), mask=inside)
