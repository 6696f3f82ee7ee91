"""The architectures by name: `build_encoder("resnet18-s", width=0.5)` builds the one registered.

Every encoder it builds carries `arch` / `arch_kwargs`, so that an encoder file can rebuild it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from noisevision.errors import NoisevisionError
from noisevision.models.resnet import ResNetEncoder
from noisevision.models.small_alexnet import SmallAlexNet
from noisevision.models.vit import ViTEncoder
from noisevision.registry import Registry

MIN_INPUT = 8  # the smallest crop side an encoder is built for


ARCHS: Registry[Callable[..., nn.Module]] = Registry("architecture")
ARCHS.add("smallalexnet", SmallAlexNet, "the paper's small-scale encoder, 64 px input, fc6 probe")
ARCHS.add("resnet18", ResNetEncoder, "torchvision ResNet-18, 224 px", depth=18)
ARCHS.add("resnet50", ResNetEncoder, "torchvision ResNet-50, 224 px (the paper's large scale)", depth=50)
ARCHS.add(
    "resnet18-s",
    ResNetEncoder,
    "ResNet-18, 3×3 stem, no max-pool, for 32–64 px",
    depth=18,
    small_stem=True,
    input_size=64,
)
ARCHS.add(
    "resnet18-deep",
    ResNetEncoder,
    "ResNet-18, timm's deep 3×3 stem (stride 4 with the max-pool): timm builds it at any width",
    depth=18,
    deep_stem=True,
    input_size=64,
)
ARCHS.add(
    "resnet50-s",
    ResNetEncoder,
    "ResNet-50, 3×3 stem, no max-pool, for 32–64 px",
    depth=50,
    small_stem=True,
    input_size=64,
)
# ViTs: timm's models (`model`: the timm name the trunk is built and exported as), never downloaded
for _size in ("tiny", "small", "base"):
    ARCHS.add(
        f"vit-{_size}",
        ViTEncoder,
        f"timm ViT-{_size[0].upper()}/16 ({_size}), 224 px, class-token probe layer",
        model=f"vit_{_size}_patch16_224",
    )
for _size in ("tiny", "small"):
    ARCHS.add(
        f"vit-{_size}-p4",
        ViTEncoder,
        f"timm ViT-{_size[0].upper()} with 4 px patches for 32 px inputs (64 tokens): CPU runs",
        model=f"vit_{_size}_patch16_224",
        patch_size=4,
        input_size=32,
    )


def arch_names() -> list[str]:
    return ARCHS.names()


def build_encoder(arch: str, **kw: Any) -> nn.Module:
    """Build the encoder registered as `arch`; `kw` overrides its defaults (width, input_size, ...)."""
    entry = ARCHS.entry(arch)
    options = {**entry.defaults, **kw}
    for key, low, strict in (("width", 0, True), ("out_dim", 1, False), ("input_size", MIN_INPUT, False)):
        value = options.get(key, low + 1)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or value < low or (strict and value == low):
            bound = "positive" if strict else f"at least {low}"
            raise NoisevisionError(f"architecture '{arch}': {key} must be {bound}, not {value!r}")
    try:
        encoder = entry.value(**options)
    except (TypeError, ValueError) as exc:
        raise NoisevisionError(f"bad options for architecture '{arch}': {exc}") from exc
    encoder.arch = arch
    encoder.arch_kwargs = dict(kw)
    return encoder
