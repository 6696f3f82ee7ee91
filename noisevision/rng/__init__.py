"""Counter-based random numbers: every value is a hash of (image key, draw, element).

`streams` holds the per-image streams (`Rng`) and seed checks, `splitmix` the SplitMix64 hash as
int64 tensor code, `cpu` and `cuda` the same hash as numba loops and fused Triton kernels.
"""

from noisevision.rng.splitmix import hash_words, mix64_int, name_hash, uniform24
from noisevision.rng.streams import MAX_SEED, Rng, as_indices, check_seed, mix64

__all__ = [
    "MAX_SEED",
    "Rng",
    "as_indices",
    "check_seed",
    "hash_words",
    "mix64",
    "mix64_int",
    "name_hash",
    "uniform24",
]
