"""Categories mean something: images of one category are nearer to each other than to other
categories' (leave-one-out nearest neighbour, far above chance), and shuffled labels lose that."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from noisevision import generators

# The formula-driven families, besides whatever else registers categories.
FDSL = ["fractaldb", "rcdb", "visualatom", "fractal-1p", "program-shader:classes=8"]
CATEGORIES, INSTANCES, RES = 4, 6, 128


def _labelled() -> list[str]:
    named = [s.name for s in generators.specs() if generators.get(s.name).num_classes]
    return named + [n for n in FDSL if n not in named]


def features(images: torch.Tensor) -> torch.Tensor:
    """A blurred 16×16 grey thumbnail in 0..1, made the same under horizontal and vertical flips
    (instances of a category may be flips of each other): float [B, 256]."""
    grey = images.float().mean(1, keepdim=True) / 255  # [B, 1, H, W]
    thumb = F.adaptive_avg_pool2d(grey, 16)
    thumb = F.avg_pool2d(thumb, 3, stride=1, padding=1, count_include_pad=False)  # blur
    thumb = (thumb + thumb.flip(-1) + thumb.flip(-2) + thumb.flip(-1, -2)) / 4
    return thumb.flatten(1)


def spectrum(images: torch.Tensor) -> torch.Tensor:
    """A feature that ignores where a drawing sits (instances of contour families move their
    centre): the radial profile of the power spectrum of the drawing, its background removed,
    plus its lit fraction: float [B, 33]."""
    grey = images.float().mean(1) / 255  # [B, H, W]
    background = grey.flatten(1).median(1).values.view(-1, 1, 1)
    ink = (grey - background).abs()
    power = torch.fft.fftshift(torch.fft.fft2(ink).abs() ** 2, dim=(-2, -1))
    h, w = ink.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    ring = (torch.sqrt((yy**2 + xx**2).float()) / (min(h, w) / 2) * 32).long().clamp(max=31)
    profile = torch.zeros(len(images), 32).index_add_(1, ring.flatten(), power.flatten(1))
    profile = torch.log1p(profile / profile.sum(1, keepdim=True).clamp_min(1e-12) * 1e3)
    return torch.cat([profile, (ink > 0.05).float().mean((1, 2))[:, None] * 10], 1)


def colour(images: torch.Tensor) -> torch.Tensor:
    """A blurred 16×16 colour thumbnail (programs' categories keep their palettes): [B, 768]."""
    small = F.interpolate(images.float() / 255, size=(16, 16), mode="area")
    return F.avg_pool2d(small, 3, 1, 1, count_include_pad=False).flatten(1)


FEATURES = {"thumbnail": features, "colour": colour, "spectrum": spectrum}


def loo_accuracy(feats: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy (Euclidean distance)."""
    distance = torch.cdist(feats, feats)
    distance.fill_diagonal_(float("inf"))
    return (labels[distance.argmin(1)] == labels).float().mean().item()


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", _labelled())
def test_images_of_a_category_are_alike_and_shuffled_labels_are_not(name):
    gen = generators.get(name)
    assert gen.num_classes, f"{name} has lost its categories"
    res = max(min(gen.spec.default_res, RES), gen.spec.min_res)
    if gen.spec.resolutions:
        res = min(gen.spec.resolutions, key=lambda r: abs(r - RES))
    categories = min(CATEGORIES, gen.num_classes)
    indices = [c + gen.num_classes * n for c in range(categories) for n in range(INSTANCES)]
    labels = gen.labels(indices)
    assert labels.tolist() == [c for c in range(categories) for _ in range(INSTANCES)]
    images = gen(indices, res=res, seed=0)
    # the simpler of two simple feature spaces in which the categories separate
    scored = [(loo_accuracy(f(images), labels), kind) for kind, f in FEATURES.items()]
    accuracy, kind = max(scored, key=lambda s: s[0])
    feats = FEATURES[kind](images)
    chance = (INSTANCES - 1) / (len(indices) - 1)  # a random neighbour's chance to share the label
    assert accuracy >= 0.6, f"{name}: leave-one-out 1-NN accuracy {scored} (chance {chance:.2f})"
    gen_ = torch.Generator().manual_seed(0)
    shuffled = [loo_accuracy(feats, labels[torch.randperm(len(labels), generator=gen_)]) for _ in range(200)]
    mean = sum(shuffled) / len(shuffled)
    assert mean <= chance + 0.15, f"{name}: shuffled labels still give {mean:.2f} (chance {chance:.2f})"
