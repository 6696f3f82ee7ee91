"""Encoders by name, and the encoder file format shared by training, probes and reports.

    enc = build_encoder("smallalexnet")            # the paper's small-scale encoder
    enc = build_encoder("resnet18-s", width=0.5, input_size=32)
    enc = build_encoder("vit-tiny-p4")                # timm ViT-T, 4 px patches, 32 px
    feats = enc.features(x, "fc6")                 # [B, F], the probe layer by default
    save_encoder("enc.pt", enc, {"data": "dead_leaves-mixed"}, recipe)
    enc, meta = load_encoder("enc.pt")            # meta["recipe"]: how to feed it (Recipe)

Every encoder has `forward(x) -> unit-norm embedding`, `features(x, layer=None) -> [B, F]`,
`feature_layers`, `default_layer`, `input_size`, plus `arch` / `arch_kwargs` (set by
build_encoder) so a file can rebuild it. The architectures are in `archs`, the file format in
`encoder_file`.
"""

from __future__ import annotations

from noisevision.models.archs import ARCHS, arch_names, build_encoder
from noisevision.models.encoder_file import (
    FORMAT,
    VERSION,
    Recipe,
    check_weights_finite,
    encoder_path,
    implied_recipe,
    load_encoder,
    read_encoder_file,
    save_encoder,
    tensors_checksum,
)
from noisevision.models.resnet import ResNetEncoder
from noisevision.models.small_alexnet import SmallAlexNet
from noisevision.models.vit import ViTEncoder

__all__ = [
    "ARCHS",
    "FORMAT",
    "VERSION",
    "Recipe",
    "ResNetEncoder",
    "SmallAlexNet",
    "ViTEncoder",
    "arch_names",
    "build_encoder",
    "check_weights_finite",
    "encoder_path",
    "implied_recipe",
    "load_encoder",
    "read_encoder_file",
    "save_encoder",
    "tensors_checksum",
]
