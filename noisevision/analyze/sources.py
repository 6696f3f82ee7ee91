"""What `analyze` measures: generators, image folders and the real set, as uint8 images of one size.

A source is a generator name (anything `noisevision show` takes: mixes, parameters, labelled
generators) or a folder of image files (searched recursively, e.g. the output of `noisevision
generate`). Every source gives the same N images for the same (source, N, resolution, seed):
images 0..N-1 of a generator, or N files of a folder drawn by a seeded permutation of its sorted
file list. Files and real images are resized (shorter side, antialiased) and centre-cropped.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from noisevision.data.eval_datasets import IMAGE_EXTENSIONS, balanced_subset, read_image, to_rgb
from noisevision.errors import NoisevisionError

BATCH = 128  # images loaded or rendered at a time


def fit_to(images: Tensor, res: int) -> Tensor:
    """uint8 [B, 1|3, H, W] -> uint8 [B, 3, res, res]: shorter side resized to `res` (antialiased
    bilinear), then the centre crop."""
    x = to_rgb(images)
    h, w = x.shape[-2:]
    if (h, w) == (res, res):
        return x.contiguous()
    scale = res / min(h, w)
    size = (max(res, round(h * scale)), max(res, round(w * scale)))
    y = F.interpolate(x.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = (size[0] - res) // 2, (size[1] - res) // 2
    return y[..., top : top + res, left : left + res].round().clamp(0, 255).to(torch.uint8)


def _seeded_pick(count: int, num: int, seed: int) -> list[int]:
    """`num` of range(count) (all when fewer), by a seeded permutation, in ascending order."""
    if count <= num:
        return list(range(count))
    g = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(count, generator=g)[:num].tolist())


@dataclass
class Source:
    """One set of images to analyse: `label` names it in the report, `key` its cache file."""

    label: str
    kind: str  # "generator", "folder" or "real"
    spec: str  # the generator name, the folder path or the dataset name as given

    @property
    def given(self) -> str:
        """The source as a command line names it: a generator's name, a folder's NAME=DIR."""
        return self.spec if self.kind == "generator" else f"{self.label}={self.spec}"

    def key(self, num: int, res: int, seed: int) -> str:
        digest = hashlib.blake2b(f"{self.kind}|{self.spec}|{num}|{res}|{seed}".encode(), digest_size=6)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.label)[:60]
        return f"{self.kind}-{safe}-{digest.hexdigest()}"


class ImageSource:
    """Images of a source in batches: `count` of them, `batches()` uint8 [B, 3, res, res]."""

    def __init__(self, source: Source, num: int, res: int, seed: int, device: torch.device):
        self.source, self.num, self.res, self.seed, self.device = source, num, res, seed, device
        self._files: list[str] | None = None
        self._real = None
        if source.kind == "generator":
            from noisevision import generators

            self.gen = generators.get(source.spec)
            self.count = num
        elif source.kind == "folder":
            self._files = folder_files(Path(source.spec))
            self._files = [self._files[i] for i in _seeded_pick(len(self._files), num, seed)]
            self.count = len(self._files)
        else:
            self._real = real_images(source.spec, num, seed)
            self.count = len(self._real)

    def render_res(self) -> int:
        """The resolution a generator renders at: `res`, or its default when it cannot make `res`
        (its images are then resized)."""
        spec = self.gen.spec
        if spec.resolutions and self.res not in spec.resolutions or self.res < spec.min_res:
            return spec.default_res
        return self.res

    def batches(self, workers: int = 0) -> Iterator[Tensor]:
        """Every image, BATCH at a time. With `workers` (a CPU, a generator or a folder), that
        many processes render or read the next batches while the caller measures this one: on two
        cores rendering and measuring overlap. The same bytes either way."""
        if workers == 0 or self.source.kind == "real" or self.device.type != "cpu":
            for lo in range(0, self.count, BATCH):
                yield self.take(range(lo, min(lo + BATCH, self.count)))
            return
        # torch's DataLoader: a worker runs torch on one thread, and renders batch k as take() would
        yield from torch.utils.data.DataLoader(_Batches(self), batch_size=None, num_workers=workers)

    def take(self, indices: range | list[int]) -> Tensor:
        """Images `indices` of this source: uint8 [B, 3, res, res] on the device."""
        if self.source.kind == "generator":
            x = self.gen(list(indices), res=self.render_res(), seed=self.seed, device=self.device)
            return fit_to(x, self.res)
        if self._files is not None:
            return torch.cat([fit_to(read_image(self._files[i])[None], self.res) for i in indices]).to(
                self.device
            )
        assert self._real is not None
        if self._real.images is not None:  # in memory, one size: resized as one batch
            return fit_to(self._real.images[torch.tensor(list(indices))], self.res).to(self.device)
        return torch.cat(
            [fit_to(im[None], self.res) for im in self._real.load(torch.tensor(list(indices)))]
        ).to(self.device)


class _Batches(torch.utils.data.Dataset):
    """An ImageSource's batches as a map-style dataset: item k is images k·BATCH … (k+1)·BATCH - 1."""

    def __init__(self, source: ImageSource):
        self.source = source

    def __len__(self) -> int:
        return -(-self.source.count // BATCH)

    def __getitem__(self, k: int) -> Tensor:
        return self.source.take(range(k * BATCH, min((k + 1) * BATCH, self.source.count)))


def folder_files(root: Path) -> list[str]:
    """Image files under `root`, recursively, sorted; NoisevisionError when there are none."""
    if not root.is_dir():
        raise NoisevisionError(f"'{root}' is neither a generator name nor a folder")
    files = []
    for dirpath, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(os.path.join(dirpath, f) for f in names if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise NoisevisionError(f"folder '{root}' holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return sorted(files)


def real_images(dataset: str, num: int, seed: int):
    """`num` training images of an evaluation set, balanced over its classes (an ImageSet)."""
    from noisevision.data.eval_datasets import load_eval_dataset

    data = load_eval_dataset(dataset)
    return data.train.take(balanced_subset(data.train.labels, num, seed))


def resolve_source(spec: str) -> Source:
    """A generator name, an image folder, or NAME=DIR (a folder named NAME in the report, e.g. as
    `reproduce --extra-data` named it); NoisevisionError naming the closest generators for a word
    that is none of them."""
    from noisevision import generators

    path = Path(spec).expanduser()
    if path.is_dir():
        folder_files(path)  # no image files: the error now, before any work
        return Source(path.name or str(path), "folder", str(path))
    name, sep, place = spec.rpartition("=")  # NAME=DIR; the name may hold "=" (fractaldb:classes=64)
    if sep and name and Path(place).expanduser().is_dir():
        folder_files(Path(place).expanduser())
        return Source(name, "folder", str(Path(place).expanduser()))
    if os.sep in spec or spec.startswith("."):
        raise NoisevisionError(f"source '{spec}': no such folder")
    gen = generators.get(spec)  # an unknown name: "did you mean …"
    return Source(spec, "generator", gen.name if spec == gen.name else spec)
