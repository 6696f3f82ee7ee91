"""Where a labelled dataset folder keeps each image (folder_index.Layout), and that its writers keep
the folder's guarantees: every image once, the same bytes whoever writes it."""

from __future__ import annotations

import hashlib
import threading

import pytest
import torch

from noisevision.data import folder
from noisevision.data.folder_index import BLOCK, Layout

CPU = torch.device("cpu")


@pytest.mark.parametrize("classes", [0, 1, 3, 7, 1000])
@pytest.mark.parametrize(
    "within", [range(0, 10), range(5, 2600), range(2995, 3010), range(7, 8), range(4, 4)]
)
def test_blocks_partition_any_range(classes, within):
    layout = Layout("train", classes)
    seen = []
    for block in layout.blocks(within):
        mine = layout.indices(block, within)
        assert len(mine) and all(layout.block_of(i) == block for i in mine)
        seen += list(mine)
    assert sorted(seen) == list(within)


def test_a_block_holds_instances_of_one_category():
    layout = Layout("val", 4)
    assert layout.folder(folder.Path("d"), layout.block_of(4 * BLOCK + 2)).as_posix() == "d/val/2/00001"
    assert list(layout.indices(layout.block_of(2), range(0, 20))) == [2, 6, 10, 14, 18]
    assert Layout("train", 1000).class_folder(7) == "007" and Layout("train", 10).class_folder(9) == "9"


def test_device_groups_are_consecutive_instances_of_one_category():
    layout = Layout("train", 5)
    groups = list(folder._aligned_blocks([3, 8, 13, 4, 48], 4, layout))
    assert groups == [([3, 8, 13, 18], [3, 8, 13]), ([4, 9, 14, 19], [4]), ([43, 48, 53, 58], [48])]
    assert all(layout.group(i, 4) == layout.group(g[0], 4) for g, _ in groups for i in g)


def test_a_scan_of_a_huge_labelled_range_stays_lazy(tmp_path):
    found = folder.scan(tmp_path, range(10**14), "jpg", layout=Layout("train", 1000))
    assert found.missing == 10**14
    block, items = next(found.todo())
    assert block == 0 and [i for i, _ in items[:3]] == [0, 1000, 2000] and len(items) == BLOCK


def digest(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted((root / "train").rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def test_concurrent_writers_of_overlapping_ranges_write_each_image_once(tmp_path):
    spec = folder.DatasetSpec("test-classes", {}, 0, 8, 60)
    folder.write_dataset(tmp_path / "ref", spec, range(60), CPU, 1, 4)
    out, counts = tmp_path / "d", {}
    barrier = threading.Barrier(2)

    def writer(share: range) -> None:
        barrier.wait()
        counts[share.start] = folder.write_dataset(out, spec, share, CPU, 1, 4)

    threads = [threading.Thread(target=writer, args=(r,)) for r in (range(0, 40), range(20, 60))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts.values()) == 60 and digest(out) == digest(tmp_path / "ref")
    assert folder.missing_indices(out, range(60), "jpg", layout=spec.layout()) == []


def test_a_manifest_without_categories_is_another_dataset(tmp_path):
    folder.prepare_folder(tmp_path, folder.DatasetSpec("test-blobs", {}, 0, 8, 4))
    assert folder.DatasetSpec("test-blobs", {}, 0, 8, 4).num_classes == 0
    folder.prepare_folder(tmp_path, folder.DatasetSpec("test-blobs", {}, 0, 8, 4, num_classes=0))  # same
    manifest = folder.read_manifest(tmp_path)
    del manifest["num_classes"]  # as older versions wrote it: no categories
    folder.atomic_write_bytes(tmp_path / folder.MANIFEST, folder.json.dumps(manifest).encode())
    folder.prepare_folder(tmp_path, folder.DatasetSpec("test-blobs", {}, 0, 8, 4))
    with pytest.raises(folder.NoisevisionError, match="num_classes=0 there vs 3 asked"):
        folder.prepare_folder(tmp_path, folder.DatasetSpec("test-blobs", {}, 0, 8, 4, num_classes=3))


def test_gpu_claims_render_each_category_group_once_and_equal_the_cpu_path(tmp_path, monkeypatch):
    """On a GPU, renders follow fixed groups of consecutive instances of one category (here 4), each
    rendered once per split (a group across the train/val boundary is rendered by both, the same
    bytes), whatever the claims; the files equal the CPU path's, validation split included."""
    from noisevision import generators

    real, rendered = generators.get, []

    class OnCpu:  # a "GPU" generator that renders on the CPU and logs the groups it is asked for
        def __init__(self, gen):
            self.gen = gen

        def device_block(self, res):
            return 4

        def batch_invariant(self, device):
            return False  # as for a family whose GPU kernels round by batch shape

        def __call__(self, indices, res, seed, device):
            rendered.append(list(indices))
            return self.gen(indices, res=res, seed=seed, device="cpu")

    spec = folder.DatasetSpec("test-classes", {}, 0, 8, 30, val=10)
    for split, share in (("train", range(30)), ("val", spec.val_indices())):
        folder.write_dataset(tmp_path / "cpu", spec, share, CPU, 1, 3, split=split)
    monkeypatch.setattr(generators, "get", lambda name, **kw: OnCpu(real(name, **kw)))
    for split, share in (("train", range(30)), ("val", spec.val_indices())):
        rendered.clear()
        folder.write_dataset(tmp_path / "gpu", spec, share, torch.device("cuda"), 2, 3, split=split)
        assert len(rendered) == len({tuple(r) for r in rendered}) == {"train": 10, "val": 5}[split]
        for group in rendered:
            assert len(group) == 4 and len({i % 5 for i in group}) == 1 and group[0] // 5 % 4 == 0
    files = sorted(p.relative_to(tmp_path / "cpu") for p in (tmp_path / "cpu").rglob("*.jpg"))
    assert len(files) == 40 and all(
        (tmp_path / "gpu" / f).read_bytes() == (tmp_path / "cpu" / f).read_bytes() for f in files
    )
    assert folder.Path("val/2/00000/00000037.jpg") in files


def test_a_worker_task_writes_into_its_split(tmp_path):
    spec = folder.DatasetSpec("test-classes", {}, 0, 8, 20, val=5)
    folder.prepare_folder(tmp_path, spec)
    assert folder._render_and_write(str(tmp_path), spec, [21, 23], "cpu", "val") == 2
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jpg")) == [
        "val/1/00000/00000021.jpg",
        "val/3/00000/00000023.jpg",
    ]


def test_a_batch_invariant_generator_renders_just_the_claimed_images_on_a_gpu(tmp_path, monkeypatch):
    from noisevision import generators

    real, rendered = generators.get, []

    class OnCpu:
        def __init__(self, gen):
            self.gen = gen

        def device_block(self, res):
            return 256

        def batch_invariant(self, device):
            return True

        def __call__(self, indices, res, seed, device):
            rendered.append(list(indices))
            return self.gen(indices, res=res, seed=seed, device="cpu")

    spec = folder.DatasetSpec("test-classes", {}, 0, 8, 30)
    folder.write_dataset(tmp_path / "cpu", spec, range(30), CPU, 1, 4)
    monkeypatch.setattr(generators, "get", lambda name, **kw: OnCpu(real(name, **kw)))
    folder.write_dataset(tmp_path / "gpu", spec, range(30), torch.device("cuda"), 1, 4)
    assert sum(len(r) for r in rendered) == 30  # not 5 groups of 256
    assert digest(tmp_path / "gpu") == digest(tmp_path / "cpu")
