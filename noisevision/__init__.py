"""noisevision: learning to see by looking at noise.

Generate images from random processes, pre-train encoders on them, probe them on real images.
"""

__version__ = "0.1.0"

from noisevision.errors import NoisevisionError  # noqa: E402

__all__ = ["NoisevisionError", "__version__"]
