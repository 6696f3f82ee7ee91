"""`generate` and `show` of a generator with categories: class folders ImageFolder reads, a held-out
validation split, one row per category."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.datasets import ImageFolder

from noisevision.data import folder
from noisevision.visualize import DPI, grid_size

GEN, CLASSES = "test-classes", 5  # conftest: a colour per category, 5 categories


def digest(root: Path) -> dict[str, str]:
    """Every file below the folder (images and their records), by path."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in (folder.MANIFEST, ".lock")
    }


def generate(run_cli, out: Path, *extra: str, num: int = 23, val: int = 7) -> str:
    code, stdout, err = run_cli(
        "generate",
        GEN,
        "--out",
        out,
        "-n",
        num,
        "--val-images",
        val,
        "--workers",
        "1",
        "--batch-size",
        "3",
        *extra,
    )
    assert code == 0, err
    return stdout


def test_imagefolder_reads_the_categories_as_labels(run_cli, tmp_path):
    out = tmp_path / "ds"
    generate(run_cli, out)
    train, val = ImageFolder(str(out / "train")), ImageFolder(str(out / "val"))
    assert train.classes == val.classes == [str(c) for c in range(CLASSES)]
    for data, indices in ((train, range(23)), (val, range(23, 30))):
        got = {int(Path(path).stem): label for path, label in data.samples}
        assert got == {i: i % CLASSES for i in indices}  # every image once, with its category
    assert train.samples[0][0].endswith("train/0/00000/00000000.jpg")
    manifest = json.loads((out / folder.MANIFEST).read_text())
    assert (manifest["num_classes"], manifest["num"], manifest["val"]) == (CLASSES, 23, 7)
    assert "23..29" in manifest["val_layout"]
    assert "wrote 0 images (30 already there)" in generate(run_cli, out)


def test_class_folders_sort_as_the_category_numbers(tmp_path):
    """12 categories: folders 00..11, so that ImageFolder's sorted order puts 10 after 09."""
    spec = folder.DatasetSpec(GEN, {"classes": 12}, 0, 16, 13)
    assert spec.num_classes == 12
    folder.write_dataset(tmp_path, spec, range(13), torch.device("cpu"), 1, 4)
    data = ImageFolder(str(tmp_path / "train"))
    assert data.classes == [f"{c:02d}" for c in range(12)]
    assert [(int(Path(p).stem), label) for p, label in data.samples] == [(0, 0), (12, 0)] + [
        (i, i) for i in range(1, 12)
    ]


def test_resumed_and_sharded_writes_give_the_same_bytes(run_cli, tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    generate(run_cli, ref)
    sharded = tmp_path / "sharded"
    for k in (2, 1, 3):
        generate(run_cli, sharded, "--shard", f"{k}/3")
    assert digest(sharded) == digest(ref)

    real, calls = folder.encode, [0]

    def interrupted(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 8:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(folder, "encode", interrupted)
    code, _, err = run_cli(
        "generate", GEN, "--out", resumed, "-n", 23, "--val", 7, "--workers", "1", "--batch-size", "3"
    )
    assert code == 130 and 0 < len([k for k in digest(resumed) if k.endswith(".jpg")]) < 30
    (resumed / "train" / "0" / "00000" / "00000005.jpg").write_bytes(b"damaged")
    monkeypatch.setattr(folder, "encode", real)
    assert "already there" in generate(run_cli, resumed)
    assert digest(resumed) == digest(ref)


def test_the_validation_split_never_overlaps_training(run_cli, tmp_path):
    out = tmp_path / "ds"
    generate(run_cli, out, num=10, val=5)
    code, _, err = run_cli("generate", GEN, "--out", out, "-n", 12, "--workers", "1")
    assert code == 2 and "validation images 10..14" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli("generate", GEN, "--out", out, "-n", 8, "--val", 5, "--workers", "1")
    assert code == 2 and "holds 10 training images" in err
    generate(run_cli, out, num=10, val=9)  # more validation images: 10..18
    assert len(list((out / "val").rglob("*.jpg"))) == 9
    assert run_cli("generate", GEN, "--out", out, "-n", 6, "--workers", "1")[0] == 0  # a part: fine
    from noisevision.data.stream import open_source

    assert open_source(str(out), res=16).size == 10  # training reads train/ only


def test_unlabelled_generators_get_a_validation_split_too(run_cli, tmp_path):
    out = tmp_path / "ds"
    assert run_cli("generate", "test-blobs", "--out", out, "-n", 4, "--val", 3, "--workers", "1")[0] == 0
    assert sorted(p.name for p in (out / "val").rglob("*.jpg")) == [f"{i:08d}.jpg" for i in (4, 5, 6)]
    assert (out / "val" / "00000").is_dir()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("generate", GEN, "--out", "{tmp}/a", "-n", "3", "--val-images", "-2"),
            "--val-images must be 0 or more",
        ),
        (("show", "test-blobs", "--by-class", "--out", "{tmp}/g.png"), "'test-blobs' has none"),
        (("show", GEN, "--by-class", "--classes", "6", "--out", "{tmp}/g.png"), "--classes must be in 1..5"),
        (("show", GEN, "--classes", "2", "--out", "{tmp}/g.png"), "add --by-class"),
        (("show", GEN, "test-blobs", "--by-class", "--out", "{tmp}/g.png"), "not 2 generators"),
    ],
)
def test_bad_input_is_one_line(run_cli, tmp_path, args, message):
    code, stdout, err = run_cli(*(a.format(tmp=tmp_path) for a in args))
    assert code == 2 and message in err and "Traceback" not in err + stdout
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "a").exists()


def test_show_by_class_draws_one_row_per_category(run_cli, tmp_path):
    sizes = {}
    for classes in ("2", "4"):
        grid = tmp_path / f"g{classes}.png"
        code, _, err = run_cli(
            "show", GEN, "--by-class", "--classes", classes, "-n", "3", "--res", "16", "--out", grid
        )
        assert code == 0, err
        sizes[int(classes)] = Image.open(grid).size
    for rows, size in sizes.items():
        width, height = grid_size(rows, 3)
        assert size == (round(width * DPI), round(height * DPI))
    grid = tmp_path / "default.png"
    assert run_cli("show", GEN, "--by-class", "-n", "2", "--res", "16", "--out", grid)[0] == 0
    assert Image.open(grid).size[1] == round(grid_size(CLASSES, 2)[1] * DPI)  # all 5 (default: up to 8)


def test_training_reads_the_categories_of_a_class_folder_tree(run_cli, tmp_path):
    """A folder `generate` wrote for a labelled generator is a classification set for training too:
    each file's label is its class folder, the generator's category of its index."""
    from noisevision.data.stream import open_source

    out = tmp_path / "ds"
    generate(run_cli, out, num=23, val=7)
    src = open_source(str(out), res=16)
    assert src.num_classes == CLASSES and src.size == 23
    labels = src.labels(torch.arange(src.size))
    images = src.render(torch.arange(src.size)).float()
    for f, label in zip(src.files, labels.tolist(), strict=True):
        assert int(f.name.split(".")[0]) % CLASSES == label == int(f.parent.parent.name)
    # the conftest generator paints one colour per category: the label predicts the image
    means = torch.stack([images[labels == c].mean((0, 2, 3)) for c in range(CLASSES)])
    assert torch.cdist(means, means).add(torch.eye(CLASSES) * 1e3).min() > 10
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in src.files[:3]:
        (flat / f.name).write_bytes(f.read_bytes())
    assert open_source(str(flat), res=16).num_classes == 0  # no class folders: no categories
