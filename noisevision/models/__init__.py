"""Encoders by name, and the encoder file format shared by training, probes and reports.

    enc = build_encoder("smallalexnet")            # SPEC §7
    enc = build_encoder("resnet18-s", width=0.5, input_size=32)
    feats = enc.features(x, "fc6")                 # [B, F], the probe layer by default
    save_encoder("enc.pt", enc, {"data": "dead_leaves-mixed"})
    enc, meta = load_encoder("enc.pt")

Every encoder has `forward(x) -> unit-norm embedding`, `features(x, layer=None) -> [B, F]`,
`feature_layers`, `default_layer`, `input_size`, plus `arch` / `arch_kwargs` (set here) so a file
can rebuild it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from noisevision.errors import NoisevisionError
from noisevision.io import atomic_save
from noisevision.models.resnet import ResNetEncoder
from noisevision.models.small_alexnet import SmallAlexNet
from noisevision.registry import Registry

FORMAT = "noisevision-encoder"
VERSION = 1


ARCHS: Registry[Callable[..., nn.Module]] = Registry("architecture")
ARCHS.add("smallalexnet", SmallAlexNet, "the paper's small-scale encoder, 64 px input, fc6 probe")
ARCHS.add("resnet18", ResNetEncoder, "torchvision ResNet-18, 224 px", depth=18)
ARCHS.add("resnet50", ResNetEncoder, "torchvision ResNet-50, 224 px (the paper's large scale)", depth=50)
ARCHS.add("resnet18-s", ResNetEncoder, "ResNet-18, 3×3 stem, no max-pool, for 32–64 px", depth=18,
          small_stem=True, input_size=64)  # fmt: skip
ARCHS.add("resnet50-s", ResNetEncoder, "ResNet-50, 3×3 stem, no max-pool, for 32–64 px", depth=50,
          small_stem=True, input_size=64)  # fmt: skip


def arch_names() -> list[str]:
    return ARCHS.names()


def build_encoder(arch: str, **kw: Any) -> nn.Module:
    """Build the encoder registered as `arch`; `kw` overrides its defaults (width, input_size, ...)."""
    entry = ARCHS.entry(arch)
    try:
        encoder = entry.value(**{**entry.defaults, **kw})
    except (TypeError, ValueError) as exc:
        raise NoisevisionError(f"bad options for architecture '{arch}': {exc}") from exc
    encoder.arch = arch
    encoder.arch_kwargs = dict(kw)
    return encoder


def save_encoder(path: str | Path, encoder: nn.Module, meta: dict[str, Any]) -> Path:
    """Write `encoder` (built by build_encoder) and `meta` to `path` atomically."""
    if not hasattr(encoder, "arch"):
        raise ValueError("save_encoder needs an encoder made by build_encoder (it has no .arch)")
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    return atomic_save(
        {
            "format": FORMAT,
            "version": VERSION,
            "arch": encoder.arch,
            "arch_kwargs": dict(encoder.arch_kwargs),
            "state_dict": state,
            "meta": dict(meta),
        },
        path,
    )


def load_encoder(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild an encoder written by save_encoder; NoisevisionError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise NoisevisionError(f"encoder file {path} does not exist")
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise NoisevisionError(f"{path} is not a readable encoder file ({type(exc).__name__})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise NoisevisionError(f"{path} is not a noisevision encoder file")
    if blob.get("version") != VERSION:
        raise NoisevisionError(f"{path} has encoder format version {blob.get('version')}, expected {VERSION}")
    encoder = build_encoder(blob["arch"], **blob["arch_kwargs"])
    try:
        encoder.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise NoisevisionError(f"{path} does not match architecture '{blob['arch']}': {first}") from exc
    return encoder.to(map_location), dict(blob["meta"])


__all__ = [
    "ARCHS",
    "ResNetEncoder",
    "SmallAlexNet",
    "arch_names",
    "atomic_save",
    "build_encoder",
    "load_encoder",
    "save_encoder",
]
