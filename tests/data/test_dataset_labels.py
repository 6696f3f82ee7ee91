"""(image, label) samples of generators with categories: GeneratorDataset / GeneratorIterableDataset
with labels=True."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import DataLoader

from noisevision import generators
from noisevision.data import GeneratorDataset, GeneratorIterableDataset
from noisevision.errors import NoisevisionError

pytestmark = pytest.mark.usefixtures("one_thread")
GEN, CLASSES = "test-classes", 5  # conftest: a colour per category
GEN4 = "test-classes-4"  # the same with 4 categories


def reference(indices, res=8, seed=3, name=GEN) -> torch.Tensor:
    return generators.get(name)(list(indices), res=res, seed=seed)


def test_item_i_is_image_i_with_its_category():
    data = GeneratorDataset(GEN, 23, res=8, seed=3, output="tensor", labels=True)
    ref = reference(range(23))
    for i in (0, 4, 5, 22, -1):
        image, label = data[i]
        assert torch.equal(image, ref[i]) and label == (i % 23) % CLASSES and isinstance(label, int)
    assert [label for _, label in data] == [i % CLASSES for i in range(23)]


def test_labels_are_the_same_in_any_batch_and_order():
    data = GeneratorDataset(GEN, 40, res=8, seed=3, output="tensor", labels=True)
    order = [39, 0, 17, 17, 3, 12, 25, 8, 31]
    got = [(images, labels) for images, labels in DataLoader(data, batch_size=4, sampler=order)]
    images, labels = torch.cat([g[0] for g in got]), torch.cat([g[1] for g in got])
    assert labels.dtype == torch.int64 and labels.tolist() == [i % CLASSES for i in order]
    assert torch.equal(images, reference(order))
    shuffled = DataLoader(data, batch_size=7, shuffle=True, num_workers=2)
    for images, labels in shuffled:  # whatever worker renders a batch, each image keeps its label
        assert torch.equal(labels, generators.get(GEN).labels(_positions(images, 40)))


def _positions(images: torch.Tensor, count: int) -> list[int]:
    """The index of each image, found by its bytes among the first `count` images."""
    position = {img.numpy().tobytes(): i for i, img in enumerate(reference(range(count)))}
    return [position[img.numpy().tobytes()] for img in images]


def test_iterable_dataset_labels_follow_the_index_across_workers_and_ranks():
    """4 shards (2 ranks × 2 workers) and 4 categories: with the plain stride each worker would see
    one category; the rotating order gives every worker each category once in every 4 images, and
    the workers together still cover positions 0..4n-1 without repeats."""
    n, classes = 8, 4
    position = {img.numpy().tobytes(): i for i, img in enumerate(reference(range(4 * n + 8), name=GEN4))}
    seen = []
    for rank in (0, 1):
        data = GeneratorIterableDataset(
            GEN4, res=8, seed=3, output="tensor", chunk=3, rank=rank, world_size=2, labels=True
        )
        loader = DataLoader(data, batch_size=None, num_workers=2)  # workers take turns, item by item
        items = list(itertools.islice(iter(loader), 2 * n))
        indices = [position[image.numpy().tobytes()] for image, _ in items]
        assert [label for _, label in items] == [i % classes for i in indices]
        for worker in (0, 1):
            labels = [i % classes for i in indices[worker::2]]
            assert sorted(labels[:classes]) == sorted(labels[classes:]) == list(range(classes))
        seen += indices
    assert sorted(seen) == list(range(4 * n))


def test_iterable_positions_rotate_only_with_labels():
    plain = GeneratorIterableDataset(GEN4, res=8, chunk=6, rank=1, world_size=2)
    labelled = GeneratorIterableDataset(GEN4, res=8, chunk=6, rank=1, world_size=2, labels=True, start=10)
    assert next(plain.positions()).tolist() == [1, 3, 5, 7, 9, 11]  # the stride: positions ≡ 1 mod 2
    # 2 shards, 4 categories: the order rotates every 4 / gcd(2, 4) = 2 rounds
    assert next(labelled.positions()).tolist() == [11, 13, 14, 16, 19, 21]
    assert [p % 4 for p in next(labelled.positions()).tolist()[:4]] == [3, 1, 2, 0]


def test_the_label_of_an_index_is_the_generators():
    gen = generators.get(GEN, classes=7)
    assert gen.labels(torch.tensor([0, 6, 7, 50])).tolist() == [0, 6, 0, 1]
    assert gen.describe()["num_classes"] == 7 and "num_classes" not in generators.get("test-blobs").describe()
    data = GeneratorIterableDataset(GEN, res=8, start=10, rank=0, world_size=1, labels=True)
    assert [label for _, label in itertools.islice(iter(data), 6)] == [0, 1, 2, 3, 4, 0]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: GeneratorDataset("test-blobs", 5, labels=True), "'test-blobs' has none"),
        (lambda: GeneratorIterableDataset("test-blobs", labels=True), "'test-blobs' has none"),
        (lambda: GeneratorDataset(f"{GEN}+{GEN}", 5, labels=True), "has none"),
        (lambda: GeneratorDataset(GEN, 5, labels="yes"), "labels must be True or False"),
        (lambda: generators.get("test-blobs").labels([0, 1]), "'test-blobs' has no categories"),
    ],
)
def test_labels_without_categories_is_one_line_before_any_rendering(make, match, monkeypatch):
    rendered = []
    monkeypatch.setattr(generators.registry.Generator, "render_indices", lambda *a: rendered.append(a))
    with pytest.raises(NoisevisionError, match=match) as info:
        make()
    assert "\n" not in str(info.value) and not rendered
