"""Batched augmentations against torchvision's per-image transforms (the paper's two scales)."""

import math

import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF

from noisevision import augment as A
from noisevision.rng import Rng

N = 20000


def ks_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Two-sample Kolmogorov–Smirnov statistic."""
    grid = torch.cat([a, b]).sort().values
    cdf_a = torch.searchsorted(a.sort().values, grid, right=True) / len(a)
    cdf_b = torch.searchsorted(b.sort().values, grid, right=True) / len(b)
    return float((cdf_a - cdf_b).abs().max())


def binomial_ok(hits: int, n: int, p: float) -> bool:
    return abs(hits - n * p) < 5 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize(
    "shape,scale", [((128, 128), (0.08, 1.0)), ((256, 256), (0.2, 1.0)), ((40, 160), (0.08, 1.0))]
)
def test_crop_boxes_follow_torchvision(shape, scale):
    h, w = shape
    boxes = A.sample_crop_boxes(Rng.for_indices("t", 0, torch.arange(N)), h, w, scale, (3 / 4, 4 / 3))
    assert boxes.min() >= 0 and torch.all(boxes[:, 2] <= w) and torch.all(boxes[:, 3] <= h)
    assert torch.equal(boxes, boxes.round())  # whole-pixel boxes, like torchvision
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    torch.manual_seed(0)
    img = torch.empty(3, h, w)
    ref = torch.tensor(
        [T.RandomResizedCrop.get_params(img, scale, (3 / 4, 4 / 3)) for _ in range(N)], dtype=torch.float
    )
    rh, rw = ref[:, 2], ref[:, 3]
    assert ks_distance(bw * bh / (h * w), rw * rh / (h * w)) < 0.025  # area fraction
    assert ks_distance(torch.log(bw / bh), torch.log(rw / rh)) < 0.025  # aspect ratio
    assert ks_distance(boxes[:, 0] / w, ref[:, 1] / w) < 0.025  # left offset
    assert ks_distance(boxes[:, 1] / h, ref[:, 0] / h) < 0.025  # top offset


def test_resized_crop_matches_torchvision_on_smooth_images():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 128), torch.linspace(0, 1, 128), indexing="ij")
    img = torch.stack([torch.sin(3 * xx) ** 2, yy * xx, torch.cos(2 * yy) ** 2])[None]  # [1, 3, 128, 128]
    for box in ([0, 0, 128, 128], [10, 20, 50, 90], [5, 7, 105, 47]):
        x1, y1, x2, y2 = box
        ours = A.resized_crop(img, torch.tensor([box], dtype=torch.float), 64)[0]
        ref = TF.resized_crop(img[0], y1, x1, y2 - y1, x2 - x1, [64, 64], antialias=True)
        assert (ours - ref).abs().mean() < 0.01


@pytest.mark.parametrize(
    "op,ref,lo,hi",
    [
        (A.adjust_brightness, TF.adjust_brightness, 0.6, 1.4),
        (A.adjust_contrast, TF.adjust_contrast, 0.6, 1.4),
        (A.adjust_saturation, TF.adjust_saturation, 0.6, 1.4),
        (A.adjust_hue, TF.adjust_hue, -0.4, 0.4),
    ],
)
def test_colour_ops_equal_torchvision(op, ref, lo, hi):
    torch.manual_seed(0)
    x = torch.rand(5, 3, 16, 16)
    x[0, :, :4] = 0.5  # grey pixels: hue undefined
    factors = torch.linspace(lo, hi, 5)
    expected = torch.stack([ref(x[i], float(factors[i])) for i in range(5)])
    torch.testing.assert_close(op(x, factors), expected, atol=2e-6, rtol=0)


def test_jitter_applies_each_images_own_order():
    torch.manual_seed(1)
    x = torch.rand(6, 3, 12, 12)
    factors = torch.tensor([[1.3, 0.7, 1.2, 0.3]]).repeat(6, 1)
    order = torch.stack([torch.randperm(4) for _ in range(6)])
    on = torch.tensor([True, True, True, True, True, False])
    ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    expected = x.clone()
    for i in range(5):
        for k in order[i].tolist():
            expected[i] = ops[k](expected[i], float(factors[i, k]))
    torch.testing.assert_close(A.color_jitter(x, factors, order, on), expected, atol=3e-6, rtol=0)


def test_sampled_parameters_have_spec_ranges_and_rates():
    cfg = A.get_augment("small")
    p = A.sample_params(cfg, Rng.for_indices("t", 1, torch.arange(N)), 128, 128)
    jit = p["jitter"]
    for k, (lo, hi) in enumerate([(0.6, 1.4)] * 3 + [(-0.4, 0.4)]):  # ColorJitter(0.4, 0.4, 0.4, 0.4)
        assert lo <= jit[:, k].min() and jit[:, k].max() <= hi
        assert abs(jit[:, k].mean() - (lo + hi) / 2) < 0.01
        assert abs(jit[:, k].std() - (hi - lo) / math.sqrt(12)) < 0.01
    assert bool(p["jitter_on"].all())  # the small-scale recipe: always
    assert torch.equal(p["jitter_order"].sort(1).values, torch.arange(4).expand(N, 4))
    assert binomial_ok(int((p["jitter_order"][:, 0] == 3).sum()), N, 0.25)
    assert binomial_ok(int(p["gray"].sum()), N, 0.2)
    assert binomial_ok(int(p["flip"].sum()), N, 0.5)
    assert not p["blur_on"].any()
    moco = A.sample_params(A.get_augment("mocov2"), Rng.for_indices("t", 1, torch.arange(N)), 256, 256)
    assert binomial_ok(int(moco["jitter_on"].sum()), N, 0.8)
    assert binomial_ok(int(moco["blur_on"].sum()), N, 0.5)
    assert 0.1 <= moco["blur_sigma"].min() and moco["blur_sigma"].max() <= 2.0
    assert moco["jitter"][:, 3].abs().max() <= 0.1


def test_gaussian_blur_matches_torchvision():
    torch.manual_seed(2)
    x = torch.rand(3, 3, 40, 40)
    sigma = torch.tensor([0.3, 1.0, 2.0])
    on = torch.tensor([True, True, False])
    ours = A.gaussian_blur(x, sigma, on)
    radius = math.ceil(3 * 2.0)
    for i in range(2):
        ref = TF.gaussian_blur(x[i], [2 * radius + 1] * 2, [float(sigma[i])] * 2)
        torch.testing.assert_close(ours[i], ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours[2], x[2])


def test_views_are_per_image_and_deterministic():
    imgs = torch.randint(0, 256, (6, 3, 48, 48), dtype=torch.uint8)
    idx = torch.tensor([10, 11, 12, 13, 14, 15])
    cfg = A.get_augment("small", size=32)
    v1, v2 = A.two_views(cfg, imgs, idx, seed=0, epoch=2)
    assert v1.shape == (6, 3, 32, 32) and v1.dtype == torch.float32
    assert not torch.allclose(v1, v2)
    perm = torch.tensor([3, 0, 5])
    w1, w2 = A.two_views(cfg, imgs[perm], idx[perm], seed=0, epoch=2)
    torch.testing.assert_close(w1, v1[perm])  # image 13's views do not depend on its batch
    torch.testing.assert_close(w2, v2[perm])
    u1, _ = A.two_views(cfg, imgs, idx, seed=0, epoch=3)
    assert not torch.allclose(u1, v1)  # new views every epoch


def test_normalisation_uses_spec_statistics():
    grey = torch.full((1, 3, 32, 32), 128, dtype=torch.uint8)
    cfg = A.AugmentConfig(size=16, jitter_p=0.0, gray_p=0.0)
    out = A.two_views(cfg, grey, torch.tensor([0]), 0, 0)[0]
    expected = (128 / 255 - torch.tensor(A.PAPER_MEAN)) / torch.tensor(A.PAPER_STD)
    torch.testing.assert_close(out[0, :, 5, 5], expected, atol=1e-4, rtol=0)
    with pytest.raises(Exception, match="unknown augmentation"):
        A.get_augment("strong")
