"""Evaluation sets: Fashion-MNIST reader, image folders, ImageNet-100 selection, one-line errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from noisevision.data import eval_datasets as ed
from noisevision.errors import NoisevisionError

FMNIST = ed.FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz"


@pytest.fixture(scope="module")
def fmnist() -> ed.EvalDataset:
    if not FMNIST.exists():
        pytest.skip("dataset-fashion-mnist is not installed")
    return ed.load_eval_dataset("fashion-mnist")


def test_fashion_mnist_counts_shapes_labels(fmnist: ed.EvalDataset) -> None:
    assert fmnist.num_classes == 10 and fmnist.classes[9] == "Ankle boot"
    assert fmnist.train.images.shape == (60000, 1, 28, 28) and fmnist.train.images.dtype == torch.uint8
    assert fmnist.test.images.shape == (10000, 1, 28, 28)
    assert fmnist.train.labels.bincount().tolist() == [6000] * 10
    assert fmnist.test.labels.bincount().tolist() == [1000] * 10
    # The published first labels (ankle boot, T-shirt, T-shirt, dress ...) and mean pixel 0.2860.
    assert fmnist.train.labels[:6].tolist() == [9, 0, 0, 3, 0, 2]
    assert fmnist.test.labels[:6].tolist() == [9, 2, 1, 1, 6, 1]
    mean = fmnist.train.images.float().mean().item() / 255
    assert mean == pytest.approx(0.2860, abs=5e-4)
    assert fmnist.train.images.max() == 255 and fmnist.train.images.min() == 0


def test_fashion_mnist_batches_are_rgb(fmnist: ed.EvalDataset) -> None:
    imgs = fmnist.test.load(torch.tensor([0, 5]))
    assert imgs[0].shape == (3, 28, 28)
    assert torch.equal(imgs[0][0], imgs[0][2])  # grayscale repeated


def test_missing_fashion_mnist_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(NoisevisionError, match="apt-get install dataset-fashion-mnist.*--download") as exc:
        ed.load_fashion_mnist(tmp_path)
    assert "\n" not in str(exc.value)


def _write_fashion_mnist(root: Path) -> None:
    root.mkdir(parents=True)
    for prefix, n in (("train", 6), ("t10k", 4)):
        _write_idx(root / f"{prefix}-images-idx3-ubyte.gz", np.full((n, 28, 28), n))
        _write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)


def test_fashion_mnist_without_the_debian_package_is_fetched_with_download(tmp_path, monkeypatch) -> None:
    """Without Debian's package: one line naming both routes; --download fetches the files through
    torchvision (stubbed here: no network in tests) into the data root, and later runs read them."""
    import torchvision.datasets as tvd

    monkeypatch.setattr(ed, "FASHION_MNIST_DIR", tmp_path / "no-debian-package")
    monkeypatch.delenv("NOISEVISION_FASHION_MNIST", raising=False)
    monkeypatch.setenv("NOISEVISION_DATA", str(tmp_path / "data"))
    with pytest.raises(NoisevisionError, match="apt-get install .* or pass --download"):
        ed.load_eval_dataset("fashion-mnist")
    calls = []

    def fetch(root, train, download):
        calls.append((root, train, download))
        if not (Path(root) / "FashionMNIST" / "raw").exists():
            _write_fashion_mnist(Path(root) / "FashionMNIST" / "raw")

    monkeypatch.setattr(tvd, "FashionMNIST", fetch)
    data = ed.load_eval_dataset("fashion-mnist", download=True)
    assert calls == [(str(tmp_path / "data"), True, True), (str(tmp_path / "data"), False, True)]
    assert len(data.train) == 6 and len(data.test) == 4
    calls.clear()
    assert len(ed.load_eval_dataset("fashion-mnist").test) == 4 and not calls  # read, not fetched again


def test_a_failed_fashion_mnist_download_is_one_line(tmp_path, monkeypatch) -> None:
    import torchvision.datasets as tvd

    monkeypatch.setattr(ed, "FASHION_MNIST_DIR", tmp_path / "no-debian-package")
    monkeypatch.delenv("NOISEVISION_FASHION_MNIST", raising=False)
    monkeypatch.setenv("NOISEVISION_DATA", str(tmp_path / "data"))

    def offline(root, train, download):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tvd, "FashionMNIST", offline)
    with pytest.raises(NoisevisionError, match="could not download Fashion-MNIST .* install Debian") as exc:
        ed.load_eval_dataset("fashion-mnist", download=True)
    assert "\n" not in str(exc.value)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_idx_reader_roundtrip_and_truncation(tmp_path: Path) -> None:
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "x.gz", a)
    assert np.array_equal(ed.read_idx(tmp_path / "x.gz"), a)
    with gzip.open(tmp_path / "bad.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"abc")
    with pytest.raises(NoisevisionError, match="truncated"):
        ed.read_idx(tmp_path / "bad.gz")


def _png(path: Path, value: int, size: int = 12, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size, 3) if mode == "RGB" else (size, size)
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode).save(path)


def make_folder(
    root: Path,
    classes: list[str],
    per_class: int = 2,
    val_classes: list[str] | None = None,
    extra_files: bool = True,
) -> Path:
    for split, names in (("train", classes), ("val", val_classes or classes)):
        for c, name in enumerate(names):
            for i in range(per_class):
                _png(root / split / name / f"{i}.png", (10 * c + i) % 256, mode="L" if i == 0 else "RGB")
        if extra_files:
            (root / split / "README.txt").write_text("not a class")  # files beside folders are ignored
    return root


def test_image_folder_lists_classes_and_images(tmp_path: Path) -> None:
    make_folder(tmp_path, ["cat", "dog", "emu"], per_class=3)
    (tmp_path / "train" / "dog" / "notes.txt").write_text("ignored")
    ds = ed.load_eval_dataset(f"imagefolder:{tmp_path}")
    assert ds.classes == ["cat", "dog", "emu"]
    assert len(ds.train) == 9 and len(ds.test) == 9
    assert ds.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    img = ds.train.load(torch.tensor([3]))[0]  # dog/0.png, written as grayscale
    assert img.shape == (3, 12, 12) and img.dtype == torch.uint8 and int(img[1, 0, 0]) == 10


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda r: r.mkdir(exist_ok=True), "has no train/ folder"),
        (lambda r: ((r / "train").mkdir(parents=True), (r / "val").mkdir()), "has no class folders"),
        (lambda r: make_folder(r, ["a", "b"], val_classes=["a", "c"]), "class folders of"),
        (lambda r: make_folder(r, ["only"]), "1 class folder: a probe needs 2 or more"),
        (
            lambda r: (make_folder(r, ["a", "b"]), (r / "val" / "c").mkdir(), (r / "train" / "c").mkdir()),
            "class folder '.*c' holds no image files",
        ),
    ],
)
def test_image_folder_errors_are_one_line(tmp_path: Path, setup, message: str) -> None:
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(NoisevisionError, match=message) as exc:
        ed.load_eval_dataset(f"imagefolder:{root}")
    assert "\n" not in str(exc.value)


def test_imagenet100_selects_the_spec_classes_in_place(tmp_path: Path) -> None:
    wnids = list(ed.IMAGENET100_WNIDS) + ["n99999999", "n00000001"]  # ImageNet-1k has more classes
    for split in ("train", "val"):
        for w in wnids:
            _png(tmp_path / split / w / f"{w}_0.JPEG.png", 1, size=4)
    ds = ed.load_eval_dataset(f"imagenet100:{tmp_path}")
    assert ds.classes == list(ed.IMAGENET100_WNIDS) and len(ds.classes) == 100
    assert len(ds.train) == 100 and len(ds.test) == 100
    assert all(str(tmp_path) in p for p in ds.train.paths)  # read in place, nothing copied
    assert Path(ds.test.paths[7]).parent.name == ed.IMAGENET100_WNIDS[7]
    assert ds.test.labels.tolist() == list(range(100))


def test_imagenet100_class_mismatch(tmp_path: Path) -> None:
    make_folder(tmp_path, list(ed.IMAGENET100_WNIDS[:99]) + ["n12345678"], per_class=1, extra_files=False)
    with pytest.raises(NoisevisionError, match=r"lacks 1 of the 100 ImageNet-100 classes \(e.g. n13040303\)"):
        ed.load_eval_dataset(f"imagenet100:{tmp_path}")


def test_torchvision_sets_never_download_unasked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NOISEVISION_DATA", str(tmp_path))
    with pytest.raises(NoisevisionError, match="pass --download"):
        ed.load_eval_dataset("cifar10")
    assert not any(tmp_path.rglob("*.tar.gz"))


def test_unknown_dataset_and_missing_path() -> None:
    with pytest.raises(NoisevisionError, match="did you mean fashion-mnist"):
        ed.load_eval_dataset("fashion-mnst")
    with pytest.raises(NoisevisionError, match="imagefolder:/path/to/folder"):
        ed.load_eval_dataset("imagefolder")


def test_balanced_subset() -> None:
    labels = torch.arange(10).repeat_interleave(torch.arange(10) + 5)  # classes of 5..14 items
    idx = ed.balanced_subset(labels, 50, seed=3)
    assert len(idx) == 50 and torch.equal(idx, idx.sort().values)
    assert labels[idx].bincount().tolist() == [5] * 10
    assert torch.equal(idx, ed.balanced_subset(labels, 50, seed=3))
    assert not torch.equal(idx, ed.balanced_subset(labels, 50, seed=4))
    assert torch.equal(ed.balanced_subset(labels, None), torch.arange(len(labels)))


def test_a_decompression_bomb_is_one_line(tmp_path: Path, monkeypatch) -> None:
    """An image of more pixels than PIL's bomb limit (twice MAX_IMAGE_PIXELS) is refused in one
    line naming the file, not a traceback from deep inside PIL."""
    make_folder(tmp_path, ["a", "b"])
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 12×12 images are then 'bombs'
    ds = ed.load_eval_dataset(f"imagefolder:{tmp_path}")
    with pytest.raises(NoisevisionError, match="cannot read image .*0.png.*decompression bomb") as exc:
        ds.train.load(torch.tensor([0]))
    assert "\n" not in str(exc.value)
