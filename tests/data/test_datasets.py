"""Per-image datasets over a generator (noisevision.data.GeneratorDataset / GeneratorIterableDataset)."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from noisevision import generators
from noisevision.data import GeneratorDataset, GeneratorIterableDataset
from noisevision.data.datasets import DatasetIndexError
from noisevision.errors import NoisevisionError, UnknownNameError

pytestmark = pytest.mark.usefixtures("one_thread")
GEN = "test-blobs"


def reference(indices, res=16, seed=3) -> torch.Tensor:
    return generators.get(GEN)(list(indices), res=res, seed=seed)


def test_item_i_is_image_i_byte_for_byte_as_pil_or_tensor():
    ref = reference(range(10))
    pil = GeneratorDataset(GEN, 10, res=16, seed=3)
    tensors = GeneratorDataset(GEN, 10, res=16, seed=3, output="tensor")
    assert len(pil) == 10 and isinstance(pil[0], Image.Image) and pil[0].size == (16, 16)
    for i in (0, 7, -1):
        assert np.array_equal(np.asarray(pil[i]), ref[i].permute(1, 2, 0).numpy())
        assert tensors[i].dtype == torch.uint8 and torch.equal(tensors[i], ref[i])
    assert len(list(tensors)) == 10  # plain iteration stops at the end (IndexError)


def test_a_dataloader_batch_is_one_generator_call_in_the_samplers_order():
    data = GeneratorDataset(GEN, 100, res=16, seed=3, output="tensor")
    calls = []
    render = data.source.render
    data.source.render = lambda idx, device="cpu": calls.append(idx.tolist()) or render(idx, device)
    order = [5, 99, 0, 42, 42, 7, 13, 64]
    batches = list(DataLoader(data, batch_size=4, sampler=order))
    assert calls == [order[:4], order[4:]]  # __getitems__: one call per batch
    assert torch.equal(torch.cat(batches), reference(order))


def test_two_view_transform_collates_into_a_pair_of_batches():
    views = v2.Compose(
        [
            v2.PILToTensor(),
            v2.RandomResizedCrop(8, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    data = GeneratorDataset(GEN, 20, res=16, transform=lambda img: (views(img), views(img)))
    first, second = next(iter(DataLoader(data, batch_size=6, shuffle=True)))
    assert first.shape == second.shape == (6, 3, 8, 8) and first.dtype == torch.float32


def test_mixes_and_pickling():
    data = GeneratorDataset(f"{GEN}:1+{GEN}:3", 8, res=16, output="tensor")
    assert data[3].shape == (3, 16, 16)
    back = pickle.loads(pickle.dumps(GeneratorDataset(GEN, 8, res=16, output="tensor")))
    assert torch.equal(back[2], reference([2], seed=0)[0])


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: GeneratorDataset(GEN, 5)[5], DatasetIndexError, r"index 5 out of range .* \(0..4\)"),
        (lambda: GeneratorDataset(GEN, 5)[-6], DatasetIndexError, "index -6 out of range"),
        (lambda: GeneratorDataset(GEN, 5)[1.5], NoisevisionError, "integers"),
        (lambda: GeneratorDataset(GEN, 5).__getitems__([0, 9]), DatasetIndexError, "index 9"),
        (lambda: GeneratorDataset(GEN, -3), NoisevisionError, "size .* integer ≥ 1, got -3"),
        (lambda: GeneratorDataset(GEN, 0), NoisevisionError, "size"),
        (lambda: GeneratorDataset(GEN, 2.5), NoisevisionError, "size"),
        (lambda: GeneratorDataset("test-blobz", 5), UnknownNameError, "did you mean test-blobs"),
        (lambda: GeneratorDataset(GEN, 5, output="numpy"), NoisevisionError, "output must be one of pil, "),
        (lambda: GeneratorDataset(GEN, 5, seed=-1), NoisevisionError, "seed"),
        (lambda: GeneratorDataset(GEN, 5, res=2), NoisevisionError, "too small"),
        (lambda: GeneratorDataset(".", 5), NoisevisionError, "is a folder"),
        (lambda: GeneratorIterableDataset("test-blobz"), UnknownNameError, "did you mean"),
        (lambda: GeneratorIterableDataset(GEN, rank=2, world_size=2), NoisevisionError, "rank 2 is not in"),
        (lambda: GeneratorIterableDataset(GEN, start=-1), NoisevisionError, "start"),
    ],
)
def test_bad_inputs_are_one_line_errors(make, error, match):
    with pytest.raises(error, match=match) as info:
        make()
    assert isinstance(info.value, NoisevisionError) and "\n" not in str(info.value)


def test_out_of_range_is_also_an_index_error():
    with pytest.raises(IndexError):
        GeneratorDataset(GEN, 5)[5]


def test_iterable_dataset_alone_streams_images_in_order_from_start():
    data = GeneratorIterableDataset(
        GEN, res=16, seed=3, output="tensor", start=100, chunk=3, rank=0, world_size=1
    )
    got = torch.stack(list(itertools.islice(iter(data), 8)))
    assert torch.equal(got, reference(range(100, 108)))


def test_iterable_dataset_reads_torchruns_rank(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    data = GeneratorIterableDataset(GEN, res=16)
    assert (data.rank, data.world_size) == (1, 3) and data.shard() == (1, 3)


def test_two_workers_on_two_ranks_share_the_stream_without_repeats():
    """Worker w of W on rank r of R takes positions ≡ r·W + w (mod R·W): after n images from each
    of the four workers, the union is exactly positions 0..4n-1."""
    n = 6
    ref = reference(range(4 * n + 8), res=8)
    position = {bytes(img.numpy().tobytes()): i for i, img in enumerate(ref)}
    seen = []
    for rank in (0, 1):
        data = GeneratorIterableDataset(GEN, res=8, seed=3, output="tensor", chunk=4, rank=rank, world_size=2)
        loader = DataLoader(data, batch_size=None, num_workers=2)  # workers take turns, item by item
        items = list(itertools.islice(iter(loader), 2 * n))
        seen += [position.get(bytes(img.numpy().tobytes()), -1) for img in items]
        assert [p % 4 for p in seen[-2 * n :]] == [2 * rank, 2 * rank + 1] * n
    assert sorted(seen) == list(range(4 * n))


def test_bench_datasets_prints_the_generator_and_each_loader(run_cli):
    code, out, err = run_cli(
        "bench", "datasets", GEN, "--res", "8", "--batch-size", "4", "--rounds", "1", "--min-time", "0.01"
    )
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("# ") and [line.split()[0:2] for line in lines[1:]] == [
        ["generator", "call"],
        ["loader,", "tensor"],
        ["loader,", "pil"],
    ]
    assert "× the generator call" in lines[2]
    code, _, err = run_cli("bench", "datasets", GEN, "--outputs", "jpeg")
    assert code == 2 and err.startswith("error:") and "unknown output 'jpeg'" in err
