"""Fractals from iterated function systems: FractalDB's categories and SVD-sampled fractals.

`ifs` runs the chaos game and draws points or FractalDB's 3×3 patches, `codes` reads FractalDB's
published category codes, `fractaldb` registers `fractaldb` (categories, instances, rendering),
`svd` registers `fractal-svd` (Anderson & Farrell's contractive maps, coloured).
"""

from noisevision.generators.fractals.codes import MAX_MAPS, read_codes, write_codes
from noisevision.generators.fractals.fractaldb import (
    FILL_RATE,
    INSTANCES,
    INTERVAL,
    MARGIN,
    SEARCH_SIZE,
    VARIATIONS,
    WEIGHT_FACTORS,
    CodeSearch,
    CodeTable,
    FractalDB,
    flip,
    instance_code,
    random_codes,
    resolve_fractaldb,
    weight_factors,
)
from noisevision.generators.fractals.ifs import (
    BURN_IN,
    WALKERS,
    chaos_game,
    fill_rate,
    hit_counts,
    stamp_patches,
    to_pixels,
)
from noisevision.generators.fractals.svd import SVDFractal, svd_maps

__all__ = [
    "BURN_IN",
    "FILL_RATE",
    "INSTANCES",
    "INTERVAL",
    "MARGIN",
    "MAX_MAPS",
    "SEARCH_SIZE",
    "VARIATIONS",
    "WALKERS",
    "WEIGHT_FACTORS",
    "CodeSearch",
    "CodeTable",
    "FractalDB",
    "SVDFractal",
    "chaos_game",
    "fill_rate",
    "flip",
    "hit_counts",
    "instance_code",
    "random_codes",
    "read_codes",
    "resolve_fractaldb",
    "stamp_patches",
    "svd_maps",
    "to_pixels",
    "weight_factors",
    "write_codes",
]
