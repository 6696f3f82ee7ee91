"""Dead leaves on a CPU: shapes drawn and painted one after another in compiled loops, the same
`visible` and `n_stop` as `layout.leaf_map` and the same draws as `shapes`' tensor code.

On a GPU, `leaf_map`'s range updates on sparse tables keep thousands of threads busy; on one core
they cost passes over res² log res tables and tens of thousands of small tensor ops per batch.
Here each image paints its shapes in order, row run by row run, counting the pixels still bare,
and stops at the shape that covers the last one: the work is the rows and area of the painted
shapes. Every float operation is the tensor code's, in the same order (numba without fastmath
fuses no multiply-add; torch's `addcmul` is a fused multiply-add on x86-64 CPUs, so the row
bounds use `fused_math.fma64`). Sines and cosines stay torch's: libm's round differently.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit
from torch import Tensor

from noisevision.generators.dead_leaves.layout import BLOCK, DrawFn
from noisevision.generators.dead_leaves.shapes import (
    _EPS,
    CIRCLE,
    MAX_SHAPES,
    ORIENTED,
    QUAD,
    RECTANGLE,
    TRIANGLE,
    radius_bounds,
    usable_kinds,
)
from noisevision.generators.fused_math import fma64

#: Chunk sizes in blocks: shapes are drawn and their sines and cosines taken a chunk at a time, so
#: a smaller step after the first wastes fewer draws (n_stop is ≈1,300–1,600, spread widely).
CHUNKS = (4, 1)


@njit(cache=True, nogil=True, boundscheck=False, inline="always")
def _edges(kind, rho, cx, cy, phi, cos_mid, sin_mid, cos_half, out):  # type: ignore[no-untyped-def]
    """`shapes._row_bounds` of one shape: its left edges' lines x = a + b·y in out[0] (a), out[1]
    (b), its right edges' in out[2], out[3]; returns how many of each."""
    left, right = 0, 0
    if kind == CIRCLE:
        return left, right
    for j in range(4):
        nxt = phi[j + 1] if j < 3 else phi[0] + 2 * np.pi
        nx = cos_mid[j]
        if nxt == phi[j] or not abs(nx) > 1e-12:
            continue  # a repeated vertex, or a horizontal edge (it bounds rows only)
        beta = -sin_mid[j] / nx
        alpha = (float(cx) + float(rho) * cos_half[j] / nx) - beta * float(cy)
        if nx < 0:
            out[0, left], out[1, left] = alpha, beta
            left += 1
        else:
            out[2, right], out[3, right] = alpha, beta
            right += 1
    return left, right


@njit(cache=True, nogil=True, boundscheck=False)
def _paint(
    visible: np.ndarray,
    active: np.ndarray,
    bare: np.ndarray,
    n_stop: np.ndarray,
    kind: np.ndarray,
    rho: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    phi: np.ndarray,
    trig: np.ndarray,
    circles: bool,
    start: int,
) -> None:
    """Paint shapes start .. start+K-1 of each image whose canvas is not covered yet.

    `active` int64 [A]: the images, rows of visible int16 or int32 [B, res, res] (shape index, -1: bare)
    and bare int64 [B] (bare pixels), which are updated; n_stop[image] is set to the painted count
    when the image becomes covered. Shape parameters are rows of the active images: kind, rho, cx, cy:
    int64 [A, K], phi float64 [A, K, 4] (`shapes.Leaves`); trig float64 [4, A, K, 4]: the cosine
    and sine of each edge's normal angle, the cosine of its half arc (`shapes._half_planes`) and
    the sine of each vertex angle, computed by torch (its sines and cosines round differently
    from libm's).
    """
    res = visible.shape[1]
    right = float(res - 1)
    bounds = np.empty((4, 4))
    for a in range(active.size):
        image = active[a]
        canvas = visible[image]
        left = bare[image]
        for k in range(kind.shape[1]):
            s = start + k
            n_left, n_right = _edges(
                kind[a, k],
                rho[a, k],
                cx[a, k],
                cy[a, k],
                phi[a, k],
                trig[0, a, k],
                trig[1, a, k],
                trig[2, a, k],
                bounds,
            )
            # `shapes._vertical_extent`
            r = float(rho[a, k])
            if kind[a, k] == CIRCLE:
                top, bottom = -r, r
            else:
                top, bottom = np.inf, -np.inf
                for j in range(4):
                    vy = r * trig[3, a, k, j]
                    top, bottom = min(top, vy), max(bottom, vy)
            first = max(cy[a, k] + int(np.ceil(top - _EPS)), 0)
            last = min(cy[a, k] + int(np.floor(bottom + _EPS)), res - 1)
            disc = kind[a, k] == CIRCLE
            r2 = r * r if disc else 1e18
            x_c = float(cx[a, k])
            for y in range(first, last + 1):
                # `shapes.leaf_runs`' arithmetic for row y
                yf = float(y)
                # (`leaf_runs` also takes unused slots, lines at ±1e9: they move x0, x1 only
                # where the clamps to the image below would anyway)
                lo, hi = -1e9, 1e9
                for j in range(n_left):
                    lo = max(lo, fma64(bounds[1, j], yf, bounds[0, j]))
                for j in range(n_right):
                    hi = min(hi, fma64(bounds[3, j], yf, bounds[2, j]))
                # a non-circle's "disc" (r² = 1e18) has half-width within 1e9 − 1e-3 .. 1e9: it
                # binds only where an edge line runs that far out (a near-horizontal edge)
                if circles and (disc or lo < x_c - 1e9 + 1 or hi > x_c + 1e9 - 1):
                    dy = yf - float(cy[a, k])
                    half = np.sqrt(r2 - dy * dy)
                    lo = max(lo, x_c - half)
                    hi = min(hi, x_c + half)
                x0 = int(np.ceil(max(lo, 0.0) - _EPS))
                x1 = int(np.floor(min(hi, right) + _EPS))
                row = canvas[y]
                for x in range(x0, x1 + 1):
                    left -= row[x] < 0
                    row[x] = s
            if left == 0:
                n_stop[image] = s + 1
                break
        bare[image] = left


@njit(cache=True, nogil=True, boundscheck=False)
def _radii(u: np.ndarray, mid: np.ndarray, r: np.ndarray, res: int, rho: np.ndarray) -> None:
    for i in range(u.size):
        k = np.searchsorted(mid, np.float64(u[i]))
        rho[i] = max(int(np.floor(r[k] * res)), 1)


def sample_radii(u: Tensor, res: int, r: Tensor, cdf: Tensor) -> Tensor:
    """`shapes.sample_radii` on a CPU, in one pass: int64 with u's shape."""
    rho = np.empty(u.numel(), np.int64)
    _radii(u.reshape(-1).numpy(), radius_bounds(cdf).numpy(), r.numpy(), res, rho)
    return torch.from_numpy(rho).reshape(u.shape)


@njit(cache=True, nogil=True, boundscheck=False)
def _angles(kind: np.ndarray, u: np.ndarray, present: np.ndarray, phi: np.ndarray) -> None:
    """`shapes.vertex_angles` (written to phi float64 [N, 4]) for kinds [N] and uniforms u float64
    [N, n]; present[k]: whether kind k may occur (the others keep the square's angles)."""
    quarter = np.pi / 2
    for i in range(kind.shape[0]):
        for j in range(4):
            phi[i, j] = np.pi / 4 + j * quarter
        k = kind[i]
        if not present[k]:
            continue
        if k == ORIENTED:
            turn = 2 * np.pi * u[i, 0]
            for j in range(4):
                phi[i, j] = phi[i, j] + turn
        elif k == RECTANGLE:
            a = (np.pi / 2) * u[i, 0]
            phi[i, 0], phi[i, 1], phi[i, 2], phi[i, 3] = a, np.pi - a, np.pi + a, 2 * np.pi - a
        elif k == TRIANGLE:
            v0, v1, v2 = 2 * np.pi * u[i, 0], 2 * np.pi * u[i, 1], 2 * np.pi * u[i, 2]
            v0, v1 = min(v0, v1), max(v0, v1)
            v1, v2 = min(v1, v2), max(v1, v2)
            v0, v1 = min(v0, v1), max(v0, v1)
            phi[i, 0], phi[i, 1], phi[i, 2], phi[i, 3] = v0, v1, v2, v2
        elif k == QUAD:
            v0, v1, v2, v3 = (
                2 * np.pi * u[i, 0],
                2 * np.pi * u[i, 1],
                2 * np.pi * u[i, 2],
                2 * np.pi * u[i, 3],
            )
            v0, v1 = min(v0, v1), max(v0, v1)
            v2, v3 = min(v2, v3), max(v2, v3)
            v0, v2 = min(v0, v2), max(v0, v2)
            v1, v3 = min(v1, v3), max(v1, v3)
            v1, v2 = min(v1, v2), max(v1, v2)
            phi[i, 0], phi[i, 1], phi[i, 2], phi[i, 3] = v0, v1, v2, v3


def vertex_angles(kind: Tensor, u: Tensor, kinds: tuple[int, ...] = tuple(range(6))) -> Tensor:
    """`shapes.vertex_angles` on a CPU, in one pass: float64 [..., 4]."""
    n = u.shape[-1]
    present = np.zeros(6, np.bool_)
    present[list(usable_kinds(kinds, n))] = True
    phi = np.empty((kind.numel(), 4))
    u64 = u.reshape(kind.numel(), n).to(torch.float64).numpy()
    _angles(kind.reshape(-1).numpy(), u64, present, phi)
    return torch.from_numpy(phi).reshape(*kind.shape, 4)


@njit(cache=True, nogil=True, boundscheck=False)
def _edge_angles(phi: np.ndarray, mid: np.ndarray, half: np.ndarray) -> None:
    """Each edge's normal angle (φ_k + φ_k+1)/2 and half arc (φ_k+1 − φ_k)/2 (`shapes._half_planes`),
    φ_4 = φ_0 + 2π: all float64 [N, 4]."""
    for i in range(phi.shape[0]):
        for j in range(4):
            nxt = phi[i, j + 1] if j < 3 else phi[i, 0] + 2 * np.pi
            mid[i, j] = (phi[i, j] + nxt) / 2
            half[i, j] = (nxt - phi[i, j]) / 2


def _trig(phi: Tensor) -> Tensor:
    """float64 [4, *phi.shape]: cos and sin of the edges' normal angles, cos of their half arcs,
    sin of the vertex angles (torch's, whose rounding the images depend on)."""
    flat = phi.reshape(-1, 4).contiguous()
    mid, half = torch.empty_like(flat), torch.empty_like(flat)
    _edge_angles(flat.numpy(), mid.numpy(), half.numpy())
    trig = torch.empty(4, *flat.shape, dtype=torch.float64)
    torch.cos(mid, out=trig[0])
    torch.sin(mid, out=trig[1])
    torch.cos(half, out=trig[2])
    torch.sin(flat, out=trig[3])
    return trig.reshape(4, *phi.shape)


def leaf_map(
    draw: DrawFn,
    batch: int,
    res: int,
    max_shapes: int = MAX_SHAPES,
    circles: bool = True,
    chunks: tuple[int, ...] = CHUNKS,
) -> tuple[Tensor, Tensor]:
    """`layout.leaf_map` on a CPU (its arguments but the device and the edge slots, its results):
    visible [B, res, res] (int16, or int32 for a cap of 2^15 shapes or more) and n_stop int64 [B].
    """
    # int16 where the shape indices fit: a 128 px canvas then stays in a core's L1 cache
    visible = np.full((batch, res, res), -1, np.int16 if max_shapes < 2**15 else np.int32)
    bare = np.full(batch, res * res, np.int64)
    n_stop = np.full(batch, max_shapes, np.int64)
    start, step = 0, 0
    while start < max_shapes:
        active = np.flatnonzero(bare)
        if not active.size:
            break
        count = min(chunks[min(step, len(chunks) - 1)] * BLOCK, max_shapes - start)
        leaves = draw(torch.from_numpy(active), start, count)
        phi = leaves.phi.contiguous()
        trig = _trig(phi)
        kind, rho, cx, cy = (t.contiguous().numpy() for t in (leaves.kind, leaves.rho, leaves.cx, leaves.cy))
        _paint(visible, active, bare, n_stop, kind, rho, cx, cy, phi.numpy(), trig.numpy(), circles, start)
        start += count
        step += 1
    return torch.from_numpy(visible), torch.from_numpy(n_stop)


@njit(cache=True, nogil=True, boundscheck=False)
def _fill(visible: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:
    for b in range(visible.shape[0]):
        for p in range(visible.shape[1]):
            v = visible[b, p]
            for c in range(3):
                out[b, c, p] = table[b, v, c] if v >= 0 else 0


def paint_flat(visible: Tensor, colour: Tensor) -> Tensor:
    """`generator.paint_flat` on a CPU: uint8 [B, 3, res, res] from visible (any integer type) and
    the shapes' colours (int [B, n, 3])."""
    b, res, _ = visible.shape
    out = np.empty((b, 3, res * res), np.uint8)
    table = colour.to(torch.uint8).contiguous().numpy()
    _fill(visible.reshape(b, -1).numpy(), table, out)
    return torch.from_numpy(out).reshape(b, 3, res, res)


@njit(cache=True, nogil=True, boundscheck=False)
def _entries(visible: np.ndarray, choice: np.ndarray, needed: np.ndarray) -> None:
    for b in range(visible.shape[0]):
        for p in range(visible.shape[1]):
            needed[choice[b, max(visible[b, p], 0), 0]] = True


def texture_entries(visible: Tensor, choice: Tensor, bank_size: int) -> Tensor:
    """The bank entries the visible shapes show: int64 [m] (`textures.DeadLeavesTextures.render`)."""
    needed = np.zeros(bank_size, np.bool_)
    _entries(visible.reshape(visible.shape[0], -1).numpy(), choice.contiguous().numpy(), needed)
    return torch.from_numpy(np.flatnonzero(needed))


@njit(cache=True, nogil=True, boundscheck=False)
def _textured(
    visible: np.ndarray,
    choice: np.ndarray,
    bank: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    res: int,
    out: np.ndarray,
) -> None:
    for b in range(visible.shape[0]):
        for p in range(visible.shape[1]):
            v = visible[b, p]
            if v < 0:
                out[b, 0, p], out[b, 1, p], out[b, 2, p] = 0, 0, 0
                continue
            entry, sy, sx, flip = choice[b, v, 0], choice[b, v, 1], choice[b, v, 2], choice[b, v, 3]
            y, x = rows[flip, p] + sy, cols[flip, p] + sx  # shifts are 0 .. res-1: no division
            src = (y - res if y >= res else y) * res + (x - res if x >= res else x)
            for c in range(3):
                out[b, c, p] = bank[entry, c, src]


def paint_textured(visible: Tensor, choice: Tensor, bank: Tensor, moved: Tensor) -> Tensor:
    """`textures.DeadLeavesTextures.render`'s pixels on a CPU: every pixel shows its visible shape's
    bank image, shifted and transformed by that shape's choice (int64 [B, n, 4]: entry, row shift,
    column shift, dihedral transform), black where no shape is visible. bank uint8 [E, 3, res,
    res]; moved int64 [8, res²]: the position each pixel reads under each transform."""
    b, res, _ = visible.shape
    out = np.empty((b, 3, res * res), np.uint8)
    flat_bank = bank.reshape(bank.shape[0], 3, -1).numpy()
    rows, cols = (torch.div(moved, res, rounding_mode="floor")).numpy(), (moved % res).numpy()
    _textured(visible.reshape(b, -1).numpy(), choice.contiguous().numpy(), flat_bank, rows, cols, res, out)
    return torch.from_numpy(out).reshape(b, 3, res, res)
