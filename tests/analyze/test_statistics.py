"""Per-image statistics on images whose answer is known: white noise, 1/f noise, stripes, grey
and flat images, dead leaves."""

import math

import pytest
import torch

from noisevision import generators
from noisevision.analyze.statistics import STATISTICS, image_statistics, kurtosis, statistics_matrix

pytestmark = pytest.mark.usefixtures("one_thread")


def grey(x: torch.Tensor) -> torch.Tensor:
    """float [B, H, W] -> uint8 [B, 3, H, W], stretched to 0..255 per image."""
    lo, hi = x.amin((1, 2), keepdim=True), x.amax((1, 2), keepdim=True)
    u = ((x - lo) / (hi - lo) * 255).round().to(torch.uint8)
    return u.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def power_law_noise(n: int, res: int, alpha: float, seed: int = 0) -> torch.Tensor:
    """Random-phase images with amplitude spectrum 1/f^alpha."""
    g = torch.Generator().manual_seed(seed)
    fy = torch.fft.fftfreq(res).view(-1, 1) * res
    fx = torch.fft.fftfreq(res).view(1, -1) * res
    f = torch.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    phase = torch.rand(n, res, res, generator=g) * 2 * math.pi
    return grey(torch.fft.ifft2(f**-alpha * torch.exp(1j * phase)).real)


def test_white_noise_has_a_flat_spectrum_and_gaussian_like_marginals():
    g = torch.Generator().manual_seed(0)
    stats, curve = image_statistics((torch.rand(8, 3, 128, 128, generator=g) * 256).to(torch.uint8))
    assert set(stats) == set(STATISTICS)
    assert abs(float(stats["spectrum_slope"].mean())) < 0.05
    assert float(stats["anisotropy"].max()) < 0.15
    assert float(stats["channel_correlation"].abs().max()) < 0.05  # independent channels
    assert curve.shape == (8, 24)


@pytest.mark.parametrize("alpha", [1.0, 2.0])
def test_power_law_noise_has_its_slope(alpha):
    stats, _ = image_statistics(power_law_noise(8, 128, alpha))
    assert float(stats["spectrum_slope"].mean()) == pytest.approx(-alpha, abs=0.1)
    assert float(stats["channel_correlation"].min()) == pytest.approx(1.0)  # grey images
    assert float(stats["colorfulness"].max()) == pytest.approx(0.0, abs=1e-3)


def test_dead_leaves_slope_lies_in_the_natural_range():
    images = generators.get("dead_leaves-mixed")(range(16), res=128)
    stats, _ = image_statistics(images)
    assert -1.6 < float(stats["spectrum_slope"].median()) < -0.8
    assert float(stats["gradient_kurtosis"].median()) > 6  # sparse: flat regions and sharp edges


def test_stripes_are_anisotropic_and_a_checkerboard_has_known_contrast():
    x = torch.arange(128.0).view(1, 1, 128).expand(1, 128, 128)
    stats, _ = image_statistics(grey(torch.sin(2 * math.pi * x / 8)))
    assert float(stats["anisotropy"][0]) > 0.95
    board = ((torch.arange(128).view(-1, 1) + torch.arange(128).view(1, -1)) % 2).float()[None]
    stats, _ = image_statistics(grey(board))
    assert float(stats["local_contrast"][0]) == pytest.approx(0.5, abs=1e-4)
    assert float(stats["edge_density"][0]) == 0.0  # Sobel averages a one-pixel checkerboard away
    assert float(stats["distinct_colors"][0]) == 2


def test_a_flat_image_is_flat():
    stats, _ = image_statistics(torch.full((1, 3, 64, 64), 90, dtype=torch.uint8))
    assert float(stats["flat_fraction"][0]) == 1.0
    assert float(stats["edge_density"][0]) == 0.0
    assert float(stats["distinct_colors"][0]) == 1.0
    assert float(stats["luminance_std"][0]) == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(statistics_matrix(stats)).all()


def test_kurtosis_of_gaussian_and_laplacian_samples():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 200_000, generator=g, dtype=torch.float64)
    assert float(kurtosis(x)[0]) == pytest.approx(3.0, abs=0.05)
    u = torch.rand(1, 200_000, generator=g, dtype=torch.float64)
    lap = -torch.sign(u - 0.5) * torch.log1p(-2 * (u - 0.5).abs())  # Laplace by inversion
    assert float(kurtosis(lap)[0]) == pytest.approx(6.0, abs=0.3)
