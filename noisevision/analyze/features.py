"""The feature spaces `analyze` measures sets in, side by side (rankings can flip between them):

    random     randomly initialised ResNet-18s at half width (RANDOM_SEEDS, weights drawn here, never
               downloaded) on 64 px inputs, their layer3 globally pooled (128 numbers); each set
               measure is computed per network and averaged, since one random network is one
               arbitrary projection
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
# Half width: 3× faster on a CPU than the full width's 256 channels (both channels-last in
# 64-image chunks: 4,700 against 1,450 images/s on 2 cores), and the bootstrap's spectra of 128
# dimensions cost a fraction of 256's; three such projections are averaged.
RANDOM_WIDTH = 0.5
RANDOM_SEEDS = (0, 1, 2)
RANDOM_INPUT = 64
RANDOM_LAYER = "layer3"  # 128 channels at half width, globally pooled
MAX_DIM = 256
RANDOM_NAMES = tuple(f"random/seed{seed}" for seed in RANDOM_SEEDS)  # their names in caches and spaces
AUGMENTATION = "small"  # the paper's small-scale training views
CHUNK = 64  # images per forward pass: on a CPU, 64 run faster per image than 128 or 256 (cache)


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

    def __post_init__(self) -> None:
        self.model = self.model.to(memory_format=torch.channels_last)  # oneDNN's fast layout on a CPU

    @property
    def input_key(self) -> tuple:
        """What `prepare` depends on: nets with equal keys share their prepared inputs."""
        return (self.input_size, self.mean, self.std)

    def prepare(self, x: Tensor) -> Tensor:
        """float [B, 3, H, W] in [0, 1] -> the network's input: resized, normalised, channels-last."""
        dev = next(self.model.parameters()).device
        x = x.to(dev)
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", antialias=True, align_corners=False)
        mean = torch.tensor(self.mean, device=dev).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=dev).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def embed(self, x: Tensor) -> Tensor:
        """Prepared inputs [B, 3, S, S] -> features float32 [B, D] on the CPU, CHUNK at a time."""
        f = torch.cat([self.model.features(c, self.layer).float() for c in x.split(CHUNK)])
        if self.projection is None and f.shape[1] > MAX_DIM:
            g = torch.Generator().manual_seed(0)
            self.projection = torch.randn(f.shape[1], MAX_DIM, generator=g) / math.sqrt(MAX_DIM)
        if self.projection is not None:
            f = f @ self.projection.to(f.device)
        return f.cpu()

    def __call__(self, x: Tensor) -> Tensor:
        """float [B, 3, H, W] in [0, 1] -> features float32 [B, D] on the CPU."""
        return self.embed(self.prepare(x))

    def images(self, images: Tensor) -> Tensor:
        """Features of uint8 images [B, 3, H, W]."""
        return self(images.float() / 255.0)


def embed_all(nets: list[FeatureNet], x: Tensor) -> list[Tensor]:
    """Every net's features of float images [B, 3, H, W] in [0, 1]; each input size and
    normalisation prepared once (the random networks share theirs)."""
    prepared: dict[tuple, Tensor] = {}
    out = []
    for net in nets:
        if net.input_key not in prepared:
            prepared[net.input_key] = net.prepare(x)
        out.append(net.embed(prepared[net.input_key]))
    return out


def random_nets(device: torch.device) -> list[FeatureNet]:
    """The random-init ResNet-18s of RANDOM_SEEDS, at RANDOM_WIDTH."""
    from noisevision.evaluate.baselines import random_encoder

    nets = []
    for seed, name in zip(RANDOM_SEEDS, RANDOM_NAMES, strict=True):
        model = random_encoder(RANDOM_ARCH, seed, input_size=RANDOM_INPUT, width=RANDOM_WIDTH)
        model = model.to(device).eval()
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
