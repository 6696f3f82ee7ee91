"""Program categories: a program per category, its instances small re-draws of its numbers.

With `classes=C`, category c's program is drawn from the key (seed, c) as any program is; an
instance (image i, category i mod C) keeps everything discrete of it (grammar, operators, tree
shape, CPPN layers and activations, palette kind, finish) and re-draws its continuous numbers a
little around the category's: with u the category's uniform and v the image's, u + s·(2v − 1)
reflected into [0, 1) (s = `spread`); normal weights as √(1 − s²)·w + s·z; numbers drawn on a
linear or log range are mixed as the uniforms they came from. So instances differ in placement,
scale, noise, colours and weights, not in structure, and s = 0 renders the category's program.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

# How each entry of `grammar.sample_program` is re-drawn per instance.
KEEP = "keep"  # discrete: operators, tree shape, layer count, palette kind
UNIT = "unit"  # uniform in [0, 1)
NORMAL = "normal"  # zero-mean normal weights
RANGES: dict[str, tuple[str, float, float]] = {  # numbers drawn on a range from one uniform
    "saturation": ("linear", 0.1, 1.0),
    "soften": ("linear", 0.0, 0.25),
    "gains": ("log", 0.6, 3.0),
    "contrast": ("log", 0.4, 2.5),
}
_DISCRETE = ("grammar", "global_ops", "branch", "comb_ops", "field_ops", "leaf_ops", "width", "acts")
_UNIFORMS = ("values", "angles", "global_u", "comb_u", "field_u", "leaf_u", "cppn_u", "fourier", "palette_u")
KINDS: dict[str, str] = {
    **dict.fromkeys((*_DISCRETE, "palette", "finish"), KEEP),
    **dict.fromkeys((*_UNIFORMS, "stops", "direct", "finish_u"), UNIT),
    **dict.fromkeys(("weights", "biases", "colour_matrix"), NORMAL),
    **dict.fromkeys(RANGES, "range"),
}
SPREAD = 0.1  # default re-draw width, as a share of each uniform's range

_TOP = 1 - 2.0**-24  # the largest 24-bit uniform below 1


def _near(category: Tensor, image: Tensor, spread: float) -> Tensor:
    """Uniforms near the category's: u + s·(2v − 1), reflected at 0 and 1 (uniforms stay uniform)."""
    x = (category + spread * (2 * image - 1)).abs()
    return torch.where(x > 1, 2 - x, x).clamp_(0, _TOP)


def _to_unit(kind: str, lo: float, hi: float, x: Tensor) -> Tensor:
    if kind == "log":
        return (torch.log(x) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (x - lo) / (hi - lo)


def _from_unit(kind: str, lo: float, hi: float, u: Tensor) -> Tensor:
    if kind == "log":
        return torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u)
    return lo + (hi - lo) * u


def instance_program(
    category: dict[str, Tensor], image: dict[str, Tensor], spread: float = SPREAD
) -> dict[str, Tensor]:
    """Each image's program: its category's (`category`, drawn from the category keys) with the
    continuous numbers re-drawn around it using the image's own draws (`image`); [B, …] each."""
    out = {}
    for key, c in category.items():
        kind, v = KINDS[key], image[key]
        if kind == KEEP:
            out[key] = c
        elif kind == UNIT:
            out[key] = _near(c, v, spread)
        elif kind == NORMAL:
            out[key] = math.sqrt(1 - spread**2) * c + spread * v
        else:
            scale, lo, hi = RANGES[key]
            u_c, u_v = (_to_unit(scale, lo, hi, x).clamp(0, _TOP) for x in (c, v))
            out[key] = _from_unit(scale, lo, hi, _near(u_c, u_v, spread))
    return out
