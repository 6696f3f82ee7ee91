"""The feature spaces `analyze` measures sets in, side by side (rankings can flip between them):

    random     randomly initialised ResNet-18s (RANDOM_SEEDS, weights drawn here, never downloaded)
               on 64 px inputs, their layer3 globally pooled (256 numbers); each set measure is computed per
               network and averaged, since one random network is one arbitrary projection
    encoder    a trained encoder (`--encoder`: an encoder file or a run folder) at its probe layer,
               its inputs normalised as it was trained
    stats      the per-image statistics (noisevision.analyze.statistics), standardised over every
               analysed image so that each counts alike

Features wider than MAX_DIM are mapped to MAX_DIM by a fixed random Gaussian projection
(Johnson–Lindenstrauss: distances kept to within a few percent), so that the bootstrap's many
covariance and kernel spectra stay cheap on a CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisevision.analyze.statistics import statistics_matrix
from noisevision.augment import PAPER_MEAN, PAPER_STD, get_augment, views

RANDOM_ARCH = "resnet18"
RANDOM_SEEDS = (0, 1, 2)
RANDOM_INPUT = 64
RANDOM_LAYER = "layer3"  # 256 channels, globally pooled: the spectra of the bootstrap stay cheap
MAX_DIM = 256
RANDOM_NAMES = tuple(f"random/seed{seed}" for seed in RANDOM_SEEDS)  # their names in caches and spaces
AUGMENTATION = "small"  # the paper's small-scale training views
BATCH = 128


@dataclass
class FeatureNet:
    """A frozen network as a feature map of uint8 images or [0, 1] float views."""

    name: str  # e.g. "random/seed1", "encoder"
    model: nn.Module
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    layer: str
    projection: Tensor | None = None  # [F, MAX_DIM] when the layer is wider

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        """float [B, 3, H, W] in [0, 1] -> features float32 [B, D] on the CPU."""
        dev = next(self.model.parameters()).device
        x = x.to(dev)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", antialias=True, align_corners=False)
        mean = torch.tensor(self.mean, device=dev).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=dev).view(1, 3, 1, 1)
        f = self.model.features((x - mean) / std, self.layer).float()
        if self.projection is None and f.shape[1] > MAX_DIM:
            g = torch.Generator().manual_seed(0)
            self.projection = torch.randn(f.shape[1], MAX_DIM, generator=g) / math.sqrt(MAX_DIM)
        if self.projection is not None:
            f = f @ self.projection.to(f.device)
        return f.cpu()

    def images(self, images: Tensor) -> Tensor:
        """Features of uint8 images [B, 3, H, W]."""
        return self(images.float() / 255.0)


def random_nets(device: torch.device) -> list[FeatureNet]:
    """The random-init ResNet-18s of RANDOM_SEEDS."""
    from noisevision.evaluate.baselines import random_encoder

    nets = []
    for seed, name in zip(RANDOM_SEEDS, RANDOM_NAMES, strict=True):
        model = random_encoder(RANDOM_ARCH, seed, input_size=RANDOM_INPUT).to(device).eval()
        nets.append(FeatureNet(name, model, RANDOM_INPUT, PAPER_MEAN, PAPER_STD, RANDOM_LAYER))
    return nets


def encoder_net(spec: str, device: torch.device) -> FeatureNet:
    """A trained encoder (file or run folder) at its probe layer, normalised as trained."""
    from noisevision.evaluate.baselines import load_probe_model
    from noisevision.evaluate.probes import PROTOCOLS, input_stats, protocol_for

    model, meta = load_probe_model(spec, device)
    mean, std = input_stats(meta, PROTOCOLS.get(protocol_for(meta)))
    return FeatureNet("encoder", model, int(model.input_size), mean, std, model.default_layer)


def view_pairs(images: Tensor, indices: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """Two training-augmented views of uint8 images [B, 3, H, W], float in [0, 1] (the
    normalisation is each network's own): the AUGMENTATION pipeline, un-normalised."""
    cfg = replace(get_augment(AUGMENTATION), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    a, b = views(cfg, images, indices, seed, epoch=0, count=2)
    return a.clamp(0, 1), b.clamp(0, 1)


def to_uint8(x: Tensor) -> Tensor:
    """float views in [0, 1] -> uint8 images (for their image statistics)."""
    return (x * 255).round().clamp(0, 255).to(torch.uint8)


# ---------------------------------------------------------------------------------- spaces
def standardisation(
    data: dict[str, dict[str, Any]], labels: list[str], space: str, nets: list[str]
) -> list[tuple]:
    """(mean, sd) per network of `space` over every image of the sets `labels` together: one
    standardisation for every set, so that the cosine kernels see directions away from the common
    centre (raw ReLU features all point one way: every cosine would be near 1)."""
    out = []
    for k in range(1 if space == "stats" else len(_names(space, nets))):
        pooled = torch.cat([_raw(data[lb], space, nets)[0][k] for lb in labels])
        out.append((pooled.mean(0), pooled.std(0).clamp_min(1e-6)))
    return out


def _names(space: str, nets: list[str]) -> list[str]:
    return nets if space == "random" else [space]


def _raw(d: dict[str, Any], space: str, nets: list[str]) -> tuple[list, list]:
    """One set's features in `space` as stored: per network [N, D], and its views [2, A, D]."""
    if space == "stats":
        return [statistics_matrix(d["stats"])], [d["view_stats"]]
    names = _names(space, nets)
    return [d["features"][n] for n in names], [d["view_features"][n] for n in names]


def space_features(d: dict[str, Any], space: str, nets: list[str], norm: list[tuple]) -> dict[str, list]:
    """One set's standardised features in `space`: "x" per network [N, D], "views" [2, A, D]."""
    x, views = _raw(d, space, nets)
    return {
        "x": [(f - m) / s for f, (m, s) in zip(x, norm, strict=True)],
        "views": [(v - m) / s for v, (m, s) in zip(views, norm, strict=True)],
    }
