"""Feature visualizations: targets, parameterisation, optimisation, determinism, errors."""

import pytest
import torch

from noisevision import generators
from noisevision.errors import NoisevisionError
from noisevision.generators import feature_vis as fv
from noisevision.rng import Rng


def test_targets_are_units_then_pairs_in_order():
    idx = torch.tensor([0, 2047, 2048, 2049, 2048 + 2046, 2048 + 2047, fv.NUM_TARGETS - 1])
    want = [[0, -1], [2047, -1], [0, 1], [0, 2], [0, 2047], [1, 2], [2046, 2047]]
    assert fv.targets(idx).tolist() == want
    pairs = fv.targets(torch.arange(2048, 2048 + 5000))
    assert (pairs[:, 0] < pairs[:, 1]).all()
    assert (pairs[1:, 0] > pairs[:-1, 0]).sum() > 0 and len(pairs.unique(dim=0)) == 5000
    with pytest.raises(NoisevisionError, match="targets"):
        fv.targets(torch.tensor([fv.NUM_TARGETS]))


def test_fft_parameterisation_gives_valid_rgb():
    spectrum = Rng.for_indices("t", 0, torch.arange(2)).normal(3, 32, 17, 2) * fv.INIT_STD
    img = fv.spectrum_to_image(spectrum, fv.spectrum_scale(32, torch.device("cpu")))
    assert img.shape == (2, 3, 32, 32) and (img > 0).all() and (img < 1).all()
    assert (img - 0.5).abs().max() < 0.1  # the small initial spectrum starts near grey


def test_transforms_are_per_image_and_keep_most_of_the_image():
    grey = torch.full((6, 3, 64, 64), 0.5)
    out = fv.transform(grey, Rng.for_indices("t", 0, torch.arange(6)))
    assert out.shape == (6, 3, 64, 64)
    normalised_grey = (0.5 - torch.tensor(fv.IMAGENET_MEAN)) / torch.tensor(fv.IMAGENET_STD)
    inside = (out - normalised_grey[:, None, None]).abs().amax(1) < 1e-4  # [B, H, W]
    assert (inside.float().mean(dim=(1, 2)) > 0.6).all()  # borders: the zeros of shifts/rotation
    assert len({tuple(m.flatten().tolist()) for m in inside}) > 1, "every image got the same transform"


def test_target_activation_increases_over_the_optimisation():
    model = fv.random_resnet50(0, torch.device("cpu"))
    units = fv.targets(torch.tensor([7, 3000]))
    weight = torch.zeros(2, fv.UNITS)
    weight.scatter_(1, units.clamp_min(0), (units >= 0).float())
    mean = torch.tensor(fv.IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(fv.IMAGENET_STD)[:, None, None]

    def activation(steps):
        img = fv.visualise(model, Rng.for_indices("feature_vis", 0, torch.arange(2)), units, 48, steps)
        with torch.no_grad():
            return (model((img - mean) / std) * weight).sum(1)

    before, after = activation(0), activation(5)
    assert (after > before * 1.3).all(), (before, after)


def test_deterministic_by_index_whatever_the_request():
    gen = generators.get("feature_vis-random", steps=2, block=4)
    batch = gen([6, 1, 2], res=32, seed=3)
    assert batch.dtype == torch.uint8 and batch.shape == (3, 3, 32, 32)
    assert torch.equal(gen([2], res=32, seed=3)[0], batch[2])
    assert torch.equal(gen([6], res=32, seed=3)[0], batch[0])
    assert not torch.equal(batch[1], batch[2])
    assert batch.flatten(1).amin(1).eq(0).all() and batch.flatten(1).amax(1).eq(255).all()  # min–max


def test_bad_encoder_files_are_one_line_errors(tmp_path):
    from noisevision.models import build_encoder, save_encoder

    with pytest.raises(NoisevisionError, match="no encoder file"):
        generators.get(f"feature_vis-{tmp_path / 'missing.pt'}")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(NoisevisionError, match="not a readable encoder file"):
        generators.get(f"feature_vis-{junk}")
    alexnet = save_encoder(tmp_path / "alexnet.pt", build_encoder("smallalexnet"), {})
    with pytest.raises(NoisevisionError, match="need a ResNet-50"):
        generators.get(f"feature_vis-{alexnet}")


@pytest.mark.slow
def test_resnet50_encoder_file_renders(tmp_path):
    from noisevision.models import build_encoder, save_encoder

    path = save_encoder(tmp_path / "r50.pt", build_encoder("resnet50"), {})
    images = generators.get(f"feature_vis-{path}", steps=1, block=1)([0], res=32)
    assert images.shape == (1, 3, 32, 32)


def test_list_shows_encoder_names(run_cli):
    code, out, _ = run_cli("list")
    assert code == 0 and "feature_vis-random" in out and "feature_vis-<encoder.pt>" in out


def test_bilinear_sampling_is_grid_samples_by_gathers():
    """The transform samples by gathers (a deterministic backward on GPUs): same values and
    gradients as grid_sample (bilinear, zero padding, align_corners), to float rounding."""
    import torch.nn.functional as F

    from noisevision.generators.feature_vis import bilinear

    gen = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 40, 40, generator=gen, requires_grad=True)
    xy = torch.rand(2, 16, 16, 2, generator=gen) * 44 - 2  # some samples fall outside
    ours = bilinear(img, xy)
    ref = F.grid_sample(img, xy / 39 * 2 - 1, mode="bilinear", padding_mode="zeros", align_corners=True)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=0)
    g_ours, g_ref = (torch.autograd.grad(t.square().sum(), img)[0] for t in (ours, ref))
    torch.testing.assert_close(g_ours, g_ref, atol=2e-5, rtol=0)
