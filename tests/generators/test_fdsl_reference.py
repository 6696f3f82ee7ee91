"""The formula-driven families against their plain references (noisevision.reference): the same
recipe drawn image by image as the original renderers draw it (per-point patches pasted with PIL,
per-vertex Perlin noise and per-segment PIL lines, their own random streams). The images are not
the same bytes, but the same class and placement give the same amount and brightness of ink."""

from __future__ import annotations

import pytest
import torch

from noisevision import generators, reference

pytest.importorskip("noise")  # the Perlin noise of the original orbit renderers (dev extra)


def ink(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image: the share of pixels off the background (the most common grey), and the mean."""
    grey = images[:, 0].flatten(1)
    background = grey.mode(1).values[:, None]
    return (grey != background).float().mean(1), grey.float().mean(1)


@pytest.mark.parametrize(
    ("name", "share_tol", "mean_tol"),
    [
        ("rcdb:classes=4", 0.02, 4.0),
        ("visualatom:classes=4", 0.02, 4.0),
        ("fractal-1p:classes=2,points=20000", 0.02, 1.0),
        ("fractaldb:classes=2,canvas=64,render=points", 0.06, 8.0),
    ],
)
def test_batched_images_hold_the_ink_of_the_original_recipe(name, share_tol, mean_tol):
    gen = generators.get(name)
    indices = range(3)
    ours, ref = gen(indices, res=64), reference.render_reference(gen, indices, 64)
    assert ref.shape == ours.shape == (3, 3, 64, 64) and ref.dtype == torch.uint8
    (share, mean), (ref_share, ref_mean) = ink(ours), ink(ref)
    assert (share > 0.01).all()
    assert (share - ref_share).abs().max() < share_tol, (share, ref_share)
    assert (mean - ref_mean).abs().max() < mean_tol, (mean, ref_mean)
