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

Every random number comes from the image's key (drawn for all slots, whichever operators are
chosen) and images never interact, so an image's bytes do not depend on its batch. Rendering runs
on one CPU thread (`single_cpu_thread`); on a GPU, fused Triton kernels compute the fields.

Categories (formula-driven supervised learning): with `classes=C`, e.g. `program-shader:classes=1000`,
a program is a category (drawn from the seed and the category) and image i is an instance of
category i mod C: the same operators and tree, its continuous numbers (placement, scales, noise,
colours, weights) re-drawn around the category's by `spread` (default 0.1). Without `classes` every
image is its own program, as before.

No blank images (as FractalDB keeps only codes that light 20% of the canvas): an image whose
luminance is nearly flat is re-drawn from a new program (key child "retry"), up to 4 times.

Modules: `operators` (the grammar's operators), `grammar` (drawing programs from keys), `fields`
(the fields as tensor code), `cuda` + `_triton` (the same on a GPU), `render` (colour, finish,
blank test), `describe` (programs in words), `categories` (instances around a category's program),
`generator` (the registered names and resolver).
"""

from noisevision.generators.programs.categories import KINDS as CATEGORY_RULES
from noisevision.generators.programs.categories import SPREAD, instance_program
from noisevision.generators.programs.describe import describe_program
from noisevision.generators.programs.fields import (
    batched_matmul,
    canvas,
    canvas_side,
    cppn_outputs_tensor,
    pixel_centres,
    row_mean,
    shader_field_tensor,
    standardise,
)
from noisevision.generators.programs.generator import (
    NAME_PARAMS,
    RETRIES,
    ProceduralPrograms,
    resolve_program,
)
from noisevision.generators.programs.grammar import (
    BRANCH_PROB,
    CPPN_INPUTS,
    CPPN_WIDTH,
    GLOBAL_DOMAIN_SLOTS,
    GRAMMARS,
    LEAF_DOMAIN_SLOTS,
    MAX_DEPTH,
    sample_program,
)
from noisevision.generators.programs.operators import (
    COMBINATORS,
    CPPN_ACTIVATIONS,
    DOMAIN_OPS,
    FIELD_OPS,
    FINISHES,
    LATTICE,
    PALETTES,
    Lattice,
    Op,
    U,
)
from noisevision.generators.programs.render import (
    BLANK_STD,
    cppn_outputs,
    is_blank,
    render_programs,
    shader_field,
    soften,
)

__all__ = [
    "BLANK_STD",
    "BRANCH_PROB",
    "CATEGORY_RULES",
    "COMBINATORS",
    "CPPN_ACTIVATIONS",
    "CPPN_INPUTS",
    "CPPN_WIDTH",
    "DOMAIN_OPS",
    "FIELD_OPS",
    "FINISHES",
    "GLOBAL_DOMAIN_SLOTS",
    "GRAMMARS",
    "LATTICE",
    "LEAF_DOMAIN_SLOTS",
    "MAX_DEPTH",
    "NAME_PARAMS",
    "PALETTES",
    "RETRIES",
    "SPREAD",
    "U",
    "Lattice",
    "Op",
    "ProceduralPrograms",
    "batched_matmul",
    "canvas",
    "canvas_side",
    "cppn_outputs",
    "cppn_outputs_tensor",
    "describe_program",
    "instance_program",
    "is_blank",
    "pixel_centres",
    "render_programs",
    "resolve_program",
    "row_mean",
    "sample_program",
    "shader_field",
    "shader_field_tensor",
    "soften",
    "standardise",
]
