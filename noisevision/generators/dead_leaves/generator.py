"""The flat-colour dead-leaves generators: shapes drawn from the images' keys, laid out, painted."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from noisevision.device import resolve_device
from noisevision.errors import NoisevisionError
from noisevision.generators.dead_leaves import paint_cpu
from noisevision.generators.dead_leaves.layout import BLOCK, DrawFn, leaf_map
from noisevision.generators.dead_leaves.shapes import (
    CIRCLE,
    MAX_SHAPES,
    RADIUS_LAW,
    SHAPE_SETS,
    Leaves,
    _angles_needed,
    _slots_needed,
    radius_cdf,
    sample_radii,
    vertex_angles,
)
from noisevision.generators.params import Param
from noisevision.generators.registry import Generator, GeneratorSpec, register
from noisevision.rng import Rng, as_indices

#: Images per layout call: on a CPU, enough that each chunk's draws are a few large tensor ops
#: (measured best at 64 against 16); on GPU, a pixel budget bounds the memory (2 sparse tables x
#: levels x res² x 4 bytes per image, plus ≈ 20 float64 values per covered row).
_CPU_GROUP = 64
_GROUP_PIXELS = 2**24


class DeadLeaves(Generator):
    """Flat-colour dead leaves: squares, oriented squares or six mixed shapes."""

    max_batch = 256  # per `render` call; on CPU, `layout` works in groups of _CPU_GROUP
    gpu_pixels = _GROUP_PIXELS  # on a GPU, `layout`'s whole group in one call
    portable = True  # nothing that rounds by the CPU's code path (tests/generators/test_cpu_paths)
    # the radius law P(r) ∝ r^-sigma on [r_min, r_max] (fractions of the image side): the paper's
    # sigma 3 makes scale-invariant, natural-looking images; lower sigma, bigger shapes
    search_space = (
        Param("sigma", "float", 1.5, 5.0, help="exponent of the radius law P(r) ∝ r^-sigma"),
        Param("r_min", "float", 0.005, 0.2, log=True, help="smallest radius, fraction of the side"),
        Param("r_max", "float", 0.25, 1.0, help="largest radius, fraction of the side"),
    )

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
        cpu = r.device.type == "cpu"
        rho = (paint_cpu.sample_radii if cpu else sample_radii)(
            r.uniform(BLOCK), res, *self._radius_law(r.device)
        )
        centre = r.randint(0, res, BLOCK, 2)
        if len(self.kinds) == 1:
            kind = torch.full_like(rho, self.kinds[0])
        else:
            table = torch.tensor(self.kinds, device=r.device)
            kind = table[r.randint(0, len(self.kinds), BLOCK)]
        n = _angles_needed(self.kinds)
        u = r.uniform(BLOCK, n) if n else rho.new_empty(*rho.shape, 0, dtype=torch.float32)
        phi = (paint_cpu.vertex_angles if cpu else vertex_angles)(kind, u, self.kinds)
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
    def layout(self, rng: Rng, res: int, compact: bool = False) -> tuple[Tensor, Tensor]:
        """visible int64 [B, res, res] (shape index per pixel, -1 = black) and n_stop int64 [B].
        `compact`: visible in the integer type it was computed in (int16 or int32 on a CPU).

        Runs in groups of images: on a CPU painted by `paint_cpu`, on GPU by `leaf_map`'s range
        updates, as many images as `_GROUP_PIXELS` allows.
        """
        cpu = rng.device.type == "cpu"
        per_group = _CPU_GROUP if cpu else max(1, _GROUP_PIXELS // res**2)
        slots, circles = _slots_needed(self.kinds), CIRCLE in self.kinds
        parts = []
        for i in range(0, rng.batch, per_group):
            sub = Rng(rng.keys[i : i + per_group])
            draw = self._draw_fn(sub, res)
            if cpu:
                parts.append(paint_cpu.leaf_map(draw, sub.batch, res, self.max_shapes, circles))
            else:
                parts.append(leaf_map(draw, sub.batch, res, self.max_shapes, rng.device, slots, circles))
        visible = parts[0][0] if len(parts) == 1 else torch.cat([p[0] for p in parts])
        n_stop = parts[0][1] if len(parts) == 1 else torch.cat([p[1] for p in parts])
        return (visible if compact else visible.to(torch.int64)), n_stop

    def shape_counts(
        self, indices: Any, res: int | None = None, seed: int = 0, device: str = "cpu"
    ) -> Tensor:
        """n_stop (shapes painted until full coverage) of images `indices`: int64 [B]."""
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
        visible, n_stop = self.layout(rng, res, compact=True)  # [B, res, res], [B]
        colour = self.gather_paint(rng, n_stop, res)  # [B, n, 3]
        return paint_flat(visible, colour)


def paint_flat(visible: Tensor, colour: Tensor) -> Tensor:
    """uint8 [B, 3, res, res]: every pixel takes its visible shape's colour (int [B, n, 3]), black
    where no shape is visible (-1)."""
    if visible.device.type == "cpu":
        return paint_cpu.paint_flat(visible, colour)
    b, res, _ = visible.shape
    visible = visible.to(torch.int64)
    table = torch.cat([colour.new_zeros(b, 1, 3), colour], 1).to(torch.uint8).transpose(1, 2)
    idx = (visible.reshape(b, 1, -1) + 1).expand(-1, 3, -1)  # [B, 3, res²], 0 = black
    return torch.gather(table, 2, idx).reshape(b, 3, res, res)


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
