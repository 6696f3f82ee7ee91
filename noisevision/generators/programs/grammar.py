"""Drawing programs: every random number of a batch of programs, from the images' keys.

A program has a fixed shape (the same slots for every image: a chain of global domain
transforms, a tree of 2^depth - 1 nodes, each a field after its own domain transforms or a
combinator of two sub-trees, and a CPPN's layers); each slot's operator is drawn per image.
"""

from __future__ import annotations

import torch
from torch import Tensor

from noisevision.generators.programs.operators import (
    COMBINATOR_WEIGHTS,
    CPPN_ACTIVATIONS,
    DOMAIN_WEIGHTS,
    FIELD_WEIGHTS,
    LATTICE,
    PALETTES,
    U,
    _lerp,
    _loglerp,
)
from noisevision.rng import Rng

GRAMMARS = ("cppn", "shader", "mixed")
MAX_DEPTH = 6
GLOBAL_DOMAIN_SLOTS = 3  # domain transforms applied to the whole shader program
LEAF_DOMAIN_SLOTS = 2  # and to each field before it is evaluated
CPPN_WIDTH = 16
CPPN_INPUTS = 8
# How likely a tree node (above the last level) is to branch instead of being a field.
BRANCH_PROB = 0.75


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
            rng.randint(0, len(CPPN_ACTIVATIONS), layers),
            len(CPPN_ACTIVATIONS),
        ),
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
    }
    return p
