"""Procedural image programs: every image is its own random program, sampled from a grammar.

Beyond the paper: its successor (Baradad et al., "Procedural Image Programs for Representation
Learning", NeurIPS 2022) rendered 21k scraped OpenGL fragment shaders. Here the programs are drawn
from two small grammars and rendered as plain tensor code, batched, on any device:

- `program-cppn`: a compositional pattern-producing network, i.e. a random MLP per image over the
  pixel coordinates (x, y, r, sin kθ, cos kθ and three random Fourier features); 1..2·depth hidden
  layers of 4..16 units, each layer's activation drawn from sin, gaussian, tanh, abs, softplus and
  sawtooth; three outputs coloured through a random palette and a random colour matrix.
- `program-shader`: a fragment-shader-like expression: a chain of domain transforms (rotate,
  scale, translate, polar, mirror, kaleidoscope, tiling with fract, swirl, domain warping by an
  fBm sub-program, iterated folding) feeding a random binary tree of fields (gratings, distance
  fields of circles, boxes and segments, value and gradient noise, fBm, Voronoi) joined by
  combinators (add, multiply, min, max, smooth-min, select by a field); the field is coloured by a
  cosine palette or a gradient map and optionally outlined, shaded from its gradient or contoured.
- `program-mixed`: each image draws one of the two grammars, a CPPN with probability `cppn_share`
  (default 0.2).

`depth` is the complexity: the shader tree's largest depth (up to 2^(depth-1) fields per image)
and half the CPPN's largest number of layers.

Batching different programs: the program graph has a fixed shape (the same slots for every
image), and each slot's operator is chosen per image. At each slot the images are grouped by the
operator they picked and each operator runs once on its group, so a batch costs about one pass per
slot, not one per image. Every random number comes from the image's key (drawn for all slots,
whichever operators are chosen), images never interact, and the canvas is padded to a multiple of
8 px so that vectorised kernels see every image at the same alignment: an image's bytes do not
depend on its batch. Rendering runs on one CPU thread (`single_cpu_thread`). On a GPU, where
each group's operations would be so many kernel launches, `programs_cuda` renders the same programs
with fused Triton kernels instead (one launch per slot, each image branching on its operators).

No blank images (as FractalDB keeps only codes that light 20% of the canvas): an image whose
luminance is nearly flat is re-drawn from a new program (key child "retry"), up to 4 times.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from noisevision.errors import NoisevisionError
from noisevision.generators import registry
from noisevision.generators.registry import Generator, GeneratorSpec, register
from noisevision.rng import Rng

GRAMMARS = ("cppn", "shader", "mixed")
MAX_DEPTH = 6
LATTICE = 32  # period of the noise lattices, in lattice cells
GLOBAL_DOMAIN_SLOTS = 3  # domain transforms applied to the whole shader program
LEAF_DOMAIN_SLOTS = 2  # and to each field before it is evaluated
U = 8  # raw uniforms per slot, interpreted by the slot's operator
CPPN_WIDTH = 16
CPPN_INPUTS = 8
BLANK_STD = 0.04  # luminance std (0..1) under which an image counts as blank
RETRIES = 4
# How likely a tree node (above the last level) is to branch instead of being a field.
BRANCH_PROB = 0.75

Fn = Callable[..., Any]


def _lerp(a: float, b: float, u: Tensor) -> Tensor:
    return a + (b - a) * u


def _loglerp(a: float, b: float, u: Tensor) -> Tensor:
    return torch.exp(math.log(a) + (math.log(b) - math.log(a)) * u)


def _fract(v: Tensor) -> Tensor:
    """GLSL's fract: v − floor(v), in [0, 1) also for negative v."""
    return v - torch.floor(v)


def row_mean(f: Tensor, pairwise: bool | None = None) -> Tensor:
    """Mean of each row of f [n, N] -> [n, 1], whatever n.

    On CPU (one thread) torch's row reduction adds each row alike in any batch. GPU reduction
    kernels choose their order of additions by the tensor's shape, so there (`pairwise`, by
    default off the CPU) the rows are summed pairwise by strided slices instead: elementwise
    additions, the same for a row in any batch.
    """
    if not (f.device.type != "cpu" if pairwise is None else pairwise):
        return f.mean(1, keepdim=True)
    total = f
    while total.shape[1] % 2 == 0 and total.shape[1] > 1:
        total = total[:, 0::2] + total[:, 1::2]
    acc = total[:, :1]
    for j in range(1, total.shape[1]):
        acc = acc + total[:, j : j + 1]
    return acc / f.shape[1]


def batched_matmul(a: Tensor, b: Tensor, elementwise: bool | None = None) -> Tensor:
    """a [n, I, J] @ b [n, J, P] -> [n, I, P]; off the CPU (`elementwise`) as a fixed sequence of
    elementwise multiply-adds over J (a GPU's batched GEMM may pick its kernel by the batch size)."""
    if not (a.device.type != "cpu" if elementwise is None else elementwise):
        return torch.bmm(a, b)
    out = a[:, :, :1] * b[:, None, 0]
    for j in range(1, a.shape[2]):
        out = torch.addcmul(out, a[:, :, j : j + 1], b[:, None, j])
    return out


def standardise(f: Tensor) -> Tensor:
    """Zero mean, unit std per image ([n, N]); a (nearly) constant field becomes 0."""
    mean = row_mean(f)
    std = row_mean((f - mean).square()).sqrt()
    return (f - mean) / std.clamp_min(1e-4)


def groups(ops: Tensor) -> Iterator[tuple[int, Tensor]]:
    """(operator, rows that picked it, ascending) for each operator present in `ops` [n]: one
    stable sort and one copy to the host (the counts), however many operators are present."""
    counts = torch.bincount(ops).tolist()
    for k, rows in enumerate(torch.argsort(ops, stable=True).split(counts)):
        if counts[k]:
            yield k, rows


@dataclass(frozen=True)
class Op:
    """One operator of the grammar: raw uniforms u [n, U] -> named parameters [n, 1] -> action."""

    name: str
    params: Callable[[Tensor], dict[str, Tensor]]
    apply: Fn
    text: Callable[[dict[str, float]], str]


def _fmt(v: float) -> str:
    return f"{v:.2f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:.0f}"


# ------------------------------------------------------------------------------------ noise
@dataclass
class Lattice:
    """Per-image random lattices [n, LATTICE²] in [0, 1): values and gradient angles."""

    values: Tensor
    angles: Tensor

    def take(self, rows: Tensor) -> Lattice:
        return Lattice(self.values[rows], self.angles[rows])

    def gradients(self) -> tuple[Tensor, Tensor]:
        """Unit gradient vectors (x and y parts) of gradient noise, one per lattice point."""
        angle = self.angles * (2 * math.pi)
        return torch.cos(angle), torch.sin(angle)


_WRAP = LATTICE - 1  # LATTICE is a power of two: wrapping is a bitwise and (also for negatives)
_ROW = LATTICE.bit_length() - 1


def _cells(x0: Tensor, y0: Tensor, offsets: tuple[int, ...]) -> tuple[list[Tensor], list[Tensor]]:
    """Lattice columns and row starts of the cells at the given offsets from floor(x), floor(y)."""
    ix, iy = x0.long(), y0.long()
    cols = [(ix + d).bitwise_and_(_WRAP) if d else ix & _WRAP for d in offsets]
    rows = [(iy + d).bitwise_and_(_WRAP).bitwise_left_shift_(_ROW) if d else (iy & _WRAP) << _ROW
            for d in offsets]  # fmt: skip
    return cols, rows


def value_noise(x: Tensor, y: Tensor, lat: Lattice) -> Tensor:
    """Smoothly interpolated random lattice values in [-1, 1]; one lattice cell per unit."""
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    (c0, c1), (r0, r1) = _cells(x0, y0, (0, 1))
    v = lat.values
    v00, v10 = v.gather(1, r0 + c0), v.gather(1, r0 + c1)
    v01, v11 = v.gather(1, r1 + c0), v.gather(1, r1 + c1)
    sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    return (torch.lerp(torch.lerp(v00, v10, sx), torch.lerp(v01, v11, sx), sy)) * 2 - 1


def gradient_noise(x: Tensor, y: Tensor, lat: Lattice) -> Tensor:
    """Perlin noise: random unit gradients at the lattice points, quintic fade, about [-1, 1]."""
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    cols, rows = _cells(x0, y0, (0, 1))
    gx, gy = lat.gradients()

    def dot(dx: int, dy: int) -> Tensor:
        cell = rows[dy] + cols[dx]
        return gx.gather(1, cell) * (fx - dx) + gy.gather(1, cell) * (fy - dy)

    sx = fx * fx * fx * (fx * (fx * 6 - 15) + 10)
    sy = fy * fy * fy * (fy * (fy * 6 - 15) + 10)
    return torch.lerp(torch.lerp(dot(0, 0), dot(1, 0), sx), torch.lerp(dot(0, 1), dot(1, 1), sx), sy) * 1.4


def fbm(x: Tensor, y: Tensor, lat: Lattice, octaves: int, gain: Tensor, gradient: bool = False) -> Tensor:
    """Fractal Brownian motion: octaves of noise, each twice the frequency (turned by 0.6 rad)
    and `gain` [n, 1] times the amplitude of the last."""
    noise = gradient_noise if gradient else value_noise
    c, s = math.cos(0.6), math.sin(0.6)
    total, amp, norm = torch.zeros_like(x), torch.ones_like(gain), torch.zeros_like(gain)
    for o in range(octaves):
        total = total + amp * noise(x + 7.3 * o, y + 3.1 * o, lat)
        norm = norm + amp
        amp = amp * gain
        x, y = 2 * (c * x - s * y), 2 * (s * x + c * y)
    return total / norm


def voronoi(x: Tensor, y: Tensor, lat: Lattice, jitter: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Cellular noise over a jittered lattice: distance to the nearest point (F1), the gap to the
    second nearest (F2 − F1, dark on cell borders) and the nearest cell's random value."""
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    cols, rows = _cells(x0, y0, (-1, 0, 1))
    inf = torch.full_like(x, 1e9)
    d1, d2, val = inf, inf, torch.zeros_like(x)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            c = rows[dy + 1] + cols[dx + 1]
            px = dx + 0.5 + jitter * (lat.values.gather(1, c) - 0.5) - fx
            py = dy + 0.5 + jitter * (lat.angles.gather(1, c) - 0.5) - fy
            d = px * px + py * py
            nearer = d < d1
            d2 = torch.where(nearer, d1, torch.minimum(d2, d))
            cell_value = lat.values.gather(1, c.mul_(7).add_(13).bitwise_and_(LATTICE * LATTICE - 1))
            val = torch.where(nearer, cell_value, val)
            d1 = torch.minimum(d1, d)
    f1, f2 = d1.sqrt(), d2.sqrt()
    return f1, f2 - f1, val


# ------------------------------------------------------------------------------------ domain operators
# Each maps coordinates (x, y) [n, N] with parameters [n, 1] (and the image lattice) to new ones.
def _rotate(x: Tensor, y: Tensor, angle: Tensor) -> tuple[Tensor, Tensor]:
    c, s = torch.cos(angle), torch.sin(angle)
    return c * x - s * y, s * x + c * y


def _d_identity(x, y, p, lat):
    return x, y


def _d_rotate(x, y, p, lat):
    return _rotate(x, y, p["angle"])


def _d_scale(x, y, p, lat):
    return x * p["sx"], y * p["sy"]


def _d_translate(x, y, p, lat):
    return x + p["tx"], y + p["ty"]


def _d_polar(x, y, p, lat):
    return torch.atan2(y, x) * (p["k"] / math.pi), torch.sqrt(x * x + y * y) * p["s"]


def _d_mirror(x, y, p, lat):
    return (x - p["c"]).abs(), torch.where(p["both"] > 0, (y - p["c"]).abs(), y)


def _d_kaleidoscope(x, y, p, lat):
    sector = 2 * math.pi / p["n"]
    a = torch.atan2(y, x) % sector
    a = (a - sector / 2).abs()
    r = torch.sqrt(x * x + y * y)
    return r * torch.cos(a), r * torch.sin(a)


def _d_tile(x, y, p, lat):
    k = p["k"] / 2
    return (_fract(x * k + 0.5) - 0.5) * 2, (_fract(y * k + 0.5) - 0.5) * 2


def _d_swirl(x, y, p, lat):
    return _rotate(x, y, p["twist"] * torch.sqrt(x * x + y * y))


def _d_warp(x, y, p, lat):
    f = p["freq"]
    gain = torch.full_like(f, 0.5)
    wx = fbm(x * f + 11.0, y * f + 5.0, lat, 3, gain)
    wy = fbm(x * f + 23.0, y * f + 17.0, lat, 3, gain)
    return x + p["amp"] * wx, y + p["amp"] * wy


def _d_fold(x, y, p, lat):
    for _ in range(3):
        x, y = _rotate((x.abs() - p["ox"]) * 1.4, (y.abs() - p["oy"]) * 1.4, p["angle"])
    return x * 0.4, y * 0.4


DOMAIN_OPS: tuple[Op, ...] = (
    Op("p", lambda u: {}, _d_identity, lambda p: "p"),
    Op("rotate", lambda u: {"angle": u[:, :1] * 2 * math.pi}, _d_rotate,
       lambda p: f"rotate({math.degrees(p['angle']):.0f}°)"),
    Op("scale", lambda u: {"sx": _loglerp(0.5, 2.5, u[:, :1]) * _loglerp(0.7, 1.4, u[:, 1:2]),
                           "sy": _loglerp(0.5, 2.5, u[:, :1]) / _loglerp(0.7, 1.4, u[:, 1:2])},
       _d_scale, lambda p: f"scale({_fmt(p['sx'])}, {_fmt(p['sy'])})"),
    Op("translate", lambda u: {"tx": _lerp(-1, 1, u[:, :1]), "ty": _lerp(-1, 1, u[:, 1:2])}, _d_translate,
       lambda p: f"translate({_fmt(p['tx'])}, {_fmt(p['ty'])})"),
    Op("polar", lambda u: {"k": torch.floor(_lerp(1, 5, u[:, :1])), "s": _lerp(0.7, 2, u[:, 1:2])}, _d_polar,
       lambda p: f"polar(θ·{p['k']:.0f}/π, r·{_fmt(p['s'])})"),
    Op("mirror", lambda u: {"c": _lerp(-0.3, 0.3, u[:, :1]), "both": u[:, 1:2] - 0.5}, _d_mirror,
       lambda p: f"mirror({'x, y' if p['both'] > 0 else 'x'} at {_fmt(p['c'])})"),
    Op("kaleidoscope", lambda u: {"n": torch.floor(_lerp(3, 13, u[:, :1]))}, _d_kaleidoscope,
       lambda p: f"kaleidoscope({p['n']:.0f})"),
    Op("tile", lambda u: {"k": _loglerp(2, 5, u[:, :1])}, _d_tile,
       lambda p: f"tile(fract, {_fmt(p['k'])}×)"),
    Op("swirl", lambda u: {"twist": _lerp(-4, 4, u[:, :1])}, _d_swirl,
       lambda p: f"swirl({_fmt(p['twist'])})"),
    Op("warp", lambda u: {"freq": _loglerp(0.7, 3, u[:, :1]), "amp": _lerp(0.1, 0.6, u[:, 1:2])}, _d_warp,
       lambda p: f"warp(p + {_fmt(p['amp'])}·fbm3(p·{_fmt(p['freq'])}))"),
    Op("fold", lambda u: {"ox": _lerp(0.1, 0.8, u[:, :1]), "oy": _lerp(0.1, 0.8, u[:, 1:2]),
                          "angle": u[:, 2:3] * 2 * math.pi}, _d_fold,
       lambda p: f"fold3(|p|−({_fmt(p['ox'])}, {_fmt(p['oy'])}), {math.degrees(p['angle']):.0f}°)"),
)  # fmt: skip
# How often each domain operator is drawn (identity most often, so chains stay short).
DOMAIN_WEIGHTS = (8, 2, 3, 2, 1, 1, 1, 1, 1, 3, 1)


# ------------------------------------------------------------------------------------ fields
def _sharp_edge(sdf: Tensor, p: dict[str, Tensor]) -> Tensor:
    """A distance field as a shape: a soft step (sharpness [n, 1]) or, for rings, a band."""
    sdf = torch.where(p["ring"] > 0, sdf.abs() - 0.05, sdf)
    return torch.tanh(-sdf * p["sharp"])


def _f_grating(x, y, p, lat):
    along = torch.cos(p["dir"]) * x + torch.sin(p["dir"]) * y
    return torch.tanh(torch.sin(2 * math.pi * p["freq"] * along + p["phase"]) * p["square"])


def _f_circle(x, y, p, lat):
    return _sharp_edge(torch.sqrt((x - p["cx"]) ** 2 + (y - p["cy"]) ** 2) - p["r"], p)


def _f_box(x, y, p, lat):
    qx, qy = (x - p["cx"]).abs() - p["hx"], (y - p["cy"]).abs() - p["hy"]
    outside = torch.sqrt(qx.clamp_min(0) ** 2 + qy.clamp_min(0) ** 2)
    return _sharp_edge(outside + torch.maximum(qx, qy).clamp_max(0), p)


def _f_segment(x, y, p, lat):
    ax, ay, bx, by = p["ax"], p["ay"], p["bx"], p["by"]
    dx, dy = bx - ax, by - ay
    h = (((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy).clamp_min(1e-6)).clamp(0, 1)
    d = torch.sqrt((x - ax - h * dx) ** 2 + (y - ay - h * dy) ** 2)
    return _sharp_edge(d - p["width"], p)


def _f_value(x, y, p, lat):
    return value_noise(x * p["freq"] + p["ox"], y * p["freq"] + p["oy"], lat)


def _f_gradient(x, y, p, lat):
    return gradient_noise(x * p["freq"] + p["ox"], y * p["freq"] + p["oy"], lat)


def _f_fbm(x, y, p, lat):
    xs, ys = x * p["freq"] + p["ox"], y * p["freq"] + p["oy"]
    out = torch.empty_like(x)
    for kind, rows in groups(p["kind"][:, 0].long()):  # 0 value, 1 gradient, 2 ridged gradient
        sub = lat.take(rows)
        f = fbm(xs[rows], ys[rows], sub, 5, p["gain"][rows], gradient=kind > 0)
        out.index_copy_(0, rows, 1 - 2 * f.abs() if kind == 2 else f)
    return out


def _f_voronoi(x, y, p, lat):
    f1, edge, val = voronoi(x * p["freq"] + p["ox"], y * p["freq"] + p["oy"], lat, p["jitter"])
    mode = p["mode"]
    return torch.where(mode == 0, f1, torch.where(mode == 1, edge, val))


_SHAPE = {"sharp": lambda u: _loglerp(3, 200, u[:, 5:6]), "ring": lambda u: u[:, 6:7] - 0.8}


def _shape_params(u: Tensor, **named: Tensor) -> dict[str, Tensor]:
    return {**named, **{k: f(u) for k, f in _SHAPE.items()}}


def _shape_text(p: dict[str, float]) -> str:
    return f"{'ring, ' if p['ring'] > 0 else ''}edge {_fmt(p['sharp'])}"


def _noise_params(u: Tensor, low: float, high: float) -> dict[str, Tensor]:
    return {"freq": _loglerp(low, high, u[:, :1]), "ox": u[:, 1:2] * LATTICE, "oy": u[:, 2:3] * LATTICE}


VORONOI_MODES = ("distance", "borders", "cells")
FBM_KINDS = ("value", "gradient", "ridged")

FIELD_OPS: tuple[Op, ...] = (
    Op("grating", lambda u: {"freq": _loglerp(0.4, 6, u[:, :1]), "dir": u[:, 1:2] * 2 * math.pi,
                             "phase": u[:, 2:3] * 2 * math.pi, "square": _loglerp(1, 30, u[:, 3:4])},
       _f_grating, lambda p: f"grating(f={_fmt(p['freq'])}, {math.degrees(p['dir']):.0f}°, "
                             f"square {_fmt(p['square'])})"),
    Op("circle", lambda u: _shape_params(u, cx=_lerp(-0.7, 0.7, u[:, :1]), cy=_lerp(-0.7, 0.7, u[:, 1:2]),
                                         r=_lerp(0.1, 0.9, u[:, 2:3])),
       _f_circle,
       lambda p: f"circle(({_fmt(p['cx'])}, {_fmt(p['cy'])}), r={_fmt(p['r'])}, {_shape_text(p)})"),
    Op("box", lambda u: _shape_params(u, cx=_lerp(-0.6, 0.6, u[:, :1]), cy=_lerp(-0.6, 0.6, u[:, 1:2]),
                                      hx=_lerp(0.1, 0.8, u[:, 2:3]), hy=_lerp(0.1, 0.8, u[:, 3:4])),
       _f_box, lambda p: f"box(({_fmt(p['cx'])}, {_fmt(p['cy'])}), {_fmt(p['hx'])}×{_fmt(p['hy'])}, "
                         f"{_shape_text(p)})"),
    Op("segment", lambda u: _shape_params(u, ax=_lerp(-1, 1, u[:, :1]), ay=_lerp(-1, 1, u[:, 1:2]),
                                          bx=_lerp(-1, 1, u[:, 2:3]), by=_lerp(-1, 1, u[:, 3:4]),
                                          width=_loglerp(0.02, 0.3, u[:, 4:5])),
       _f_segment,
       lambda p: f"segment(({_fmt(p['ax'])}, {_fmt(p['ay'])})–({_fmt(p['bx'])}, {_fmt(p['by'])}), "
                 f"w={_fmt(p['width'])}, {_shape_text(p)})"),
    Op("value-noise", lambda u: _noise_params(u, 1, 6), _f_value,
       lambda p: f"value_noise(f={_fmt(p['freq'])})"),
    Op("gradient-noise", lambda u: _noise_params(u, 1, 6), _f_gradient,
       lambda p: f"gradient_noise(f={_fmt(p['freq'])})"),
    Op("fbm", lambda u: {**_noise_params(u, 0.7, 4), "gain": _lerp(0.3, 0.65, u[:, 3:4]),
                         "kind": torch.floor(u[:, 4:5] * 3)},
       _f_fbm, lambda p: f"fbm5({FBM_KINDS[int(p['kind'])]}, f={_fmt(p['freq'])}, gain {_fmt(p['gain'])})"),
    Op("voronoi", lambda u: {**_noise_params(u, 1.5, 6), "jitter": _lerp(0.5, 1, u[:, 3:4]),
                             "mode": torch.floor(u[:, 4:5] * 3)},
       _f_voronoi, lambda p: f"voronoi({VORONOI_MODES[int(p['mode'])]}, f={_fmt(p['freq'])})"),
)  # fmt: skip
FIELD_WEIGHTS = (1, 3, 3, 2, 1, 1, 3, 3)


# ------------------------------------------------------------------------------------ combinators
# Both operands are standardised fields [n, N].
def _c_add(a, b, p):
    return a + p["w"] * b


def _c_mul(a, b, p):
    return a * b


def _c_min(a, b, p):
    return torch.minimum(a, b)


def _c_max(a, b, p):
    return torch.maximum(a, b)


def _c_smin(a, b, p):
    k = p["k"]
    h = (0.5 + 0.5 * (b - a) / k).clamp(0, 1)
    return torch.lerp(b, a, h) - k * h * (1 - h)


def _c_select(a, b, p):
    return torch.where(a > p["t"], b + p["shift"], a)


COMBINATORS: tuple[Op, ...] = (
    Op("add", lambda u: {"w": _lerp(0.3, 1, u[:, :1])}, _c_add, lambda p: f"add(w={_fmt(p['w'])})"),
    Op("mul", lambda u: {}, _c_mul, lambda p: "mul"),
    Op("min", lambda u: {}, _c_min, lambda p: "min"),
    Op("max", lambda u: {}, _c_max, lambda p: "max"),
    Op("smin", lambda u: {"k": _lerp(0.2, 1.5, u[:, :1])}, _c_smin,
       lambda p: f"smooth_min(k={_fmt(p['k'])})"),
    Op("select", lambda u: {"t": _lerp(-0.8, 0.8, u[:, :1]), "shift": _lerp(-2, 2, u[:, 1:2])}, _c_select,
       lambda p: f"select(first > {_fmt(p['t'])} ? second{p['shift']:+.2f} : first)"),
)  # fmt: skip
COMBINATOR_WEIGHTS = (2, 1, 1, 1, 2, 4)

CPPN_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sin": torch.sin,
    "gaussian": lambda h: torch.exp(-h * h) * 2 - 1,
    "tanh": torch.tanh,
    "abs": torch.abs,
    "softplus": torch.nn.functional.softplus,
    "sawtooth": lambda h: _fract(h * 0.5 + 0.5) * 2 - 1,
}
PALETTES = ("cosine", "gradient-map")
FINISHES = ("flat", "outline", "shaded", "contours")


def _choice(rng: Rng, weights: tuple[int, ...], *shape: int) -> Tensor:
    """Operator ids [B, *shape] drawn with the given integer weights."""
    cdf = torch.tensor(weights, device=rng.device).cumsum(0)
    r = rng.randint(0, int(cdf[-1]), *shape)
    return torch.searchsorted(cdf, r, right=True)


# ------------------------------------------------------------------------------------ sampling
def sample_program(rng: Rng, grammar: str, depth: int, cppn_share: float = 0.2) -> dict[str, Tensor]:
    """Every random number of a batch of programs, drawn from the images' keys: [B, …] tensors.

    All slots are drawn for every image whatever its operators and grammar, so an image's program
    does not depend on its batch; rendering reads only the slots its program uses.
    """
    slots = 2**depth - 1  # tree nodes, heap order (children of s: 2s+1, 2s+2)
    layers = 2 * depth
    level = torch.floor(torch.log2(torch.arange(slots, device=rng.device) + 1.0))  # [S]
    g = {"cppn": 0, "shader": 1}
    if grammar == "mixed":
        which = (rng.uniform(1)[:, 0] >= cppn_share).long()
    else:
        which = torch.full((rng.batch,), g[grammar], dtype=torch.int64, device=rng.device)
    n_layers = rng.randint(1, layers + 1, 1)[:, 0]
    p = {
        "grammar": which,
        "values": rng.uniform(LATTICE * LATTICE),
        "angles": rng.uniform(LATTICE * LATTICE),
        # shader: domain chains, tree, fields
        "global_ops": _choice(rng, DOMAIN_WEIGHTS, GLOBAL_DOMAIN_SLOTS),
        "global_u": rng.uniform(GLOBAL_DOMAIN_SLOTS, U),
        "branch": (rng.uniform(slots) < BRANCH_PROB) & (level < depth - 1),
        "comb_ops": _choice(rng, COMBINATOR_WEIGHTS, slots),
        "comb_u": rng.uniform(slots, U),
        "field_ops": _choice(rng, FIELD_WEIGHTS, slots),
        "field_u": rng.uniform(slots, U),
        "leaf_ops": _choice(rng, DOMAIN_WEIGHTS, slots, LEAF_DOMAIN_SLOTS),
        "leaf_u": rng.uniform(slots, LEAF_DOMAIN_SLOTS, U),
        # CPPN: inputs, layers (activation id len(CPPN_ACTIVATIONS) = layer unused), weights
        "cppn_u": rng.uniform(U),
        "fourier": rng.uniform(3, 3),
        "width": rng.randint(4, CPPN_WIDTH + 1, 1)[:, 0],
        "acts": torch.where(
            torch.arange(layers, device=rng.device) < n_layers[:, None],
            rng.randint(0, len(CPPN_ACTIVATIONS), layers), len(CPPN_ACTIVATIONS)),
        "gains": _loglerp(0.6, 3.0, rng.uniform(layers + 1)),
        "weights": rng.normal(layers + 1, CPPN_WIDTH, CPPN_WIDTH),
        "biases": rng.normal(layers + 1, CPPN_WIDTH, std=0.5),
        "colour_matrix": rng.normal(3, 3),
        # colour and finish
        "palette": rng.randint(0, len(PALETTES), 1)[:, 0],
        "palette_u": rng.uniform(4, 3),
        "stops": rng.uniform(5, 3),
        "contrast": _loglerp(0.4, 2.5, rng.uniform(1)),
        "direct": rng.uniform(1),
        "finish": _choice(rng, (3, 2, 2, 1), 1)[:, 0],
        "finish_u": rng.uniform(4),
        "soften": rng.uniform(1) * 0.25,
        "saturation": _lerp(0.1, 1.0, rng.uniform(1)),
    }  # fmt: skip
    return p


# ------------------------------------------------------------------------------------ rendering
def per_op(ops: Tensor, fn: Fn, *inputs: Tensor) -> tuple[Tensor, ...]:
    """Group by operator: fn(op, rows, *those rows of inputs) -> a tuple of [m, …] outputs, for
    each operator in ops [n] on the rows that chose it, assembled into [n, …] outputs. A group
    of every row runs on the inputs themselves, without copies."""
    outs: tuple[Tensor, ...] = ()
    for k, rows in groups(ops):
        if len(rows) == len(ops):
            return fn(k, rows, *inputs)
        res = fn(k, rows, *(t.index_select(0, rows) for t in inputs))
        if not outs:
            outs = tuple(r.new_empty(len(ops), *r.shape[1:]) for r in res)
        for o, r in zip(outs, res, strict=True):
            o.index_copy_(0, rows, r)
    return outs


def _apply_domain(ops: Tensor, u: Tensor, x: Tensor, y: Tensor, lat: Lattice) -> tuple[Tensor, Tensor]:
    """One domain slot: ops [n], u [n, U]; each operator on the rows that chose it."""

    def run(k: int, rows: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        op = DOMAIN_OPS[k]
        return op.apply(x, y, op.params(u[rows]), lat.take(rows))

    return per_op(ops, run, x, y)


def _shader(p: dict[str, Tensor], rows: Tensor, x: Tensor, y: Tensor, depth: int) -> Tensor:
    """The standardised shader field [n, N] of images `rows` at coordinates x, y [n, N]."""
    lat = Lattice(p["values"][rows], p["angles"][rows])
    for s in range(GLOBAL_DOMAIN_SLOTS):
        x, y = _apply_domain(p["global_ops"][rows, s], p["global_u"][rows, s], x, y, lat)
    return _node(p, rows, 0, x, y, lat)


def _node(p: dict[str, Tensor], rows: Tensor, slot: int, x: Tensor, y: Tensor, lat: Lattice) -> Tensor:
    """Tree node `slot` for images `rows` (into the batch); x, y, lat are those images' rows:
    a field (after its own domain transforms) or a combinator of two sub-trees, standardised."""

    def node(branch: int, sub: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor]:
        batch, sub_lat = rows[sub], lat.take(sub)
        if branch:
            a = _node(p, batch, 2 * slot + 1, x, y, sub_lat)
            b = _node(p, batch, 2 * slot + 2, x, y, sub_lat)

            def combine(k: int, r: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor]:
                return (COMBINATORS[k].apply(a, b, COMBINATORS[k].params(p["comb_u"][batch[r], slot])),)

            (joined,) = per_op(p["comb_ops"][batch, slot], combine, a, b)
            return (standardise(joined),)
        for s in range(LEAF_DOMAIN_SLOTS):
            x, y = _apply_domain(p["leaf_ops"][batch, slot, s], p["leaf_u"][batch, slot, s], x, y, sub_lat)

        def field(k: int, r: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor]:
            op = FIELD_OPS[k]
            return (op.apply(x, y, op.params(p["field_u"][batch[r], slot]), sub_lat.take(r)),)

        (f,) = per_op(p["field_ops"][batch, slot], field, x, y)
        return (standardise(f),)

    return per_op(p["branch"][rows, slot].long(), node, x, y)[0]


def _cppn(p: dict[str, Tensor], rows: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """The CPPN's three standardised outputs [n, 3, N] of images `rows` at coordinates x, y."""
    n, npix = x.shape
    c = cppn_inputs(p, rows)
    x, y = _rotate(x * c["scale"], y * c["scale"], c["turn"])
    r = torch.sqrt(x * x + y * y)
    theta = torch.atan2(y, x)
    fourier = torch.sin(2 * math.pi * (c["fx"] * x[:, None] + c["fy"] * y[:, None]) + c["phase"])
    k = c["k"]
    inputs = torch.cat([torch.stack([x, y, r, torch.sin(k * theta), torch.cos(k * theta)], 1), fourier], 1)
    h = torch.zeros(n, CPPN_WIDTH, npix, device=x.device)
    h[:, :CPPN_INPUTS] = inputs
    net = cppn_layers(p, rows)
    for layer in range(net.acts.shape[1]):
        pre = batched_matmul(net.weights[:, layer], h) + net.biases[:, layer, :, None]
        new = h.clone()
        for a, sub in groups(net.acts[:, layer]):
            if a < len(CPPN_ACTIVATIONS):
                act = list(CPPN_ACTIVATIONS.values())[a]
                new.index_copy_(0, sub, act(pre.index_select(0, sub)) * net.alive[sub, :, None])
        h = new
    out = batched_matmul(net.out_weights, h) + net.out_biases[:, :, None]
    return standardise(out.reshape(n * 3, npix)).reshape(n, 3, npix)


@dataclass
class CppnLayers:
    """The CPPNs' layers of images `rows`, gains and dead units applied: weights [n, L, W, W],
    biases [n, L, W], activation ids [n, L] (len(CPPN_ACTIVATIONS): layer unused), live units
    [n, W] (0 or 1), and the output layer's weights [n, 3, W] and biases [n, 3]."""

    weights: Tensor
    biases: Tensor
    acts: Tensor
    alive: Tensor
    out_weights: Tensor
    out_biases: Tensor


def cppn_inputs(p: dict[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
    """What the CPPNs of images `rows` compute their inputs with: the coordinates' scale, turn
    (rad) and angular frequency k [n, 1]; the Fourier features' x and y frequencies and phases
    [n, 3, 1]."""
    u, f = p["cppn_u"][rows], p["fourier"][rows]  # f: frequency magnitude, direction, phase
    mag = _loglerp(0.5, 6, f[..., 0:1])
    return {
        "scale": _loglerp(0.5, 3, u[:, :1]), "turn": u[:, 1:2] * 2 * math.pi,
        "k": torch.floor(_lerp(1, 7, u[:, 2:3])),
        "fx": mag * torch.cos(f[..., 1:2] * 2 * math.pi), "fy": mag * torch.sin(f[..., 1:2] * 2 * math.pi),
        "phase": f[..., 2:3] * 2 * math.pi,
    }  # fmt: skip


def cppn_layers(p: dict[str, Tensor], rows: Tensor) -> CppnLayers:
    """The CPPNs' layers of images `rows` (see CppnLayers)."""
    width = p["width"][rows]
    alive = (torch.arange(CPPN_WIDTH, device=width.device)[None] < width[:, None]).float()  # [n, W]
    acts = p["acts"][rows]
    weights, biases, gains = p["weights"][rows], p["biases"][rows], p["gains"][rows]
    fan_in = torch.full((len(rows), 1, 1), float(CPPN_INPUTS), device=width.device)
    layer_w, layer_b = [], []
    for layer in range(acts.shape[1]):
        layer_w.append(weights[:, layer] * alive[:, :, None] * (gains[:, layer, None, None] / fan_in.sqrt()))
        layer_b.append(biases[:, layer] * alive)
        fan_in = width[:, None, None].float()
    out_w = weights[:, -1, :3] * (gains[:, -1, None, None] / width[:, None, None].float().sqrt())
    return CppnLayers(torch.stack(layer_w, 1), torch.stack(layer_b, 1), acts, alive, out_w, biases[:, -1, :3])


def _palette(p: dict[str, Tensor], rows: Tensor, t: Tensor) -> Tensor:
    """Colour a standardised field t [n, N] in [0, 1]: cosine palette a + b·cos(2π(c·t + d)) or a
    gradient map through 5 random colours. -> [n, 3, N]."""
    t = 0.5 + 0.5 * torch.tanh(t * p["contrast"][rows])
    out = torch.empty(t.shape[0], 3, t.shape[1], device=t.device)
    for kind, sub in groups(p["palette"][rows]):
        ts = t[sub][:, None]  # [m, 1, N]
        if PALETTES[kind] == "cosine":
            pu = p["palette_u"][rows[sub]]  # [m, 4, 3]
            a, b = _lerp(0.3, 0.7, pu[:, 0]), _lerp(0.2, 0.5, pu[:, 1])
            c, d = _lerp(0.4, 1.6, pu[:, 2]), pu[:, 3]
            wave = torch.cos(2 * math.pi * (c[..., None] * ts + d[..., None]))
            out.index_copy_(0, sub, a[..., None] + b[..., None] * wave)
        else:
            stops = p["stops"][rows[sub]].transpose(1, 2)  # [m, 3, 5] colours at t = 0, ¼, …, 1
            pos = ts[:, 0] * 3.999
            i = pos.long()
            lo = stops.gather(2, i[:, None].expand(-1, 3, -1))
            hi = stops.gather(2, (i + 1)[:, None].expand(-1, 3, -1))
            out.index_copy_(0, sub, torch.lerp(lo, hi, (pos - i)[:, None]))
    return out.clamp(0, 1)


def _finish(p: dict[str, Tensor], rows: Tensor, rgb: Tensor, t: Tensor, side: int, res: int) -> Tensor:
    """Outline, shade or contour rgb [n, 3, N] from the field t [n, N]'s gradient on the canvas."""
    out = rgb.clone()
    f = p["finish_u"][rows]
    for kind, sub in groups(p["finish"][rows]):
        if FINISHES[kind] == "flat":
            continue
        ts = t[sub].view(-1, side, side)
        gx = torch.diff(ts, dim=2, append=ts[:, :, -1:]) * (res / 128)
        gy = torch.diff(ts, dim=1, append=ts[:, -1:, :]) * (res / 128)
        fs = f[sub]
        if FINISHES[kind] == "outline":
            edge = (torch.sqrt(gx * gx + gy * gy) * _loglerp(1, 8, fs[:, :1, None])).clamp(0, 1)
            shade = 1 - edge * _lerp(0.5, 1, fs[:, 1:2, None])
        elif FINISHES[kind] == "shaded":
            height = _loglerp(0.5, 4, fs[:, :1, None])
            angle = fs[:, 1:2, None] * 2 * math.pi
            nx, ny = -gx * height, -gy * height
            lit = (nx * torch.cos(angle) + ny * torch.sin(angle) + 0.7) / torch.sqrt(nx * nx + ny * ny + 1)
            shade = _lerp(0.35, 1.1, lit.clamp(0, 1))
        else:
            level = t[sub].view(-1, side, side) * _lerp(1, 4, fs[:, :1, None])
            line = (_fract(level) - 0.5).abs()
            shade = torch.where(line > 0.42, 0.35, 1.0)
        out.index_copy_(0, sub, rgb.index_select(0, sub) * shade.view(len(sub), 1, -1))
    return out.clamp(0, 1)


def canvas_side(res: int) -> int:
    """The rendered side: res rounded up to a multiple of 8 (cropped after), so that every image
    starts at the same alignment of the vectorised kernels."""
    return -(-res // 8) * 8


def pixel_centres(res: int, device: torch.device) -> Tensor:
    """The canvas's pixel-centre coordinates along one axis [side]: [-1, 1] over the first res."""
    return (torch.arange(canvas_side(res), device=device, dtype=torch.float32) + 0.5) * (2.0 / res) - 1


def canvas(n: int, res: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates x, y [n, side²] of the canvas (pixel_centres along each axis)."""
    side = canvas_side(res)
    coord = pixel_centres(res, device)
    x = coord[None, :].expand(side, side).reshape(1, -1).expand(n, -1)
    y = coord[:, None].expand(side, side).reshape(1, -1).expand(n, -1)
    return x, y


def shader_field_tensor(p: dict[str, Tensor], rows: Tensor, res: int, depth: int) -> Tensor:
    """The standardised shader field [n, side²] of images `rows`, as tensor code."""
    x, y = canvas(len(rows), res, rows.device)
    return _shader(p, rows, x, y, depth)


def _fused(device: torch.device) -> Any:
    """`programs_cuda` where its fused kernels render (a GPU with Triton, or Triton's interpreter on
    a CPU for the tests), else None."""
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        return None
    from noisevision.generators import programs_cuda

    return programs_cuda if programs_cuda.available(device) else None


def shader_field(p: dict[str, Tensor], rows: Tensor, res: int, depth: int) -> Tensor:
    """The standardised shader field [n, side²] of images `rows`: by fused kernels on a GPU with
    Triton (programs_cuda), by tensor code elsewhere."""
    fused = _fused(rows.device)
    return fused.shader_field(p, rows, res, depth) if fused else shader_field_tensor(p, rows, res, depth)


def cppn_outputs_tensor(p: dict[str, Tensor], rows: Tensor, res: int) -> Tensor:
    """The CPPN's three standardised outputs [n, 3, side²] of images `rows`, as tensor code."""
    x, y = canvas(len(rows), res, rows.device)
    return _cppn(p, rows, x, y)


def cppn_outputs(p: dict[str, Tensor], rows: Tensor, res: int) -> Tensor:
    """The CPPN's three standardised outputs [n, 3, side²] of images `rows`: by a fused kernel on a
    GPU with Triton (programs_cuda), by tensor code elsewhere."""
    fused = _fused(rows.device)
    return fused.cppn_outputs(p, rows, res) if fused else cppn_outputs_tensor(p, rows, res)


def render_programs(p: dict[str, Tensor], res: int, depth: int) -> Tensor:
    """float32 RGB [B, 3, res, res] in [0, 1] of sampled programs (sample_program)."""
    b, dev = p["grammar"].shape[0], p["grammar"].device
    side = canvas_side(res)
    t = torch.empty(b, side * side, device=dev)
    rgb = torch.empty(b, 3, side * side, device=dev)
    everyone = torch.arange(b, device=dev)
    for grammar, rows in groups(p["grammar"]):
        if grammar == 0:
            out = cppn_outputs(p, rows, res)
            field = out[:, 0]
            m = torch.tanh(batched_matmul(p["colour_matrix"][rows], out)) * 0.5 + 0.5
            colour = torch.lerp(_palette(p, rows, field), m, p["direct"][rows, :, None] * 0.7)
        else:
            field = shader_field(p, rows, res, depth)
            colour = _palette(p, rows, field)
        t.index_copy_(0, rows, field)
        rgb.index_copy_(0, rows, colour)
    rgb = _finish(p, everyone, rgb, t, side, res)
    grey = rgb.mean(1, keepdim=True)
    rgb = torch.lerp(grey, rgb, p["saturation"][:, :, None])  # from nearly grey to the palette's colours
    rgb = soften(rgb.view(b, 3, side, side), p["soften"] * (res / 128))
    return rgb[:, :, :res, :res]


def soften(img: Tensor, w: Tensor) -> Tensor:
    """A per-image blur, like a lens slightly out of focus: the 3-tap filter [w, 1 − 2w, w]
    (w [B, 1] in 0..0.25 at 128 px) twice along each axis, edges repeated. [B, C, H, W]."""
    w = w.clamp(0, 0.25)[:, :, None, None]
    for dim in (2, 3, 2, 3):
        first, last = img.narrow(dim, 0, 1), img.narrow(dim, img.shape[dim] - 1, 1)
        pad = torch.cat([first, img, last], dim)
        n = img.shape[dim]
        img = torch.lerp(img, (pad.narrow(dim, 0, n) + pad.narrow(dim, 2, n)) * 0.5, 2 * w)
    return img


def is_blank(rgb: Tensor) -> Tensor:
    """Images [B, 3, H, W] in [0, 1] whose luminance is nearly flat: [B] bool."""
    lum = rgb.mean(1).flatten(1)
    return row_mean((lum - row_mean(lum)).square())[:, 0].sqrt() < BLANK_STD


# ------------------------------------------------------------------------------------ generators
class ProceduralPrograms(Generator):
    """Image i: the program drawn from its key, re-drawn from child keys while blank."""

    single_cpu_thread = True
    max_batch = 128
    gpu_pixels = 1024 * 128 * 128  # the fused kernels launch per slot, not per image

    def __init__(self, spec: GeneratorSpec, grammar: str = "mixed", depth: int = 3, cppn_share: float = 0.2):
        super().__init__(spec, grammar=grammar, depth=depth, cppn_share=cppn_share)
        if grammar not in GRAMMARS:
            raise NoisevisionError(f"unknown grammar '{grammar}' for {spec.name}: use {', '.join(GRAMMARS)}")
        if not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
            raise NoisevisionError(f"{spec.name}: depth must be an integer in 1..{MAX_DEPTH}, got {depth!r}")
        if not 0 <= cppn_share <= 1:
            raise NoisevisionError(f"{spec.name}: cppn_share must be in 0..1, got {cppn_share!r}")
        self.grammar, self.depth, self.cppn_share = grammar, depth, float(cppn_share)

    @property
    def key(self) -> str:
        """Keys come from the grammar's name, so that `program-shader:depth=3` is `program-shader`."""
        return f"program-{self.grammar}"

    def sample_params(self, rng: Rng) -> dict[str, Tensor]:
        return sample_program(rng, self.grammar, self.depth, self.cppn_share)

    def render(self, rng: Rng, res: int) -> Tensor:
        rgb, _ = self._render_with_tries(rng, res)
        return (rgb * 255).round_().clamp_(0, 255).to(torch.uint8).contiguous()

    def _render_with_tries(self, rng: Rng, res: int) -> tuple[Tensor, Tensor]:
        """RGB [B, 3, res, res] in [0, 1] and which try [B] each image's program is."""
        rgb = render_programs(self.sample_params(rng), res, self.depth)
        tries = torch.zeros(rng.batch, dtype=torch.int64, device=rng.device)
        keys = rng.keys
        for attempt in range(1, RETRIES + 1):
            blank = is_blank(rgb).nonzero()[:, 0]
            if not len(blank):
                break
            keys = keys.clone()
            keys[blank] = Rng(keys[blank]).child("retry").keys
            retry = Rng(keys[blank])
            rgb[blank] = render_programs(self.sample_params(retry), res, self.depth)
            tries[blank] = attempt
        return rgb, tries

    def describe(self, index: int | None = None, seed: int = 0) -> Any:
        """Without an index: the manifest entry (name, family, parameters). With one: image
        `index`'s program as a readable expression."""
        if index is None:
            return super().describe()
        return self.program_text(index, seed)

    def program_text(self, index: int, seed: int = 0, res: int | None = None) -> str:
        """The program of image `index` (seed `seed`) as an indented expression."""
        if index < 0:
            raise NoisevisionError("image indices must be non-negative")
        rng = Rng.for_indices(self.key, seed, torch.tensor([int(index)]))
        res = self.spec.default_res if res is None else res
        with torch.no_grad():
            _, tries = self._render_with_tries(rng, min(res, 64))  # the blank test at a low cost
        keys = rng.keys
        for _ in range(int(tries[0])):
            keys = Rng(keys).child("retry").keys
        p = self.sample_params(Rng(keys))
        head = f"{self.name} image {index} (seed {seed})"
        if int(tries[0]):
            head += f", program {int(tries[0]) + 1} (the first {int(tries[0])} rendered blank)"
        return head + "\n" + describe_program({k: v[0] for k, v in p.items()}, self.depth)


def _op_text(op: Op, u: Tensor) -> str:
    return op.text({k: float(v.reshape(-1)[0]) for k, v in op.params(u.reshape(1, -1)).items()})


def describe_program(p: dict[str, Tensor], depth: int) -> str:
    """One image's program (sample_program's tensors without the batch dimension) in words."""
    lines: list[str] = []
    if int(p["grammar"]) == 0:
        u = p["cppn_u"]
        acts = [list(CPPN_ACTIVATIONS)[a] for a in p["acts"].tolist() if a < len(CPPN_ACTIVATIONS)]
        k = int(_lerp(1, 7, u[2:3]).floor())
        lines.append(
            f"cppn: inputs (x, y, r, sin {k}θ, cos {k}θ, 3 Fourier features) of "
            f"p = rotate({math.degrees(float(u[1]) * 2 * math.pi):.0f}°, "
            f"scale({_fmt(float(_loglerp(0.5, 3, u[0:1])))}, p))")
        lines.append(f"  {len(acts)} hidden layer(s) of {int(p['width'])} units: "
                     f"{' → '.join(acts)} → 3 outputs")
        colour = (f"colour: {_palette_text(p)}, blended {float(p['direct']) * 70:.0f}% with a random "
                  "colour matrix")
    else:
        ops = p["global_ops"].tolist()
        chain = [_op_text(DOMAIN_OPS[int(o)], p["global_u"][s]) for s, o in enumerate(ops)]
        chain = [c for c in chain if c != "p"]
        lines.append("shader: p = " + (" ∘ ".join(reversed(chain)) + " (x, y)" if chain else "(x, y)"))
        lines.append("  field = " + _node_text(p, 0, "  "))
        colour = f"colour: {_palette_text(p)}"
    finish = FINISHES[int(p["finish"])]
    lines.append(f"{colour}; saturation {float(p['saturation']):.2f}; finish: {finish}, "
                 f"blur {float(p['soften']):.2f}")
    return "\n".join(lines)


def _palette_text(p: dict[str, Tensor]) -> str:
    contrast = f"contrast {_fmt(float(p['contrast']))}"
    return f"{PALETTES[int(p['palette'])]} palette, {contrast}"


def _node_text(p: dict[str, Tensor], slot: int, indent: str) -> str:
    if bool(p["branch"][slot]):
        comb = _op_text(COMBINATORS[int(p["comb_ops"][slot])], p["comb_u"][slot])
        inner = indent + "  "
        a, b = _node_text(p, 2 * slot + 1, inner), _node_text(p, 2 * slot + 2, inner)
        return f"{comb}(\n{inner}{a},\n{inner}{b})"
    ops = p["leaf_ops"][slot].tolist()
    chain = [_op_text(DOMAIN_OPS[int(o)], p["leaf_u"][slot, s]) for s, o in enumerate(ops)]
    chain = [c for c in chain if c != "p"]
    where = " ∘ ".join(reversed(chain)) + " p" if chain else "p"
    return f"{_op_text(FIELD_OPS[int(p['field_ops'][slot])], p['field_u'][slot])} at {where}"


NAME_PARAMS: dict[str, Callable[[str], Any]] = {"depth": int, "cppn_share": float}


def resolve_program(name: str, params: dict[str, Any]) -> Generator | None:
    """Registry resolver for `program-<grammar>:depth=N` (the complexity in the name, so that
    command lines and reproduction sources can set it), also `…:depth=N,cppn_share=F`."""
    base, sep, args = name.partition(":")
    if not sep or not base.startswith("program-"):
        return None
    spec = registry.spec(base)  # an unknown grammar: "did you mean …"
    given: dict[str, Any] = {}
    for item in args.split(","):
        key, eq, value = item.partition("=")
        if key not in NAME_PARAMS or not eq:
            raise NoisevisionError(f"'{name}': write {base}:depth=N (N in 1..{MAX_DEPTH})")
        try:
            given[key] = NAME_PARAMS[key](value)
        except ValueError:
            kind = f"an integer in 1..{MAX_DEPTH}" if key == "depth" else "a number"
            raise NoisevisionError(f"'{name}': {key} must be {kind}, not '{value}'") from None
    named = replace(spec, name=name, defaults={**spec.defaults, **given})
    return named.build(named, **{**named.defaults, **params})


_DESCRIPTION = {
    "cppn": "Random CPPN per image: an MLP over pixel coordinates, mixed activations, random palette.",
    "shader": "Random shader-like program per image: domain transforms, fields, combinators, palette.",
    "mixed": "Random image program per image: a shader-like expression, or a CPPN for one in five.",
}
# Defaults per name, chosen on the tiny preset (README): the shader tree one level deeper than the
# CPPN's depth 3, and a mix of mostly shader programs (half CPPNs scored lower on every probe).
_DEFAULTS = {"cppn": {"depth": 3}, "shader": {"depth": 4}, "mixed": {"depth": 3, "cppn_share": 0.2}}
for _grammar in GRAMMARS:
    register(f"program-{_grammar}", family="procedural programs", description=_DESCRIPTION[_grammar],
             grammar=_grammar, **_DEFAULTS[_grammar])(ProceduralPrograms)  # fmt: skip
registry.register_resolver(
    resolve_program, "program-<grammar>:depth=N — a program family at complexity N (1..6; default 4 "
    "for program-shader, 3 for the others), e.g. program-shader:depth=5; program-mixed also takes "
    "cppn_share=F (default 0.2)",
)
