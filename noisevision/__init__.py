"""noisevision: learning to see by looking at noise.

Generate images from random processes, pre-train encoders on them, probe them on real images.
"""

from noisevision.errors import NoisevisionError

__version__ = "0.1.0"

__all__ = ["NoisevisionError", "__version__"]
