"""noisevision: learning to see by looking at noise.

Generate images from random processes, pre-train encoders on them, probe them on real images.
"""

import os

__version__ = "0.1.0"

# Tensors of 2 MB and more on transparent huge pages (a PyTorch CPU-allocator switch, read once at
# torch's first allocation, so it only takes effect when noisevision is imported before torch). The
# generators allocate and free many 1–10 MB temporaries per batch; with 4 kB pages every one costs
# thousands of first-touch page faults.
# THP_MEM_ALLOC_ENABLE=0 in the environment turns it off.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from noisevision.errors import NoisevisionError  # noqa: E402

__all__ = ["NoisevisionError", "__version__"]
