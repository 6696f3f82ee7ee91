"""Per-image random streams: every value is a hash of (image key, draw, element).

Each image owns a 64-bit key derived from (generator, seed, index). A draw of shape S for a batch
hashes (key, draw number, element number) with SplitMix64 (`splitmix`), so image i receives the
same numbers whatever batch it is rendered in, on any device, in any order: an image is a pure
function of (generator, parameters, seed, index). Draws run as int64 tensor code on the device;
on CPU a numba loop computes the same words (`cpu`), on CUDA fused Triton kernels (`cuda`).
No torch.Generator state is involved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from noisevision.errors import FieldError
from noisevision.rng import cuda as rng_cuda
from noisevision.rng.splitmix import _GAMMA, _srl, hash_words, mix64_int, mix64_tensor, name_hash, uniform24

MAX_SEED = (1 << 63) - 1  # keys hash a seed modulo 2^64: larger seeds would alias smaller ones
_MASK64 = (1 << 64) - 1


def check_seed(seed: object, what: str = "seed") -> int:
    """`seed` as an int in 0 .. 2^63 - 1; NoisevisionError (one line) for anything else.

    Every place a seed enters (generators, datasets, training, the CLI) goes through here, so that a
    seed is never silently folded onto another one (2^64 would render seed 0's images)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise FieldError(what, f"{{field}} must be an integer in 0..{MAX_SEED}, got {seed!r}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise FieldError(what, f"{{field}} must be in 0..{MAX_SEED} (0 to 2^63 - 1), got {seed}")
    return int(seed)


def mix64(x: Tensor, salt: int = 0) -> Tensor:
    """SplitMix64 finaliser of x ^ salt: a bijective 64-bit mixer on int64 tensors (a new tensor)."""
    if x.device.type == "cpu":
        from noisevision.rng import cpu as rng_cpu  # numba compiles (or loads) on first use

        x = x.contiguous()
        out = torch.empty_like(x)
        words = out.numpy().reshape(-1).view(np.uint64)
        rng_cpu.mix_keys(x.numpy().reshape(-1).view(np.uint64), np.uint64(salt & _MASK64), words)
        return out
    if salt:
        x = x ^ salt
    if x.device.type == "cuda" and rng_cuda.available(x.device):
        return rng_cuda.mix64_fused(x)  # one fused kernel instead of nine
    return mix64_tensor(x)


class Rng:
    """Independent random streams for a batch of images, one 64-bit key per image.

    Every call (`uniform`, `normal`, …) is a new draw: its numbers depend on the image key, the
    number of draws made before it, and the element position, never on the batch.
    """

    def __init__(self, keys: Tensor):
        if keys.dtype != torch.int64 or keys.dim() != 1:
            raise ValueError("keys must be a 1-D int64 tensor")
        self.keys = keys
        self._draws = 0

    # ------------------------------------------------------------------ construction
    @classmethod
    def for_indices(cls, tag: str, seed: int, indices: Tensor) -> Rng:
        """Keys for images `indices` of the stream named `tag` (e.g. a generator name) and `seed`."""
        base = mix64_int(name_hash(tag) ^ mix64_int(check_seed(seed)))
        return cls(mix64(indices.to(torch.int64) * _GAMMA + base))

    def child(self, tag: str | int, sub: Tensor | None = None) -> Rng:
        """A new independent Rng derived from these keys, e.g. per region or per sub-image.

        With `sub` (int64 [B] or [B, n]) the child has one key per entry: key_i derived with sub_ij.
        """
        salt = name_hash(tag) if isinstance(tag, str) else mix64_int(tag + 0x5BD1E995)
        keys = mix64(self.keys, salt)
        if sub is None:
            return Rng(keys)
        sub = sub.to(torch.int64)
        while keys.dim() < sub.dim():
            keys = keys.unsqueeze(-1)
        return Rng(mix64(keys + sub * _GAMMA).reshape(-1))

    @property
    def batch(self) -> int:
        return self.keys.shape[0]

    @property
    def device(self) -> torch.device:
        return self.keys.device

    # ------------------------------------------------------------------ raw bits
    def bits(self, *shape: int) -> Tensor:
        """Random int64 words, shape [B, *shape], all 64 bits random."""
        n = math.prod(shape)
        if self._fused():
            return rng_cuda.draw(self.keys, self._next_salt(), n, rng_cuda.WORDS).reshape(self.batch, *shape)
        state = self._draw()
        if self.device.type == "cpu":
            from noisevision.rng import cpu as rng_cpu  # numba compiles (or loads) on first use

            out = torch.empty(self.batch, n, dtype=torch.int64)
            rng_cpu.hash_words(state.numpy().view(np.uint64), out.numpy().view(np.uint64))
            return out.reshape(self.batch, *shape)
        return hash_words(state, n).reshape(self.batch, *shape)

    def word_states(self) -> Tensor:
        """A new draw of words, hashed elsewhere: the per-image states [B] (int64) from which
        word i of image b is mix64(state[b] + (i + 1)·γ), as `bits` would give it (a CPU kernel
        that needs only some of a draw's words hashes just those)."""
        return self._draw()

    def _next_salt(self) -> int:
        """A new draw: the salt its per-image states are derived with."""
        self._draws += 1
        return mix64_int(self._draws * 0x632BE59BD9B4E019)

    def _draw(self) -> Tensor:
        """A new draw: the per-image state [B] its words are hashed from."""
        return mix64(self.keys, self._next_salt())

    def _fused(self) -> bool:
        """Whether this batch's draws run as fused kernels (rng_cuda: CUDA with Triton)."""
        return self.device.type != "cpu" and rng_cuda.available(self.device)

    # ------------------------------------------------------------------ distributions
    def uniform(self, *shape: int, low: float = 0.0, high: float = 1.0) -> Tensor:
        """Uniform float32 in [low, high), 24 random bits."""
        n = math.prod(shape)
        if self._fused():
            u = rng_cuda.draw(self.keys, self._next_salt(), n, rng_cuda.UNIFORM)
        elif self.device.type == "cpu":
            from noisevision.rng import cpu as rng_cpu

            u = torch.empty(self.batch, n, dtype=torch.float32)
            rng_cpu.uniform24(self._draw().numpy().view(np.uint64), u.numpy())
        else:
            u = uniform24(self.bits((n + 1) // 2), n)
        u = u.reshape(self.batch, *shape)
        return u if (low, high) == (0.0, 1.0) else low + (high - low) * u

    def normal(self, *shape: int, mean: float = 0.0, std: float = 1.0) -> Tensor:
        """Gaussian float32 (Box–Muller on the two 24-bit halves of one word)."""
        b = self.bits(*shape)
        u1 = (_srl(b, 40).to(torch.float32) + 0.5) * (2.0**-24)  # (0, 1): log is finite
        u2 = (b & 0xFFFFFF).to(torch.float32) * (2.0**-24)
        z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
        return z if (mean, std) == (0.0, 1.0) else mean + std * z

    def randint(self, low: int, high: int, *shape: int) -> Tensor:
        """Integers uniform in [low, high) as int64 (exact for ranges below 2^31)."""
        span = high - low
        if span <= 0:
            raise ValueError("randint needs high > low")
        if self._fused():
            n = math.prod(shape)
            return rng_cuda.draw(self.keys, self._next_salt(), n, rng_cuda.RANDINT, low, span).reshape(
                self.batch, *shape
            )
        if self.device.type == "cpu":
            from noisevision.rng import cpu as rng_cpu

            out = torch.empty(self.batch, math.prod(shape), dtype=torch.int64)
            rng_cpu.randint(self._draw().numpy().view(np.uint64), low, span, out.numpy())
            return out.reshape(self.batch, *shape)
        return low + (_srl(self.bits(*shape), 33) % span)

    def laplace(self, *shape: int, scale: float = 1.0) -> Tensor:
        """Laplace(0, scale) float32 by inverse CDF."""
        u = self.uniform(*shape) - 0.5
        return -scale * torch.sign(u) * torch.log1p(-2.0 * u.abs().clamp(max=0.5 - 2.0**-25))


def as_indices(indices: Sequence[int] | Tensor | range, device: torch.device | str = "cpu") -> Tensor:
    """Normalise user indices to a 1-D int64 tensor on `device` (a range stays a range until here:
    no Python list of its elements is built)."""
    if isinstance(indices, Tensor):
        t = indices
    elif isinstance(indices, range):
        t = torch.arange(indices.start, indices.stop, indices.step, dtype=torch.int64)
    else:
        t = torch.as_tensor(list(indices), dtype=torch.int64)
    if t.dim() != 1:
        t = t.reshape(-1)
    if t.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError("indices must be integers")
    return t.to(device=device, dtype=torch.int64)
