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
