"""Training data: image sources (generators, folders) and the per-step index plan.

`--data` names a source:
- a generator name (`dead_leaves-mixed`): images are rendered on the fly from their indices,
  on the training device (GPU) or in DataLoader worker processes (CPU) so rendering overlaps the
  step; nothing touches the disk. Mixes are generator names too (`A+B`, `A:0.7+B:0.3`,
  `mix6:A+B`: noisevision.generators.mixing);
- a folder: every .jpg/.jpeg/.png below it (recursively, sorted by path), e.g. the output of
  `noisevision generate` (there, below its train/ only: its val/ images are held out).

`IndexPlan` says which image indices each step of each epoch trains on: a seeded permutation of
0..N−1 per epoch (`--num-images N`), or new indices every epoch (`--fresh`: epoch e uses
e·N..(e+1)·N−1, an infinite dataset). Under DDP each rank takes its contiguous share of every
global batch and renders only those images: no image data moves between ranks.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from noisevision import generators
from noisevision.errors import FieldError, NoisevisionError, UnknownNameError, worker_exception
from noisevision.memory import keep_freed_memory
from noisevision.rng import check_seed, mix64_int
from noisevision.stopping import die_with_parent

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class ImageSource(Protocol):
    """Anything that turns image indices into uint8 images [B, 3, res, res]."""

    name: str
    res: int
    size: int | None  # number of distinct images, None for an unbounded generator
    num_classes: int  # categories of its images (supervised training); 0: none

    def render(self, indices: Tensor, device: torch.device | str = "cpu") -> Tensor: ...

    def labels(self, indices: Tensor) -> Tensor: ...

    def describe(self) -> dict[str, Any]: ...


# ---------------------------------------------------------------------------------------- sources
class GeneratorSource:
    """A registered generator rendering indices at one resolution and seed."""

    size = None

    def __init__(self, name: str, res: int | None, seed: int):
        self.gen = generators.get(name)
        self.name = name
        self.res = self.gen.check_res(self.gen.spec.default_res if res is None else res)
        self.seed = check_seed(seed)
        self.num_classes = self.gen.num_classes

    def render(self, indices: Tensor, device: torch.device | str = "cpu") -> Tensor:
        return self.gen(indices, res=self.res, seed=self.seed, device=device)

    def labels(self, indices: Tensor) -> Tensor:
        return self.gen.labels(indices)

    def describe(self) -> dict[str, Any]:
        return {"kind": "generator", **self.gen.describe(), "res": self.res, "seed": self.seed}


#: How the files of a training folder start: JPEG's SOI marker and PNG's signature.
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


def check_image_headers(files: list[Path], root: Path) -> None:
    """NoisevisionError naming the first of `files` that is no JPEG or PNG by its first bytes (an
    HTML page saved as .jpg, an empty or truncated download): found before training starts, not
    epochs into the run. Reads 8 bytes per file (about 20 µs on a local disk)."""
    for path in files:
        try:
            with open(path, "rb") as f:
                head = f.read(8)
        except OSError as exc:
            raise NoisevisionError(f"cannot read {path}: {exc.strerror}") from None
        if not head.startswith(IMAGE_MAGIC):
            what = "empty" if not head else "not a JPEG or PNG image"
            raise NoisevisionError(f"{path} is {what}: remove it from {root} (or replace it) and run again")


class FolderSource:
    """Image files below a folder; index i is the i-th file in sorted path order. In a folder that
    `noisevision generate` wrote, the files below its train/ only: never its validation images.

    Categories as torchvision's ImageFolder reads them: when every image lies in a sub-folder and
    there are at least two, each first-level sub-folder is a category, numbered in sorted order
    (the class folders of a labelled generator's `generate` output are its category numbers).
    """

    def labels(self, indices: Tensor) -> Tensor:
        if not self.num_classes:
            raise NoisevisionError(f"the images of {self.root} carry no categories")
        return self.targets[indices.cpu()]

    def __init__(self, root: str | Path, res: int | None):
        from noisevision.data.folder import MANIFEST

        self.root = Path(root)
        train = self.root / "train"
        below = train if (self.root / MANIFEST).is_file() and train.is_dir() else self.root
        self.files = sorted(p for p in below.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise NoisevisionError(f"no .jpg or .png images found under {self.root}")
        check_image_headers(self.files, self.root)
        parts = [f.relative_to(below).parts for f in self.files]
        classes = sorted({p[0] for p in parts}) if all(len(p) > 1 for p in parts) else []
        self.num_classes = len(classes) if len(classes) >= 2 else 0  # one folder: no categories
        number = {name: i for i, name in enumerate(classes)}
        self.targets = torch.tensor(
            [number[p[0]] for p in parts] if self.num_classes else [], dtype=torch.int64
        )
        self.name = str(self.root)
        self.size = len(self.files)
        self.res = res if res is not None else min(self._decode(0).shape[-2:])

    def _decode(self, i: int) -> Tensor:
        """File i as uint8 [3, H, W] RGB."""
        try:
            with Image.open(self.files[i]) as img:
                arr = np.asarray(img.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:  # a bomb: too many pixels
            raise NoisevisionError(f"cannot read image {self.files[i]}: {exc}") from exc
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)

    def _fit(self, img: Tensor) -> Tensor:
        """Resize the shorter side to res and centre-crop: uint8 [3, res, res]."""
        from torchvision.transforms.v2 import functional as TF

        if img.shape[-2:] == (self.res, self.res):
            return img
        img = TF.resize(img, self.res, antialias=True)
        return TF.center_crop(img, [self.res, self.res])

    def render(self, indices: Tensor, device: torch.device | str = "cpu") -> Tensor:
        imgs = torch.stack([self._fit(self._decode(int(i))) for i in indices.tolist()])
        return imgs.to(device)

    def describe(self) -> dict[str, Any]:
        return {"kind": "folder", "root": str(self.root), "files": self.size, "res": self.res}


class CachedSource:
    """A fixed set of generated images kept on the training device once rendered: the first epoch
    renders them, the others read them back (`--cache-images`).

    Only for sources whose images are the same whatever batch renders them on that device
    (`batch_invariant`): then reading an image back gives the bytes rendering it again would.
    """

    def __init__(self, source: ImageSource, num_images: int, device: torch.device):
        self.source, self.num_images, self.device = source, num_images, device
        self.name, self.res, self.size = source.name, source.res, source.size
        self.images: Tensor | None = None
        self.filled = torch.zeros(num_images, dtype=torch.bool)  # on the host: no GPU sync per step

    @staticmethod
    def nbytes(source: ImageSource, num_images: int) -> int:
        return num_images * 3 * source.res * source.res

    def render(self, indices: Tensor, device: torch.device | str = "cpu") -> Tensor:
        if self.images is None:
            shape = (self.num_images, 3, self.res, self.res)
            self.images = torch.empty(shape, dtype=torch.uint8, device=self.device)
        host = indices.cpu()
        missing = host[~self.filled[host]]
        if missing.numel():
            self.images[missing.to(self.device)] = self.source.render(missing, self.device)
            self.filled[missing] = True
        return self.images[indices.to(self.device)].to(device)

    def describe(self) -> dict[str, Any]:
        return self.source.describe()

    @property
    def num_classes(self) -> int:
        return self.source.num_classes

    def labels(self, indices: Tensor) -> Tensor:
        return self.source.labels(indices)


def batch_invariant(source: ImageSource, device: torch.device) -> bool:
    """Whether every image of `source` has the same bytes in any batch on `device`."""
    return isinstance(source, GeneratorSource) and source.gen.batch_invariant(device)


def open_source(data: str, res: int | None = None, seed: int = 0) -> ImageSource:
    """The image source `--data` names: a folder, a generator, or a mix of generators."""
    check_seed(seed)
    if Path(data).is_dir():
        return FolderSource(data, res)
    try:
        return GeneratorSource(data, res, seed)
    except UnknownNameError:
        if any(c in data for c in "/\\.") and not Path(data).exists():
            raise FieldError("data", f"{{field}} {data}: no such folder, and not a generator name") from None
        raise


# ---------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class IndexPlan:
    """Which image indices every step of every epoch uses (the last partial batch is dropped)."""

    num_images: int
    batch_size: int  # global batch
    seed: int = 0
    fresh: bool = False

    def __post_init__(self) -> None:
        check_seed(self.seed)
        if self.batch_size < 1:
            raise NoisevisionError(f"batch size must be positive, got {self.batch_size}")
        if self.batch_size > self.num_images:
            raise FieldError(
                "batch_size",
                f"{{field}} {self.batch_size} is larger than the dataset "
                f"({self.num_images} images): lower it, or use more images",
            )
        need, memory = 3 * 8 * self.num_images, _physical_memory()  # two epochs' orders + one being drawn
        if need > memory:
            raise FieldError(
                "num_images",
                f"{{field}} {self.num_images:,} needs every index shuffled each epoch "
                f"({need / 1e9:,.0f} GB), more than this machine's {memory / 1e9:,.0f} GB of memory: "
                "lower it",
            )

    @property
    def steps_per_epoch(self) -> int:
        return self.num_images // self.batch_size

    @functools.lru_cache(maxsize=2)  # noqa: B019 - a few epochs, per process; the plan is frozen
    def epoch_order(self, epoch: int) -> Tensor:
        """The epoch's index order, int64 [steps_per_epoch · batch_size]."""
        gen = torch.Generator().manual_seed(mix64_int(self.seed * 7919 + epoch) & 0x7FFF_FFFF_FFFF)
        order = torch.randperm(self.num_images, generator=gen)[: self.steps_per_epoch * self.batch_size]
        return order + epoch * self.num_images if self.fresh else order

    def batch(self, epoch: int, step: int, rank: int = 0, world: int = 1) -> Tensor:
        """Indices of rank's share of global batch `step` of `epoch`: int64 [batch_size / world]."""
        if self.batch_size % world:
            raise NoisevisionError(f"batch size {self.batch_size} does not split over {world} processes")
        share = self.batch_size // world
        start = step * self.batch_size + rank * share
        return self.epoch_order(epoch)[start : start + share]


def _physical_memory() -> float:
    """Bytes of memory of this machine (inf where the system does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return float("inf")


class StepDataset(torch.utils.data.Dataset):
    """Item k = the k-th step from `start` on: (epoch, step, indices [b], uint8 images [b, 3, r, r])."""

    def __init__(
        self,
        source: ImageSource,
        plan: IndexPlan,
        start: tuple[int, int],
        epochs: int,
        rank: int = 0,
        world: int = 1,
        device: torch.device | str = "cpu",
    ):
        self.source, self.plan = source, plan
        self.first = start[0] * plan.steps_per_epoch + start[1]
        self.total = epochs * plan.steps_per_epoch
        self.rank, self.world, self.device = rank, world, device

    def __len__(self) -> int:
        return max(0, self.total - self.first)

    def __getitem__(self, k: int) -> tuple[int, int, Tensor, Tensor]:
        epoch, step = divmod(self.first + k, self.plan.steps_per_epoch)
        idx = self.plan.batch(epoch, step, self.rank, self.world)
        images = self.source.render(idx, self.device)
        if torch.utils.data.get_worker_info() is not None:
            # Into shared memory here, not in the queue's feeder thread, where a failure (a file-size
            # limit, a full /dev/shm) would only be printed and the batch lost: the trainer would
            # wait for it forever. Raised here, it reaches the trainer as this worker's error.
            idx.share_memory_()
            images.share_memory_()
        return epoch, step, idx, images


def _init_worker(threads: int, parent: int, _worker_id: int) -> None:
    """Rendering workers share the CPU with the training process: keep each one narrow, and let
    the training threads win the cores (their OpenMP regions wait for the slowest thread, so one
    preempted training thread stalls them all); a worker still runs whenever training waits.
    A worker ends with the trainer (Linux: the kernel kills it), even one that started as it died."""
    die_with_parent(parent)
    torch.set_num_threads(threads)
    keep_freed_memory()
    if hasattr(os, "nice"):
        os.nice(10)


def iterate_steps(
    dataset: StepDataset, workers: int, threads_per_worker: int = 1, prefetch: int = 2
) -> Iterable[tuple[int, int, Tensor, Tensor]]:
    """The dataset's steps in order; with workers > 0, rendered ahead in worker processes (a
    worker that dies or fails ends the iteration with a one-line NoisevisionError)."""
    if workers == 0:
        return (dataset[k] for k in range(len(dataset)))
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,  # items are whole batches already
        shuffle=False,
        num_workers=workers,
        prefetch_factor=prefetch,
        worker_init_fn=functools.partial(_init_worker, threads_per_worker, os.getpid()),
        pin_memory=torch.cuda.is_available() and str(dataset.device) == "cpu",
    )
    return _from_workers(loader)


def _from_workers(loader: torch.utils.data.DataLoader) -> Iterator[tuple[int, int, Tensor, Tensor]]:
    """The loader's items; its workers' deaths and errors as one line each (DataLoader notices a
    dead worker within seconds, and re-raises a worker's error with its traceback as the message)."""
    items = iter(loader)
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except Exception as exc:
            text = str(exc)
            if "DataLoader worker" not in text:
                raise
            if worker := worker_exception(text):  # the worker's exception: its last traceback line
                kind, message = worker
                if kind.endswith(NoisevisionError.__name__) or isinstance(exc, NoisevisionError):
                    raise NoisevisionError(message) from exc  # the user's to fix, as it was raised
                text = f"{kind}: {message}" if kind else message
                what = "a rendering worker failed"
            else:
                what = "a rendering worker process died"
            raise NoisevisionError(
                f"{what}: {text.strip()}; training stopped (running the same command "
                "again resumes from the last checkpoint)"
            ) from exc
        yield item
