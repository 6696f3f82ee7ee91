"""Real labelled images for the linear probes, each set behind one name.

    fashion-mnist          Debian's dataset-fashion-mnist (IDX files), or the same files fetched
                           through torchvision with download=True; held in memory as uint8
    imagefolder:PATH       PATH/train/<class>/* and PATH/val/<class>/* (any image files)
    imagenet100:PATH       an ImageNet-1k folder (train/ + val/ by WordNet id) -> the paper's 100
                           classes, read in place (no copies)
    cifar10, cifar100, stl10   torchvision sets: read from the data root, downloaded only when the
                           caller passes download=True (`--download`)

A split is an `ImageSet`: either every image in memory (uint8 [N, C, H, W], small sets, read once)
or a list of files decoded on the fly. Grayscale images become 3 channels when batched.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from noisevision.errors import NoisevisionError
from noisevision.logs import get_logger
from noisevision.registry import Registry

log = get_logger(__name__)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

# The paper's ImageNet-100: its 100 WordNet ids (the CMC subset).
IMAGENET100_WNIDS = tuple(
    """
n01558993 n01692333 n01729322 n01735189 n01749939 n01773797 n01820546 n01855672 n01978455 n01980166
n01983481 n02009229 n02018207 n02085620 n02086240 n02086910 n02087046 n02089867 n02089973 n02090622
n02091831 n02093428 n02099849 n02100583 n02104029 n02105505 n02106550 n02107142 n02108089 n02109047
n02113799 n02113978 n02114855 n02116738 n02119022 n02123045 n02138441 n02172182 n02231487 n02259212
n02326432 n02396427 n02483362 n02488291 n02701002 n02788148 n02804414 n02859443 n02869837 n02877765
n02974003 n03017168 n03032252 n03062245 n03085013 n03259280 n03379051 n03424325 n03492542 n03494278
n03530642 n03584829 n03594734 n03637318 n03642806 n03764736 n03775546 n03777754 n03785016 n03787032
n03794056 n03837869 n03891251 n03903868 n03930630 n03947888 n04026417 n04067472 n04099969 n04111531
n04127249 n04136333 n04229816 n04238763 n04336792 n04418357 n04429376 n04435653 n04485082 n04493381
n04517823 n04589890 n04592741 n07714571 n07715103 n07753275 n07831146 n07836838 n13037406 n13040303
""".split()
)


# ---------------------------------------------------------------------------------- containers
@dataclass
class ImageSet:
    """One split: labels [N] int64 plus either `images` (uint8 [N, C, H, W]) or `paths` (N files)."""

    labels: Tensor
    images: Tensor | None = None
    paths: list[str] | None = None

    def __post_init__(self) -> None:
        if (self.images is None) == (self.paths is None):
            raise ValueError("an ImageSet holds either images or paths")
        n = len(self.images) if self.images is not None else len(self.paths or [])
        if n != len(self.labels):
            raise ValueError(f"{n} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def take(self, indices: Tensor) -> ImageSet:
        """The images at `indices` (a view for in-memory sets)."""
        idx = indices.to(torch.int64)
        if self.images is not None:
            return ImageSet(self.labels[idx], images=self.images[idx])
        assert self.paths is not None
        return ImageSet(self.labels[idx], paths=[self.paths[i] for i in idx.tolist()])

    def load(self, indices: Tensor) -> list[Tensor]:
        """Images at `indices` as uint8 [3, H, W] tensors (sizes may differ between files)."""
        if self.images is not None:
            return list(to_rgb(self.images[indices.to(torch.int64)]))
        assert self.paths is not None
        return [read_image(self.paths[i]) for i in indices.tolist()]


@dataclass
class EvalDataset:
    """A named evaluation set: class names and its train/test splits."""

    name: str
    classes: list[str]
    train: ImageSet
    test: ImageSet
    info: dict[str, object] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, max_train: int | None, max_test: int | None, seed: int = 0) -> EvalDataset:
        """At most `max_train`/`max_test` images, as balanced over classes as the data allows."""
        train = self.train.take(balanced_subset(self.train.labels, max_train, seed))
        test = self.test.take(balanced_subset(self.test.labels, max_test, seed + 1))
        return EvalDataset(self.name, self.classes, train, test, dict(self.info))


def to_rgb(images: Tensor) -> Tensor:
    """uint8 [B, 1|3, H, W] -> [B, 3, H, W] (grayscale repeated as a view, no copy)."""
    if images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    if images.shape[1] != 3:
        raise NoisevisionError(f"images with {images.shape[1]} channels: expected 1 or 3")
    return images


def read_image(path: str) -> Tensor:
    """Decode one file to uint8 [3, H, W] (grayscale, palette and RGBA images become RGB)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:  # a bomb: too many pixels to decode
        raise NoisevisionError(f"cannot read image {path}: {exc}") from exc
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def balanced_subset(labels: Tensor, limit: int | None, seed: int = 0) -> Tensor:
    """Indices of at most `limit` items: a seeded shuffle, then classes taken round-robin.

    Sorted, so that subsets of a set keep its order; deterministic for a given (labels, seed).
    """
    n = len(labels)
    if limit is None or limit >= n:
        return torch.arange(n)
    if limit <= 0:
        raise NoisevisionError(f"subset size must be positive, not {limit}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    lab = labels[perm]
    # Rank of each item within its class in the shuffled order; take the lowest ranks first.
    order = torch.argsort(lab, stable=True)
    sorted_lab = lab[order]
    first = torch.searchsorted(sorted_lab, sorted_lab, right=False)
    rank = torch.empty(n, dtype=torch.int64)
    rank[order] = torch.arange(n) - first
    pick = torch.argsort(rank * n + torch.arange(n), stable=True)[:limit]
    return perm[pick].sort().values


# ---------------------------------------------------------------------------------- Fashion-MNIST
def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip or raw): the format of MNIST / Fashion-MNIST."""
    opener: Callable = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise NoisevisionError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise NoisevisionError(f"{path} is truncated: expected shape {shape}")
    return body.reshape(shape)


def _fashion_mnist_files(root: Path) -> dict[str, list[Path]] | None:
    """The four IDX files under `root` (gzipped or not) by split, or None if one is missing."""
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        files = [root / f"{prefix}-{kind}-ubyte.gz" for kind in ("images-idx3", "labels-idx1")]
        files = [f if f.exists() else f.with_suffix("") for f in files]  # also accept unzipped files
        if not all(f.exists() for f in files):
            return None
        splits[split] = files
    return splits


def fashion_mnist_download_dir() -> Path:
    """Where `--download` puts Fashion-MNIST: torchvision's layout under the data root."""
    return data_root() / "FashionMNIST" / "raw"


def load_fashion_mnist(root: Path | str | None = None, download: bool = False) -> EvalDataset:
    """Fashion-MNIST: 60,000 train + 10,000 test 28×28 grayscale images, 10 classes, in memory.

    Read from `root` when given (or $NOISEVISION_FASHION_MNIST); otherwise from Debian's
    dataset-fashion-mnist, else from a copy fetched earlier with `download`, which fetches it
    through torchvision (checksummed) into the data root when neither is there.
    """
    explicit = root or os.environ.get("NOISEVISION_FASHION_MNIST")
    places = [Path(explicit)] if explicit else [FASHION_MNIST_DIR, fashion_mnist_download_dir()]
    found = next(((p, f) for p in places if (f := _fashion_mnist_files(p))), None)
    if found is None and download and not explicit:
        _fetch_fashion_mnist()
        found = next(((p, f) for p in places[1:] if (f := _fashion_mnist_files(p))), None)
    if found is None:
        where = places[0] if explicit else f"{places[0]} or {places[1]}"
        raise NoisevisionError(
            f"Fashion-MNIST not found in {where}: run `apt-get install dataset-fashion-mnist` (Debian), "
            "or pass --download to fetch it (~30 MB) through torchvision"
        )
    root, files = found
    splits = {}
    for split, (image_file, label_file) in files.items():
        images = torch.from_numpy(read_idx(image_file).copy()).unsqueeze(1)  # [N, 1, 28, 28]
        labels = torch.from_numpy(read_idx(label_file).astype(np.int64))
        splits[split] = ImageSet(labels, images=images)
    return EvalDataset(
        "fashion-mnist", list(FASHION_MNIST_CLASSES), splits["train"], splits["test"], {"source": str(root)}
    )


def _fetch_fashion_mnist() -> None:
    """Download the four files with torchvision's downloader, which checks their MD5 sums."""
    import torchvision.datasets as tvd

    target = data_root()
    log.info(f"downloading Fashion-MNIST (~30 MB) from the internet into {fashion_mnist_download_dir()}")
    target.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            tvd.FashionMNIST(str(target), train=train, download=True)
    except Exception as exc:  # URLError, OSError, RuntimeError (checksum): all mean "not fetched"
        raise NoisevisionError(
            f"could not download Fashion-MNIST into {target} ({type(exc).__name__}: {exc}); "
            "offline, install Debian's dataset-fashion-mnist instead"
        ) from None


# ---------------------------------------------------------------------------------- image folders
def _class_dirs(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _list_images(class_dir: Path) -> list[str]:
    """Image files under `class_dir` (recursively), sorted for a stable order."""
    out = []
    for dirpath, _dirs, files in os.walk(class_dir, followlinks=True):
        out.extend(os.path.join(dirpath, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS))
    return sorted(out)


def _folder_split(split_dir: Path, classes: list[str]) -> ImageSet:
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = _list_images(split_dir / name)
        paths.extend(files)
        labels.extend([label] * len(files))
    if not paths:
        raise NoisevisionError(f"no image files in the class folders of {split_dir}")
    counts = torch.bincount(torch.tensor(labels, dtype=torch.int64), minlength=len(classes))
    if (counts == 0).any():
        empty = classes[int((counts == 0).nonzero()[0])]
        raise NoisevisionError(
            f"class folder '{split_dir / empty}' holds no image files: every class needs "
            "images in train/ and val/ (remove the folder, or add images)"
        )
    return ImageSet(torch.tensor(labels, dtype=torch.int64), paths=paths)


def _split_dirs(root: Path, what: str) -> tuple[Path, Path]:
    if not root.is_dir():
        raise NoisevisionError(f"{what} folder '{root}' does not exist")
    train, val = root / "train", root / "val"
    if not val.is_dir() and (root / "test").is_dir():
        val = root / "test"
    for d in (train, val):
        if not d.is_dir():
            raise NoisevisionError(
                f"{what} folder '{root}' has no {d.name}/ folder: expected {root}/train/<class>/* "
                f"and {root}/val/<class>/*"
            )
        if not _class_dirs(d):
            raise NoisevisionError(f"'{d}' has no class folders: expected one sub-folder of images per class")
    return train, val


def load_image_folder(root: Path | str) -> EvalDataset:
    """PATH/train/<class>/* and PATH/val/<class>/* (or test/); val must have the train classes."""
    root = Path(root).expanduser()
    train_dir, val_dir = _split_dirs(root, "image")
    classes = _class_dirs(train_dir)
    if len(classes) < 2:  # one class: every probe scores 100 %, which measures nothing
        raise NoisevisionError(f"'{train_dir}' has {len(classes)} class folder: a probe needs 2 or more")
    val_classes = _class_dirs(val_dir)
    if val_classes != classes:
        extra = sorted(set(val_classes) ^ set(classes))
        raise NoisevisionError(
            f"class folders of {train_dir} and {val_dir} differ ({len(classes)} vs "
            f"{len(val_classes)}; e.g. '{extra[0]}' is in only one)"
        )
    return EvalDataset(
        f"imagefolder:{root}",
        classes,
        _folder_split(train_dir, classes),
        _folder_split(val_dir, classes),
        {"source": str(root)},
    )


def load_imagenet100(root: Path | str) -> EvalDataset:
    """The paper's 100 ImageNet classes read in place from an ImageNet-1k (or ImageNet-100) folder."""
    root = Path(root).expanduser()
    train_dir, val_dir = _split_dirs(root, "ImageNet")
    classes = list(IMAGENET100_WNIDS)
    for d in (train_dir, val_dir):
        present = set(_class_dirs(d))
        missing = [c for c in classes if c not in present]
        if missing:
            raise NoisevisionError(
                f"'{d}' lacks {len(missing)} of the 100 ImageNet-100 classes (e.g. {missing[0]}): "
                "expected ImageNet-1k with one folder per WordNet id in train/ and val/"
            )
    return EvalDataset(
        "imagenet100",
        classes,
        _folder_split(train_dir, classes),
        _folder_split(val_dir, classes),
        {"source": str(root)},
    )


# ---------------------------------------------------------------------------------- torchvision
def data_root() -> Path:
    """Where torchvision sets live: $NOISEVISION_DATA or ~/.cache/noisevision/datasets."""
    default = Path.home() / ".cache" / "noisevision" / "datasets"
    return Path(os.environ.get("NOISEVISION_DATA", default)).expanduser()


# name -> (torchvision class, download size shown to the user, how it names its splits)
_TORCHVISION = {
    "cifar10": ("CIFAR10", "170 MB", "train"),
    "cifar100": ("CIFAR100", "170 MB", "train"),
    "stl10": ("STL10", "2.6 GB", "split"),
}


def load_torchvision(name: str, download: bool = False, root: Path | None = None) -> EvalDataset:
    """CIFAR-10/100 or STL-10 (labelled splits) in memory; downloads only if `download`."""
    import torchvision.datasets as tvd

    cls_name, size, style = _TORCHVISION[name]
    root = Path(root or data_root()) / name
    if download:
        log.info(f"downloading {name} (~{size}) from the internet into {root} (if not there yet)")
        root.mkdir(parents=True, exist_ok=True)
    cls = getattr(tvd, cls_name)
    splits = []
    for train in (True, False):
        kw = {"train": train} if style == "train" else {"split": "train" if train else "test"}
        try:
            ds = cls(str(root), download=download, **kw)
        except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
            if download:
                raise NoisevisionError(f"could not download {name} into {root}: {exc}") from exc
            raise NoisevisionError(
                f"{name} not found in {root}: pass --download to fetch it (~{size}), "
                "or set NOISEVISION_DATA to where it is"
            ) from None
        data = np.asarray(ds.data)
        images = torch.from_numpy(data if data.shape[1] == 3 else data.transpose(0, 3, 1, 2))
        labels = torch.as_tensor(np.asarray(ds.targets if hasattr(ds, "targets") else ds.labels))
        splits.append(ImageSet(labels.to(torch.int64), images=images.contiguous()))
    classes = list(getattr(ds, "classes", [str(i) for i in range(int(splits[0].labels.max()) + 1)]))
    return EvalDataset(name, classes, splits[0], splits[1], {"source": str(root)})


# ---------------------------------------------------------------------------------- one name each
@dataclass(frozen=True)
class DatasetLoader:
    """How a name (`kind` or `kind:ARG`) loads its set: load(arg, download), arg "" when absent."""

    load: Callable[[str, bool], EvalDataset]
    needs_path: bool = False  # the name must come with a folder: kind:PATH


DATASETS: Registry[DatasetLoader] = Registry("evaluation dataset")
DATASETS.add(
    "fashion-mnist",
    DatasetLoader(lambda arg, dl: load_fashion_mnist(arg or None, dl)),
    "Fashion-MNIST: Debian's dataset-fashion-mnist, or fetched with --download",
)
DATASETS.add(
    "imagefolder",
    DatasetLoader(lambda arg, _dl: load_image_folder(arg), needs_path=True),
    "class folders PATH/train/<class>/* and PATH/val/<class>/*",
    form="imagefolder:PATH",
)
DATASETS.add(
    "imagenet100",
    DatasetLoader(lambda arg, _dl: load_imagenet100(arg), needs_path=True),
    "the paper's 100 ImageNet classes, read in place from an ImageNet folder PATH",
    form="imagenet100:PATH",
)
for _name, (_, _size, _) in _TORCHVISION.items():
    DATASETS.add(
        _name,
        DatasetLoader(lambda arg, dl, n=_name: load_torchvision(n, dl, Path(arg) if arg else None)),
        f"torchvision's {_name} (downloaded with --download only, ~{_size})",
    )


def load_eval_dataset(name: str, download: bool = False) -> EvalDataset:
    """Resolve an evaluation set by name (see the module docstring); NoisevisionError if unusable."""
    kind, _, arg = name.partition(":")
    loader = DATASETS.get(kind)
    if loader.needs_path and not arg:
        raise NoisevisionError(f"dataset '{kind}' needs a folder: write {kind}:/path/to/folder")
    return loader.load(arg, download)
