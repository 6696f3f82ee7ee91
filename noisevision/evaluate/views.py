"""How real images become probe inputs: the linear probe's train view and the test view.

Train view: a random resized crop (torchvision's RandomResizedCrop box logic, `augment.crop_boxes`)
and a horizontal flip, drawn from the counter-based `Rng` of (seed, image index) like the
pre-training augmentations, so an image's view does not depend on its batch, worker or decoder.
Test view: the short side resized to `resize_to`, then the central crop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from noisevision.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAPER_MEAN,
    PAPER_STD,
    resized_crop,
    sample_crop_boxes,
)
from noisevision.data.decode import Crop, centre_crop, iterate_file_crops
from noisevision.data.eval_datasets import ImageSet, to_rgb
from noisevision.rng import Rng

# The probes normalise as the encoder's training did: the small-scale recipe's statistics ("small",
# also the paper's probe) or ImageNet's (MoCo).
NORMALIZATIONS = {"small": (PAPER_MEAN, PAPER_STD), "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}
CROP_RATIO = (3 / 4, 4 / 3)


@dataclass(frozen=True)
class View:
    """How images become probe inputs: the train (augmented) or test view of the paper's linear probe."""

    size: int
    train: bool
    crop_scale: tuple[float, float] = (0.08, 1.0)
    test_resize: float = 70 / 64
    mean: tuple[float, float, float] = PAPER_MEAN
    std: tuple[float, float, float] = PAPER_STD

    @property
    def resize_to(self) -> int:
        return int(round(self.test_resize * self.size))


def view_rng(seed: int, indices: Tensor) -> Rng:
    """The random stream of the train views of images `indices` (one seed per epoch)."""
    return Rng.for_indices("probe-view", seed, indices)


def train_crops(rng: Rng, height: int, width: int, view: View) -> tuple[Tensor, Tensor]:
    """Crop boxes float [B, 4] (pixel edges x0, y0, x1, y1) and flips bool [B] of train views."""
    boxes = sample_crop_boxes(rng, height, width, view.crop_scale, CROP_RATIO)
    return boxes, rng.uniform(1)[:, 0] < 0.5


def batch_view(images: Tensor, view: View, rng: Rng | None = None) -> Tensor:
    """uint8 [B, 1|3, H, W] (one size, any device) -> normalised float [B, 3, s, s].

    Train: random resized crop (bilinear via roi_align, which averages several samples per output
    pixel when shrinking) + horizontal flip, drawn from `rng` (one key per image). Test: resize the
    short side to `view.resize_to` (antialiased bilinear) + central crop.
    """
    x = to_rgb(images).float().div_(255)
    _, _, height, width = x.shape
    s = view.size
    if view.train:
        if rng is None:
            raise ValueError("a train view needs the images' random streams (view_rng)")
        boxes, flip = train_crops(rng, height, width, view)
        x = resized_crop(x, boxes.to(x.device), s)
        x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
    else:
        r = view.resize_to / min(height, width)
        size = (max(s, round(height * r)), max(s, round(width * r)))
        if size != (height, width):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        top, left = (size[0] - s) // 2, (size[1] - s) // 2
        x = x[:, :, top : top + s, left : left + s]
    mean = torch.tensor(view.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(view.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class _FileViews(torch.utils.data.Dataset):
    """The "pil" decoder: full-size decoding + the whole transform per file, in the worker."""

    def __init__(self, data: ImageSet, view: View, seed: int):
        self.data, self.view, self.seed = data, view, seed

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        img = self.data.load(torch.tensor([i]))[0][None]  # uint8 [1, 3, H, W]
        rng = view_rng(self.seed, torch.tensor([i])) if self.view.train else None
        return batch_view(img, self.view, rng)[0], int(self.data.labels[i])


@dataclass(frozen=True)
class _ViewCrops:
    """The crop of file order[pos] for `view` (picklable, for DataLoader workers): the same box
    and flip as every other path draws for that file."""

    view: View
    seed: int
    order: tuple[int, ...]

    def __call__(self, pos: int, height: int, width: int) -> Crop:
        if not self.view.train:
            return centre_crop(height, width, self.view.size, self.view.resize_to)
        rng = view_rng(self.seed, torch.tensor([self.order[pos]]))
        boxes, flip = train_crops(rng, height, width, self.view)
        return Crop(tuple(float(v) for v in boxes[0]), bool(flip[0]))


def iterate_views(
    data: ImageSet,
    view: View,
    batch_size: int,
    device: torch.device,
    shuffle_seed: int | None = None,
    workers: int = 0,
    decoder: str = "pil",
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (normalised float [B, 3, s, s] on `device`, labels [B]) over `data`.

    In-memory sets are transformed a whole batch at a time on the device; file sets are read in
    `workers` processes with `decoder` (noisevision.data.decode). `shuffle_seed` (None: data
    order) also seeds the train views.
    """
    n = len(data)
    seed = shuffle_seed or 0
    order = torch.arange(n)
    if shuffle_seed is not None:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(shuffle_seed))
    if data.in_memory:
        assert data.images is not None
        for idx in order.split(batch_size):
            rng = view_rng(seed, idx.to(device)) if view.train else None
            x = batch_view(data.images[idx].to(device, non_blocking=True), view, rng)
            yield x, data.labels[idx].to(device)
        return
    if decoder != "pil":
        assert data.paths is not None
        crops = _ViewCrops(view, seed, tuple(order.tolist()))
        paths = [data.paths[i] for i in crops.order]
        yield from iterate_file_crops(
            paths,
            data.labels[order],
            crops,
            view.size,
            batch_size,
            device,
            decoder,
            workers,
            pin=device.type == "cuda",
            resize_to=None if view.train else view.resize_to,
            mean=view.mean,
            std=view.std,
        )
        return
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(_FileViews(data, view, seed), order.tolist()),
        batch_size=batch_size,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device)
