"""Programs' fields as tensor code: the shader tree and the CPPN evaluated over the canvas, batched.

Batching different programs: the program graph has a fixed shape (the same slots for every
image), and each slot's operator is chosen per image. At each slot the images are grouped by the
operator they picked and each operator runs once on its group, so a batch costs about one pass per
slot, not one per image. Images never interact, and the canvas is padded to a multiple of 8 px so
that vectorised kernels see every image at the same alignment: an image's bytes do not depend on
its batch. On a GPU, `cuda` computes the same fields with fused Triton kernels instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from noisevision.generators.programs.grammar import (
    CPPN_INPUTS,
    CPPN_WIDTH,
    GLOBAL_DOMAIN_SLOTS,
    LEAF_DOMAIN_SLOTS,
)
from noisevision.generators.programs.operators import (
    COMBINATORS,
    CPPN_ACTIVATIONS,
    DOMAIN_OPS,
    FIELD_OPS,
    Fn,
    Lattice,
    _lerp,
    _loglerp,
    _rotate,
    groups,
)


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
        "scale": _loglerp(0.5, 3, u[:, :1]),
        "turn": u[:, 1:2] * 2 * math.pi,
        "k": torch.floor(_lerp(1, 7, u[:, 2:3])),
        "fx": mag * torch.cos(f[..., 1:2] * 2 * math.pi),
        "fy": mag * torch.sin(f[..., 1:2] * 2 * math.pi),
        "phase": f[..., 2:3] * 2 * math.pi,
    }


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


def cppn_outputs_tensor(p: dict[str, Tensor], rows: Tensor, res: int) -> Tensor:
    """The CPPN's three standardised outputs [n, 3, side²] of images `rows`, as tensor code."""
    x, y = canvas(len(rows), res, rows.device)
    return _cppn(p, rows, x, y)
