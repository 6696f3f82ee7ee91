"""Fractals: FractalDB codes and instances, SVD-sampled contractive maps, determinism."""

import pytest
import torch

from noisevision import generators
from noisevision.errors import NoisevisionError
from noisevision.generators import fractals as fr
from noisevision.rng import Rng


def test_accepted_codes_fill_a_fifth_of_the_canvas():
    gen = generators.get("fractaldb")
    # instance 0 of a category is its code itself, unflipped; at 512 px the generator draws on
    # FractalDB's search canvas, so its lit share is the filling rate (up to sampling noise)
    images = gen([0, 100], res=512, seed=3)
    lit = (images[:, 0] > 0).float().mean(dim=(1, 2))
    assert (lit >= 0.19).all(), lit
    codes = gen.search.codes(3, torch.tensor([0, 1]))
    assert codes.shape == (2, 7, 7)
    n_maps = codes[..., 6].sum(1)
    assert ((n_maps >= 2) & (n_maps <= 7)).all()
    assert codes[..., :6].abs().max() <= 1


def test_category_codes_are_a_pure_function_of_seed_and_category():
    a = fr.CodeSearch("fractaldb", 100_000).codes(0, torch.tensor([2, 0]))
    b = fr.CodeSearch("fractaldb", 100_000).codes(0, torch.tensor([0]))
    assert torch.equal(a[1], b[0]) and not torch.equal(a[0], a[1])


def test_instances_scale_one_parameter_of_every_map():
    code = torch.rand(25, 7, 7)
    code[..., 6] = 1
    out = fr.instance_code(code, torch.arange(25))
    assert torch.equal(out[0], code[0])  # variation 0: the code itself
    ratio = out / code
    for v in range(1, 25):
        changed = (ratio[v] - 1).abs() > 1e-6  # [7 maps, 7 columns]
        col = (v - 1) // 4
        assert changed[:, col].all() and changed.sum() == 7  # one parameter, all maps
        assert torch.allclose(ratio[v, :, col], torch.full((7,), fr.WEIGHT_FACTORS[(v - 1) % 4]))


def test_instances_of_a_category_differ():
    images = generators.get("fractaldb")(range(4), res=64)
    assert all(not torch.equal(images[0], images[i]) for i in range(1, 4))


@pytest.mark.parametrize("name", ["fractaldb", "fractal-svd"])
def test_deterministic_alone_and_in_batches(name):
    gen = generators.get(name)
    whole = gen([7, 0, 130], res=64, seed=1)
    assert whole.dtype == torch.uint8 and whole.shape == (3, 3, 64, 64)
    parts = torch.cat([gen([7], res=64, seed=1), gen([0, 130], res=64, seed=1)])
    assert torch.equal(whole, parts)


def test_svd_maps_are_contractive_with_the_sigma_factor_in_range():
    maps, offsets, probs = fr.svd_maps(Rng.for_indices("t", 0, torch.arange(2000)))
    used = probs > 0
    n = used.sum(1)
    assert ((n >= 2) & (n <= 4)).all() and torch.allclose(probs.sum(1), torch.ones(2000))
    sv = torch.linalg.svdvals(maps)  # [B, 4, 2], descending
    assert (sv[..., 0][used] < 1).all(), "a map is not contractive"
    alpha = ((sv[..., 0] + 2 * sv[..., 1]) * used).sum(1)
    assert ((alpha >= (5 + n) / 2 - 1e-4) & (alpha <= (6 + n) / 2 + 1e-4)).all()
    assert offsets.abs().max() <= 1


def test_svd_fractals_are_coloured_on_a_background():
    images = generators.get("fractal-svd")(range(4), res=64).float()
    assert (images.std(dim=(2, 3)) > 5).all()  # not flat
    assert (images.std(dim=1).mean(dim=(1, 2)) > 5).all()  # colour, not grey


def test_too_few_points_is_a_clear_error():
    with pytest.raises(NoisevisionError, match="points >="):
        generators.get("fractaldb", points=1000)
