"""The generator contract, checked on every registered generator."""

import pytest
import torch

from noisevision import generators
from noisevision.errors import NoisevisionError, UnknownNameError

# Parameters that keep each family cheap enough for a default test run.
CHEAP = {"feature visualization": {"steps": 2}}


def _cheap(name):
    spec = generators.spec(name)
    res = max(spec.min_res, min(spec.resolutions or (64,)))
    return generators.get(name, **CHEAP.get(spec.family, {})), res


@pytest.mark.parametrize("name", generators.names())
def test_contract_shape_dtype_and_index_purity(name):
    gen, res = _cheap(name)
    batch = gen([5, 0, 9], res=res, seed=1)
    assert batch.dtype == torch.uint8 and batch.shape == (3, 3, res, res)
    before = torch.get_num_threads()
    torch.set_num_threads(1 if before > 1 else 2)
    try:
        alone = gen([9], res=res, seed=1)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(alone[0], batch[2]), "image 9 changed with its batch or the torch thread count"
    assert not torch.equal(batch[0], batch[1]), "different indices gave the same image"


def test_unknown_name_suggests_closest():
    with pytest.raises(UnknownNameError, match="did you mean"):
        generators.get("test-blob")


def test_resolution_checks():
    gen = generators.get("test-blobs")
    with pytest.raises(NoisevisionError, match="too small"):
        gen([0], res=4)
    with pytest.raises(NoisevisionError, match="non-negative"):
        gen([-1], res=16)
    assert gen([], res=16).shape == (0, 3, 16, 16)


def test_chunking_does_not_change_images(monkeypatch):
    gen = generators.get("test-blobs")
    whole = gen(range(10), res=16)
    monkeypatch.setattr(type(gen), "max_batch", 3)
    assert torch.equal(whole, gen(range(10), res=16))


def test_gpu_batches_follow_the_pixel_budget():
    """On a GPU, families with a pixel budget render more images per call (fewer launches per
    image), as many as fit the budget at that size, never fewer than on a CPU, and below 64 px no
    more than at 64 px; `generate` renders in blocks of that size there."""
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    programs = generators.get("program-mixed")
    assert programs.batch_limit(128, cpu) == programs.max_batch == 128
    assert [programs.batch_limit(r, gpu) for r in (16, 64, 128, 256, 512, 1024)] == [
        4096,
        4096,
        1024,
        256,
        128,
        128,
    ]
    assert programs.device_block(128) == 1024
    dense = generators.get("stylegan-random")  # no budget: ~100 MB per image
    assert dense.batch_limit(256, gpu) == dense.batch_limit(256, cpu) == dense.max_batch
    assert generators.get("stylegan-oriented").batch_limit(256, gpu) == 256
    assert generators.get("dead_leaves-mixed").batch_limit(128, gpu) == 1024


def test_cuda_absent_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(NoisevisionError, match="CUDA is not available"):
        generators.get("test-blobs")([0], device="cuda")
