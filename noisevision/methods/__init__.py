"""Self-supervised methods by name: each is an nn.Module holding the encoder and its loss state.

method = build_method("align_uniform", encoder)
loss, terms = method(view1, view2, step)
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from torch import nn

from noisevision.errors import NoisevisionError
from noisevision.methods.align_uniform import AlignUniform
from noisevision.methods.base import Method
from noisevision.methods.moco import MoCo
from noisevision.methods.simclr import SimCLR
from noisevision.methods.supervised import Supervised
from noisevision.registry import Registry


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: the module that trains with it, and the linear-probe protocol that
    suits the encoders it trains (noisevision list protocols)."""

    build: type[Method]
    protocol: str = "paper"


METHODS: Registry[MethodSpec] = Registry("method")
METHODS.add(
    "align_uniform",
    MethodSpec(AlignUniform),
    "alignment + uniformity of the views' embeddings (paper's small scale)",
)
METHODS.add(
    "moco_v2",
    MethodSpec(MoCo, protocol="moco"),  # MoCo's linear protocol, as the paper's
    "MoCo v2: momentum key encoder, 65k queue, shuffle-BN (paper's large scale)",
)
METHODS.add("simclr", MethodSpec(SimCLR), "SimCLR's NT-Xent over the batch's 2N views")
METHODS.add(
    "supervised",
    MethodSpec(Supervised),
    "classify the categories of a labelled generator (FDSL): smoothing 0.1, Mixup 0.8 / CutMix 1.0",
)


def method_names() -> list[str]:
    return METHODS.names()


def build_method(name: str, encoder: nn.Module, seed: int | None = None, **kw: Any) -> Method:
    """The method registered as `name`, wrapping `encoder`; `kw` are its hyper-parameters. `seed`
    (the run's) goes to methods with randomness of their own (MoCo's shuffle) unless `kw` sets one."""
    cls = METHODS.get(name).build
    if seed is not None and "seed" in inspect.signature(cls).parameters:
        kw.setdefault("seed", seed)
    try:
        return cls(encoder, **kw)
    except TypeError as exc:
        raise NoisevisionError(f"bad options for method '{name}': {exc}") from exc


__all__ = [
    "METHODS",
    "AlignUniform",
    "Method",
    "MethodSpec",
    "MoCo",
    "SimCLR",
    "Supervised",
    "build_method",
    "method_names",
]
