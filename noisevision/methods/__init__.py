"""Self-supervised methods by name: each is an nn.Module holding the encoder and its loss state.

    method = build_method("align_uniform", encoder)
    loss, terms = method(view1, view2, step)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from noisevision.errors import NoisevisionError, unknown_name
from noisevision.methods.align_uniform import AlignUniform
from noisevision.methods.base import Method
from noisevision.methods.moco import MoCo
from noisevision.methods.simclr import SimCLR

METHODS: dict[str, type[Method]] = {
    "align_uniform": AlignUniform,  # SPEC §7
    "moco_v2": MoCo,  # SPEC §8
    "simclr": SimCLR,
}


def method_names() -> list[str]:
    return list(METHODS)


def build_method(name: str, encoder: nn.Module, **kw: Any) -> Method:
    """The method registered as `name`, wrapping `encoder`; `kw` are its hyper-parameters."""
    cls = METHODS.get(name)
    if cls is None:
        raise unknown_name("method", name, list(METHODS))
    try:
        return cls(encoder, **kw)
    except TypeError as exc:
        raise NoisevisionError(f"bad options for method '{name}': {exc}") from exc


__all__ = ["METHODS", "AlignUniform", "Method", "MoCo", "SimCLR", "build_method", "method_names"]
