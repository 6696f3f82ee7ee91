"""Feature visualizations: images that maximise units of a ResNet-50.

Image i maximises target i of the 2048-d globally pooled output of the last stage: units 0..2047,
then unit pairs (i, j), i < j, in order (the sum of both). The image is parameterised as in
lucid/lucent: a Fourier spectrum scaled by 1/f, a fixed colour-decorrelation matrix and a sigmoid,
spectrum initialised N(0, 0.01²); Adam (lr 0.05) runs 128 steps, each through fresh random
transforms (pad 12 with 0.5, jitter 8, scale 0.90..1.10 step 0.02, rotate −10..10°, jitter 4,
resize back to the image size) and ImageNet normalisation. The last image is min–max scaled to
0..255. Transform parameters are drawn per image and step from the image's key. The network runs
under the `precision` parameter's autocast (auto: bf16 on GPUs that have it, fp32 on CPU).

Names: `feature_vis-random` (a random torchvision ResNet-50, weights from the seed, eval mode) and
`feature_vis-<encoder.pt>` for an encoder file written by `noisevision.models.save_encoder`
holding a ResNet-50 (e.g. one trained on dead leaves, the paper's feature_vis-dead_leaves).

Batching and determinism: image i is optimised together with the other images of its block of
`block` indices, always the same block, so its bytes never depend on the request (a conv's
numerics may depend on the batch size). A request renders every block it touches.
Cost: 128 ResNet-50 forward and input-gradient passes per image, a minute or more per image on
one CPU core at 256 px: a GPU is the practical device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisevision.augment import IMAGENET_MEAN, IMAGENET_STD
from noisevision.errors import NoisevisionError
from noisevision.generators import registry
from noisevision.generators.params import Param
from noisevision.generators.registry import Generator, GeneratorSpec, register
from noisevision.precision import autocast, resolve_precision
from noisevision.rng import Rng, mix64_int, name_hash

UNITS = 2048
NUM_TARGETS = UNITS + UNITS * (UNITS - 1) // 2  # single units, then pairs
STEPS = 128
LR = 0.05
INIT_STD = 0.01
Stats = tuple[tuple[float, ...], tuple[float, ...]]  # (mean, std) per channel of the network's input
IMAGENET_STATS: Stats = (IMAGENET_MEAN, IMAGENET_STD)
PAD = 12
JITTER = (8, 4)  # translations before and after scale/rotate, 0..d−1 px
SCALES = tuple(1 + (i - 5) / 50 for i in range(11))  # 0.90 .. 1.10
ANGLES = tuple(range(-10, 11)) + (0,) * 5  # degrees; lucent's list (0° weighted 6/26)
# lucid's colour decorrelation: square root of ImageNet's colour covariance (SVD), column-normalised
_COLOUR_SQRT = ((0.26, 0.09, 0.02), (0.27, 0.00, -0.05), (0.27, -0.09, 0.03))


# ------------------------------------------------------------------------------------ targets
@lru_cache(maxsize=1)
def _pair_starts() -> Tensor:
    """Index (among pairs) of the first pair (i, i+1) for every i: int64 [2048]."""
    per_i = torch.arange(UNITS - 1, -1, -1)  # pairs starting with i: 2047 − i
    return torch.cat([torch.zeros(1, dtype=torch.long), per_i.cumsum(0)[:-1]])


def targets(indices: Tensor) -> Tensor:
    """Target units per image: int64 [B, 2], (i, −1) for a single unit, (i, j) for a pair."""
    idx = indices.cpu()
    if int(idx.max()) >= NUM_TARGETS:
        raise NoisevisionError(f"feature visualizations have {NUM_TARGETS} targets: use indices below that")
    pair = (idx - UNITS).clamp_min(0)
    starts = _pair_starts()
    i = torch.searchsorted(starts, pair, right=True) - 1
    j = i + 1 + (pair - starts[i])
    single = idx < UNITS
    out = torch.stack([torch.where(single, idx, i), torch.where(single, -1, j)], dim=1)
    return out.to(indices.device)


# ------------------------------------------------------------------------------------ image
def spectrum_scale(res: int, device: torch.device) -> Tensor:
    """1 / max(f, 1/res) on the real-FFT grid (lucid's 1/f spectrum): [res, res//2 + 1]."""
    fy = torch.fft.fftfreq(res, device=device)[:, None]
    fx = torch.fft.rfftfreq(res, device=device)[None, :]
    return 1.0 / torch.sqrt(fx**2 + fy**2).clamp_min(1.0 / res)


def spectrum_to_image(spectrum: Tensor, scale: Tensor) -> Tensor:
    """Parameters [B, 3, H, W//2+1, 2] -> image in (0, 1) [B, 3, H, W] (lucid's fft + to_valid_rgb)."""
    res = spectrum.shape[2]
    img = torch.fft.irfft2(torch.view_as_complex(spectrum * scale[..., None]), s=(res, res), norm="ortho")
    img = img / 4.0  # lucid's "magic" constant: keeps the sigmoid away from saturation
    colour = torch.tensor(_COLOUR_SQRT, device=img.device)
    colour = colour / colour.norm(dim=0).max()
    img = torch.einsum("bchw,dc->bdhw", img, colour)  # decorrelated -> RGB
    return torch.sigmoid(img)


def transform(img: Tensor, rng: Rng, stats: Stats = IMAGENET_STATS) -> Tensor:
    """lucent's standard transforms with per-image parameters, as one resampling: [B, 3, S, S].

    Forward chain: pad 12 (0.5) -> translate d1 ∈ 0..7 -> resize by s to n = ⌈s·P⌉ (+ zero pad
    back to ~P when s < 1) -> rotate θ about the centre -> translate d2 ∈ 0..3 -> resize to S.
    Each output pixel is traced back through the chain (zero where a stage had no pixel) and the
    padded image sampled bilinearly once (`bilinear`). Then the network's normalisation `stats`
    (mean, std: ImageNet's, or those an encoder file's recipe records).
    """
    b, _, s, _ = img.shape
    dev = img.device
    p_size = s + 2 * PAD
    d1 = rng.randint(0, JITTER[0], 2).float()  # [B, 2] (x, y)
    scale = torch.tensor(SCALES, device=dev)[rng.randint(0, len(SCALES), 1)[:, 0]]
    theta = torch.tensor(ANGLES, device=dev, dtype=torch.float32)[rng.randint(0, len(ANGLES), 1)[:, 0]]
    d2 = rng.randint(0, JITTER[1], 2).float()
    n = torch.ceil(scale * p_size)  # [B] resized size
    pad = torch.ceil((p_size - n) / 2).clamp_min(0)
    q = n + 2 * pad  # size after scale (and its padding)

    u = torch.arange(s, device=dev, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(u, u, indexing="xy"), dim=-1)  # [S, S, 2] (x, y)
    x = grid[None] * ((q - 1) / (s - 1))[:, None, None, None]  # [B, S, S, 2] in the final image
    x = x - d2[:, None, None]
    valid = _inside(x, q)
    c = ((q - 1) / 2)[:, None, None, None]
    rad = theta * math.pi / 180  # kornia: positive = counter-clockwise; invert it
    cos, sin = rad.cos()[:, None, None], rad.sin()[:, None, None]
    xc, yc = x[..., 0] - c[..., 0], x[..., 1] - c[..., 0]
    x = torch.stack([cos * xc - sin * yc, sin * xc + cos * yc], dim=-1) + c
    valid &= _inside(x, q)
    x = x - pad[:, None, None, None]
    valid &= _inside(x, n)
    x = x * ((p_size - 1) / (n - 1))[:, None, None, None] - d1[:, None, None]  # in the padded image
    padded = F.pad(img, [PAD] * 4, value=0.5)
    out = bilinear(padded, x) * valid[:, None]
    mean = torch.tensor(stats[0], device=dev)[:, None, None]
    std = torch.tensor(stats[1], device=dev)[:, None, None]
    return (out - mean) / std


def bilinear(img: Tensor, xy: Tensor) -> Tensor:
    """img [B, C, H, W] sampled bilinearly at pixel coordinates xy [B, S, S, 2] (x, y), zero
    outside: [B, C, S, S], what grid_sample (bilinear, zeros, align_corners) computes.

    By gathers: their backward is a scatter-add, which deterministic mode makes order-free on a
    GPU, where grid_sample's backward adds atomically in a different order from run to run.
    """
    b, c, h, w = img.shape
    x, y = xy[..., 0], xy[..., 1]
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    flat = img.reshape(b, c, h * w)
    out = None
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            xi, yi = x0 + dx, y0 + dy
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            idx = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).reshape(b, 1, -1).expand(b, c, -1)
            term = flat.gather(2, idx).reshape(b, c, *x.shape[1:]) * (wx * wy * inside)[:, None]
            out = term if out is None else out + term
    return out


def _inside(x: Tensor, size: Tensor) -> Tensor:
    """Both coordinates of x [B, S, S, 2] within [0, size−1] (size per image [B])."""
    hi = (size - 1)[:, None, None, None]
    return ((x >= 0) & (x <= hi)).all(-1)


# ------------------------------------------------------------------------------------ networks
Features = Callable[[Tensor], Tensor]  # x [B, 3, S, S] -> pooled last-stage features [B, 2048]


class PooledFeatures(nn.Module):
    """An encoder file's ResNet-50 as `Features`, with the input statistics it was trained with."""

    def __init__(self, encoder: nn.Module, stats: Stats):
        super().__init__()
        self.encoder, self.input_stats = encoder, stats

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder.features(x, "pool")


@lru_cache(maxsize=2)
def random_resnet50(seed: int, device: torch.device) -> Features:
    """torchvision's ResNet-50 with its default random init (weights a function of `seed`), eval
    mode, frozen; fc removed so it returns the pooled features."""
    import torchvision

    torch_seed = mix64_int(name_hash("feature_vis-random/net") ^ seed) & 0x7FFFFFFFFFFFFFFF
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(torch_seed)
        net = torchvision.models.resnet50()
    net.fc = nn.Identity()
    return net.to(device).eval().requires_grad_(False)


@lru_cache(maxsize=2)
def encoder_resnet50(path: str, device: torch.device) -> Features:
    """The pooled features of a ResNet-50 encoder file (noisevision.models format), eval, frozen."""
    from noisevision.models import load_encoder

    encoder, meta = load_encoder(path, map_location=device)
    arch = str(getattr(encoder, "arch", ""))
    if not arch.startswith("resnet50") or getattr(encoder, "feat_dim", 0) != UNITS:
        raise NoisevisionError(
            f"{path} holds a '{arch}' encoder: feature visualizations need a "
            f"ResNet-50 ({UNITS}-d pooled features)"
        )
    encoder.eval().requires_grad_(False)
    return PooledFeatures(encoder, meta["recipe"].stats)


# ------------------------------------------------------------------------------------ generator
def visualise(
    model: Features, rng: Rng, units: Tensor, res: int, steps: int, precision: str = "fp32"
) -> Tensor:
    """Optimise one image per target: units [B, 2] (−1 = none) -> float images in (0, 1) [B, 3, res, res].

    `precision` is the network's autocast (noisevision.precision); the image parameters, their
    transforms and the objective stay in fp32.
    """
    b, dev = rng.batch, rng.device
    stats = getattr(model, "input_stats", IMAGENET_STATS)  # a random network: ImageNet's, as lucent
    scale = spectrum_scale(res, dev)
    spectrum = (rng.child("init").normal(3, res, res // 2 + 1, 2) * INIT_STD).requires_grad_(True)
    opt = torch.optim.Adam([spectrum], lr=LR)
    weight = torch.zeros(b, UNITS, device=dev)  # 1 on the target units
    weight.scatter_(1, units.clamp_min(0), (units >= 0).float())
    steps_rng = rng.child("transforms")
    with torch.enable_grad():
        for step in range(steps):
            x = transform(spectrum_to_image(spectrum, scale), steps_rng.child(step), stats)
            with autocast(dev, precision):
                feats = model(x)
            loss = -(feats.float() * weight).sum()  # a sum: each image's gradient is its own
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return spectrum_to_image(spectrum.detach(), scale)


def to_uint8_minmax(img: Tensor) -> Tensor:
    """Min–max each image (all channels together) to 0..255."""
    lo = img.amin(dim=(1, 2, 3), keepdim=True)
    hi = img.amax(dim=(1, 2, 3), keepdim=True)
    return ((img - lo) / (hi - lo).clamp_min(1e-12) * 255).round().to(torch.uint8)


class FeatureVis(Generator):
    """Feature visualizations of a ResNet-50 (random, or from an encoder file)."""

    single_cpu_thread = True  # multi-threaded convolutions round differently; gradient ascent shows it
    search_space = (Param("steps", "int", 16, 512, log=True, help="gradient-ascent steps per image"),)

    def __init__(
        self,
        spec: GeneratorSpec,
        steps: int = STEPS,
        block: int = 8,
        encoder: str | None = None,
        precision: str = "auto",
    ):
        extra = {"encoder": encoder} if encoder else {}
        if precision != "auto":
            extra["precision"] = precision
        super().__init__(spec, steps=steps, block=block, **extra)
        if steps < 1 or block < 1:
            raise NoisevisionError("feature visualizations need steps >= 1 and block >= 1")
        resolve_precision(precision, "cpu")  # a misspelt precision fails here
        self.steps, self.block, self.encoder, self.precision = int(steps), int(block), encoder, precision
        self.max_batch = 4 * self.block

    @property
    def key(self) -> str:
        """Targets, initial spectra and transforms depend on (seed, index) only, not on the network
        or the encoder path's spelling."""
        return "feature_vis"

    def network(self, seed: int, device: torch.device) -> Features:
        if self.encoder is None:
            return random_resnet50(seed, device)
        return encoder_resnet50(self.encoder, device)

    def render_indices(self, indices: Tensor, seed: int, res: int) -> Tensor:
        targets(indices)  # fail on an index out of range before any work
        model = self.network(seed, indices.device)
        out = torch.empty(len(indices), 3, res, res, dtype=torch.uint8, device=indices.device)
        for first in (indices // self.block).unique().tolist():  # each block is one optimisation
            block = torch.arange(first * self.block, (first + 1) * self.block, device=indices.device)
            rng = Rng.for_indices(self.key, seed, block)
            precision = resolve_precision(self.precision, indices.device)
            images = to_uint8_minmax(visualise(model, rng, targets(block), res, self.steps, precision))
            hit = (indices // self.block) == first
            out[hit] = images[indices[hit] - first * self.block]
        return out


register(
    "feature_vis-random",
    family="feature visualization",
    label="Feature vis. – Random",
    default_res=256,
    min_res=32,
    description="Images maximising units of a random ResNet-50 (slow on CPU: a GPU is the device for it).",
    takes_precision=True,
)(FeatureVis)


def resolve_feature_vis(name: str, params: dict[str, Any]) -> Generator | None:
    """`feature_vis-<path to encoder.pt>`: visualise a trained ResNet-50 encoder."""
    if not name.startswith("feature_vis-") or name.partition(":")[0] in registry.GENERATORS:
        return None  # feature_vis-random:steps=N: a registered name with its parameters
    path = name[len("feature_vis-") :]
    if not Path(path).is_file():
        raise NoisevisionError(
            f"'{name}': no encoder file {path} (feature_vis-random, or feature_vis-<path to encoder.pt>)"
        )
    spec = GeneratorSpec(
        name=name,
        family="feature visualization",
        label="",
        default_res=256,
        description=f"Images maximising units of the ResNet-50 in {path}",
        build=lambda spec, **kw: FeatureVis(spec, encoder=path, **kw),
        min_res=32,
        takes_precision=True,
    )
    try:
        gen = FeatureVis(spec, encoder=path, **params)
    except TypeError as exc:
        raise NoisevisionError(f"bad parameters for generator '{name}': {exc}") from exc
    encoder_resnet50(path, torch.device("cpu"))  # a bad file fails here, in one line
    return gen


registry.register_resolver(
    resolve_feature_vis,
    "feature_vis-<encoder.pt> — feature visualizations of a ResNet-50 encoder file "
    "(e.g. one trained on dead_leaves-mixed: the paper's feature_vis-dead_leaves)",
)
