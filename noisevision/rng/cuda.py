"""The random streams' hashing on CUDA as fused Triton kernels: one launch per draw.

As tensor code, a draw is about 30 int64 operations (SplitMix64 of the key, then of every
counter, emulated logical shifts, the 24-bit fields), each a kernel launch: generators that make
hundreds of draws per batch spent most of their time launching them. The kernels compute the same
words and the same floats bit for bit (tests compare them with the tensor code, through Triton's
interpreter on a CPU), so images do not depend on which path ran.

`available(device)` says whether the kernels can run there (CUDA and Triton present, and not
switched off with NOISEVISION_TRITON=0).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from noisevision.device import triton_kernels_run
from noisevision.logs import get_logger
from noisevision.rng.splitmix import _srl, hash_words, mix64_int, mix64_tensor, uniform24

log = get_logger(__name__)

WORDS, UNIFORM, RANDINT, MIX = range(4)
_BLOCK = 1024


@functools.lru_cache(maxsize=1)
def _kernels():
    """(triton, draw_kernel, mix_kernel), imported on first use (Triton takes a while to load)."""
    import triton

    from noisevision.rng import _triton

    return triton, _triton.draw_kernel, _triton.mix_kernel


_AVAILABLE: dict[str, bool] = {}


def available(device: torch.device) -> bool:
    """Whether the kernels run on `device` (CUDA, Triton importable, NOISEVISION_TRITON not 0;
    on a CPU only under Triton's interpreter, TRITON_INTERPRET=1, which the tests use).

    The first time, every kernel runs once on a few keys and must give the tensor code's numbers
    (`self_check`); a Triton that cannot compile them, or computes otherwise, is not used.
    """
    return triton_kernels_run(device, "random-number", self_check, _AVAILABLE)


def self_check(device: torch.device) -> bool:
    """Each kernel on a few keys equals the tensor code (splitmix)."""
    keys = torch.arange(-3, 4, device=device, dtype=torch.int64) * 0x9E3779B97F4A7C1
    salt = mix64_int(0x632BE59BD9B4E019)
    state = mix64_tensor(keys ^ salt)
    n = 5
    same = [
        torch.equal(draw(keys, salt, n, WORDS), hash_words(state, n)),
        torch.equal(draw(keys, salt, n, UNIFORM), uniform24(hash_words(state, (n + 1) // 2), n)),
        torch.equal(draw(keys, salt, n, RANDINT, -2, 77), -2 + _srl(hash_words(state, n), 33) % 77),
        torch.equal(mix64_fused(keys), mix64_tensor(keys)),
    ]
    if not all(same):
        log.warning("fused random-number kernels disagree with the tensor code here; using tensor code")
    return all(same)


def draw(keys: Tensor, salt: int, n: int, mode: int, low: int = 0, span: int = 1) -> Tensor:
    """One draw of n values per key: WORDS (int64), UNIFORM (float32 in [0, 1)) or RANDINT
    (int64 in [low, low + span)); [B, n]."""
    triton, draw_kernel, _ = _kernels()
    b = keys.shape[0]
    dtype = torch.float32 if mode == UNIFORM else torch.int64
    out = torch.empty(b, n, dtype=dtype, device=keys.device)
    total = b * n
    if total:
        m = (n + 1) // 2
        grid = (triton.cdiv(total, _BLOCK),)
        draw_kernel[grid](keys.contiguous(), out, salt, n, m, total, low, span, MODE=mode, BLOCK=_BLOCK)
    return out


def mix64_fused(x: Tensor) -> Tensor:
    """SplitMix64's finaliser of every element of an int64 tensor (a new tensor)."""
    triton, _, mix_kernel = _kernels()
    x = x.contiguous()
    out = torch.empty_like(x)
    if x.numel():
        mix_kernel[(triton.cdiv(x.numel(), _BLOCK),)](x, out, x.numel(), BLOCK=_BLOCK)
    return out
