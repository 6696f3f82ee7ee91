"""Print each named generator's image hashes on this process's CPU code path, as JSON.

test_cpu_paths runs it in subprocesses under MKL's and ATen's dispatch switches, which make this
CPU take the code paths of other CPUs. Per generator: the sha256 of images [5, 0, 9] rendered as
one batch on two threads, and whether image 9 rendered alone on one thread has the same bytes.
"""

import hashlib
import json
import sys

import torch

from noisevision import generators

CHEAP = {"feature visualization": {"steps": 2}}  # as the in-process contract test


def probe(name: str) -> dict:
    spec = generators.spec(name)
    res = max(spec.min_res, min(spec.resolutions or (64,)))
    gen = generators.get(name, **CHEAP.get(spec.family, {}))
    torch.set_num_threads(2)
    batch = gen([5, 0, 9], res=res, seed=1)
    torch.set_num_threads(1)
    alone = gen([9], res=res, seed=1)
    return {
        "sha256": hashlib.sha256(batch.numpy().tobytes()).hexdigest(),
        "invariant": bool(torch.equal(alone[0], batch[2])),
        "portable": gen.portable,
    }


if __name__ == "__main__":
    json.dump({name: probe(name) for name in sys.argv[1:]}, sys.stdout)
