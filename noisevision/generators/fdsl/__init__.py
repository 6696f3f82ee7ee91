"""Formula-driven supervised learning: labelled families whose classes are formulas.

RCDB and VisualAtom (orbits of radial contours) and 1p-frac (one fractal, perturbed). Image i of
a family with C classes is instance i // C of class i mod C (`Generator.labels`). Parameters can
be given in the name, wherever a generator name is accepted: `rcdb:classes=100`,
`visualatom:lambda_min=2,lambda_max=6`, `fractal-1p:delta=0.05,sigma=4`.
"""

from __future__ import annotations  # noqa: I001 (the families in list order, below)

from typing import Any

from noisevision.generators import params as params_module
from noisevision.generators import registry

# each registers its names on import, in this order in `noisevision list`
from noisevision.generators.fdsl import rcdb, visualatom, one_fractal

FAMILIES = ("rcdb", "visualatom", "fractal-1p")


def resolve(name: str, params: dict[str, Any]) -> registry.Generator | None:
    """Registry resolver for `<family>:key=value,…` (numbers as written; the constructor checks
    them). The generator is the family's own under the name as written, with those parameters:
    the same images as `get(family, key=value)`. Parameters given as arguments too (e.g. rebuilt
    from a dataset manifest, which records both) take the argument's value."""
    base, sep, _ = name.partition(":")
    if not sep or base not in FAMILIES:
        return None
    _, given = params_module.split_name(name, example=f"{base}:classes=100")
    return registry.build_named(base, name, given, params)


registry.register_resolver(
    resolve,
    "rcdb|visualatom|fractal-1p:key=value,… — a formula-driven family with its parameters in the name, "
    "e.g. rcdb:classes=100, fractal-1p:delta=0.05",
)
__all__ = ["FAMILIES", "one_fractal", "rcdb", "resolve", "visualatom"]
