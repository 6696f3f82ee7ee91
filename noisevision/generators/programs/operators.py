"""The operators of the program grammars: noise, domain transforms, fields, combinators, CPPN activations.

Each operator turns raw uniforms u [n, U] into named parameters [n, 1] and acts on coordinates
or fields [n, N] of the images that chose it (see `Op`); `grammar` draws which operator each
slot of a program uses, `fields` evaluates them, `describe` writes them out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

LATTICE = 32  # period of the noise lattices, in lattice cells
U = 8  # raw uniforms per slot, interpreted by the slot's operator

Fn = Callable[..., Any]


def _lerp(a: float, b: float, u: Tensor) -> Tensor:
    return a + (b - a) * u


def _loglerp(a: float, b: float, u: Tensor) -> Tensor:
    return torch.exp(math.log(a) + (math.log(b) - math.log(a)) * u)


def _fract(v: Tensor) -> Tensor:
    """GLSL's fract: v − floor(v), in [0, 1) also for negative v."""
    return v - torch.floor(v)


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
    rows = [
        (iy + d).bitwise_and_(_WRAP).bitwise_left_shift_(_ROW) if d else (iy & _WRAP) << _ROW for d in offsets
    ]
    return cols, rows


def _compiled_noise(
    x: Tensor, y: Tensor, lat: Lattice, gradient: bool, octaves: int = 0, gain: Tensor | None = None
) -> Tensor:
    """value_noise, gradient_noise (octaves 0) or fbm on a CPU: noise_cpu's compiled pass."""
    from noisevision.generators.programs import noise_cpu  # numba compiles (or loads) on first use

    x, y = (t.contiguous() for t in torch.broadcast_tensors(x, y))
    out = torch.empty_like(x)
    gx, gy = lat.gradients() if gradient else (lat.values, lat.values)
    g = torch.zeros(x.shape[0]) if gain is None else gain.reshape(-1).expand(x.shape[0]).contiguous()
    arrays = (t.contiguous().numpy() for t in (x, y, lat.values, gx, gy))
    noise_cpu.noise(*arrays, gradient, octaves, g.numpy(), out.numpy())
    return out


def value_noise(x: Tensor, y: Tensor, lat: Lattice) -> Tensor:
    """Smoothly interpolated random lattice values in [-1, 1]; one lattice cell per unit."""
    if x.device.type == "cpu":
        return _compiled_noise(x, y, lat, gradient=False)
    return _value_noise(x, y, lat)


def _value_noise(x: Tensor, y: Tensor, lat: Lattice) -> Tensor:
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
    if x.device.type == "cpu":
        return _compiled_noise(x, y, lat, gradient=True)
    return _gradient_noise(x, y, lat)


def _gradient_noise(x: Tensor, y: Tensor, lat: Lattice) -> Tensor:
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
    if x.device.type == "cpu":
        return _compiled_noise(x, y, lat, gradient, octaves, gain)
    return _fbm(x, y, lat, octaves, gain, gradient)


def _fbm(x: Tensor, y: Tensor, lat: Lattice, octaves: int, gain: Tensor, gradient: bool) -> Tensor:
    noise = _gradient_noise if gradient else _value_noise
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
    if x.device.type == "cpu":
        from noisevision.generators.programs import noise_cpu

        x, y = (t.contiguous() for t in torch.broadcast_tensors(x, y))
        out = x.new_empty(3, *x.shape)
        j = jitter.reshape(-1).expand(x.shape[0]).contiguous()
        arrays = (t.contiguous().numpy() for t in (x, y, lat.values, lat.angles, j))
        noise_cpu.voronoi(*arrays, out.numpy())
        f1, f2 = out[0].sqrt(), out[1].sqrt()
        return f1, f2 - f1, out[2]
    return _voronoi(x, y, lat, jitter)


def _voronoi(x: Tensor, y: Tensor, lat: Lattice, jitter: Tensor) -> tuple[Tensor, Tensor, Tensor]:
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
