"""Dead leaves (occlusion model), SPEC §2: shapes with power-law radii painted until the canvas is covered.

Painting 5,000 shapes one by one (the original code) is slow; we compute the same image directly.
The colour seen at a pixel is that of the *last* shape covering it among shapes 0 .. n_stop-1, where
n_stop = min(max_shapes, 1 + max over pixels of the *first* shape covering that pixel): painting
stops at the shape that covers the last black pixel. Both reductions are range updates on rows:

* every shape is convex, so it covers one run of pixels [x0, x1] per image row it touches;
* a run updates a sparse table with two writes (the two power-of-two blocks that cover it), done
  for all runs of a chunk of shapes by `scatter_reduce`: amin for "first cover", amax for "last
  cover" (both exact integer reductions, so the result does not depend on write order);
* pushing the table down (log2(res) max/min passes) gives the per-pixel answer.

The work is O(rows of the shapes) + O(res² log res) instead of O(area of the shapes). Shapes are
drawn in blocks of `BLOCK` from per-block random keys and processed in chunks until every image of
the batch is covered, so shapes beyond n_stop are mostly never drawn.

Pixel convention: pixel (x, y) has its centre at the integer point (x, y); shape centres are pixel
centres; a pixel belongs to a shape when its centre lies in the closed shape (to 1e-9 px). x grows
to the right, y downwards, angles are measured from +x towards +y.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from noisevision.cache import cache_dir, entry_name, is_cached, shared_tensors, source_hash
from noisevision.device import resolve_device
from noisevision.errors import NoisevisionError
from noisevision.generators.registry import Generator, GeneratorSpec, register
from noisevision.rng import Rng, as_indices, mix64_int, name_hash

# Shape kinds (SPEC §2); "mixed" picks one of the six uniformly.
SHAPE_NAMES = ("circle", "square", "oriented_square", "rectangle", "triangle", "quadrilateral")
CIRCLE, SQUARE, ORIENTED, RECTANGLE, TRIANGLE, QUAD = range(6)
SHAPE_SETS: dict[str, tuple[int, ...]] = {
    "squares": (SQUARE,),
    "oriented": (ORIENTED,),
    "mixed": tuple(range(6)),
    **{name: (kind,) for kind, name in enumerate(SHAPE_NAMES)},
}

#: Shapes drawn per random key: shape j's parameters come from block j // BLOCK of the image's key.
#: Part of the definition of every image: changing it changes the images.
BLOCK = 256
#: Chunk sizes, in blocks, for the successive passes over a batch (then the last size repeats).
#: The first pass covers most images (n_stop is ≈1,300–1,600 at any resolution).
CHUNK_SCHEDULE = (6, 2)
#: Images per `leaf_map` call: small groups keep the CPU's per-row tensors in cache; on GPU, a
#: pixel budget bounds the memory (2 sparse tables x levels x res² x 4 bytes per image, plus
#: ≈ 20 float64 values per covered row).
_CPU_GROUP = 16
_GROUP_PIXELS = 2**24
_EPS = 1e-9  # px: tolerance of the closed-shape test (geometry is float64)
#: Texture-bank entries per cache file: the unit of work that processes split between them.
BANK_SHARD = 64


# --------------------------------------------------------------------------------------- radii
#: SPEC §2's radius law, the one place it is written: radii r_k on a grid of `grid` points in
#: [r_min, r_max] (fractions of the image side) with mass r^-sigma − r_max^-sigma.
RADIUS_LAW: dict[str, Any] = dict(sigma=3.0, r_min=0.03, r_max=1.0, grid=200)
MAX_SHAPES = 5000  # painting stops here even if a pixel is still bare (SPEC §2)


def radius_cdf(sigma: float = RADIUS_LAW["sigma"], r_min: float = RADIUS_LAW["r_min"],
               r_max: float = RADIUS_LAW["r_max"], grid: int = RADIUS_LAW["grid"]) -> tuple[Tensor, Tensor]:
    """Radius grid r_k (fractions of the image side) and its CDF F_k, float64 [grid] each (SPEC §2).

    Mass d_k = r_k^-sigma - r_max^-sigma (a power law that reaches zero at r_max).
    """
    r = torch.linspace(r_min, r_max, grid, dtype=torch.float64)
    d = r.pow(-sigma) - r_max ** (-sigma)
    return r, torch.cumsum(d, 0) / d.sum()


def sample_radii(u: Tensor, res: int, r: Tensor, cdf: Tensor) -> Tensor:
    """Radii in pixels for uniforms u in [0, 1): the grid point whose CDF is nearest to u.

    rho = max(floor(r_k * res), 1), int64 with u's shape. Ties go to the smaller radius (argmin).
    """
    mid = (cdf[1:] + cdf[:-1]) / 2  # u <= mid_k  <=>  F_k is at least as near as F_k+1
    k = torch.searchsorted(mid.to(u.device), u.to(torch.float64).contiguous())
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
    kinds = kinds if n >= 4 else tuple(k for k in kinds if k not in (TRIANGLE, QUAD))
    kinds = kinds if n >= 1 else ()
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
    """The pixel runs of every shape (SPEC §2 geometry, pixel centres at integer coordinates).

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


# --------------------------------------------------------------------------------------- sparse table
def _levels(res: int) -> int:
    return res.bit_length()  # block lengths 1, 2, 4, … <= res


def _run_blocks(runs: Runs, image: Tensor, res: int) -> tuple[Tensor, Tensor, Tensor]:
    """Table positions of the two power-of-two blocks covering each run, and which runs are
    non-empty: int64 [R], int64 [R], bool [R]. `image` (float64 [R]) is each run's image.

    Table layout: [A, levels, res, res]; level k at column x stands for columns x .. x + 2^k - 1.
    """
    valid = runs.x0 <= runs.x1
    x0 = runs.x0.clamp(max=res - 1)
    length = (runs.x1 - x0 + 1).clamp_(min=1)
    _, exponent = torch.frexp(length)  # length = m·2^e, m in [0.5, 1): level = e - 1
    level = (exponent - 1).to(torch.float64)
    base = ((image * _levels(res) + level) * res + runs.y) * res + x0
    second = base + (length - torch.exp2(level))
    return base.to(torch.int64), second.to(torch.int64), valid


def _push_down(table: Tensor, reduce: str) -> Tensor:
    """Resolve a sparse table [A, levels, res, res] in place; level 0 then holds each pixel's value.

    Level k at column x covers columns x .. x + 2^k - 1, i.e. level k-1 at x and at x + 2^(k-1).
    """
    op = torch.minimum if reduce == "amin" else torch.maximum
    res = table.shape[-1]
    for level in range(table.shape[1] - 1, 0, -1):
        half = 1 << (level - 1)
        upper, lower = table[:, level], table[:, level - 1]
        op(lower, upper, out=lower)
        tail = lower[..., half:]
        op(tail, upper[..., : res - half], out=tail)
    return table[:, 0]


# --------------------------------------------------------------------------------------- layout
DrawFn = Callable[[Tensor, int, int], Leaves]


def leaf_map(
    draw: DrawFn,
    batch: int,
    res: int,
    max_shapes: int = MAX_SHAPES,
    device: torch.device | str = "cpu",
    slots: int = 3,
    circles: bool | None = None,
    chunks: tuple[int, ...] = CHUNK_SCHEDULE,
) -> tuple[Tensor, Tensor]:
    """Which shape is seen at every pixel, and how many shapes were painted (SPEC §2 semantics).

    `draw(images, start, count)` returns the `Leaves` [len(images), count] of shapes
    start .. start+count-1 of those images (indices into the batch). Returns
    visible: int64 [B, res, res], the index of the last shape covering each pixel among the first
    n_stop (-1: never covered, only possible when the cap is hit), and n_stop: int64 [B].
    """
    device = torch.device(device)
    # int16 halves the CPU's table traffic; CUDA has native 32-bit atomics for scatter_reduce.
    small = device.type == "cpu" and max_shapes < 2**15 - 1
    dtype = torch.int16 if small else torch.int32
    none = torch.iinfo(dtype).max  # "not covered yet" in the first-cover table
    shape = (batch, _levels(res), res, res)
    first = torch.full(shape, none, dtype=dtype, device=device)  # first cover (amin)
    last = torch.full(shape, -1, dtype=dtype, device=device)  # last cover (amax)
    visible = torch.full((batch, res, res), -1, dtype=torch.int64, device=device)
    n_stop = torch.full((batch,), max_shapes, dtype=torch.int64, device=device)
    active = torch.arange(batch, device=device)
    start, step = 0, 0
    while active.numel() and start < max_shapes:
        count = min(chunks[min(step, len(chunks) - 1)] * BLOCK, max_shapes - start)
        runs = leaf_runs(draw(active, start, count), res, slots, circles)
        image = torch.div(runs.shape, count, rounding_mode="floor")
        index = runs.shape - image * count + start  # [R] shape index in the image
        p0, p1, valid = _run_blocks(runs, image.to(torch.float64), res)
        val = torch.where(valid, index, none).to(dtype)
        for p in (p0, p1):
            first.view(-1).scatter_reduce_(0, p, val, "amin")
        cover = _push_down(first, "amin")  # [A, res, res]
        covered = (cover != none).flatten(1).all(1)
        stop = torch.where(covered, cover.flatten(1).amax(1).to(torch.int64) + 1, max_shapes)
        val = torch.where(valid & (index < stop[image]), index, -1).to(dtype)
        for p in (p0, p1):
            last.view(-1).scatter_reduce_(0, p, val, "amax")
        start += count
        step += 1
        done = covered | (start >= max_shapes)
        if bool(done.any()):
            ids = active[done]
            visible[ids] = _push_down(last[done], "amax").to(torch.int64)
            n_stop[ids] = stop[done]
            active, first, last = active[~done], first[~done], last[~done]
    return visible, n_stop


# --------------------------------------------------------------------------------------- generators
class DeadLeaves(Generator):
    """Flat-colour dead leaves: squares, oriented squares or six mixed shapes (SPEC §2)."""

    max_batch = 256  # per `render` call; on CPU, `layout` works in groups of _CPU_GROUP
    gpu_pixels = _GROUP_PIXELS  # on a GPU, `layout`'s whole group in one call

    def __init__(
        self,
        spec: GeneratorSpec,
        *,
        shapes: str = "squares",
        sigma: float = RADIUS_LAW["sigma"],
        r_min: float = RADIUS_LAW["r_min"],
        r_max: float = RADIUS_LAW["r_max"],
        grid: int = RADIUS_LAW["grid"],
        max_shapes: int = MAX_SHAPES,
    ):
        if shapes not in SHAPE_SETS:
            raise NoisevisionError(
                f"unknown shape set '{shapes}' for '{spec.name}': use one of {', '.join(SHAPE_SETS)}"
            )
        if not 0 < r_min < r_max or grid < 2 or sigma <= 0:
            raise NoisevisionError(
                f"bad radius law for '{spec.name}': need 0 < r_min < r_max, grid >= 2, sigma > 0"
            )
        if not 1 <= max_shapes < 2**31 - 1:
            raise NoisevisionError(f"max_shapes must be at least 1, got {max_shapes}")
        super().__init__(
            spec,
            shapes=shapes,
            sigma=sigma,
            r_min=r_min,
            r_max=r_max,
            grid=grid,
            max_shapes=max_shapes,
        )
        self.kinds = SHAPE_SETS[shapes]
        self.max_shapes = int(max_shapes)
        self.radii, self.cdf = radius_cdf(sigma, r_min, r_max, grid)
        self._on_device: dict[str, tuple[Tensor, Tensor]] = {}

    def _radius_law(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """(radii, cdf) on `device`, copied once."""
        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = (self.radii.to(device), self.cdf.to(device))
        return self._on_device[key]

    # ------------------------------------------------------------------ random draws
    def draw_shapes(self, r: Rng, res: int) -> Leaves:
        """Geometry of one block of shapes per key of `r` (one key per image and block):
        `Leaves` [r.batch, BLOCK]."""
        rho = sample_radii(r.uniform(BLOCK), res, *self._radius_law(r.device))
        centre = r.randint(0, res, BLOCK, 2)
        if len(self.kinds) == 1:
            kind = torch.full_like(rho, self.kinds[0])
        else:
            table = torch.tensor(self.kinds, device=r.device)
            kind = table[r.randint(0, len(self.kinds), BLOCK)]
        n = _angles_needed(self.kinds)
        u = r.uniform(BLOCK, n) if n else rho.new_empty(*rho.shape, 0, dtype=torch.float32)
        phi = vertex_angles(kind, u, self.kinds)
        return Leaves(kind, rho, centre[..., 0], centre[..., 1], phi)

    def draw_paint(self, r: Rng, res: int) -> Tensor:
        """Paint of one block of shapes per key of `r`: int64 [r.batch, BLOCK, 3], an RGB colour
        uniform in 0..255 per channel."""
        return r.randint(0, 256, BLOCK, 3)

    def leaves(self, rng: Rng, res: int, start: int, count: int) -> Leaves:
        """Geometry of shapes start .. start+count-1 of every image of `rng`: `Leaves` [B, count].

        Shape j of an image comes from block j // BLOCK, whose key is derived from the image's
        key and the block number only: the same shapes whatever the chunking.
        """
        first, last = start // BLOCK, (start + count - 1) // BLOCK
        blocks = torch.arange(first, last + 1, device=rng.device).expand(rng.batch, -1)
        drawn = self.draw_shapes(rng.child("leaves", blocks), res)  # [B * n, BLOCK]
        offset = start - first * BLOCK
        return Leaves(*(t.reshape(rng.batch, -1, *t.shape[2:]) for t in vars(drawn).values())).slice(
            offset, offset + count
        )

    def _draw_fn(self, rng: Rng, res: int) -> DrawFn:
        return lambda images, start, count: self.leaves(Rng(rng.keys[images]), res, start, count)

    # ------------------------------------------------------------------ rendering
    def layout(self, rng: Rng, res: int) -> tuple[Tensor, Tensor]:
        """visible int64 [B, res, res] (shape index per pixel, -1 = black) and n_stop int64 [B].

        Runs in groups of images: small ones on CPU, where the per-row tensors then stay in cache,
        as many as `_GROUP_PIXELS` allows on GPU.
        """
        per_group = _CPU_GROUP if rng.device.type == "cpu" else max(1, _GROUP_PIXELS // res**2)
        parts = []
        for i in range(0, rng.batch, per_group):
            sub = Rng(rng.keys[i : i + per_group])
            parts.append(
                leaf_map(
                    self._draw_fn(sub, res),
                    sub.batch,
                    res,
                    self.max_shapes,
                    rng.device,
                    _slots_needed(self.kinds),
                    CIRCLE in self.kinds,
                )
            )
        if len(parts) == 1:
            return parts[0]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def shape_counts(
        self, indices: Any, res: int | None = None, seed: int = 0, device: str = "cpu"
    ) -> Tensor:
        """n_stop (shapes painted until full coverage, SPEC §2) of images `indices`: int64 [B]."""
        res = self.check_res(self.spec.default_res if res is None else res)
        idx = as_indices(indices, resolve_device(device))
        return self.layout(Rng.for_indices(self.key, seed, idx), res)[1]

    def gather_paint(self, rng: Rng, n_stop: Tensor, res: int) -> Tensor:
        """Paint [B, n, C] of shapes 0 .. n-1 (n = max n_stop rounded up to a block), drawn only
        for the blocks each image painted (zeros elsewhere)."""
        n_blocks = (int(n_stop.max()) + BLOCK - 1) // BLOCK
        starts = torch.arange(n_blocks, device=rng.device) * BLOCK
        image, block = torch.nonzero(n_stop[:, None] > starts).unbind(1)  # (image, block) pairs
        paint = self.draw_paint(Rng(rng.keys[image]).child("paint", block), res)  # [P, BLOCK, C]
        out = paint.new_zeros(rng.batch, n_blocks, BLOCK, paint.shape[-1])
        out[image, block] = paint
        return out.reshape(rng.batch, n_blocks * BLOCK, -1)

    def render(self, rng: Rng, res: int) -> Tensor:
        visible, n_stop = self.layout(rng, res)  # [B, res, res], [B]
        colour = self.gather_paint(rng, n_stop, res)  # [B, n, 3]
        return paint_flat(visible, colour)


def paint_flat(visible: Tensor, colour: Tensor) -> Tensor:
    """uint8 [B, 3, res, res]: every pixel takes its visible shape's colour (int [B, n, 3]), black
    where no shape is visible (-1)."""
    b, res, _ = visible.shape
    table = torch.cat([colour.new_zeros(b, 1, 3), colour], 1).to(torch.uint8).transpose(1, 2)
    idx = (visible.reshape(b, 1, -1) + 1).expand(-1, 3, -1)  # [B, 3, res²], 0 = black
    return torch.gather(table, 2, idx).reshape(b, 3, res, res)


class DeadLeavesTextures(DeadLeaves):
    """Dead leaves whose regions show textures from a statistical image model (SPEC §2).

    Each visible shape shows, at its own pixels, one image of a texture bank (`bank_size` images of
    the `texture` generator with seed `texture_seed`, rendered lazily and cached per resolution and
    device), circularly shifted and flipped/transposed by the shape's own random draws. The
    original code likewise drew textures from a finite pool of pre-rendered images.
    """

    def __init__(
        self,
        spec: GeneratorSpec,
        *,
        shapes: str = "oriented",
        texture: str = "stat-spectrum_color_wmm",
        bank_size: int = 512,
        texture_seed: int = 0,
        **params: Any,
    ):
        if bank_size < 1:
            raise NoisevisionError(f"bank_size must be at least 1, got {bank_size}")
        super().__init__(spec, shapes=shapes, **params)
        self.params.update(texture=texture, bank_size=bank_size, texture_seed=texture_seed)
        self.texture, self.bank_size, self.texture_seed = texture, int(bank_size), int(texture_seed)
        self._banks: dict[tuple[int, str], tuple[Tensor, Tensor]] = {}
        self._texture_gen: Generator | None = None

    def draw_paint(self, r: Rng, res: int) -> Tensor:
        """Per-shape texture choice [r.batch, BLOCK, 4]: bank entry, row shift, column shift and a
        dihedral transform 0..7 (bit 0 transpose, bit 1 flip columns, bit 2 flip rows)."""
        entry = r.randint(0, self.bank_size, BLOCK, 1)
        shift = r.randint(0, res, BLOCK, 2)
        flip = r.randint(0, 8, BLOCK, 1)
        return torch.cat([entry, shift, flip], -1)

    def prepare(self, res: int | None = None, device: str | torch.device = "cpu") -> None:
        """Render the whole texture bank at this resolution (calls otherwise fill it lazily)."""
        dev = resolve_device(device)
        res = self.check_res(self.spec.default_res if res is None else res)
        self.bank(torch.arange(self.bank_size, device=dev), res, dev)

    def setup_note(self, res: int, device: str | torch.device = "cpu") -> str | None:
        dev, folder = resolve_device(device), cache_dir()
        if (res, str(dev)) in self._banks and bool(self._banks[res, str(dev)][1].all()):
            return None
        spans = self._shard_spans(range(0, self.bank_size, BANK_SHARD))
        if folder is not None and all(is_cached(self._shard_name(lo, hi, res, dev)) for lo, hi in spans):
            return None
        kept = f", kept in {folder} for later runs" if folder is not None else ""
        return f"first renders its texture bank: {self.bank_size} {self.texture} images at {res} px{kept}"

    def _bank_seed(self) -> int:
        return mix64_int(name_hash("dead_leaves texture bank") ^ self.texture_seed) & 0x7FFFFFFF

    def _texture(self) -> Generator:
        if self._texture_gen is None:
            from noisevision.generators.registry import get

            self._texture_gen = get(self.texture)
        return self._texture_gen

    def _shard_spans(self, starts: Iterable[int]) -> list[tuple[int, int]]:
        """Bank entries lo .. hi-1 of the shards starting at `starts`."""
        return [(lo, min(lo + BANK_SHARD, self.bank_size)) for lo in starts]

    def _shard_name(self, lo: int, hi: int, res: int, device: torch.device) -> str:
        """Cache entry of bank entries lo..hi-1 (the texture's bytes may differ between devices)."""
        label = f"{self.texture}-{res}px-{device.type}-{lo}-{hi}"
        return entry_name(label, self._bank_seed(), source_hash(self._texture()))

    def bank(self, entries: Tensor, res: int, device: torch.device) -> Tensor:
        """The texture bank uint8 [bank_size, 3, res, res], with at least `entries` rendered.

        The bank is built in shards of `BANK_SHARD` entries through the on-disk cache, so that the
        processes of one job split it and later runs read it (cache.py)."""
        key = (res, str(device))
        if key not in self._banks:
            bank = torch.zeros(self.bank_size, 3, res, res, dtype=torch.uint8, device=device)
            self._banks[key] = (bank, torch.zeros(self.bank_size, dtype=torch.bool, device=device))
        bank, ready = self._banks[key]
        missing = entries[~ready[entries]]
        if not missing.numel():
            return bank
        seed = self._bank_seed()
        spans = self._shard_spans(torch.unique(missing // BANK_SHARD).mul(BANK_SHARD).tolist())
        names = [self._shard_name(lo, hi, res, device) for lo, hi in spans]

        def render(k: int) -> Tensor:
            lo, hi = spans[k]
            return self._texture()(torch.arange(lo, hi, device=device), res, seed=seed, device=device)

        for k, shard in shared_tensors(names, render):
            lo, hi = spans[k]
            if shard.shape != (hi - lo, 3, res, res) or shard.dtype != torch.uint8:
                shard = render(k)  # (a foreign file under our name: never trust it)
            bank[lo:hi] = shard.to(device)
            ready[lo:hi] = True
        return bank

    def render(self, rng: Rng, res: int) -> Tensor:
        visible, n_stop = self.layout(rng, res)  # [B, res, res], [B]
        choice = self.gather_paint(rng, n_stop, res)  # [B, n, 4]
        b, dev = visible.shape[0], visible.device
        shown = visible.reshape(b, -1).clamp(min=0)  # [B, res²]
        entry, sy, sx, flip = (torch.gather(choice[..., i], 1, shown) for i in range(4))
        needed = torch.zeros(self.bank_size, dtype=torch.bool, device=dev)
        needed.index_fill_(0, entry.reshape(-1), True)
        bank = self.bank(torch.nonzero(needed).squeeze(1), res, dev)
        # Source pixel: the dihedral transform of (y, x), then the circular shift.
        moved = _dihedral_table(res, dev).reshape(-1)[flip * res**2 + torch.arange(res**2, device=dev)]
        y = torch.remainder(torch.div(moved, res, rounding_mode="floor") + sy, res)
        x = torch.remainder(moved % res + sx, res)
        src = entry * (3 * res**2) + y * res + x  # [B, res²] flat index of channel 0 in the bank
        channel = torch.arange(3, device=dev).reshape(1, 3, 1) * res**2
        img = bank.reshape(-1)[src[:, None, :] + channel]  # [B, 3, res²]
        if n_stop.max() >= self.max_shapes:  # (host sync) black where the cap left pixels bare
            img = img.where(visible.reshape(b, 1, -1) >= 0, 0)
        return img.reshape(b, 3, res, res)


def _dihedral_table(res: int, device: torch.device) -> Tensor:
    """int64 [8, res²]: flat position y'·res + x' that pixel y·res + x reads under transform d
    (bit 0: transpose, bit 1: flip columns, bit 2: flip rows, applied in that order)."""
    y, x = torch.meshgrid(torch.arange(res, device=device), torch.arange(res, device=device), indexing="ij")
    out = []
    for d in range(8):
        ty, tx = (x, y) if d & 1 else (y, x)
        tx = res - 1 - tx if d & 2 else tx
        ty = res - 1 - ty if d & 4 else ty
        out.append((ty * res + tx).reshape(-1))
    return torch.stack(out)


# --------------------------------------------------------------------------------------- registry
register(
    "dead_leaves-squares",
    family="dead leaves",
    label="Dead leaves – Squares",
    description="Axis-aligned squares with power-law radii, painted until the canvas is covered.",
    shapes="squares",
)(DeadLeaves)
register(
    "dead_leaves-oriented",
    family="dead leaves",
    label="Dead leaves – Oriented",
    description="Randomly rotated squares with power-law radii, painted until covered.",
    shapes="oriented",
)(DeadLeaves)
register(
    "dead_leaves-mixed",
    family="dead leaves",
    label="Dead leaves – Shapes",
    description="Circles, squares, rotated squares, rectangles, triangles, quadrilaterals mixed.",
    shapes="mixed",
)(DeadLeaves)
register(
    "dead_leaves-textures",
    family="dead leaves",
    label="Dead leaves – Textures",
    description="Rotated-square dead leaves whose regions show Spectrum+Color+WMM textures.",
    shapes="oriented",
)(DeadLeavesTextures)
