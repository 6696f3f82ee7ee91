"""Which library ResNet — torchvision's or timm's — holds an encoder's trunk, and how it is built
there (what `noisevision export` writes for the trunk formats).

Both libraries name a ResNet's tensors alike; they differ in what they can build. torchvision:
the 7×7 stem, 64 wide, and library widths. timm: the same, or its "deep" stem (three 3×3 convs
of stem_width, stem_width, 2·stem_width) with any stage widths (`channels`): `resnet18-deep` at any
width. Neither has a stride-1 stem (`resnet18-s`): a card swaps it in by hand.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from torch import nn

from noisevision.models.archs import ARCHS
from noisevision.models.resnet import ResNetEncoder


@dataclass(frozen=True)
class ResNetLayout:
    """What a library ResNet needs to hold an encoder's trunk: its depth, stem and stage widths."""

    depth: int
    small_stem: bool
    stem_width: int = 64
    widths: tuple[int, ...] = (64, 128, 256, 512)  # timm's `channels`
    deep_stem: bool = False  # timm's stem_type="deep": three 3×3 convs of stem_width, stem_width, 2×

    @property
    def builder(self) -> str:
        return f"resnet{self.depth}"  # torchvision.models.resnet18 / timm.create_model("resnet18")

    @property
    def timm_args(self) -> dict[str, Any]:
        """timm.create_model's options beyond the builder's (none for a library-width ResNet)."""
        if not self.deep_stem:
            return {}
        return {"stem_type": "deep", "stem_width": self.stem_width, "channels": list(self.widths)}


def library_resnet(encoder: nn.Module, library: str = "torchvision") -> ResNetLayout | str:
    """The ResNet of `library` (torchvision or timm) the encoder's trunk fits, or why none does (a
    phrase). timm's `channels` and deep stem hold any width; the 7×7 stems of both are 64 wide."""
    if not isinstance(encoder, ResNetEncoder):
        return "is not a ResNet"
    options = {
        **_signature_defaults(ResNetEncoder),
        **ARCHS.entry(encoder.arch).defaults,
        **encoder.arch_kwargs,
    }
    depth = int(options["depth"])
    if options["deep_stem"]:
        if library != "timm":
            return f"has timm's deep stem, which {library}'s ResNets lack"
        widths = tuple(encoder.widths)
        return ResNetLayout(depth, False, widths[0] // 2, widths, deep_stem=True)
    if float(options["width"]) != 1.0:
        return f"has width {options['width']:g} (library ResNets with this stem have fixed stage widths)"
    return ResNetLayout(depth, bool(options["small_stem"]))


def _signature_defaults(cls: type) -> dict[str, Any]:
    return {
        k: p.default
        for k, p in inspect.signature(cls).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
