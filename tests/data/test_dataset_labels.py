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


def reference(indices, res=8, seed=3) -> torch.Tensor:
    return generators.get(GEN)(list(indices), res=res, seed=seed)


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
    n = 5
    for rank in (0, 1):
        data = GeneratorIterableDataset(
            GEN, res=8, seed=3, output="tensor", chunk=3, rank=rank, world_size=2, labels=True
        )
        loader = DataLoader(data, batch_size=None, num_workers=2)
        items = list(itertools.islice(iter(loader), 2 * n))
        indices = _positions(torch.stack([image for image, _ in items]), 4 * n)
        assert [label for _, label in items] == [i % CLASSES for i in indices]
        assert [i % 4 for i in indices] == [2 * rank, 2 * rank + 1] * n  # the stream's own split


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
