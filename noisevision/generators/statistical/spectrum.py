"""The statistical models' 1/f^α spectrum: per-image slopes, amplitude spectra, and imposing them
on channels (keeping phase, mean and std)."""

from __future__ import annotations

import torch
from torch import Tensor

from noisevision.rng import Rng


def sample_slopes(rng: Rng, slope_range: tuple[float, float], jitter: float) -> dict[str, Tensor]:
    """s ~ U(slope_range), d ~ N(0, jitter²); α_x = s + d, α_y = s − d. [B] each."""
    s = rng.uniform(low=slope_range[0], high=slope_range[1])
    d = rng.normal(std=jitter)
    return {"slope": s, "slope_jitter": d, "alpha_x": s + d, "alpha_y": s - d}


def spectrum_amplitude(alpha_x: Tensor, alpha_y: Tensor, res: int, onesided: bool = True) -> Tensor:
    """A = 1 / (1e-16 + |f_x/N|^α_x + |f_y/N|^α_y), zero at DC.

    alpha_x, alpha_y: [B] (α_x for the horizontal frequency, along columns). Returns float32
    [B, N, N/2+1] on the rfft2 grid (onesided) or [B, N, N] on the fft2 grid, scaled to unit
    total power Σ A² (the scale is irrelevant: imposing restores each channel's std).
    """
    dev = alpha_x.device
    fy = torch.fft.fftfreq(res, device=dev, dtype=torch.float64).abs()  # |f_y / N|
    fx = torch.fft.rfftfreq(res, device=dev, dtype=torch.float64) if onesided else fy
    ax = alpha_x.to(torch.float64)[:, None, None]
    ay = alpha_y.to(torch.float64)[:, None, None]
    amp = 1.0 / (1e-16 + fx[None, None, :] ** ax + fy[None, :, None] ** ay)
    amp[:, 0, 0] = 0.0
    amp = amp / _power(amp.square(), res).sqrt()[:, None, None]
    return amp.to(torch.float32)


def _power(p: Tensor, res: int) -> Tensor:
    """Σ|X|² over the whole spectrum from |X|² [..., N, N] (fft2 grid) or [..., N, N/2+1] (rfft2).

    On the rfft2 grid columns 1 … N/2-1 stand for two columns of the full spectrum. With
    norm="forward" this is the mean of x² (Parseval).
    """
    total = p.sum((-2, -1))
    if p.shape[-1] == res:
        return total
    total = 2.0 * total - p[..., 0].sum(-1)
    return total - p[..., -1].sum(-1) if res % 2 == 0 else total


def impose_spectrum(spec: Tensor, amplitude: Tensor, full: bool = False) -> Tensor:
    """Give each channel the amplitude spectrum A, keeping phase, mean and std.

    spec: complex [B, C, N, M] from torch.fft.rfft2 (M = N/2+1) or fft2 (M = N) with
    norm="forward"; amplitude [B, N, M] on the same grid, Σ A² = 1 (spectrum_amplitude).
    Returns the new channels' spectrum phase(X)·A·std with DC = the old mean: with unit-power A
    and unit-modulus phases the new std is exactly the old one (MATLAB divides by the measured
    std, the same number). An exactly-zero coefficient stays zero (MATLAB: A·e^{i·0}), a
    measure-zero event for these noise images. `full`: spec is on the rfft2 grid and the result
    on the full fft2 grid [B, C, N, N] (for the pyramid; rfft2 is half the cost of fft2).
    """
    res = spec.shape[-2]
    if spec.device.type == "cpu":  # one fused loop instead of ~8 passes
        from noisevision.generators.statistical import spectrum_cpu  # numba compiles (or loads) on first use

        spec = spec.contiguous()
        out = spec.new_empty(*spec.shape[:-1], res) if full else torch.empty_like(spec)
        spectrum_cpu.impose_spectrum(spec.numpy(), amplitude.contiguous().numpy(), res, out.numpy())
        return out
    out = _impose_spectrum_torch(spec, amplitude)
    return _full_spectrum_torch(out) if full else out


def full_spectrum(half: Tensor) -> Tensor:
    """The fft2 grid [..., N, N] of real images from their rfft2 grid [..., N, N/2+1]:
    X(-f) = conj X(f) fills the other columns."""
    res = half.shape[-2]
    if half.device.type == "cpu":
        from noisevision.generators.statistical import spectrum_cpu

        half = half.contiguous()
        out = half.new_empty(*half.shape[:-1], res)
        spectrum_cpu.full_spectrum(half.numpy(), res, out.numpy())
        return out
    return _full_spectrum_torch(half)


def _full_spectrum_torch(half: Tensor) -> Tensor:
    res, m = half.shape[-2], half.shape[-1]
    rows = torch.arange(res, device=half.device).neg_().remainder_(res)  # row of -f_y
    mirror = half.index_select(-2, rows)[..., 1 : res - m + 1].flip(-1).conj()
    return torch.cat((half, mirror), -1)


def _impose_spectrum_torch(spec: Tensor, amplitude: Tensor) -> Tensor:
    res = spec.shape[-2]
    mean = spec[..., 0, 0].real  # [B, C]
    ri = torch.view_as_real(spec)
    power = torch.addcmul(ri[..., 0].square(), ri[..., 1], ri[..., 1])  # |X|²: cheaper than abs()
    std = (_power(power, res) - mean * mean).clamp_min(0).sqrt()
    factor = (amplitude[:, None] * std[..., None, None]).mul_(power.clamp_min_(1e-30).rsqrt_())
    out = spec * factor  # (complex × real: broadcasting real into the re/im pairs is slower)
    out[..., 0, 0] = mean.to(out.dtype)
    return out
