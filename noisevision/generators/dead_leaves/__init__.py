"""Dead leaves (occlusion model): shapes with power-law radii painted until the canvas is covered.

Painting 5,000 shapes one by one (the original code) is slow; the same image is computed directly
(`layout`): the last shape covering each pixel among those painted before the canvas was covered.

Modules: `shapes` (radius law, shape kinds, their pixel runs per row), `layout` (which shape is
seen at every pixel, by range updates: the GPU's way), `paint_cpu` (the same by painting in
compiled loops: a CPU's way), `generator` (flat-colour dead leaves), `textures` (dead leaves
showing statistical textures, their texture bank).
"""

from noisevision.generators.dead_leaves import paint_cpu
from noisevision.generators.dead_leaves.generator import DeadLeaves, paint_flat
from noisevision.generators.dead_leaves.layout import BLOCK, CHUNK_SCHEDULE, DrawFn, leaf_map
from noisevision.generators.dead_leaves.shapes import (
    CIRCLE,
    MAX_SHAPES,
    ORIENTED,
    QUAD,
    RADIUS_LAW,
    RECTANGLE,
    SHAPE_NAMES,
    SHAPE_SETS,
    SQUARE,
    TRIANGLE,
    Leaves,
    Runs,
    leaf_runs,
    radius_cdf,
    sample_radii,
    vertex_angles,
)
from noisevision.generators.dead_leaves.textures import DeadLeavesTextures

__all__ = [
    "BLOCK",
    "CHUNK_SCHEDULE",
    "CIRCLE",
    "MAX_SHAPES",
    "ORIENTED",
    "QUAD",
    "RADIUS_LAW",
    "RECTANGLE",
    "SHAPE_NAMES",
    "SHAPE_SETS",
    "SQUARE",
    "TRIANGLE",
    "DeadLeaves",
    "DeadLeavesTextures",
    "DrawFn",
    "Leaves",
    "Runs",
    "leaf_map",
    "leaf_runs",
    "paint_cpu",
    "paint_flat",
    "radius_cdf",
    "sample_radii",
    "vertex_angles",
]
