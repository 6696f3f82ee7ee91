"""Image generators, addressed by name through the registry (see registry.py).

Importing this package registers every family.
"""

from noisevision.generators.registry import (  # noqa: I001 (family modules below, in list order)
    GENERATORS,
    Generator,
    GeneratorSpec,
    get,
    names,
    register,
    register_resolver,
    spec,
    specs,
)

# Each family module registers its names on import (order = order in `noisevision list`).
from noisevision.generators import dead_leaves, statistical, stylegan, feature_vis, fractals  # noqa: E402,F401
from noisevision.generators import programs, mixing  # noqa: E402,F401
from noisevision.generators import fdsl  # noqa: E402,F401
from noisevision.generators import params  # noqa: E402

register_resolver(params.resolve_declared, params.USAGE)  # after the families' own name syntaxes

__all__ = [
    "GENERATORS",
    "Generator",
    "GeneratorSpec",
    "get",
    "names",
    "register",
    "register_resolver",
    "spec",
    "specs",
]
