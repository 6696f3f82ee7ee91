"""Categories mean something: images of one category are nearer to each other than to other
categories' (leave-one-out nearest neighbour, far above chance), and shuffled labels lose that."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from noisevision import generators
from noisevision.errors import NoisevisionError, UnknownNameError

# The formula-driven families, checked wherever this build has them (with a parameter, the
# parametric form may be unknown to it: skipped too, saying why).
FDSL = ["fractaldb", "rcdb", "visualatom", "fractal-1p", "program-shader:classes=8"]
CATEGORIES, INSTANCES, RES = 4, 4, 48


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


def loo_accuracy(feats: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy (Euclidean distance)."""
    distance = torch.cdist(feats, feats)
    distance.fill_diagonal_(float("inf"))
    return (labels[distance.argmin(1)] == labels).float().mean().item()


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", _labelled())
def test_images_of_a_category_are_alike_and_shuffled_labels_are_not(name):
    try:
        gen = generators.get(name)
    except UnknownNameError:
        pytest.skip(f"{name} is not registered in this build")
    except NoisevisionError as exc:
        if ":" not in name:
            raise
        pytest.skip(f"{name}: this build does not take that parameter ({exc})")
    if not gen.num_classes:
        pytest.skip(f"{name} has no categories in this build")
    res = max(RES, gen.spec.min_res)
    if gen.spec.resolutions:
        res = min(gen.spec.resolutions, key=lambda r: abs(r - RES))
    categories = min(CATEGORIES, gen.num_classes)
    indices = [c + gen.num_classes * n for c in range(categories) for n in range(INSTANCES)]
    labels = gen.labels(indices)
    assert labels.tolist() == [c for c in range(categories) for _ in range(INSTANCES)]
    feats = features(gen(indices, res=res, seed=0))

    accuracy = loo_accuracy(feats, labels)
    chance = (INSTANCES - 1) / (len(indices) - 1)  # a random neighbour's chance to share the label
    assert accuracy >= 0.75, f"{name}: leave-one-out 1-NN accuracy {accuracy:.2f} (chance {chance:.2f})"
    gen_ = torch.Generator().manual_seed(0)
    shuffled = [loo_accuracy(feats, labels[torch.randperm(len(labels), generator=gen_)]) for _ in range(200)]
    mean = sum(shuffled) / len(shuffled)
    assert mean <= chance + 0.15, f"{name}: shuffled labels still give {mean:.2f} (chance {chance:.2f})"
