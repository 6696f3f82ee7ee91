"""Pink noise for the random StyleGANs: 1/f^a maps with random phase, and the sparse variants'
envelope of bicubically up-sampled Laplace samples."""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from noisevision.generators.stylegan.layers import sum_in_order
from noisevision.rng import Rng


# ------------------------------------------------------------------------------------ pink noise
@lru_cache(maxsize=16)
def _bicubic_matrix(n_in: int, n_out: int, device: torch.device) -> Tensor:
    """[n_out, n_in] matrix of 1-D bicubic up-sampling; bicubic 2-D resizing is U @ X @ U.T."""
    eye = torch.eye(n_in, device=device).view(n_in, 1, n_in, 1)
    return F.interpolate(eye, size=(n_out, 1), mode="bicubic", align_corners=False)[:, 0, :, 0].T


def pink_noise(rng: Rng, count: int, size: int, envelope: bool) -> Tensor:
    """`count` pink-noise maps per image, float32 [B, count, size, size] with unit std.

    Amplitude spectrum 1/f^a with a ~ U(0.5, 1.5) per map (f normalised to 1 at the Nyquist
    frequency), uniform random phase. With `envelope` the zero-mean map is multiplied by 4×4
    Laplace(0, 1) samples up-sampled (bicubic) to the map size: sparse, blotchy noise.
    """
    dev = rng.device
    exponent = rng.uniform(count, low=0.5, high=1.5)[..., None, None]  # [B, n, 1, 1]
    fy = torch.fft.fftfreq(size, device=dev)[:, None] * 2
    fx = torch.fft.rfftfreq(size, device=dev)[None, :] * 2
    radius = torch.sqrt(fy**2 + fx**2)
    radius[0, 0] = 1.0
    amplitude = radius ** (-exponent)  # [B, n, size, size//2+1]
    amplitude[..., 0, 0] = 0.0  # zero mean
    phase = rng.uniform(count, size, size // 2 + 1) * (2 * math.pi)
    maps = torch.fft.irfft2(torch.polar(amplitude, phase), s=(size, size))
    maps = maps - maps.mean(dim=(-2, -1), keepdim=True)
    if envelope:
        up = _bicubic_matrix(4, size, dev)  # [size, 4]
        maps = maps * bicubic_envelope(rng.laplace(count, 4, 4), up)
    return maps / maps.std(dim=(-2, -1), keepdim=True).clamp_min(1e-12)


def bicubic_envelope(samples: Tensor, up: Tensor) -> Tensor:
    """U @ L @ U.T for 4×4 samples L [B, n, 4, 4] and U [size, 4]: [B, n, size, size].

    Written as 16 products added one after another, not as a BLAS matmul: BLAS rounds by matrix
    shape (here the batch's rows) and by CPU, and a vectorised sum over a short axis rounds by the
    CPU's vector width; plain products and additions round the same everywhere.
    """
    rows = sum_in_order(samples[..., :, k, None] * up[:, k] for k in range(4))  # [B, n, 4, size]
    return sum_in_order(up[:, k, None] * rows[..., k, None, :] for k in range(4))
