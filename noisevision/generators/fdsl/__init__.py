"""Formula-driven supervised learning: labelled families whose classes are formulas.

RCDB and VisualAtom (orbits of radial contours) and 1p-frac (one fractal, perturbed).

Image i of a family with C classes is instance i // C of class i mod C (`Generator.labels`).
"""

# each registers its names on import, in this order in `noisevision list`
from noisevision.generators.fdsl import rcdb, visualatom, one_fractal  # noqa: F401,I001
