"""The baselines as probe models: the paper's CNN – Random, Raw pixels, Mean colors; scratch:ARCH.

A probe model is any module with `features(x, layer) -> [B, F]`, `feature_layers`, `default_layer`
and `input_size`: the encoders of noisevision.models and the baselines here. `load_probe_model`
turns what `noisevision eval` is given (an encoder file, a run folder or a baseline name) into one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisevision.errors import NoisevisionError
from noisevision.registry import Registry


class RawPixels(nn.Module):
    """Baseline "Raw pixels": the probe input itself, area-resized to ≤ `size`² pixels."""

    feature_layers = ("pixels",)
    default_layer = "pixels"

    def __init__(self, input_size: int = 64, size: int = 32):
        super().__init__()
        self.input_size, self.size = input_size, size

    def features(self, x: Tensor, layer: str | None = None) -> Tensor:
        side = min(self.size, x.shape[-1])
        return F.adaptive_avg_pool2d(x, side).flatten(1)  # [B, 3·side²]


class MeanColors(nn.Module):
    """Baseline "Mean colors": the image's mean colour, 3 numbers."""

    feature_layers = ("mean",)
    default_layer = "mean"

    def __init__(self, input_size: int = 64):
        super().__init__()
        self.input_size = input_size

    def features(self, x: Tensor, layer: str | None = None) -> Tensor:
        return x.mean(dim=(2, 3))  # [B, 3]


def random_encoder(arch: str, seed: int = 0, **arch_kwargs: Any) -> nn.Module:
    """CNN-Random: `arch` with its initial random weights, drawn from `seed` (global RNG untouched)."""
    from noisevision.models import build_encoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_encoder(arch, **arch_kwargs)


def _random(name: str) -> Callable[[int, str | None, dict[str, Any], int], nn.Module]:
    """The builder of a baseline that is an architecture with random weights (`name:ARCH`)."""

    def build(input_size: int, arch: str | None, arch_kwargs: dict[str, Any], seed: int) -> nn.Module:
        if arch is None:
            raise NoisevisionError(f"{name} needs an architecture: write {name}:ARCH")
        return random_encoder(arch, seed, **arch_kwargs)

    return build


@dataclass(frozen=True)
class Baseline:
    label: str  # the paper's row name
    build: Callable[[int, str | None, dict[str, Any], int], nn.Module]  # (input_size, arch, kwargs, seed)
    takes_arch: bool = False  # written NAME:ARCH or NAME:ENCODER (that file's architecture)
    paper: bool = True  # one of the paper's rows, which reproductions run


BASELINES: Registry[Baseline] = Registry("baseline")
BASELINES.add(
    "cnn-random",
    Baseline("CNN – Random", _random("cnn-random"), takes_arch=True),
    "an architecture (or an encoder file's) with random weights",
    form="cnn-random:ARCH|ENCODER",
)
BASELINES.add(
    "scratch",
    Baseline("Scratch", _random("scratch"), takes_arch=True, paper=False),
    "fine-tuning from scratch: an architecture (or an encoder file's) with random weights",
    form="scratch:ARCH|ENCODER",
)
BASELINES.add(
    "raw-pixels",
    Baseline("Raw pixels", lambda size, *_: RawPixels(size)),
    "linear probe on the resized pixels",
)
BASELINES.add(
    "mean-colors",
    Baseline("Mean colors", lambda size, *_: MeanColors(size)),
    "linear probe on the image's mean colour",
)


def build_baseline(
    name: str,
    input_size: int = 64,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
) -> nn.Module:
    """A baseline probe model by name; "cnn-random" needs the architecture to copy."""
    return BASELINES.get(name).build(input_size, arch, dict(arch_kwargs or {}), seed)


def load_probe_model(
    spec: str, device: torch.device | str = "cpu", input_size: int | None = None, seed: int = 0
) -> tuple[nn.Module, dict[str, Any]]:
    """An encoder file / run folder, or a baseline: "cnn-random:ARCH" or "scratch:ARCH" (or
    "NAME:ENCODER", the architecture of an encoder file), "raw-pixels", "mean-colors"; a random
    network's weights are drawn from `seed`.

    Returns the model (eval mode, on `device`) and its metadata (training info for encoder files).
    """
    from noisevision.models import encoder_path, load_encoder

    name, _, arg = spec.partition(":")
    if name in BASELINES and not Path(spec).exists():
        arch, kwargs = arg or None, {"input_size": input_size} if input_size else {}
        takes_arch = BASELINES.get(name).takes_arch
        if takes_arch and arg and (Path(arg).is_file() or Path(arg).is_dir()):
            # NAME:ENCODER = that encoder's architecture and options, random weights.
            trained, _ = load_probe_model(arg, "cpu")
            arch, kwargs = trained.arch, {**trained.arch_kwargs, **kwargs}
        size = input_size or 64
        model = build_baseline(name, size, arch=arch, arch_kwargs=kwargs, seed=seed)
        size = getattr(model, "input_size", size)
        meta: dict[str, Any] = {"baseline": name, "arch": arch or name, "input_size": size, "seed": seed}
        return model.to(device).eval(), meta
    baselines = ", ".join(n + (":ARCH" if BASELINES.get(n).takes_arch else "") for n in BASELINES)
    path = encoder_path(spec, f"an encoder file, a training run folder, or one of {baselines}")
    model, meta = load_encoder(path, map_location=device)
    meta = {**meta, "arch": getattr(model, "arch", meta.get("arch")), "path": str(path)}
    return model.eval(), meta
