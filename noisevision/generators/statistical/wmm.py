"""The statistical models' wavelet marginals (WMM): generalised-Laplacian targets per steerable
pyramid band, imposed by histogram matching."""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from noisevision.generators.statistical import steerable
from noisevision.generators.statistical.histmatch import HistogramTarget, match_histograms, quantile_table

WMM_GRID = (-200.0, 200.0, 0.5)  # value grid of the WMM target densities, x = -200:0.5:200


def wmm_band_scales(res: int) -> list[float]:
    """ŝ = 4^(N / band height) for the high-pass band, then each oriented band, level by level."""
    heights = [res] + [res >> lev for lev in range(steerable.pyramid_levels(res)) for _ in range(4)]
    return [4.0 ** (res / h) for h in heights]


WMM_SHAPE_GRID = 65  # shapes r tabulated on this many points; between them tables are blended


def _wmm_density(scale: float, shape: Tensor) -> tuple[Tensor, Tensor]:
    """Target density h ∝ exp(-|x/ŝ|^r) on x = -200:0.5:200 for shapes r [...] -> ([..., 801], x)."""
    lo, hi, step = WMM_GRID
    x = torch.arange(int(round((hi - lo) / step)) + 1, device=shape.device, dtype=torch.float64)
    x = lo + step * x
    return torch.exp(-((x / scale).abs() ** shape.to(torch.float64)[..., None])), x


@functools.lru_cache(maxsize=32)
def _wmm_tables(scale: float, n: int, r_low: float, r_high: float, device: torch.device) -> Tensor:
    """Quantile tables of the WMM target with ŝ = scale for shapes on a grid over [r_low, r_high]."""
    r = torch.linspace(r_low, r_high, WMM_SHAPE_GRID, device=device, dtype=torch.float64)
    dens, _ = _wmm_density(scale, r)
    first = torch.full((WMM_SHAPE_GRID,), WMM_GRID[0] - WMM_GRID[2] / 2, device=device)
    return quantile_table(dens, first, torch.full_like(first, WMM_GRID[2]), n)


def _wmm_target(shape: Tensor, scale: float, n: int, shape_range: tuple[float, float]) -> HistogramTarget:
    """Targets for rows of n coefficients with ŝ = scale and shapes r [G] (see wmm_targets)."""
    r_low, r_high = shape_range
    tables = _wmm_tables(scale, n, r_low, r_high, shape.device)
    pos = ((shape - r_low) / max(r_high - r_low, 1e-12) * (WMM_SHAPE_GRID - 1)).clamp(0, WMM_SHAPE_GRID - 1)
    row = pos.floor().clamp(max=WMM_SHAPE_GRID - 2).to(torch.int64)
    # The density is even on a grid symmetric about 0: mean 0, and the std from x > 0 alone.
    log_x, x2 = _wmm_half_grid(scale, shape.device)
    dens = torch.exp(-torch.exp(shape.to(torch.float64)[:, None] * log_x))  # h(x) for x > 0; h(0) = 1
    std = torch.sqrt(2.0 * (dens * x2).sum(-1) / (1.0 + 2.0 * dens.sum(-1))).to(torch.float32)
    weight = (pos - row).to(torch.float32)
    return HistogramTarget(tables, row, 2 * len(x2) + 1, weight, torch.zeros_like(std), std)


@functools.lru_cache(maxsize=32)
def _wmm_half_grid(scale: float, device: torch.device) -> tuple[Tensor, Tensor]:
    """log(x/ŝ) and x² at the grid points x > 0 (0.5 … 200), float64 [400] each."""
    lo, hi, step = WMM_GRID
    assert lo == -hi, "the WMM value grid must be symmetric about 0"
    x = step * torch.arange(1, int(round(hi / step)) + 1, device=device, dtype=torch.float64)
    return torch.log(x / scale), x * x


def wmm_targets(
    shape: Tensor, res: int, shape_range: tuple[float, float] = (0.4, 0.8)
) -> tuple[HistogramTarget, list[HistogramTarget]]:
    """The WMM band targets: (high-pass residual, [one per oriented level]).

    shape: r ~ U(shape_range), [B, C, 1 + 4·levels] (high-pass band, then 4 orientations per
    level). Target density on x = -200:0.5:200: h ∝ exp(-|x/ŝ|^r), ŝ = 4^(N / band height),
    bins of 0.5 centred on x; matched bands are standardised to the target's mean and std
    (exact, from the density). Rows follow steerable.Pyramid: (image, channel) for the high-pass
    band, (image, channel, orientation) for a level. Quantile tables are tabulated once per
    (ŝ, band size) on a grid of 65 shapes and blended linearly in between: r moves the
    quantiles smoothly, and no per-image tables are needed.
    """
    scales = wmm_band_scales(res)
    high = _wmm_target(shape[:, :, 0].reshape(-1), scales[0], res * res, shape_range)
    levels = []
    for lev in range(steerable.pyramid_levels(res)):
        bands = slice(1 + 4 * lev, 5 + 4 * lev)
        r = shape[:, :, bands].reshape(-1)
        levels.append(_wmm_target(r, scales[bands.start], (res >> lev) ** 2, shape_range))
    return high, levels


def impose_wmm(
    spec: Tensor, targets: tuple[HistogramTarget, list[HistogramTarget]], pyramid: steerable.SteerablePyramid
) -> Tensor:
    """Impose the band marginals on channels given by their fft2 spectrum [B, C, N, N].

    Builds the steerable pyramid, histogram-matches every band but the low-pass residual to its
    target (standardised to the target mean/std) and returns the rebuilt channels [B, C, N, N].
    """
    high, levels = targets
    pyr = pyramid.build_from_spectrum(spec)  # its bands are matched in place: fresh tensors
    hp = pyr.highpass
    rows = hp.view(-1, hp.shape[-2] * hp.shape[-1])
    pyr.highpass = match_histograms(rows, high, overwrite=True).view(hp.shape)
    for lev, target in enumerate(levels):
        z = pyr.levels[lev]  # [B, C, 2, n, n] complex: two orientations per entry
        rows = torch.view_as_real(z).view(-1, z.shape[-2] * z.shape[-1], 2)  # [B·C·2, n², 2]
        matched = match_histograms(rows, target, overwrite=True)
        pyr.levels[lev] = torch.view_as_complex(matched.view(*z.shape, 2))
    return pyramid.reconstruct(pyr)
