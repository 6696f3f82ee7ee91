"""Random StyleGAN2: architecture, filter banks, the factored tied layers, colour, determinism."""

import math

import pytest
import torch
import torch.nn.functional as F

from noisevision import generators
from noisevision.errors import NoisevisionError
from noisevision.generators import stylegan as sg
from noisevision.rng import Rng

NAMES = ["stylegan-random", "stylegan-highfreq", "stylegan-sparse", "stylegan-oriented"]
CPU = torch.device("cpu")


def render(name, indices, res=32, seed=0, **params):
    """Render below the registered resolutions (the network is the same code at any 2^k)."""
    gen = generators.get(name, **params)
    with torch.no_grad():
        return gen.render_indices(torch.tensor(indices), seed, res)


# ------------------------------------------------------------------------------ architecture
def test_architecture_at_256_and_512():
    blocks = sg.synthesis_blocks(256)
    assert [b.res for b in blocks] == [4, 8, 16, 32, 64, 128, 256]
    assert [b.channels for b in blocks] == [512] * 5 + [256, 128]
    assert sum(len(b.convs) for b in blocks) == 13 and sg.num_latents(256) == 14
    assert sg.synthesis_blocks(512)[-1].channels == 64
    # each ToRGB shares its latent with the next block's first conv (StyleGAN2-ADA)
    for b, nxt in zip(blocks, blocks[1:]):
        assert b.rgb_w_index == nxt.convs[0].w_index


def test_registered_names_and_resolutions():
    for name in NAMES:
        spec = generators.spec(name)
        assert spec.family == "random StyleGAN" and spec.default_res == 256
        assert spec.resolutions == (128, 256, 512)
    with pytest.raises(NoisevisionError, match="only resolutions"):
        generators.get("stylegan-oriented")([0], res=64)


# ------------------------------------------------------------------------------ filter banks
def test_highfreq_bank():
    bank = sg.highfreq_bank()
    assert bank.shape == (32, 3, 3)
    assert set(bank.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert torch.equal(bank[0], torch.tensor([[1.0, 0, -1]] * 3))  # vertical step edge
    assert torch.equal(bank[8], -bank[0])  # 16 edges over 360°: 180° apart = negated
    assert torch.equal(bank[16], torch.tensor([[1.0, -1, 1]] * 3))  # vertical line
    assert torch.equal(bank[17], -bank[16]) and torch.equal(bank[31], -bank[30])
    # binarising interpolated values makes two of the 16 edges coincide (13 and 14), as in the paper
    assert len({tuple(f.flatten().tolist()) for f in bank}) == 31


def test_oriented_bank():
    bank = sg.oriented_bank()
    assert bank.shape == (40, 3, 3)
    assert torch.equal(bank[20:], -bank[:20])
    assert bank[:16].sum(dim=(1, 2)).abs().max() < 1e-5  # edges and lines: mean removed
    assert torch.equal(bank[0], torch.tensor([[1.0, 0, -1]] * 3))
    assert len(bank[:16].flatten(1).unique(dim=0)) == 16  # 8 orientations each, all distinct
    assert not torch.equal(bank[:16].sign(), bank[:16])  # real-valued, not binarised


def test_oriented_layer_filters_come_from_a_random_subset_of_the_bank():
    bank = sg.oriented_bank()
    filters = sg._bank_filters(Rng.for_indices("t", 0, torch.arange(64)), bank, 512, subset=True)
    assert filters.shape == (64, 512, 3, 3)
    matches = (filters[:, :, None] == bank[None, None]).flatten(3).all(-1)  # [B, C, 40]
    assert matches.any(-1).all(), "a filter outside the 40-filter bank"
    used = matches.any(1).sum(1)  # distinct bank filters per image
    assert used.min() >= 2 and used.max() <= 40
    assert used.float().std() > 5, "subset sizes n ~ U{5..40} should vary between images"

    variant = sg.VARIANTS["oriented"]
    net = sg.build_network("t", variant, 0, 0, 32, CPU)
    draws = sg.sample_draws(net, variant, Rng.for_indices("t", 0, torch.arange(2)), 32)
    for f in draws.filters:
        assert (f[:, :, None] == bank[None, None]).flatten(3).all(-1).any(-1).all()


# ------------------------------------------------------------------------------ layers
def test_upsample2d_is_zero_insertion_then_fir():
    x = torch.randn(2, 3, 5, 5)
    up = torch.zeros(2, 3, 10, 10)
    up[..., ::2, ::2] = x
    f = torch.tensor([1.0, 3, 3, 1])
    kernel = (torch.outer(f, f) / 16)[None, None]
    ref = F.conv2d(F.pad(up, (2, 1, 2, 1)).view(6, 1, 13, 13), kernel).view(2, 3, 10, 10)
    assert torch.allclose(sg.upsample2d(x), ref, atol=1e-6)


@pytest.mark.parametrize("up", [False, True])
def test_tied_conv_equals_grouped_modulated_conv(up):
    """Rank-one weights gain[o]·filter[i]: one map y per image, output o = sign(gain_o)·y."""
    torch.manual_seed(0)
    b, c_in, c_out, h = 3, 6, 5, 7
    x, filters = torch.randn(b, c_in, h, h), torch.randn(b, c_in, 3, 3)
    gains, styles = torch.randn(b, c_out), torch.rand(b, c_in) + 0.5
    ref = sg.modulated_conv2d(x, gains[:, :, None, None, None] * filters[:, None], styles, up)
    m = filters * styles[:, :, None, None]
    taps = torch.bmm(m.flatten(2).transpose(1, 2), x.flatten(2)).view(b, 9, h, h)
    y = sg.place_taps(taps, up) * sg.tied_demodulation(m)[:, None, None, None]
    assert torch.allclose(gains.sign()[:, :, None, None] * y, ref, atol=1e-5)
    # outputs differ only by sign ("tied wavelets", the paper's note)
    assert torch.allclose(ref.abs(), ref[:, :1].abs().expand_as(ref), atol=1e-5)


def test_readout_equals_matmul_with_materialised_activations():
    torch.manual_seed(1)
    b, c, hw = 2, 7, 50
    u, v = torch.randn(b, hw), torch.randn(b, hw)
    positive, bias = torch.randn(b, c) > 0, torch.rand(b, c) * 0.4 - 0.2
    x = math.sqrt(2) * F.relu(torch.where(positive[:, :, None], u[:, None], v[:, None]) + bias[:, :, None])
    weights = torch.randn(b, 4, c)
    out = sg.TiedActivation(u, v, positive, bias).readout(weights)
    assert torch.allclose(out, weights @ x, atol=1e-5)


@pytest.mark.parametrize("variant", ["highfreq", "sparse", "oriented"])
def test_factored_synthesis_equals_grouped_convolutions(variant):
    """The fast path renders what per-image grouped modulated convolutions render."""
    var = sg.VARIANTS[variant]
    net = sg.build_network("t-" + variant, var, 0, 0, 16, CPU)
    draws = sg.sample_draws(net, var, Rng.for_indices("t", 0, torch.arange(2)), 16)
    x = net.const.expand(2, *net.const.shape)
    img, li = None, 0
    for bi, block in enumerate(sg.synthesis_blocks(16)):
        for conv in block.convs:
            weight = draws.gains[li][:, :, None, None, None] * draws.filters[li][:, None]
            y = sg.modulated_conv2d(x, weight, draws.styles[li], conv.up)
            x = F.relu(y + draws.noise[li] + draws.bias[li][:, :, None, None]) * math.sqrt(2)
            li += 1
        rgb = sg.to_rgb(x, draws.rgb[bi])
        img = rgb if img is None else sg.upsample2d(img) + rgb
    fast = sg.synthesise_tied(net, draws, 16)
    assert torch.allclose(fast, img, rtol=1e-4, atol=1e-4 * img.abs().max())


# ------------------------------------------------------------------------------ noise
def test_pink_noise_unit_std_and_envelope_sparsity():
    rng = Rng.for_indices("t", 0, torch.arange(4))
    plain = sg.pink_noise(rng, 8, 64, envelope=False)
    sparse = sg.pink_noise(rng, 8, 64, envelope=True)
    for maps in (plain, sparse):
        assert maps.shape == (4, 8, 64, 64)
        assert torch.allclose(maps.std(dim=(-2, -1)), torch.ones(4, 8), atol=1e-3)

    def kurtosis(m):
        z = (m - m.mean(dim=(-2, -1), keepdim=True)) / m.std(dim=(-2, -1), keepdim=True)
        return (z**4).mean()

    assert kurtosis(sparse) > kurtosis(plain) + 0.5  # the envelope makes blotchy, heavy-tailed noise


def test_envelope_is_bicubic_upsampling_in_fixed_order():
    """The envelope is U @ L @ U.T (bicubic up-sampling of 4×4 samples), summed term by term; the
    same values, and each map's the same whatever the other maps in its batch."""
    up = sg._bicubic_matrix(4, 32, torch.device("cpu"))
    samples = torch.randn(5, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    env = sg.bicubic_envelope(samples, up)
    torch.testing.assert_close(env, up @ samples @ up.T)
    assert torch.equal(env[3:4], sg.bicubic_envelope(samples[3:4], up))


# ------------------------------------------------------------------------------ colour
def test_colour_statistics_follow_spec():
    mean, std = sg.colour_statistics(Rng.for_indices("t", 0, torch.arange(20000)))
    want_m = torch.tensor(sg.COLOUR_MEAN)
    want_s = torch.tensor(sg.COLOUR_STD)
    assert torch.allclose(mean.mean(0), want_m[:, 0], atol=0.005)
    assert torch.allclose(mean.std(0), want_m[:, 1], atol=0.005)
    assert torch.allclose(std.mean(0), want_s[:, 0], atol=0.005)
    assert torch.allclose(std.std(0), want_s[:, 1], atol=0.005)

    img = torch.randn(3, 3, 16, 16) * 5 + 2
    out = sg.apply_colour_statistics(img, mean[:3], std[:3])
    assert torch.allclose(out.mean(dim=(2, 3)), mean[:3], atol=1e-5)
    assert torch.allclose(out.std(dim=(2, 3), unbiased=False), std[:3].abs(), atol=1e-5)


def test_output_channels_take_the_sampled_colour_statistics():
    name, idx = "stylegan-oriented", torch.arange(8)
    mean, std = sg.colour_statistics(Rng.for_indices(name, 0, idx).child("colour"))
    with torch.no_grad():
        unclipped = generators.get(name).render_unclipped(idx, 0, 32)
    assert torch.allclose(unclipped.mean(dim=(2, 3)), mean, atol=1e-4)
    assert torch.allclose(unclipped.std(dim=(2, 3), unbiased=False), std.abs(), atol=1e-4)
    # the bytes: the same image clipped to [0, 1] and truncated to 0..255
    images = render(name, idx.tolist())
    assert torch.equal(images, sg.to_uint8(unclipped))
    got = images.float().mean(dim=(2, 3)) / 255
    assert torch.corrcoef(torch.stack([got.flatten(), mean.flatten()]))[0, 1] > 0.9


# ------------------------------------------------------------------------------ networks, determinism
@pytest.mark.parametrize("name", NAMES)
def test_same_bytes_alone_and_in_any_batch(name):
    whole = render(name, [5, 401, 0, 2], res=16)
    parts = torch.cat([render(name, [5], res=16), render(name, [401, 0], res=16), render(name, [2], res=16)])
    assert whole.dtype == torch.uint8 and whole.shape == (4, 3, 16, 16)
    assert torch.equal(whole, parts)


def test_a_fresh_network_every_400_images():
    net0 = sg.build_network("stylegan-oriented", sg.VARIANTS["oriented"], 0, 0, 32, CPU)
    net1 = sg.build_network("stylegan-oriented", sg.VARIANTS["oriented"], 0, 1, 32, CPU)
    assert not torch.equal(net0.const, net1.const)
    # image 400 uses network 1; with a network per 1000 images it uses network 0 instead
    every400 = render("stylegan-oriented", [0, 399, 400])
    every1000 = render("stylegan-oriented", [0, 399, 400], images_per_network=1000)
    assert torch.equal(every400[:2], every1000[:2])
    assert not torch.equal(every400[2], every1000[2])


def test_seed_changes_images():
    a, b = render("stylegan-highfreq", [0], res=16, seed=0), render("stylegan-highfreq", [0], res=16, seed=1)
    assert not torch.equal(a, b)


def _high_frequency_fraction(images):
    """Share of (mean-removed, grey) spectral power above half the Nyquist frequency."""
    grey = images.float().mean(1)
    grey = grey - grey.mean(dim=(1, 2), keepdim=True)
    power = torch.fft.rfft2(grey).abs() ** 2
    n = grey.shape[-1]
    fy = torch.fft.fftfreq(n)[:, None]
    fx = torch.fft.rfftfreq(n)[None, :]
    high = (fy**2 + fx**2).sqrt() > 0.25
    return (power * high).sum(dim=(1, 2)) / power.sum(dim=(1, 2))


def test_highfreq_has_more_high_frequency_energy_than_random():
    idx = list(range(4))
    random = _high_frequency_fraction(render("stylegan-random", idx))
    highfreq = _high_frequency_fraction(render("stylegan-highfreq", idx))
    assert highfreq.median() > 3 * random.median()


def test_a_batch_over_many_networks_is_its_images_rendered_alone():
    """stylegan-oriented renders a batch in random order (an image per network) in one pass, each
    image reading its own network: the bytes of every image rendered alone."""
    gen = generators.get("stylegan-oriented")
    idx = [2805, 17, 1203, 400, 3999, 5, 1604]  # networks 7, 0, 3, 1, 9, 0, 4
    batch = gen(idx, res=128, seed=3)
    for i, img in zip(idx, batch):
        assert torch.equal(img, gen([i], res=128, seed=3)[0]), i
