"""The encoder file format: an encoder's weights, architecture and training `Recipe`, written and read back.

    save_encoder("enc.pt", enc, {"data": "dead_leaves-mixed"}, recipe)
    enc, meta = load_encoder("enc.pt")            # meta["recipe"]: how to feed it (Recipe)

An encoder file (format version 2) holds the architecture, the weights with a checksum of them,
the training metadata and the `Recipe`: the preprocessing the encoder was trained with (mean/std,
input size, ...), which probes, feature visualisation and exports read instead of guessing it.
It is a torch file (`.pt`), or a safetensors file with the same contents in its metadata
(`.safetensors`, written by `noisevision export --format noisevision`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from noisevision.errors import NoisevisionError
from noisevision.io import atomic_save
from noisevision.models.archs import build_encoder

FORMAT = "noisevision-encoder"
VERSION = 2
EXPORT_KEY = "noisevision.export"  # safetensors metadata key naming the export format we wrote


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


def implied_recipe(meta: dict[str, Any], encoder: nn.Module) -> Recipe:
    """The recipe of an encoder saved without one (built by hand, not by a training run): the
    linear-probe protocol its method's registry entry names (the paper's without a method), inputs
    normalised as that protocol normalises them, the encoder's own input size and probe layer."""
    from noisevision.evaluate.probes import PROTOCOLS
    from noisevision.evaluate.views import NORMALIZATIONS
    from noisevision.methods import METHODS

    method = str(meta.get("method", ""))
    protocol = METHODS.get(method).protocol if method in METHODS else "paper"
    mean, std = NORMALIZATIONS[PROTOCOLS.get(protocol).normalization]
    return Recipe(
        mean,
        std,
        int(meta.get("input_size") or encoder.input_size),
        meta.get("res"),
        "",
        encoder.default_layer,
        method,
        protocol,
        str(meta.get("source", meta.get("data", ""))),
    )


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
    atomically (no recipe: `implied_recipe`)."""
    if not hasattr(encoder, "arch"):
        raise ValueError("save_encoder needs an encoder made by build_encoder (it has no .arch)")
    state = {k: v.detach().cpu() for k, v in encoder.state_dict().items()}
    check_weights_finite(state, path)
    recipe = recipe or implied_recipe(meta, encoder)
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


def safetensors_fields(
    encoder: nn.Module, meta: dict[str, Any], tensors: dict[str, torch.Tensor]
) -> dict[str, str]:
    """What a safetensors file of `tensors` (every one of `encoder`'s) holds in its metadata, besides
    the export format, the architecture and the recipe, to be an encoder file."""
    return {
        "format": FORMAT,
        "version": str(VERSION),
        "arch_kwargs": json.dumps(encoder.arch_kwargs),
        "checksum": tensors_checksum(tensors),
        "meta": json.dumps(meta, default=str),
    }


def read_safetensors_encoder(path: Path) -> dict[str, Any]:
    """A noisevision-format export as the dict `read_encoder_file` checks (format, version, arch,
    arch_kwargs, state_dict, checksum, recipe, meta); NoisevisionError for other safetensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            info = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise NoisevisionError(f"{path} is not a readable safetensors file ({exc})") from exc
    fmt = info.get(EXPORT_KEY)
    if fmt and fmt != "noisevision":  # a library layout (noisevision.export.FORMATS)
        raise NoisevisionError(
            f"{path} holds {fmt} weights without noisevision's head and recipe: load it with {fmt} "
            "(see its model card), or export --format noisevision"
        )
    if info.get("format") != FORMAT:
        raise NoisevisionError(f"{path} is not a noisevision encoder file")
    try:
        return {
            "format": info["format"],
            "version": int(info["version"]),
            "arch": info["arch"],
            "arch_kwargs": json.loads(info["arch_kwargs"]),
            "state_dict": state,
            "checksum": info["checksum"],
            "recipe": json.loads(info["recipe"]),
            "meta": json.loads(info["meta"]),
        }
    except (KeyError, ValueError) as exc:
        raise NoisevisionError(f"{path}: damaged noisevision metadata ({type(exc).__name__}: {exc})") from exc


def read_encoder_file(path: str | Path) -> dict[str, Any]:
    """The checked contents of an encoder file (on the CPU): NoisevisionError for anything that is
    not one, a version this code cannot read, weights that fail their checksum, NaN or Inf."""
    path = Path(path)
    if not path.is_file():
        raise NoisevisionError(f"encoder file {path} does not exist")
    if path.suffix == ".safetensors":
        blob = read_safetensors_encoder(path)
    else:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling errors come in many types
            raise NoisevisionError(f"{path} is not a readable encoder file ({type(exc).__name__})") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise NoisevisionError(f"{path} is not a noisevision encoder file")
    if blob.get("version") == 1:
        raise NoisevisionError(
            f"{path} is an encoder file of format version 1, from before encoder files "
            "recorded their training recipe, which this noisevision does not read: train "
            "it again"
        )
    if blob.get("version") != VERSION:
        raise NoisevisionError(
            f"{path} has encoder format version {blob.get('version')}; this noisevision reads {VERSION}: "
            "upgrade noisevision"
        )
    if not isinstance(blob.get("recipe"), dict):
        raise NoisevisionError(f"{path} has no training recipe: the file is damaged")
    state = blob.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        raise NoisevisionError(f"{path} holds no weights: the file is damaged")
    if "checksum" in blob and tensors_checksum(blob["state_dict"]) != blob["checksum"]:
        raise NoisevisionError(f"{path}: the weights do not match their checksum: the file is damaged")
    check_weights_finite(blob["state_dict"], path)
    return blob


def check_structure(blob: dict[str, Any], path: str | Path) -> None:
    """NoisevisionError unless the file's weights are those of the architecture it names: built
    first on the meta device (no memory), so that a damaged or forged file with absurd widths is
    one line, not a 100 GB allocation."""
    arch, kwargs, state = blob.get("arch"), blob.get("arch_kwargs"), blob["state_dict"]
    if (
        not isinstance(arch, str)
        or not isinstance(kwargs, dict)
        or not all(isinstance(k, str) for k in kwargs)
    ):
        raise NoisevisionError(f"{path} names no buildable architecture: the file is damaged")
    try:
        with torch.device("meta"):
            skeleton = build_encoder(arch, **kwargs)
    except NoisevisionError:
        raise
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise NoisevisionError(
            f"{path}: architecture '{arch}' cannot be built with {kwargs} ({exc})"
        ) from None
    want = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    if want != have:
        key = next(iter(sorted(set(want) ^ set(have)) or [k for k in want if want[k] != have[k]]))
        what = (
            f"'{key}' is {'missing' if key in want else 'unexpected'}"
            if (key in want) != (key in have)
            else f"'{key}' has shape {list(have[key])}, the architecture {list(want[key])}"
        )
        raise NoisevisionError(f"{path} does not match architecture '{arch}' with {kwargs}: {what}")


def load_encoder(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild an encoder written by save_encoder; NoisevisionError for anything else.

    Returns the encoder and its metadata, with the training recipe as `meta["recipe"]` (a Recipe).
    """
    blob = read_encoder_file(path)
    check_structure(blob, path)
    encoder = build_encoder(blob["arch"], **blob["arch_kwargs"])
    try:
        encoder.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise NoisevisionError(f"{path} does not match architecture '{blob['arch']}': {first}") from exc
    meta = dict(blob["meta"])
    meta["recipe"] = Recipe.from_dict(blob["recipe"])
    return encoder.to(map_location), meta
