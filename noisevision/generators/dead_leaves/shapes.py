"""Dead leaves' shapes: the radius law, the six shape kinds and their pixel runs per image row.

Pixel convention: pixel (x, y) has its centre at the integer point (x, y); shape centres are pixel
centres; a pixel belongs to a shape when its centre lies in the closed shape (to 1e-9 px). x grows
to the right, y downwards, angles are measured from +x towards +y.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

# Shape kinds (the paper's six); "mixed" picks one of the six uniformly.
SHAPE_NAMES = ("circle", "square", "oriented_square", "rectangle", "triangle", "quadrilateral")
CIRCLE, SQUARE, ORIENTED, RECTANGLE, TRIANGLE, QUAD = range(6)
SHAPE_SETS: dict[str, tuple[int, ...]] = {
    "squares": (SQUARE,),
    "oriented": (ORIENTED,),
    "mixed": tuple(range(6)),
    **{name: (kind,) for kind, name in enumerate(SHAPE_NAMES)},
}

_EPS = 1e-9  # px: tolerance of the closed-shape test (geometry is float64)


# --------------------------------------------------------------------------------------- radii
#: The paper's radius law, the one place it is written: radii r_k on a grid of `grid` points in
#: [r_min, r_max] (fractions of the image side) with mass r^-sigma − r_max^-sigma.
RADIUS_LAW: dict[str, Any] = dict(sigma=3.0, r_min=0.03, r_max=1.0, grid=200)
MAX_SHAPES = 5000  # painting stops here even if a pixel is still bare


def radius_cdf(
    sigma: float = RADIUS_LAW["sigma"],
    r_min: float = RADIUS_LAW["r_min"],
    r_max: float = RADIUS_LAW["r_max"],
    grid: int = RADIUS_LAW["grid"],
) -> tuple[Tensor, Tensor]:
    """Radius grid r_k (fractions of the image side) and its CDF F_k, float64 [grid] each.

    Mass d_k = r_k^-sigma - r_max^-sigma (a power law that reaches zero at r_max).
    """
    r = torch.linspace(r_min, r_max, grid, dtype=torch.float64)
    d = r.pow(-sigma) - r_max ** (-sigma)
    return r, torch.cumsum(d, 0) / d.sum()


def radius_bounds(cdf: Tensor) -> Tensor:
    """Midpoints of consecutive CDF values [grid - 1]: u <= mid_k  <=>  F_k is at least as near to
    u as F_k+1, so the first k with u <= mid_k is the nearest grid point (ties to the smaller)."""
    return (cdf[1:] + cdf[:-1]) / 2


def sample_radii(u: Tensor, res: int, r: Tensor, cdf: Tensor) -> Tensor:
    """Radii in pixels for uniforms u in [0, 1): the grid point whose CDF is nearest to u.

    rho = max(floor(r_k * res), 1), int64 with u's shape. Ties go to the smaller radius (argmin).
    """
    k = torch.searchsorted(radius_bounds(cdf).to(u.device), u.to(torch.float64).contiguous())
    rho = torch.floor(r.to(u.device)[k] * res).to(torch.int64)
    return rho.clamp_(min=1)


# --------------------------------------------------------------------------------------- shapes
@dataclass
class Leaves:
    """Geometry of K shapes for each of A images (all tensors [A, K] unless said otherwise).

    Polygons are given by 4 vertex angles on the circle of radius rho (sorted, spanning less than
    2π; a triangle repeats its last vertex); circles ignore `phi`.
    """

    kind: Tensor  # int64, index into SHAPE_NAMES
    rho: Tensor  # int64, radius of the circumscribed circle in px
    cx: Tensor  # int64, centre column
    cy: Tensor  # int64, centre row
    phi: Tensor  # float64 [A, K, 4], vertex angles

    def slice(self, start: int, stop: int) -> Leaves:
        return Leaves(*(t[:, start:stop] for t in (self.kind, self.rho, self.cx, self.cy, self.phi)))


def vertex_angles(kind: Tensor, u: Tensor, kinds: tuple[int, ...] = tuple(range(6))) -> Tensor:
    """Vertex angles [..., 4] (float64) of each kind from uniforms u [..., n], n in {0, 1, 4}.

    square: π/4 + kπ/2; oriented square: the same rotated by θ = 2π·u0; rectangle: corners
    (±ρ cos a, ±ρ sin a) with a = π/2·u0, i.e. angles a, π-a, π+a, 2π-a; triangle / quadrilateral:
    3 or 4 sorted angles 2π·u. `kinds`: the kinds that may occur (the others are skipped).
    """
    quarter = torch.arange(4, device=kind.device, dtype=torch.float64) * (math.pi / 2)
    phi = (math.pi / 4 + quarter).expand(*kind.shape, 4)  # axis-aligned square (and circle filler)
    u, n = u.to(torch.float64), u.shape[-1]
    kinds = usable_kinds(kinds, n)
    if ORIENTED in kinds:
        phi = torch.where((kind == ORIENTED)[..., None], phi + 2 * math.pi * u[..., :1], phi)
    if RECTANGLE in kinds:
        a = (math.pi / 2) * u[..., :1]
        rect = torch.cat([a, math.pi - a, math.pi + a, 2 * math.pi - a], -1)
        phi = torch.where((kind == RECTANGLE)[..., None], rect, phi)
    if TRIANGLE in kinds:
        tri = _sort_last(2 * math.pi * u[..., :3])
        phi = torch.where((kind == TRIANGLE)[..., None], torch.cat([tri, tri[..., 2:]], -1), phi)
    if QUAD in kinds:
        quad = _sort_last(2 * math.pi * u)
        phi = torch.where((kind == QUAD)[..., None], quad, phi)
    return phi.contiguous()


def usable_kinds(kinds: tuple[int, ...], n: int) -> tuple[int, ...]:
    """Those of `kinds` whose angles n uniforms per shape can give: triangles and quadrilaterals
    need 4, oriented squares and rectangles 1 (with none, every shape keeps the square's)."""
    kinds = kinds if n >= 4 else tuple(k for k in kinds if k not in (TRIANGLE, QUAD))
    return kinds if n >= 1 else ()


def _sort_last(x: Tensor) -> Tensor:
    """Sort 3 or 4 values along the last dim with a min/max sorting network (a general sort of
    tiny rows is slow on CPU)."""
    v = list(x.unbind(-1))
    pairs = [(0, 1), (1, 2), (0, 1)] if len(v) == 3 else [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2)]
    for i, j in pairs:
        v[i], v[j] = torch.minimum(v[i], v[j]), torch.maximum(v[i], v[j])
    return torch.stack(v, -1)


def _angles_needed(kinds: tuple[int, ...]) -> int:
    if TRIANGLE in kinds or QUAD in kinds:
        return 4
    return 1 if (ORIENTED in kinds or RECTANGLE in kinds) else 0


def _slots_needed(kinds: tuple[int, ...]) -> int:
    """Most non-horizontal edges on one side of a shape of these kinds (see `_row_bounds`)."""
    return 3 if QUAD in kinds else 2 if (ORIENTED in kinds or TRIANGLE in kinds) else 1


# --------------------------------------------------------------------------------------- rows
def _half_planes(leaves: Leaves) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Edges of each polygon as half-planes nx·x + ny·y <= c (x, y relative to the centre).

    The chord between vertex angles φ_k and φ_k+1 (arc δ) has outward normal at angle
    (φ_k + φ_k+1)/2 and lies at distance ρ·cos(δ/2) from the centre. Returns nx, ny, c: float64
    [A, K, 4] and `real` (bool [A, K, 4]): False for the zero-length edge of a repeated vertex.
    """
    phi = leaves.phi
    nxt = torch.cat([phi[..., 1:], phi[..., :1] + 2 * math.pi], -1)
    mid = (phi + nxt) / 2
    c = leaves.rho[..., None].to(torch.float64) * torch.cos((nxt - phi) / 2)
    return torch.cos(mid), torch.sin(mid), c, nxt != phi


def _row_bounds(leaves: Leaves, slots: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each shape's left and right boundary as lines in the row y (absolute pixel coordinates).

    A convex polygon covers, on row y, max_j(la_j + lb_j·y) <= x <= min_j(ua_j + ub_j·y): one line
    per non-horizontal edge, on the left (lower bound) or the right (upper bound) side. Horizontal
    edges bound y only and are left to the vertical extent. `slots` = the most edges on one side
    (1: squares and rectangles, 2: rotated squares, 3: quadrilaterals); unused slots never bind.
    Returns la, lb, ua, ub: float64 [A, K, slots].
    """
    nx, ny, c, real = _half_planes(leaves)
    sloped = real & (nx.abs() > 1e-12) & (leaves.kind != CIRCLE)[..., None]
    nx_safe = torch.where(sloped, nx, 1.0)
    beta = torch.where(sloped, -ny / nx_safe, 0.0)  # dx/dy along the edge
    cx, cy = leaves.cx[..., None].to(torch.float64), leaves.cy[..., None].to(torch.float64)
    alpha = cx + c / nx_safe - beta * cy  # x of the edge line at y = 0

    def side(mask: Tensor, inactive: float) -> tuple[Tensor, Tensor]:
        # Pack the masked edges into the first slots (slot = rank among the masked edges);
        # the others go to a spare slot that is dropped.
        # On CUDA the scan runs over the leading dim: its kernel for a last dim of 4 is slow there
        # (on CPU the last-dim scan is the faster one).
        rank = mask.movedim(-1, 0).cumsum(0).movedim(0, -1) if mask.is_cuda else mask.cumsum(-1)
        slot = torch.where(mask, rank - 1, slots)
        a = alpha.new_full((*mask.shape[:-1], slots + 1), inactive).scatter_(-1, slot, alpha)
        b = beta.new_zeros(a.shape).scatter_(-1, slot, beta)
        return a[..., :slots], b[..., :slots]

    never = 1e9  # px: a bound that never binds
    la, lb = side(sloped & (nx < 0), -never)
    ua, ub = side(sloped & (nx > 0), never)
    return la, lb, ua, ub


def _vertical_extent(leaves: Leaves, res: int) -> tuple[Tensor, Tensor]:
    """First and last image row each shape covers (int64 [A, K]; last < first: none)."""
    rho = leaves.rho.to(torch.float64)
    vy = rho[..., None] * torch.sin(leaves.phi)
    circle = leaves.kind == CIRCLE
    top = torch.where(circle, -rho, vy.amin(-1))
    bottom = torch.where(circle, rho, vy.amax(-1))
    y0 = (leaves.cy + torch.ceil(top - _EPS).to(torch.int64)).clamp_(min=0)
    y1 = (leaves.cy + torch.floor(bottom + _EPS).to(torch.int64)).clamp_(max=res - 1)
    return y0, y1


@dataclass
class Runs:
    """Pixel runs [x0, x1] on row y, one per (shape, image row it touches): all [R]."""

    shape: Tensor  # int64, flat index into the [A, K] shapes
    y: Tensor  # float64 row
    x0: Tensor  # float64 first column (clipped to the image)
    x1: Tensor  # float64 last column; x1 < x0: the shape passes between pixel centres


def leaf_runs(leaves: Leaves, res: int, slots: int = 3, circles: bool | None = None) -> Runs:
    """The pixel runs of every shape (pixel centres at integer coordinates).

    Per-shape quantities are computed once and gathered to rows; the per-row work is a few
    multiply-adds (float64, exact for the integer coordinates involved). `slots`: see
    `_row_bounds`; `circles`: whether circles may occur.
    """
    a, k = leaves.kind.shape
    dev = leaves.kind.device
    y0, y1 = _vertical_extent(leaves, res)
    n_rows = (y1 - y0 + 1).clamp_(min=0).reshape(-1)  # [A*K]
    shape = torch.repeat_interleave(torch.arange(a * k, device=dev), n_rows)  # [R]
    start = torch.cumsum(n_rows, 0) - n_rows
    la, lb, ua, ub = _row_bounds(leaves, slots)
    cols = [(y0.reshape(-1) - start).to(torch.float64)]
    cols += [t.reshape(a * k, slots).T for t in (la, lb, ua, ub)]
    if circles is None:  # (a host sync: callers that know pass it)
        circles = bool((leaves.kind == CIRCLE).any())
    if circles:  # |x - cx| <= sqrt(rho² - (y - cy)²); non-circles get a radius that never binds
        r2 = torch.where(leaves.kind == CIRCLE, leaves.rho.to(torch.float64) ** 2, 1e18)
        cols += [t.reshape(1, -1).to(torch.float64) for t in (leaves.cx, leaves.cy, r2)]
    table = torch.cat([c.reshape(-1, a * k) for c in cols]).view(torch.int64)  # [C, A*K]
    # Per-column 1-D gathers of the bits: the fast path on CPU (2-D float64 gathers are slow).
    g = [col.index_select(0, shape).view(torch.float64) for col in table]  # C x [R]
    y = g[0] + torch.arange(shape.numel(), device=dev, dtype=torch.float64)
    lo = torch.addcmul(g[1], g[1 + slots], y)
    hi = torch.addcmul(g[1 + 2 * slots], g[1 + 3 * slots], y)
    for j in range(1, slots):
        lo = torch.maximum(lo, torch.addcmul(g[1 + j], g[1 + slots + j], y))
        hi = torch.minimum(hi, torch.addcmul(g[1 + 2 * slots + j], g[1 + 3 * slots + j], y))
    if circles:
        cx, cy, r2 = g[1 + 4 * slots :]
        half = torch.sqrt(r2 - (y - cy) ** 2)  # rows lie within [cy - rho, cy + rho]
        lo = torch.maximum(lo, cx - half)
        hi = torch.minimum(hi, cx + half)
    x0 = torch.ceil(lo.clamp_(min=0) - _EPS)
    x1 = torch.floor(hi.clamp_(max=res - 1) + _EPS)
    return Runs(shape, y, x0, x1)
