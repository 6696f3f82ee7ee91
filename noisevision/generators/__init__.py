"""Image generators, addressed by name through the registry (see registry.py).

Importing this package registers every family.
"""

from noisevision.generators.registry import (
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
from noisevision.generators import dead_leaves, fractals, mixing, statistical, stylegan  # noqa: E402,F401

__all__ = [
    "Generator",
    "GeneratorSpec",
    "get",
    "names",
    "register",
    "register_resolver",
    "spec",
    "specs",
]
