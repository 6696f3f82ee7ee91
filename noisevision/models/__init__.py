"""Encoders by name, and the encoder file format shared by training, probes and reports.

    enc = build_encoder("smallalexnet")            # SPEC §7
    enc = build_encoder("resnet18-s", width=0.5, input_size=32)
    feats = enc.features(x, "fc6")                 # [B, F], the probe layer by default
    save_encoder("enc.pt", enc, {"data": "dead_leaves-mixed"}, recipe)
    enc, meta = load_encoder("enc.pt")            # meta["recipe"]: how to feed it (Recipe)

Every encoder has `forward(x) -> unit-norm embedding`, `features(x, layer=None) -> [B, F]`,
`feature_layers`, `default_layer`, `input_size`, plus `arch` / `arch_kwargs` (set here) so a file
can rebuild it.

An encoder file (version 2) holds the architecture, the weights with a checksum of them, the
training metadata and the `Recipe`: the preprocessing the encoder was trained with (mean/std,
input size, ...), which probes, feature visualisation and exports read instead of guessing it.
Version-1 files (no recipe, no checksum) still load, with the recipe their method implies.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from functools import cache
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
VERSION = 2
READABLE_VERSIONS = (1, 2)
MIN_INPUT = 8  # the smallest crop side an encoder is built for


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


@dataclass(frozen=True)
class Recipe:
    """How an encoder's inputs were made in training: what any code feeding it must do again."""

    mean: tuple[float, float, float]  # per-channel normalisation of [0, 1] pixels
    std: tuple[float, float, float]
    input_size: int  # side of the square crops the encoder saw
    res: int | None = None  # side of the training images the crops came from
    augment: str = ""  # the augmentation pipeline (noisevision list augmentations)
    layer: str = ""  # the default probe layer
    method: str = ""  # the self-supervised method
    protocol: str = "paper"  # the linear-probe protocol that suits it (noisevision list protocols)
    data: str = ""  # what it was trained on, in words

    @property
    def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std): how inputs are normalised for this encoder."""
        return tuple(self.mean), tuple(self.std)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Recipe:
        known = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}
        return cls(**values)


def legacy_recipe(meta: dict[str, Any], encoder: nn.Module) -> Recipe:
    """The recipe a version-1 file implies: MoCo's ImageNet statistics and protocol for MoCo-trained
    encoders, the paper's small-scale ones for every other method (the rule before recipes)."""
    from noisevision.augment import IMAGENET_MEAN, IMAGENET_STD, PAPER_MEAN, PAPER_STD

    method = str(meta.get("method", ""))
    moco = method.lower().startswith("moco")
    return Recipe(
        IMAGENET_MEAN if moco else PAPER_MEAN, IMAGENET_STD if moco else PAPER_STD,
        int(meta.get("input_size") or encoder.input_size), meta.get("res"), "", encoder.default_layer, method,
        "moco" if moco else "paper", str(meta.get("source", meta.get("data", ""))),
    )  # fmt: skip


def tensors_checksum(state: dict[str, torch.Tensor]) -> str:
    """BLAKE2b of every tensor's name, dtype, shape and bytes, in key order."""
    digest = hashlib.blake2b(digest_size=16)
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        digest.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def check_weights_finite(state: dict[str, torch.Tensor], path: Path | str) -> None:
    """NoisevisionError naming the file and the first tensor holding NaN or Inf."""
    for key, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise NoisevisionError(
                f"{path}: weights '{key}' hold NaN or Inf: the file is damaged or the run diverged"
            )


def save_encoder(
    path: str | Path, encoder: nn.Module, meta: dict[str, Any], recipe: Recipe | None = None
) -> Path:
    """Write `encoder` (built by build_encoder), `meta` and its training `recipe` to `path`
    atomically (no recipe: the one a version-1 file would imply from `meta`)."""
    if not hasattr(encoder, "arch"):
        raise ValueError("save_encoder needs an encoder made by build_encoder (it has no .arch)")
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    check_weights_finite(state, path)
    recipe = recipe or legacy_recipe(meta, encoder)
    return atomic_save(
        {
            "format": FORMAT,
            "version": VERSION,
            "arch": encoder.arch,
            "arch_kwargs": dict(encoder.arch_kwargs),
            "state_dict": state,
            "checksum": tensors_checksum(state),
            "recipe": recipe.to_dict(),
            "meta": dict(meta),
        },
        path,
    )


def encoder_path(spec: str | Path, choices: str = "an encoder file or a training run folder") -> Path:
    """The encoder file `spec` names: the file itself, or a training run folder's encoder.pt;
    NoisevisionError naming `choices` (what else may be given) when there is none."""
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "encoder.pt").is_file():
            raise NoisevisionError(f"folder {path} has no encoder.pt: give {choices}")
        return path / "encoder.pt"
    if not path.exists():
        raise NoisevisionError(f"encoder '{spec}' not found: give {choices}")
    return path


def read_encoder_file(path: str | Path) -> dict[str, Any]:
    """The checked contents of an encoder file (on the CPU): NoisevisionError for anything that is
    not one, a version this code cannot read, weights that fail their checksum, NaN or Inf."""
    path = Path(path)
    if not path.is_file():
        raise NoisevisionError(f"encoder file {path} does not exist")
    if path.suffix == ".safetensors":  # `noisevision export --format noisevision`
        from noisevision.export import read_safetensors_encoder

        blob = read_safetensors_encoder(path)
    else:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling errors come in many types
            raise NoisevisionError(f"{path} is not a readable encoder file ({type(exc).__name__})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise NoisevisionError(f"{path} is not a noisevision encoder file")
    if blob.get("version") not in READABLE_VERSIONS:
        raise NoisevisionError(
            f"{path} has encoder format version {blob.get('version')}; this noisevision reads "
            f"{', '.join(map(str, READABLE_VERSIONS))}: upgrade noisevision"
        )
    if "checksum" in blob and tensors_checksum(blob["state_dict"]) != blob["checksum"]:
        raise NoisevisionError(f"{path}: the weights do not match their checksum: the file is damaged")
    check_weights_finite(blob["state_dict"], path)
    return blob


def load_encoder(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild an encoder written by save_encoder; NoisevisionError for anything else.

    Returns the encoder and its metadata, with the training recipe as `meta["recipe"]` (a Recipe).
    """
    blob = read_encoder_file(path)
    encoder = build_encoder(blob["arch"], **blob["arch_kwargs"])
    try:
        encoder.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise NoisevisionError(f"{path} does not match architecture '{blob['arch']}': {first}") from exc
    meta = dict(blob["meta"])
    if "recipe" in blob:
        meta["recipe"] = Recipe.from_dict(blob["recipe"])
    else:
        meta["recipe"] = legacy_recipe(meta, encoder)
        _warn_legacy(str(Path(path).resolve()), meta["recipe"].protocol)
    return encoder.to(map_location), meta


@cache
def _warn_legacy(path: str, protocol: str) -> None:
    """Once per file: version 1 stored no recipe, so its normalisation is inferred."""
    stats = "ImageNet" if protocol == "moco" else "the paper's"
    print(f"warning: {path} is a version-1 encoder file without its training recipe: assuming {stats} "
          "normalisation from its method", file=sys.stderr)  # fmt: skip


__all__ = [
    "ARCHS",
    "Recipe",
    "ResNetEncoder",
    "SmallAlexNet",
    "arch_names",
    "atomic_save",
    "build_encoder",
    "encoder_path",
    "legacy_recipe",
    "load_encoder",
    "read_encoder_file",
    "save_encoder",
]
