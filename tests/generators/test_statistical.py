"""Statistical image models: measured image statistics against the sampled models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from noisevision import generators
from noisevision.errors import NoisevisionError
from noisevision.generators import statistical as st
from noisevision.generators.statistical import color, color_cpu, histmatch, model
from noisevision.generators.statistical import steerable as sp
from noisevision.generators.statistical.color import _multinomial_counts_torch
from noisevision.generators.statistical.spectrum import _full_spectrum_torch, _impose_spectrum_torch
from noisevision.generators.statistical.wmm import _wmm_density, _wmm_target
from noisevision.rng import Rng

pytestmark = pytest.mark.usefixtures("one_thread_module")
NAMES = ["stat-spectrum", "stat-wmm", "stat-spectrum_color", "stat-spectrum_color_wmm"]


def _params_and_images(name: str, n: int, res: int, **params):
    """The sampled model and the images of indices 0..n-1 (the keys `__call__` uses)."""
    gen = generators.get(name, **params)
    model = gen.sample_params(Rng.for_indices(gen.key, 0, torch.arange(n)), res)
    return gen, model, gen(range(n), res=res)


def _spectrum_slopes(img: torch.Tensor, fmin: float, fmax: float) -> torch.Tensor:
    """Log-log slope of the radially averaged amplitude spectrum (mean over channels): [B]."""
    n = img.shape[-1]
    x = img.float() - img.float().mean((-2, -1), keepdim=True)
    amp = torch.fft.fft2(x).abs().mean(1)  # [B, N, N]
    f = torch.fft.fftfreq(n) * n
    radius = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    edges = torch.logspace(math.log10(fmin), math.log10(fmax), 9)
    logf = torch.stack([torch.log(torch.sqrt(a * b)) for a, b in zip(edges[:-1], edges[1:])])
    loga = torch.stack(
        [torch.log(amp[:, (radius >= a) & (radius < b)].mean(-1)) for a, b in zip(edges[:-1], edges[1:])], -1
    )
    xc = logf - logf.mean()
    return ((loga - loga.mean(-1, keepdim=True)) * xc).sum(-1) / (xc * xc).sum()


def _kurtosis(x: torch.Tensor) -> torch.Tensor:
    x = x.flatten(-2)
    x = x - x.mean(-1, keepdim=True)
    return (x**4).mean(-1) / (x**2).mean(-1) ** 2


# ============================================================================ registry
def test_the_four_datasets_are_registered_with_paper_labels():
    labels = {name: generators.spec(name).label for name in NAMES}
    assert labels == {
        "stat-spectrum": "Spectrum",
        "stat-wmm": "WMM",
        "stat-spectrum_color": "Spectrum + Color",
        "stat-spectrum_color_wmm": "Spectrum + Color + WMM",
    }
    for name in NAMES:
        spec = generators.spec(name)
        assert spec.family == "statistical" and spec.default_res == 128 and spec.description
    gen = generators.get("stat-spectrum_color_wmm")
    assert gen.params == {
        "n_iter": 10,
        "slope_range": (0.5, 3.5),
        "slope_jitter": 0.05,
        "wmm_shape_range": (0.4, 0.8),
        "pyramid": "spatial",
    }


def test_bad_parameters_and_resolutions_are_one_line_errors():
    with pytest.raises(NoisevisionError, match="divisible by 8"):
        generators.get("stat-wmm")([0], res=100)
    generators.get("stat-spectrum")([0], res=36)  # no pyramid: any resolution from 32 px
    with pytest.raises(NoisevisionError, match="too small"):
        generators.get("stat-spectrum")([0], res=16)
    with pytest.raises(NoisevisionError, match="unknown pyramid"):
        generators.get("stat-wmm", pyramid="wavelet")
    with pytest.raises(NoisevisionError, match="n_iter"):
        generators.get("stat-wmm", n_iter=0)
    with pytest.raises(NoisevisionError, match="bad parameters"):
        generators.get("stat-wmm", colour=True)


# ============================================================================ whole images
@pytest.mark.parametrize("name", NAMES)
def test_images_are_bytes_of_their_index_at_any_batch_size_and_order(name):
    gen = generators.get(name)
    full = gen(range(8), res=64, seed=3)
    singles = torch.cat([gen([i], res=64, seed=3) for i in range(8)])
    threes = torch.cat([gen(list(range(i, min(i + 3, 8))), res=64, seed=3) for i in range(0, 8, 3)])
    order = [5, 2, 7, 0, 3, 6, 1, 4]
    assert torch.equal(full, singles) and torch.equal(full, threes)
    assert torch.equal(full[order], gen(order, res=64, seed=3))
    gen.cpu_chunk, gen.cpu_pixels = 3, 0  # one call rendering chunks of 3
    assert torch.equal(full, gen(range(8), res=64, seed=3))
    # min-max rescaling of the whole image: every image reaches both 0 and 255
    flat = full.flatten(1)
    assert (flat.amin(1) == 0).all() and (flat.amax(1) == 255).all()
    assert not torch.equal(full, gen(range(8), res=64, seed=4))


def test_render_takes_keys_directly_for_texture_banks():
    gen = generators.get("stat-spectrum_color_wmm")
    rng = Rng.for_indices("dead_leaves-textures/bank", 0, torch.arange(3))
    tex = gen.render(rng, 64)
    assert tex.shape == (3, 3, 64, 64) and tex.dtype == torch.uint8


def test_sampled_parameters_follow_the_spec():
    gen = generators.get("stat-spectrum_color_wmm")
    p = gen.sample_params(Rng.for_indices(gen.key, 0, torch.arange(64)), 64)
    assert ((p["slope"] >= 0.5) & (p["slope"] < 3.5)).all()
    torch.testing.assert_close(p["alpha_x"] - p["alpha_y"], 2 * p["slope_jitter"])
    assert p["slope_jitter"].std() == pytest.approx(0.05, rel=0.35)
    assert ((p["n_colors"] >= 3) & (p["n_colors"] <= 22)).all() and len(p["n_colors"].unique()) > 8
    assert ((p["blur"] >= 1) & (p["blur"] <= 10)).all()
    torch.testing.assert_close(p["proportions"].sum(1), torch.ones(64))
    beyond = torch.arange(22)[None] >= p["n_colors"][:, None]
    assert (p["proportions"][beyond] == 0).all()
    eye = torch.eye(3).expand(64, 3, 3)
    torch.testing.assert_close(p["pc"].transpose(1, 2) @ p["pc"], eye, atol=1e-5, rtol=0)
    assert p["wmm_shape"].shape == (64, 3, 1 + 4 * 2)
    assert 0.4 <= p["wmm_shape"].min() and p["wmm_shape"].max() < 0.8
    assert p["init"].shape == (64, 3, 64, 64) and 0 <= p["init"].min() and p["init"].max() < 256


def test_spectrum_slope_tracks_the_sampled_alpha():
    _, p, imgs = _params_and_images("stat-spectrum", 16, 64)
    alpha = (p["alpha_x"] + p["alpha_y"]) / 2
    slopes = _spectrum_slopes(imgs, 1, 16)  # below the uint8 noise floor of steep spectra
    assert np.corrcoef(alpha.numpy(), slopes.numpy())[0, 1] < -0.98
    assert (slopes + alpha).abs().max() < 0.35


def test_the_spectrum_alone_is_imposed_once_because_later_rounds_only_round():
    gen, p, imgs = _params_and_images("stat-spectrum", 32, 64)
    amplitude = st.spectrum_amplitude(p["alpha_x"], p["alpha_y"], 64)
    chan = p["init"]
    for _ in range(gen.config.n_iter):  # the recipe's ten rounds, written out
        spec = st.impose_spectrum(torch.fft.rfft2(chan, norm="forward"), amplitude)
        chan = torch.fft.irfft2(spec, s=(64, 64), norm="forward")
    diff = (st.to_rgb8(chan, p["pc"], p["mean"]).int() - imgs.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-4


def test_color_variants_match_the_colour_model():
    # Shallow spectra: smooth images have too few degrees of freedom for sample correlations.
    _, p, imgs = _params_and_images("stat-spectrum_color", 8, 64, slope_range=(0.5, 1.0))
    rgb = imgs.float()
    proj = st.project_colors(rgb, p["pc"], p["mean"]).flatten(2)  # [B, 3, N²], affine in the targets
    for i in range(8):
        for c in range(3):  # standardised projected channel vs standardised target histogram: KS
            counts = p["hist_counts"][i, c].double()
            centres = p["hist_lo"][i, c] + p["hist_step"][i, c] * (torch.arange(256) + 0.5)
            w = counts / counts.sum()
            mean = (w * centres).sum()
            std = (w * (centres - mean) ** 2).sum().sqrt()
            edges = (p["hist_lo"][i, c] + p["hist_step"][i, c] * torch.arange(257) - mean) / std
            target_cdf = torch.cat((torch.zeros(1, dtype=torch.float64), w.cumsum(0)))
            z = proj[i, c].double()
            z = (z - z.mean()) / z.std()
            sample_cdf = (z[None] <= edges[:, None]).double().mean(1)
            assert (sample_cdf - target_cdf).abs().max() < 0.03, (i, c)

    def corr(x):
        x = x.flatten(2) - x.flatten(2).mean(-1, keepdim=True)
        cov = x @ x.transpose(1, 2)
        d = cov.diagonal(dim1=1, dim2=2).sqrt()
        return cov / d[:, :, None] / d[:, None, :]

    gap = (corr(rgb) - corr(p["reference"])).abs()
    assert gap.mean() < 0.08 and gap.amax() < 0.35


def test_wmm_bands_are_sparse_like_their_targets():
    gen = generators.get("stat-wmm")
    p = gen.sample_params(Rng.for_indices(gen.key, 0, torch.arange(4)), 64)
    chan = st.impose_model(p, 64, gen.config)  # decorrelated channels before the RGB rotation
    pyr = sp.steerable_pyramid(64).build(chan)
    fine = torch.cat((_kurtosis(pyr.highpass)[..., None], _kurtosis(pyr.orientations(0))), -1)
    # ŝ = 4 (high-pass and level 0): generalised Laplacians with r in [0.4, 0.8], kurtosis >= 5.4
    assert (fine > 3.5).all() and fine.median() > 6
    dens, x = _wmm_density(4.0, p["wmm_shape"][..., :5])
    w = dens / dens.sum(-1, keepdim=True)
    m = (w * x).sum(-1, keepdim=True)
    target = (w * (x - m) ** 4).sum(-1) / ((w * (x - m) ** 2).sum(-1)) ** 2
    ratio = (fine / target).median()
    assert 0.7 < ratio < 1.5
    assert _kurtosis(pyr.orientations(1)).median() > 3.5  # ŝ = 16, still sparse


def test_wmm_images_have_coarse_structure_like_the_released_data():
    # Fidelity: a flat spectrum (slope ≈ 0) is the port's too-fine look; the
    # released stat-wmm images fall off (≈ -0.45 with this estimator, ≈ -0.4 from our spatial pyramid).
    imgs = generators.get("stat-wmm")(range(8), res=128).float()
    lum = (imgs * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True)
    assert _spectrum_slopes(lum, 2, 64).median() < -0.25


# ============================================================================ building blocks
@pytest.mark.parametrize("res", [32, 64, 128])
def test_frequency_pyramid_reconstructs_exactly(res):
    pyr = sp.steerable_pyramid(res, kind="frequency")
    x = torch.randn(2, 3, res, res)
    bands = pyr.build(x)
    assert len(bands.levels) == sp.pyramid_levels(res)
    assert bands.levels[-1].shape[-1] == res >> (len(bands.levels) - 1)
    assert (pyr.reconstruct(bands) - x).abs().max() < 1e-4


def test_pyramid_levels_follow_the_spec():
    assert [sp.pyramid_levels(r) for r in (32, 64, 128, 256, 512)] == [1, 2, 3, 4, 5]
    assert st.wmm_band_scales(128) == [4.0] * 5 + [16.0] * 4 + [256.0] * 4


def test_spatial_pyramid_is_matlabs_buildspyr():
    pyrtools = pytest.importorskip("pyrtools")
    x = torch.randn(64, 64, dtype=torch.float32)
    ours = sp.steerable_pyramid(64, kind="spatial").build(x)
    ref = pyrtools.pyramids.SteerablePyramidSpace(x.double().numpy(), height=2, order=3, edge_type="circular")
    np.testing.assert_allclose(ours.highpass.numpy(), ref.pyr_coeffs["residual_highpass"], atol=1e-5)
    for lev in range(2):
        for b in range(4):
            np.testing.assert_allclose(ours.orientations(lev)[b].numpy(), ref.pyr_coeffs[(lev, b)], atol=1e-5)
    low = torch.fft.ifft2(ours.low, norm="forward").real
    np.testing.assert_allclose(low.numpy(), ref.pyr_coeffs["residual_lowpass"], atol=1e-5)
    rec = sp.steerable_pyramid(64, kind="spatial").reconstruct(ours)
    np.testing.assert_allclose(rec.numpy(), ref.recon_pyr(), atol=1e-5)


def test_spatial_pyramid_cpu_kernels_match_torch():
    pyr = sp.steerable_pyramid(64, kind="spatial")
    spec = torch.fft.fft2(torch.rand(2, 3, 64, 64) * 100, norm="forward")
    fused, ref = pyr.build_from_spectrum(spec), pyr._build_torch(spec)  # same operations, same order
    assert torch.equal(fused.highpass, ref.highpass) and torch.equal(fused.low, ref.low)
    assert all(torch.equal(a, b) for a, b in zip(fused.levels, ref.levels, strict=True))
    assert torch.equal(pyr.reconstruct(fused), pyr._reconstruct_torch(ref))


def test_match_histograms_gives_the_target_marginal_and_standardises():
    torch.manual_seed(0)
    shape = torch.tensor([0.4, 0.6, 0.8])
    target = _wmm_target(shape, 4.0, 64 * 64, (0.4, 0.8))
    x = torch.randn(3, 64 * 64) * 7 + 3
    y = st.match_histograms(x, target)
    torch.testing.assert_close(y.mean(1), target.mean, atol=0.05 * target.std.max().item(), rtol=0)
    torch.testing.assert_close(y.std(1), target.std, rtol=0.03, atol=0)
    # the marginal itself: KS distance to the target CDF (bins of 0.5 on -200:0.5:200); as in
    # MATLAB's histoMatch the row's extremes land on the ends of the support, ±200
    dens, grid = _wmm_density(4.0, shape)
    w = dens / dens.sum(-1, keepdim=True)  # the target moments are the density's
    torch.testing.assert_close(target.mean, (w * grid).sum(-1).float(), atol=1e-6, rtol=0)
    torch.testing.assert_close(target.std, (w * grid**2).sum(-1).sqrt().float(), atol=0, rtol=1e-6)
    cdf = torch.cat((torch.zeros(3, 1, dtype=torch.float64), dens.cumsum(-1)), -1)
    cdf = cdf / cdf[:, -1:]
    edges = torch.cat((grid - 0.25, grid[-1:] + 0.25))
    sample_cdf = (y.double()[:, None, :] <= edges[None, :, None]).double().mean(-1)
    assert (sample_cdf - cdf).abs().amax() < 0.02
    assert y.amin(1).lt(-100).all() and y.amax(1).gt(100).all()
    # affine invariance (MATLAB standardises before matching) and the pair layout
    moved = st.match_histograms(5 * x - 2, target)
    torch.testing.assert_close(moved, y, atol=1e-3 * y.abs().max().item(), rtol=0)
    rows = torch.stack((x[0], x[1]), -1)[None]  # [1, n, 2]: rows (0, 0) and (0, 1)
    sub = st.HistogramTarget(
        target.table, target.row[:2], target.n_bins, target.weight[:2], target.mean[:2], target.std[:2]
    )
    torch.testing.assert_close(st.match_histograms(rows, sub)[0].T, st.match_histograms(x[:2], sub))


@pytest.mark.parametrize("layout", ["rows", "pairs"])
def test_cpu_kernels_match_like_the_torch_operations(layout):
    """The fused CPU kernels and the device-generic torch path give the same matching."""
    torch.manual_seed(1)
    n = 32 * 32
    x = (torch.randn(3, n, 2) if layout == "pairs" else torch.randn(6, n)) * 5 + 1
    wmm = _wmm_target(torch.rand(6) * 0.4 + 0.4, 16.0, n, (0.4, 0.8))  # blended, standardised
    color = st.histogram_target(torch.rand(6, 256) * 10, torch.zeros(6), torch.ones(6), n)
    for target in (wmm, color):
        cpu, ops = histmatch._match_histograms_cpu(x, target), histmatch._match_histograms_torch(x, target)
        assert cpu.shape == x.shape and cpu.dtype == x.dtype
        torch.testing.assert_close(cpu, ops, atol=1e-3 * ops.abs().max().item(), rtol=0)
        # overwrite: the same result, written over the input's storage
        spare = x.clone()
        again = st.match_histograms(spare, target, overwrite=True)
        assert torch.equal(again, cpu) and again.data_ptr() == spare.data_ptr() and torch.equal(spare, cpu)


@pytest.mark.parametrize("k", [1, 2])
def test_row_histogram_kernel_is_the_torch_range_and_bincount(k):
    """The range (integer keys), bin indices and scatter equal amin/amax and a bincount."""
    from noisevision.generators.statistical import histmatch_cpu

    torch.manual_seed(2)
    g0, n, nb = 5, 1000, 801
    x = torch.randn(g0, n * k) * torch.rand(g0, 1) * 100 - 3
    x[1] = -x[1].abs()  # a row of negative values: keys of negative floats order backwards
    x[2, 7] = -0.0
    xv = x.numpy()
    lo, scale = np.empty((g0, k), np.float32), np.empty((g0, k), np.float32)
    counts = np.zeros((g0 * k, nb), np.int32)
    bits = xv.view(np.int64 if k == 2 else np.int32)
    histmatch_cpu.row_histograms(xv, bits, k, nb, lo, scale, counts, np.empty(n * k, np.int32))
    rows = x.view(g0, n, k).transpose(1, 2)  # [G0, K, n]
    amin, amax = rows.amin(-1), rows.amax(-1)
    assert torch.equal(torch.from_numpy(lo), amin)
    width = torch.tensor(nb * (1.0 - 1e-6), dtype=torch.float32)
    assert torch.equal(torch.from_numpy(scale), width / (amax - amin))
    t = (rows - amin[..., None]) * torch.from_numpy(scale)[..., None]
    bins = t.to(torch.int64).clamp(0, nb - 1).reshape(g0 * k, n)
    expected = torch.stack([torch.bincount(b, minlength=nb) for b in bins]).to(torch.int32)
    assert torch.equal(torch.from_numpy(counts), expected)


def test_the_torch_matching_path_renders_the_same_images(monkeypatch):
    """Other devices run the torch operations: on CPU they give (nearly) the numba path's images."""
    gen = generators.get("stat-spectrum_color_wmm")
    fused = gen([0, 1], res=64).float()
    torch_path = lambda x, target, overwrite: histmatch._match_histograms_torch(x, target)  # noqa: E731
    monkeypatch.setattr(histmatch, "_match_histograms_cpu", torch_path)
    ops = gen([0, 1], res=64).float()
    # iterated matching amplifies rounding at bin edges into a few visibly moved pixels
    assert (fused - ops).abs().mean() < 1.0 and ((fused - ops).abs() > 8).float().mean() < 0.01


def test_quantile_table_inverts_the_target_cdf():
    counts = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 3.0, 1.0, 0.0]])
    table = st.quantile_table(counts, torch.tensor([0.0, 10.0]), torch.tensor([1.0, 2.0]), 8)
    torch.testing.assert_close(table[0], torch.arange(9) / 2.0)  # uniform on [0, 4)
    # second row: 3/4 of the mass on [12, 14), 1/4 on [14, 16)
    expected = torch.tensor([10.0, 13.0, 14.0, 18.0])  # MATLAB: ranks 0 and n map to the outer edges
    torch.testing.assert_close(table[1, [0, 3, 6, 8]], expected, atol=1e-5, rtol=0)


def test_multinomial_counts_cpu_kernel_matches_torch():
    torch.manual_seed(0)
    props = torch.rand(4, 22) + 0.001
    props[:, 7:] *= torch.arange(4)[:, None] > 1  # 7 colours in the first two images, 22 after
    cdf = (props / props.sum(1, keepdim=True)).cumsum(1)
    u = torch.rand(4, 5000)
    u[:, :22] = cdf  # pixels exactly on the boundaries go to the next colour
    counts = st.multinomial_counts(cdf, u)
    assert torch.equal(counts, _multinomial_counts_torch(cdf, u)) and (counts.sum(1) == 5000).all()
    assert (counts[:2, 7:21] == 0).all()


def test_quantile_table_cpu_kernel_matches_torch():
    torch.manual_seed(0)
    for counts, n in ((torch.randint(0, 50, (6, 256)), 4096), (torch.rand(5, 801) ** 8, 1024)):
        first, step = torch.randn(counts.shape[0]), torch.rand(counts.shape[0]) + 0.1
        c = counts.to(torch.float64)
        c = c + c.mean(-1, keepdim=True) * 1e-8
        cdf = torch.cat((c.new_zeros(c.shape[0], 1), c.cumsum(-1)), -1)
        cdf = cdf / cdf[:, -1:]
        ref = histmatch._quantile_table_torch(cdf, 1.0 / cdf.diff(dim=-1), first.double(), step.double(), n)
        assert torch.equal(st.quantile_table(counts, first, step, n), ref)


@pytest.mark.parametrize("onesided", [True, False])
def test_spectrum_imposition_cpu_kernel_matches_torch(onesided):
    ax, ay = torch.tensor([0.7, 3.1]), torch.tensor([0.8, 3.0])
    amp = st.spectrum_amplitude(ax, ay, 32, onesided=onesided)
    x = torch.rand(2, 3, 32, 32) * 100
    spec = torch.fft.rfft2(x, norm="forward") if onesided else torch.fft.fft2(x, norm="forward")
    spec[0, 1, 3, 4] = 0  # an exactly-zero coefficient stays zero on both paths
    fused, ref = st.impose_spectrum(spec, amp), _impose_spectrum_torch(spec, amp)
    torch.testing.assert_close(fused, ref, rtol=2e-5, atol=1e-6)
    assert fused[0, 1, 3, 4] == 0 and torch.equal(fused[..., 0, 0], spec[..., 0, 0].real.to(spec.dtype))


@pytest.mark.parametrize("res", [32, 33])
def test_full_spectrum_completes_the_rfft2_grid(res):
    x = torch.rand(2, 3, res, res) * 100
    half = torch.fft.rfft2(x, norm="forward")
    m = half.shape[-1]
    full = st.full_spectrum(half)
    assert torch.equal(full, _full_spectrum_torch(half)) and torch.equal(full[..., :m], half)
    torch.testing.assert_close(full, torch.fft.fft2(x, norm="forward"), rtol=0, atol=1e-4)
    # imposing onto the full grid = imposing on the half grid, then completing it
    amp = st.spectrum_amplitude(torch.tensor([0.7, 3.1]), torch.tensor([0.8, 3.0]), res)
    imposed = st.impose_spectrum(half, amp, full=True)
    assert torch.equal(imposed, st.full_spectrum(st.impose_spectrum(half, amp)))


def test_spectrum_amplitude_and_imposition():
    ax, ay = torch.tensor([1.0, 2.5]), torch.tensor([1.2, 2.4])
    full = st.spectrum_amplitude(ax, ay, 32, onesided=False)
    half = st.spectrum_amplitude(ax, ay, 32)
    torch.testing.assert_close(half, full[..., :17])
    assert (full[:, 0, 0] == 0).all()
    f = 3 / 32, 5 / 32  # (f_x, f_y) -> row f_y, column f_x
    ratio = full[:, 5, 3] / full[:, 1, 1]
    torch.testing.assert_close(ratio, (1 / 32**ax + 1 / 32**ay) / (f[0] ** ax + f[1] ** ay))
    x = torch.rand(2, 3, 32, 32) * 100
    spec = st.impose_spectrum(torch.fft.rfft2(x, norm="forward"), half)
    y = torch.fft.irfft2(spec, s=(32, 32), norm="forward")
    torch.testing.assert_close(y.mean((-2, -1)), x.mean((-2, -1)))
    torch.testing.assert_close(y.std((-2, -1)), x.std((-2, -1)), rtol=1e-4, atol=0)
    # |Y| ∝ A in every channel: the ratio is one constant per channel
    ratio = (torch.fft.fft2(y).abs() / full[:, None]).flatten(2)[..., 1:]  # drop DC (A = 0)
    torch.testing.assert_close(ratio.amax(-1) / ratio.amin(-1), torch.ones(2, 3), rtol=1e-3, atol=0)
    phase_in = torch.angle(torch.fft.fft2(x))[..., 1:, 1:]
    phase_out = torch.angle(torch.fft.fft2(y))[..., 1:, 1:]
    assert torch.cos(phase_in - phase_out).mean() > 0.999


@pytest.mark.parametrize("m", range(1, 11))
def test_box_blur_is_matlab_convn_same(m):
    torch.manual_seed(m)
    img = torch.rand(1, 1, 13, 13, dtype=torch.float64)
    ours = st.box_blur_same(img, torch.tensor([m]))[0, 0].numpy()
    full = np.zeros((13 + m - 1, 13 + m - 1))
    for dy in range(m):  # full 2-D convolution with ones(m)/m², then MATLAB's 'same' crop
        for dx in range(m):
            full[dy : dy + 13, dx : dx + 13] += img[0, 0].numpy() / m**2
    start = m // 2
    np.testing.assert_allclose(ours, full[start : start + 13, start : start + 13], atol=1e-12)


@pytest.mark.parametrize("res", [32, 128])
def test_colour_model_cpu_kernels_match_torch(res):
    rng = Rng.for_indices("colour-kernels", 0, torch.arange(20))
    colors, u = rng.uniform(22, 3), rng.uniform(res * res)
    props = rng.uniform(22) + 0.001
    counts = st.multinomial_counts((props / props.sum(1, keepdim=True)).cumsum(1), u)
    bands = color.band_image(colors, counts, res)
    assert torch.equal(bands, color._band_image_torch(colors, counts, res))
    img = bands + 10.0 * rng.uniform(3, res, res)
    size = torch.arange(20) % 10 + 1  # every blur size, the same size in several images
    assert torch.equal(st.box_blur_same(img, size), color._box_blur_torch(img, size))
    pc, mean = st.color_pca(img)
    ours, ref = color.projected_histograms(img, pc, mean), color._projected_histograms_torch(img, pc, mean)
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))


@pytest.mark.parametrize("res", [32, 128])
def test_colour_rescale_moments_and_rgb_cpu_kernels_match_torch(res):
    """The noise-and-rescale and RGB loops give the tensor code's bytes; the PCA moments, summed
    in another order, its float64 mean and scatter to the last bits, so the same float32 mean
    and axes."""
    b = 256 if res == 32 else 16
    rng = Rng.for_indices("colour-rescale", res, torch.arange(b))
    img = 256.0 * rng.uniform(3, res, res)
    noise = rng.uniform(3, res, res)
    ref = color.add_noise_and_rescale(img, noise)
    assert torch.equal(ref, color._add_noise_and_rescale_torch(img, noise))
    assert ref.amin() == 0 and torch.equal(ref.flatten(1).amax(1), torch.full((b,), 256.0))
    mean, scatter = torch.empty(b, 3, dtype=torch.float64), torch.empty(b, 3, 3, dtype=torch.float64)
    color_cpu.pca_moments(ref.numpy(), mean.numpy(), scatter.numpy())
    torch_mean, torch_scatter = color._pca_moments_torch(ref)
    torch.testing.assert_close(mean, torch_mean, rtol=1e-15, atol=0)
    assert torch.equal(mean.float(), torch_mean.float())
    scale = torch_scatter.abs().amax((1, 2), keepdim=True)  # off-diagonal sums cancel: to the diagonal's
    torch.testing.assert_close(scatter / scale, torch_scatter / scale, rtol=0, atol=1e-14)
    assert torch.equal(st.sym3_eigh(scatter)[1].float(), st.sym3_eigh(torch_scatter)[1].float())
    pc, mu = st.color_pca(ref)
    chan = 128.0 + 40.0 * rng.normal(3, res, res)
    pc[0] = 0.0  # a flat image: the range's guard against zero
    assert torch.equal(st.to_rgb8(chan, pc, mu), model._to_rgb8_torch(chan, pc, mu))


def test_jacobi_cpu_kernel_matches_torch_to_the_float32_axes():
    """The compiled rotations round their square roots correctly and torch's CPU sqrt of float64
    does not always: the same matrices to the last bits, and the same float32 axes."""
    p = st.sample_color_model(Rng.for_indices("jacobi", 0, torch.arange(512)), 32)
    x = p["reference"].flatten(2).double()
    x = x - x.mean(-1, keepdim=True)
    torch.manual_seed(0)
    y = torch.randn(512, 3, 3, dtype=torch.float64)
    eye = torch.eye(3, dtype=torch.float64).expand(512, 3, 3)
    for a in (x @ x.transpose(1, 2), y + y.transpose(1, 2), torch.diag_embed(y[:, 0]), 0.0 * y):
        ours, ours_v = a.clone(), eye.clone()
        color_cpu.jacobi_sweeps(ours.numpy(), ours_v.numpy(), 6)
        ref, ref_v = color._jacobi(a.clone(), eye.clone(), 6)
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-14 * a.abs().max().item())
        torch.testing.assert_close(ours_v, ref_v, rtol=0, atol=1e-14)
        assert torch.equal(ours_v.float(), ref_v.float())


def test_sym3_eigh_matches_lapack():
    torch.manual_seed(0)
    x = torch.randn(50, 3, 3, dtype=torch.float64) * torch.tensor([30.0, 3.0, 0.3])
    a = x @ x.transpose(1, 2)
    w, v = st.sym3_eigh(a)
    torch.testing.assert_close(w, torch.linalg.eigvalsh(a).flip(-1))
    torch.testing.assert_close(a @ v, v * w[:, None, :], atol=1e-9 * a.abs().max().item(), rtol=0)
    assert (v.sum(1) >= 0).all()


def test_colour_model_assignment_is_multinomial():
    p = st.sample_color_model(Rng.for_indices("colour-test", 0, torch.arange(6)), 64)
    assert p["reference"].shape == (6, 3, 64, 64)
    assert 0 <= p["reference"].min() and p["reference"].max() <= 256 + 1e-3
    counts, props = p["color_counts"].double(), p["proportions"].double()
    assert (counts.sum(1) == 64 * 64).all()
    assert (counts[props == 0] == 0).all()
    sigma = (64 * 64 * props * (1 - props)).sqrt()
    assert ((counts - 64 * 64 * props).abs() <= 5 * sigma + 1).all()


@pytest.mark.parametrize("name", list(st.VARIANTS))
def test_same_images_as_the_plain_per_image_recipe(name):
    """noisevision.reference computes the model image by image with NumPy FFTs, pyrtools' pyramid and
    histoMatch (np.histogram + np.interp), from the same sampled model: the batched, fused code
    must give the same images up to float32 rounding carried through the 10 rounds."""
    pytest.importorskip("pyrtools")
    from noisevision import reference

    g = generators.get(name)
    for res in (32, 64):
        ours = g(range(2), res=res, seed=5).double()
        ref = reference.render_reference(g, range(2), res, seed=5).double()
        # Measured: mean differences 0-1.5 grey levels (of 0..255), correlations >= 0.996; the
        # frequency pyramid or other WMM shapes instead give 17-31 levels and 0.69-0.96.
        assert (ours - ref).abs().mean() < 3.0, res
        for a, b in zip(ours, ref):
            assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] > 0.99


def test_same_bytes_at_any_torch_thread_count(monkeypatch):
    """A multi-threaded irfft2 rounds differently, and the histogram matching makes that visible:
    CPU rendering runs on one thread whatever the caller's setting (and restores it)."""
    monkeypatch.setenv("NOISEVISION_CACHE", "off")  # (the texture bank is rendered by each call)
    before = torch.get_num_threads()
    names = [*st.VARIANTS, "dead_leaves-textures"]
    try:
        images = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            images[threads] = [
                generators.get(n, **({"bank_size": 8} if n.startswith("dead") else {}))(range(3), res=64)
                for n in names
            ]
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    for name, one, two in zip(names, images[1], images[2], strict=True):
        assert torch.equal(one, two), name
