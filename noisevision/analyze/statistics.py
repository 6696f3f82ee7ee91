"""Per-image statistics of natural-image research, batched over uint8 images [B, 3, H, W].

Each statistic is one number per image (`image_statistics`), so that a source is described by
their distributions; the radially averaged amplitude spectrum (`radial_spectrum`) is a curve per
image. All computed on the luminance in [0, 1] (torchvision's grey weights) unless said.

    spectrum_slope      slope of log amplitude against log spatial frequency, fitted between
                        FIT_BAND cycles per image (white noise 0, natural photographs -0.8 to -1.5)
    anisotropy          |Σ P(f) e^{2iθ(f)}| / Σ P(f) over the fitted band: 0 when power is spread
                        over all orientations, 1 when it all lies along one
    gradient_kurtosis   kurtosis of the horizontal and vertical differences (Gaussian 3; natural
                        images are sparse: 10 and more)
    wavelet_kurtosis_S  kurtosis of the Haar detail coefficients at scale S (1 finest)
    local_contrast      mean standard deviation of the luminance in 16 px windows
    luminance_mean, luminance_std
    channel_correlation mean Pearson correlation of the R, G, B pixel values (1 for grey images)
    colorfulness        Hasler & Süsstrunk's colourfulness on the 0..255 scale (0 for grey images)
    distinct_colors     distinct colours after quantising each channel to 32 levels
    flat_fraction       share of pixels whose gradient magnitude is below FLAT (≈ 2.5 grey levels)
    edge_density        share of pixels whose Sobel gradient magnitude is above EDGE (≈ 25 levels)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from noisevision.augment import GRAY_WEIGHTS

FIT_BAND = (4.0, 0.25)  # the slope fit: from 4 cycles per image to a quarter of the pixel rate
CURVE_BINS = 24  # log-spaced frequency bins of the radial curve, 1 cycle/image to Nyquist
WAVELET_SCALES = 3
CONTRAST_WINDOW = 16
FLAT = 0.01  # gradient magnitude (luminance units per pixel) below which a pixel is flat
EDGE = 0.1  # Sobel gradient magnitude above which a pixel is an edge
COLOR_SHIFT = 3
COLOR_LEVELS = 256 >> COLOR_SHIFT  # 32

STATISTICS = (
    "spectrum_slope",
    "anisotropy",
    "gradient_kurtosis",
    *(f"wavelet_kurtosis_{s}" for s in range(1, WAVELET_SCALES + 1)),
    "local_contrast",
    "luminance_mean",
    "luminance_std",
    "channel_correlation",
    "colorfulness",
    "distinct_colors",
    "flat_fraction",
    "edge_density",
)
#: Heavy-tailed statistics, compared on a log scale when they form a feature vector.
LOG_SCALED = frozenset(s for s in STATISTICS if "kurtosis" in s or s == "distinct_colors")


def luminance(images: Tensor) -> Tensor:
    """uint8 [B, 3, H, W] -> float [B, H, W] in [0, 1]."""
    w = torch.tensor(GRAY_WEIGHTS, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 * w).sum(1)


def _frequency_grid(h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Radius in cycles per image (of the shorter side) and orientation in radians, [H, W] each,
    in torch.fft.fft2's layout."""
    fy = torch.fft.fftfreq(h, device=device).view(-1, 1) * min(h, w)
    fx = torch.fft.fftfreq(w, device=device).view(1, -1) * min(h, w)
    return torch.sqrt(fx**2 + fy**2), torch.atan2(fy, fx)


def amplitude_spectrum(lum: Tensor) -> Tensor:
    """|FFT| of each mean-removed, Hann-windowed luminance image: [B, H, W] (the window keeps the
    image's borders from adding a cross of power along the axes)."""
    _, h, w = lum.shape
    window = torch.outer(
        torch.hann_window(h, periodic=False, device=lum.device),
        torch.hann_window(w, periodic=False, device=lum.device),
    )
    x = (lum - lum.mean((1, 2), keepdim=True)) * window
    return torch.fft.fft2(x).abs()


def curve_frequencies(res: int) -> Tensor:
    """Centres of the radial curve's bins, cycles per image: [CURVE_BINS], 1 .. res/2."""
    edges = torch.logspace(0.0, math.log10(res / 2), CURVE_BINS + 1, dtype=torch.float64)
    return torch.sqrt(edges[:-1] * edges[1:]).float()


def radial_spectrum(amplitude: Tensor) -> Tensor:
    """Radially averaged amplitude [B, CURVE_BINS] in `curve_frequencies` bins (NaN: empty bin)."""
    b, h, w = amplitude.shape
    radius, _ = _frequency_grid(h, w, amplitude.device)
    edges = torch.logspace(0.0, math.log10(min(h, w) / 2), CURVE_BINS + 1, device=amplitude.device)
    which = torch.bucketize(radius.flatten(), edges) - 1  # bin of each frequency, -1 / CURVE_BINS: outside
    inside = (which >= 0) & (which < CURVE_BINS)
    idx = which[inside]
    sums = torch.zeros(b, CURVE_BINS, device=amplitude.device).index_add_(
        1, idx, amplitude.flatten(1)[:, inside]
    )
    counts = torch.zeros(CURVE_BINS, device=amplitude.device).index_add_(
        0, idx, torch.ones_like(idx, dtype=torch.float32)
    )
    return sums / counts.clamp_min(1) + torch.where(counts > 0, 0.0, float("nan"))


def spectrum_slope(amplitude: Tensor) -> Tensor:
    """Least-squares slope of log amplitude against log frequency over FIT_BAND, per image [B]."""
    _, h, w = amplitude.shape
    radius, _ = _frequency_grid(h, w, amplitude.device)
    band = (radius >= FIT_BAND[0]) & (radius <= FIT_BAND[1] * min(h, w))
    x = radius[band].log()
    y = amplitude[:, band].clamp_min(1e-12).log()  # [B, P]
    xc = x - x.mean()
    return ((y - y.mean(1, keepdim=True)) * xc).sum(1) / (xc**2).sum()


def anisotropy(amplitude: Tensor) -> Tensor:
    """Orientation anisotropy of the power in FIT_BAND, per image [B], 0..1."""
    _, h, w = amplitude.shape
    radius, theta = _frequency_grid(h, w, amplitude.device)
    band = (radius >= FIT_BAND[0]) & (radius <= FIT_BAND[1] * min(h, w))
    power = amplitude[:, band] ** 2
    c, s = torch.cos(2 * theta[band]), torch.sin(2 * theta[band])
    total = power.sum(1).clamp_min(1e-20)
    return torch.sqrt((power * c).sum(1) ** 2 + (power * s).sum(1) ** 2) / total


def kurtosis(x: Tensor) -> Tensor:
    """Kurtosis E[(x-μ)⁴]/σ⁴ along the last dim (Gaussian 3); 3 where x is constant (no tails)."""
    d = x - x.mean(-1, keepdim=True)
    var = (d**2).mean(-1)
    k = (d**4).mean(-1) / var.clamp_min(1e-20) ** 2
    return torch.where(var > 1e-12, k, torch.full_like(k, 3.0))


def haar_details(lum: Tensor, scales: int = WAVELET_SCALES) -> list[Tensor]:
    """Haar detail coefficients (horizontal, vertical, diagonal) per scale, finest first: each
    [B, 3·(H/2^s)·(W/2^s)]; orthonormal, from the four pixels of each 2×2 block (strided slices: a
    one-channel convolution is several times slower on a CPU)."""
    x, out = lum, []
    for _ in range(scales):
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
        a, b = x[:, 0:h:2, 0:w:2], x[:, 0:h:2, 1:w:2]  # top left, top right
        c, d = x[:, 1:h:2, 0:w:2], x[:, 1:h:2, 1:w:2]  # bottom left, bottom right
        left, right = a + c, b + d
        details = (left - right, (a + b) - (c + d), (a - b) - (c - d))  # horizontal, vertical, diagonal
        out.append(torch.stack(details, 1).flatten(1) / 2)
        x = (left + right) / 4  # the local mean, in luminance units
    return out


def _channel_moments(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """Per image the channel means [B, 3] and covariance matrix [B, 3, 3] (one batched product:
    the colour statistics are all functions of these)."""
    x = rgb.flatten(2)  # [B, 3, H·W]
    mean = x.mean(-1)
    d = x - mean[..., None]
    return mean, torch.bmm(d, d.transpose(1, 2)) / x.shape[-1]


def _channel_correlation(cov: Tensor) -> Tensor:
    """Mean of the three pairwise correlations of the channels, [B]; a flat channel counts as
    perfectly correlated (it carries no colour of its own)."""
    sd = cov.diagonal(dim1=1, dim2=2).clamp_min(0).sqrt()  # [B, 3]
    pairs = []
    for i, j in ((0, 1), (0, 2), (1, 2)):
        both = (sd[:, i] > 1e-6) & (sd[:, j] > 1e-6)
        r = cov[:, i, j] / (sd[:, i] * sd[:, j]).clamp_min(1e-12)
        pairs.append(torch.where(both, r, torch.ones_like(r)))
    return torch.stack(pairs, 1).mean(1)


def _colorfulness(mean: Tensor, cov: Tensor) -> Tensor:
    """Hasler & Süsstrunk (2003) on the 0..255 scale, [B], from the opponent channels rg = R - G and
    yb = (R + G)/2 - B as linear maps of the channel moments."""
    opponent = torch.tensor([[1.0, -1.0, 0.0], [0.5, 0.5, -1.0]], device=cov.device) * 255.0
    m = mean @ opponent.T  # [B, 2]: means of rg, yb
    var = torch.einsum("ki,bij,kj->bk", opponent, cov, opponent).clamp_min(0)  # [B, 2]
    return torch.sqrt(var.sum(1)) + 0.3 * torch.sqrt((m**2).sum(1))


def _distinct_colors(images: Tensor) -> Tensor:
    """Distinct colours per image after quantising each channel to COLOR_LEVELS levels, [B]."""
    q = (images >> COLOR_SHIFT).to(torch.int64)  # COLOR_LEVELS levels per channel
    code = ((q[:, 0] * COLOR_LEVELS + q[:, 1]) * COLOR_LEVELS + q[:, 2]).flatten(1)  # [B, H·W]
    seen = torch.zeros(len(code), COLOR_LEVELS**3, dtype=torch.bool, device=images.device)
    return seen.scatter_(1, code, True).sum(1).float()  # a presence table, not a sort: 10× faster


def _local_contrast(lum: Tensor) -> Tensor:
    """Mean luminance standard deviation in non-overlapping CONTRAST_WINDOW windows, [B]."""
    x = lum.unsqueeze(1)
    k = min(CONTRAST_WINDOW, x.shape[-1], x.shape[-2])
    mean = F.avg_pool2d(x, k)
    sq = F.avg_pool2d(x * x, k)
    return (sq - mean**2).clamp_min(0).sqrt().flatten(1).mean(1)


def _sobel_magnitude(lum: Tensor) -> Tensor:
    """Sobel gradient magnitude in luminance units per pixel, [B, H-2, W-2]: the 3×3 kernels as
    a difference and a [1, 2, 1] smoothing of strided slices."""
    h = lum[:, :, 2:] - lum[:, :, :-2]  # [B, H, W-2]
    v = lum[:, 2:, :] - lum[:, :-2, :]  # [B, H-2, W]
    gx = (h[:, :-2] + 2 * h[:, 1:-1] + h[:, 2:]) / 8
    gy = (v[:, :, :-2] + 2 * v[:, :, 1:-1] + v[:, :, 2:]) / 8
    return torch.sqrt(gx**2 + gy**2)


def image_statistics(images: Tensor) -> tuple[dict[str, Tensor], Tensor]:
    """Every statistic of STATISTICS for uint8 images [B, 3, H, W] (float [B] each), and the radial
    amplitude curve [B, CURVE_BINS]."""
    rgb = images.float() / 255.0
    w = torch.tensor(GRAY_WEIGHTS, device=images.device)
    lum = torch.einsum("bchw,c->bhw", rgb, w)  # = luminance(images)
    amp = amplitude_spectrum(lum)
    dx, dy = lum[:, :, 1:] - lum[:, :, :-1], lum[:, 1:, :] - lum[:, :-1, :]
    grad = torch.sqrt(dx[:, :-1, :] ** 2 + dy[:, :, :-1] ** 2)  # [B, H-1, W-1]
    mean, cov = _channel_moments(rgb)
    stats = {
        "spectrum_slope": spectrum_slope(amp),
        "anisotropy": anisotropy(amp),
        "gradient_kurtosis": kurtosis(torch.cat([dx.flatten(1), dy.flatten(1)], 1)),
    }
    for s, details in enumerate(haar_details(lum), 1):
        stats[f"wavelet_kurtosis_{s}"] = kurtosis(details)
    stats.update(
        local_contrast=_local_contrast(lum),
        luminance_mean=lum.flatten(1).mean(1),
        luminance_std=lum.flatten(1).std(1, unbiased=False),
        channel_correlation=_channel_correlation(cov),
        colorfulness=_colorfulness(mean, cov),
        distinct_colors=_distinct_colors(images),
        flat_fraction=(grad < FLAT).flatten(1).float().mean(1),
        edge_density=(_sobel_magnitude(lum) > EDGE).flatten(1).float().mean(1),
    )
    return stats, radial_spectrum(amp)


def statistics_matrix(stats: dict[str, Tensor]) -> Tensor:
    """The statistics as one row per image [B, len(STATISTICS)], heavy-tailed ones as log."""
    cols = [stats[s].clamp_min(1e-6).log() if s in LOG_SCALED else stats[s] for s in STATISTICS]
    return torch.stack(cols, 1).float()
