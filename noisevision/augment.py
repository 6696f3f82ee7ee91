"""View augmentations, batched on the training device: the paper's two scales and the FDSL recipe.

Each pipeline is an `AugmentConfig` in the `AUGMENTATIONS` registry:
- "small": the paper's small-scale views: RandomResizedCrop(64, scale 0.08–1) straight
  from the 128/256 px image, horizontal flip, ColorJitter(0.4, 0.4, 0.4, 0.4) always,
  RandomGrayscale(0.2), normalisation with the paper's dataset mean/std;
- "mocov2": MoCo v2's "aug-plus" (large scale): RandomResizedCrop(224, 0.2–1), ColorJitter(0.4, 0.4,
  0.4, 0.1) with p 0.8, RandomGrayscale(0.2), Gaussian blur σ ∈ [0.1, 2] with p 0.5, flip,
  ImageNet normalisation;
- "fdsl": the formula-driven supervised (DeiT) recipe: RandomResizedCrop(224, 0.08–1), no flip,
  RandAugment m9 mstd 0.5 (noisevision.randaugment), ImageNet normalisation, random erasing 0.25.

Like kornia, parameters are first sampled as tensors (`sample_params`), then applied to the whole
batch (`apply`); the semantics follow torchvision's per-image transforms (same crop-box algorithm,
same colour formulas, random order of the four jitter operations). The random numbers come from
the counter-based `Rng` keyed by (seed, epoch, image index, view): the views of image i in epoch e
are the same whatever batch, rank or device renders them, so a resumed or distributed run sees
exactly the views of an uninterrupted single-process run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from noisevision import randaugment
from noisevision.randaugment import RandAugmentConfig
from noisevision.registry import Registry
from noisevision.rng import Rng

#: The paper's small-scale normalisation (statistics of its data).
PAPER_MEAN = (0.4409, 0.4279, 0.3868)
PAPER_STD = (0.2683, 0.2610, 0.2687)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale
CROP_ATTEMPTS = 10  # torchvision's RandomResizedCrop tries 10 boxes before its fallback


@dataclass(frozen=True)
class AugmentConfig:
    """One view pipeline; every field is a torchvision transform argument."""

    size: int = 64  # output side (the encoder's input size)
    scale: tuple[float, float] = (0.08, 1.0)  # RandomResizedCrop area fraction
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # RandomResizedCrop aspect ratio w/h
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.4)  # brightness, contrast, sat, hue
    jitter_p: float = 1.0
    gray_p: float = 0.2
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    mean: tuple[float, float, float] = PAPER_MEAN
    std: tuple[float, float, float] = PAPER_STD
    randaugment: RandAugmentConfig | None = None  # after the crop and colour operations
    erase_p: float = 0.0  # random erasing (timm's "pixel" mode) of the normalised view
    erase_area: tuple[float, float] = (0.02, 1 / 3)
    erase_ratio: tuple[float, float] = (0.3, 3.3)


AUGMENTATIONS: Registry[AugmentConfig] = Registry("augmentation")
AUGMENTATIONS.add(
    "small", AugmentConfig(), "paper's small scale: 64 px crops of 8–100 %, jitter always, paper statistics"
)
# Short CPU runs: larger crops make the two views overlap, so the invariances are found within a
# few hundred steps instead of many epochs.
AUGMENTATIONS.add(
    "small-mild", AugmentConfig(scale=(0.3, 1.0)), "small with crops of 30–100 % (short CPU runs)"
)
AUGMENTATIONS.add(
    "mocov2",
    AugmentConfig(
        size=224,
        scale=(0.2, 1.0),
        jitter=(0.4, 0.4, 0.4, 0.1),
        jitter_p=0.8,
        gray_p=0.2,
        blur_p=0.5,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    ),
    "MoCo v2's aug-plus: 224 px crops of 20–100 %, jitter p 0.8, blur p 0.5, ImageNet statistics",
)
AUGMENTATIONS.add(
    "fdsl",
    AugmentConfig(
        size=224,
        flip_p=0.0,
        jitter=(0.0, 0.0, 0.0, 0.0),
        jitter_p=0.0,  # timm's DeiT pipeline drops the jitter when RandAugment is on
        gray_p=0.0,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        randaugment=RandAugmentConfig(),
        erase_p=0.25,
    ),
    "formula-driven supervised (DeiT): 224 px crops of 8–100 %, no flip, RandAugment m9, erasing p 0.25",
)


def get_augment(name: str, size: int | None = None) -> AugmentConfig:
    """The registered pipeline `name`, with its output side replaced by `size` if given."""
    cfg = AUGMENTATIONS.get(name)
    return cfg if size is None else replace(cfg, size=size)


# ---------------------------------------------------------------------------------------- params
def sample_crop_boxes(
    rng: Rng, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float]
) -> Tensor:
    """RandomResizedCrop boxes for a batch from its per-image random streams: float [B, 4]."""
    u_area, u_ratio = rng.uniform(CROP_ATTEMPTS), rng.uniform(CROP_ATTEMPTS)  # [B, 10] each
    return crop_boxes(u_area, u_ratio, rng.uniform(2), height, width, scale, ratio)


def crop_boxes(
    u_area: Tensor,
    u_ratio: Tensor,
    u_offset: Tensor,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Tensor:
    """torchvision RandomResizedCrop.get_params for a batch, from uniforms in [0, 1):
    u_area, u_ratio [B, 10] (the candidates), u_offset [B, 2] (top, left) -> boxes float [B, 4] =
    (x1, y1, x2, y2) in pixel edges.

    The first of the 10 (area, log-ratio) candidates that fits is kept; when none fits, the centre
    crop with the ratio clamped to `ratio` (the whole image when it is square).
    """
    area = height * width
    target = area * (scale[0] + (scale[1] - scale[0]) * u_area)  # [B, 10]
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u_ratio
    aspect = torch.exp(log_r)
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # [B, 10]
    first = torch.argmax(ok.to(torch.uint8), dim=1, keepdim=True)  # first fitting attempt
    w = w.gather(1, first)[:, 0]
    h = h.gather(1, first)[:, 0]
    # Fallback (torchvision): centre crop at the clamped aspect ratio.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fw, fh = round(height * ratio[1]), height
    else:
        fw, fh = width, height
    found = ok.any(dim=1)
    w = torch.where(found, w, torch.full_like(w, fw))
    h = torch.where(found, h, torch.full_like(h, fh))
    # top, left offsets: uniform over the valid integer range (centred for the fallback)
    top = torch.floor(u_offset[:, 0] * (height - h + 1))
    left = torch.floor(u_offset[:, 1] * (width - w + 1))
    top = torch.where(found, top, torch.full_like(top, (height - fh) // 2))
    left = torch.where(found, left, torch.full_like(left, (width - fw) // 2))
    return torch.stack([left, top, left + w, top + h], dim=1)


def sample_params(cfg: AugmentConfig, rng: Rng, height: int, width: int) -> dict[str, Tensor]:
    """Every random choice of one view of each image, as tensors on the rng's device."""
    b, c, s, hue = cfg.jitter
    jitter_lo = torch.tensor([1 - b, 1 - c, 1 - s, -hue], device=rng.device)
    jitter_hi = torch.tensor([1 + b, 1 + c, 1 + s, hue], device=rng.device)
    blur_u = rng.uniform(1)[:, 0]
    return {
        "box": sample_crop_boxes(rng, height, width, cfg.scale, cfg.ratio),  # [B, 4]
        "flip": rng.uniform(1)[:, 0] < cfg.flip_p,  # [B]
        "jitter_on": rng.uniform(1)[:, 0] < cfg.jitter_p,  # [B]
        # brightness, contrast, saturation factors and hue shift: [B, 4]
        "jitter": jitter_lo + (jitter_hi - jitter_lo) * rng.uniform(4),
        # the order of the four jitter operations, a random permutation per image (torchvision)
        "jitter_order": torch.argsort(rng.uniform(4), dim=1),  # [B, 4]
        "gray": rng.uniform(1)[:, 0] < cfg.gray_p,  # [B]
        "blur_on": rng.uniform(1)[:, 0] < cfg.blur_p,  # [B]
        "blur_sigma": cfg.blur_sigma[0] + (cfg.blur_sigma[1] - cfg.blur_sigma[0]) * blur_u,  # [B]
        **(randaugment.sample(cfg.randaugment, rng.child("randaugment")) if cfg.randaugment else {}),
        **(_sample_erasing(cfg, rng.child("erase")) if cfg.erase_p > 0 else {}),
    }


def _sample_erasing(cfg: AugmentConfig, rng: Rng) -> dict[str, Tensor]:
    """timm's RandomErasing of one box per image with probability erase_p: its area fraction and
    log aspect ratio uniform, the box clamped into the view (one attempt, where timm retries up to
    10 times for a box that fits), filled with N(0, 1) noise per pixel."""
    size = cfg.size
    area = size * size * rng.uniform(1, low=cfg.erase_area[0], high=cfg.erase_area[1])[:, 0]
    log_ratio = rng.uniform(1, low=math.log(cfg.erase_ratio[0]), high=math.log(cfg.erase_ratio[1]))[:, 0]
    ratio = torch.exp(log_ratio)
    h = torch.sqrt(area * ratio).round().clamp(1, size)
    w = torch.sqrt(area / ratio).round().clamp(1, size)
    top = (rng.uniform(1)[:, 0] * (size - h + 1)).floor()
    left = (rng.uniform(1)[:, 0] * (size - w + 1)).floor()
    return {
        "erase_on": rng.uniform(1)[:, 0] < cfg.erase_p,
        "erase_box": torch.stack([left, top, left + w, top + h], 1),  # [B, 4] pixel edges
        "erase_noise": rng.normal(3 * size * size).view(-1, 3, size, size),
    }


# ---------------------------------------------------------------------------------------- colour ops
def _gray(x: Tensor) -> Tensor:
    """[B, 3, H, W] -> luminance [B, 1, H, W] (torchvision weights)."""
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """torchvision _blend: factor·x + (1−factor)·other, clamped to [0, 1]; factor [B]."""
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp_(0, 1)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, _gray(x), factor)


def rgb_to_hsv(x: Tensor) -> Tensor:
    """[B, 3, H, W] RGB in [0, 1] -> HSV with hue in [0, 1) (torchvision's formulas)."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    div = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    h = torch.where(is_r, bc - gc, torch.where(is_g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.fmod(h / 6.0 + 1.0, 1.0)
    return torch.stack([h, s, maxc], dim=1)


def hsv_to_rgb(x: Tensor) -> Tensor:
    """Inverse of rgb_to_hsv: [B, 3, H, W] -> RGB.

    Closed form of the six-sector table: channel n ∈ (5, 3, 1) for (R, G, B) is
    v − v·s·clamp(min(k, 4 − k), 0, 1) with k = (n + 6h) mod 6; a few element-wise ops, no gathers.
    """
    h, s, v = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * h, 6.0)  # [B, 3, H, W]
    return v - v * s * torch.minimum(k, 4.0 - k).clamp_(0, 1)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue by `shift` [B] (in turns, −0.5..0.5)."""
    hsv = rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0] + shift.view(-1, 1, 1), 1.0)
    return hsv_to_rgb(torch.stack([h, hsv[:, 1], hsv[:, 2]], dim=1))


_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(x: Tensor, factors: Tensor, order: Tensor, on: Tensor) -> Tensor:
    """ColorJitter per image: the four operations in each image's own `order` [B, 4].

    Each of the 4 slots applies, to the images whose slot holds operation k, only operation k: the
    batch costs four operations per image whatever the orders. Images with `on` False are kept.
    """
    x = x.clone()
    for slot in range(4):
        for k, op in enumerate(_JITTER_OPS):
            sel = torch.nonzero(on & (order[:, slot] == k)).squeeze(1)
            if sel.numel():
                x[sel] = op(x[sel], factors[sel, k])
    return x


def gaussian_blur(x: Tensor, sigma: Tensor, on: Tensor) -> Tensor:
    """Separable Gaussian blur with a per-image σ [B] (reflect padding); images with `on` False kept."""
    bsz, c, h, w = x.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)  # [K]
    kern = torch.exp(-0.5 * (taps[None] / sigma[:, None].to(x.dtype)) ** 2)  # [B, K]
    kern = kern / kern.sum(1, keepdim=True)
    delta = (taps == 0).to(x.dtype).expand_as(kern)
    kern = torch.where(on[:, None], kern, delta).repeat_interleave(c, 0)  # [B*C, K]
    y = x.reshape(1, bsz * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), kern[:, None, None, :], groups=bsz * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), kern[:, None, :, None], groups=bsz * c)
    return y.reshape(bsz, c, h, w)


# ---------------------------------------------------------------------------------------- apply
def resized_crop(x: Tensor, boxes: Tensor, size: int) -> Tensor:
    """Crop boxes [B, 4] (pixel edges x1, y1, x2, y2) of float x [B, C, H, W], resize to size×size.

    roi_align with adaptive sampling averages ceil(box/size)² bilinear samples per output pixel:
    bilinear interpolation when enlarging, an area-like (anti-aliased) filter when shrinking.
    """
    from torchvision.ops import roi_align  # torchvision is slow to import: only when cropping

    rois = torch.cat([torch.arange(len(x), device=x.device, dtype=x.dtype)[:, None], boxes.to(x.dtype)], 1)
    return roi_align(x, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def apply(cfg: AugmentConfig, images: Tensor, params: dict[str, Tensor]) -> Tensor:
    """Images [B, 3, H, W] (uint8, or float in [0, 1]) + sampled params -> normalised float view
    [B, 3, size, size]."""
    x = images.float().div(255.0) if images.dtype == torch.uint8 else images
    x = resized_crop(x, params["box"], cfg.size).clamp_(0, 1)
    x = torch.where(params["flip"].view(-1, 1, 1, 1), x.flip(-1), x)
    if cfg.jitter_p > 0 and any(cfg.jitter):
        x = color_jitter(x, params["jitter"], params["jitter_order"], params["jitter_on"])
    if cfg.gray_p > 0:
        x = torch.where(params["gray"].view(-1, 1, 1, 1), _gray(x).expand_as(x), x)
    if cfg.blur_p > 0:
        x = gaussian_blur(x, params["blur_sigma"], params["blur_on"])
    if cfg.randaugment is not None:
        x = randaugment.apply(x, params)
    mean = torch.tensor(cfg.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    if cfg.erase_p > 0:
        ys = torch.arange(cfg.size, device=x.device).view(1, -1, 1)
        xs = torch.arange(cfg.size, device=x.device).view(1, 1, -1)
        box = params["erase_box"].view(-1, 4, 1, 1)
        inside = (xs >= box[:, 0]) & (xs < box[:, 2]) & (ys >= box[:, 1]) & (ys < box[:, 3])
        erase = (inside & params["erase_on"].view(-1, 1, 1)).unsqueeze(1)  # [B, 1, size, size]
        x = torch.where(erase, params["erase_noise"].to(x.dtype), x)
    return x


def view_rng(indices: Tensor, seed: int, epoch: int, view: int) -> Rng:
    """The random stream of one view of images `indices` in `epoch` (independent of the batch)."""
    return Rng.for_indices("augment", seed, indices).child(epoch).child(view)


def views(
    cfg: AugmentConfig, images: Tensor, indices: Tensor, seed: int, epoch: int, count: int = 2
) -> tuple[Tensor, ...]:
    """`count` augmented views of uint8 images [B, 3, H, W] whose dataset indices are `indices`
    [B]; view v of an image is the same whatever `count` (its own random stream)."""
    idx = indices.to(images.device)
    x = images.float().div_(255.0)  # once for every view
    _, _, h, w = images.shape
    return tuple(apply(cfg, x, sample_params(cfg, view_rng(idx, seed, epoch, v), h, w)) for v in range(count))


def two_views(
    cfg: AugmentConfig, images: Tensor, indices: Tensor, seed: int, epoch: int
) -> tuple[Tensor, Tensor]:
    """The two augmented views of uint8 images [B, 3, H, W] whose dataset indices are `indices` [B]."""
    return views(cfg, images, indices, seed, epoch, 2)  # type: ignore[return-value]
