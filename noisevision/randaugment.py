"""RandAugment batched on the device, each image's operations drawn from its own random key.

The policy of the formula-driven supervised recipes (timm's "rand-m9-mstd0.5-inc1", as DeiT
trains): per image, `layers` operations drawn uniformly from `OPS`, each applied with probability
0.5 at magnitude m + N(0, mstd), clipped to [0, 10], with a random sign where the operation has
one ("increasing" variants: a higher magnitude is always a stronger change). The operations follow
PIL's ImageOps / ImageEnhance as timm applies them, on float images in [0, 1].

Batched like the rest of `augment`: the parameters are drawn first (`sample`), then the images
that drew the same operation in a layer are transformed together (`apply`), so a batch costs a
few kernels per operation, not one per image, and an image's result does not depend on its batch.
Geometric operations fill with grey 128, as timm does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from noisevision.rng import Rng

#: The operations, in a fixed order (an image's draw is an index into it).
OPS = (
    "auto_contrast",
    "equalize",
    "invert",
    "rotate",
    "posterize",
    "solarize",
    "solarize_add",
    "color",
    "contrast",
    "brightness",
    "sharpness",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
FILL = 128 / 255  # the grey geometric operations fill with


@dataclass(frozen=True)
class RandAugmentConfig:
    """rand-m{magnitude}-mstd{mstd}: `layers` operations per image, each applied with `p`."""

    layers: int = 2
    magnitude: float = 9.0  # of 10
    mstd: float = 0.5
    p: float = 0.5


def sample(cfg: RandAugmentConfig, rng: Rng) -> dict[str, Tensor]:
    """Every random choice of RandAugment for each image: [B, layers] tensors."""
    n = cfg.layers
    op = (rng.uniform(n) * len(OPS)).long().clamp_(max=len(OPS) - 1)
    on = rng.uniform(n) < cfg.p
    level = (cfg.magnitude + cfg.mstd * rng.normal(n)).clamp(0.0, 10.0) / 10.0  # in [0, 1]
    sign = torch.where(rng.uniform(n) < 0.5, -1.0, 1.0)
    return {"ra_op": op, "ra_on": on, "ra_level": level, "ra_sign": sign}


def apply(x: Tensor, params: dict[str, Tensor]) -> Tensor:
    """Float images [B, 3, H, W] in [0, 1] with the sampled operations applied, layer by layer."""
    x = x.clone()
    for layer in range(params["ra_op"].shape[1]):
        op, on = params["ra_op"][:, layer], params["ra_on"][:, layer]
        level = params["ra_level"][:, layer] * params["ra_sign"][:, layer]  # signed, in [-1, 1]
        for k, name in enumerate(OPS):
            chosen = torch.nonzero(on & (op == k)).flatten()
            if len(chosen):
                x[chosen] = _OPERATIONS[name](x[chosen], level[chosen]).clamp_(0.0, 1.0)
    return x


# ---------------------------------------------------------------------------------------- operations
def _per_image(v: Tensor) -> Tensor:
    return v.view(-1, 1, 1, 1)


def _to_uint8_levels(x: Tensor) -> Tensor:
    """[0, 1] floats as the integer grey levels 0..255 PIL works on (still float)."""
    return (x * 255.0).round_()


def _auto_contrast(x: Tensor, level: Tensor) -> Tensor:
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    flat = hi <= lo  # a flat channel stays as it is
    return torch.where(flat, x, (x - lo) / (hi - lo).clamp_min(1e-12))


def _equalize(x: Tensor, level: Tensor) -> Tensor:
    from torchvision.transforms.v2 import functional as TF

    return TF.equalize(_to_uint8_levels(x).to(torch.uint8)).float() / 255.0


def _invert(x: Tensor, level: Tensor) -> Tensor:
    return 1.0 - x


def _posterize(x: Tensor, level: Tensor) -> Tensor:
    bits = 4 - (level.abs() * 4).long()  # 4 .. 0 bits kept as the magnitude grows
    step = torch.pow(2.0, 8 - bits.float())  # keep the top `bits` bits of each 8-bit level
    return (torch.floor(_to_uint8_levels(x) / _per_image(step)) * _per_image(step)) / 255.0


def _solarize(x: Tensor, level: Tensor) -> Tensor:
    threshold = 256 - (level.abs() * 256).long()  # 256 (nothing) .. 0 (everything) inverted
    v = _to_uint8_levels(x)
    return torch.where(v >= _per_image(threshold.float()), 255.0 - v, v) / 255.0


def _solarize_add(x: Tensor, level: Tensor) -> Tensor:
    add = (level.abs() * 110).long().float()
    v = _to_uint8_levels(x)
    return torch.where(v < 128, (v + _per_image(add)).clamp_(max=255.0), v) / 255.0


def _enhance_factor(level: Tensor) -> Tensor:
    """timm's increasing enhancement: factor 1 ± 0.9 · magnitude."""
    return 1.0 + 0.9 * level


def _gray(x: Tensor) -> Tensor:
    r, g, b = x.unbind(1)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)  # PIL's "L" conversion


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    return other + _per_image(factor) * (x - other)


def _color(x: Tensor, level: Tensor) -> Tensor:
    return _blend(x, _gray(x).expand_as(x), _enhance_factor(level))


def _contrast(x: Tensor, level: Tensor) -> Tensor:
    mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)  # PIL: the mean grey of the whole image
    return _blend(x, mean.expand_as(x), _enhance_factor(level))


def _brightness(x: Tensor, level: Tensor) -> Tensor:
    return _blend(x, torch.zeros_like(x), _enhance_factor(level))


def _sharpness(x: Tensor, level: Tensor) -> Tensor:
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], device=x.device) / 13.0
    smooth = F.conv2d(x, kernel.expand(3, 1, 3, 3), padding=1, groups=3)
    border = torch.ones_like(x, dtype=torch.bool)
    border[..., 1:-1, 1:-1] = False
    smooth = torch.where(border, x, smooth)  # PIL's SMOOTH filter leaves the border pixels
    return _blend(x, smooth, _enhance_factor(level))


def _affine(x: Tensor, matrix: Tensor) -> Tensor:
    """Warp by per-image 2×3 matrices [B, 2, 3] mapping output to input pixel coordinates (origin
    at the centre), bilinear, grey outside the image."""
    b, _, h, w = x.shape
    to_norm = torch.tensor([[2.0 / w, 0.0], [0.0, 2.0 / h]], device=x.device)
    to_pixels = torch.tensor([[w / 2.0, 0.0], [0.0, h / 2.0]], device=x.device)
    theta = torch.cat([to_norm @ matrix[:, :, :2] @ to_pixels, (to_norm @ matrix[:, :, 2:])], dim=2)
    grid = F.affine_grid(theta, [b, 3, h, w], align_corners=False)
    return F.grid_sample(x - FILL, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + FILL


def _matrix(a: Tensor, b: Tensor, c: Tensor, d: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    return torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1)], 1)


def _rotate(x: Tensor, level: Tensor) -> Tensor:
    angle = level * (30.0 * math.pi / 180.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(angle)
    return _affine(x, _matrix(cos, -sin, sin, cos, zero, zero))


def _shear(x: Tensor, level: Tensor, axis: int) -> Tensor:
    shear, one, zero = level * 0.3, torch.ones_like(level), torch.zeros_like(level)
    if axis == 0:
        return _affine(x, _matrix(one, shear, zero, one, zero, zero))
    return _affine(x, _matrix(one, zero, shear, one, zero, zero))


def _translate(x: Tensor, level: Tensor, axis: int) -> Tensor:
    size = x.shape[-1] if axis == 0 else x.shape[-2]
    shift, one, zero = level * 0.45 * size, torch.ones_like(level), torch.zeros_like(level)
    if axis == 0:
        return _affine(x, _matrix(one, zero, zero, one, shift, zero))
    return _affine(x, _matrix(one, zero, zero, one, zero, shift))


_OPERATIONS = {
    "auto_contrast": _auto_contrast,
    "equalize": _equalize,
    "invert": _invert,
    "rotate": _rotate,
    "posterize": _posterize,
    "solarize": _solarize,
    "solarize_add": _solarize_add,
    "color": _color,
    "contrast": _contrast,
    "brightness": _brightness,
    "sharpness": _sharpness,
    "shear_x": lambda x, level: _shear(x, level, 0),
    "shear_y": lambda x, level: _shear(x, level, 1),
    "translate_x": lambda x, level: _translate(x, level, 0),
    "translate_y": lambda x, level: _translate(x, level, 1),
}
assert tuple(_OPERATIONS) == OPS
