"""Per-image datasets over a generator, for anyone's training loop (torch DataLoader, solo-learn,
lightly, timm …).

    from noisevision.data import GeneratorDataset
    data = GeneratorDataset("dead_leaves-mixed", 100_000, res=128, transform=two_views)
    loader = DataLoader(data, batch_size=256, shuffle=True, num_workers=8, drop_last=True)

`GeneratorDataset` is map-style: item i is image i of the generator, `generators.get(name)([i],
res=res, seed=seed)[0]` byte for byte, as a PIL image (`output="pil"`, the default, as torchvision's
datasets give) or a uint8 tensor [3, res, res] (`output="tensor"`), then the user's transform.
DataLoader hands a whole batch of indices to `__getitems__` (torch ≥ 2.1), which renders them in one
generator call and applies the transform image by image: a loader runs at the generator's own
batched rate (`noisevision bench datasets`). Works with DistributedSampler like any map-style set.

`GeneratorIterableDataset` is infinite: the images at positions start, start+1, … shared out by
stride between DDP ranks and DataLoader workers. Worker w of W on rank r of R yields the positions
p ≡ r·W + w (mod R·W), so no image repeats, and after every worker has yielded n images the union is
exactly the first n·R·W positions.

Samples are images only by default. With `labels=True`, for a generator with categories (formula-
driven supervised learning: `Generator.num_classes`), a sample is `(image, label)`, the label the
int `generator.labels([i])[0]` = i mod num_classes: a pure function of the index, so it is the same
in any batch, worker or order, and the default collate gives (images, int64 labels [B]).

    data = GeneratorDataset("fractaldb", 1_000_000, res=224, transform=train_tf, labels=True)

With labels, the iterable dataset deals each round of S = R·W consecutive positions k·S … k·S+S−1
out in a rotating order: shard s takes k·S + (s + ⌊k / P⌋) mod S, with P = C / gcd(S, C) for C
categories. Each round still gives every shard one position (the union property above holds), and
every shard's stream holds each category once in every C images it yields, whatever S and C (with
the plain stride, shard s would only ever see the categories ≡ s mod gcd(S, C)).

The name may be a generator or a mix "A+B" / "A:0.7+B:0.3" as `noisevision train --data` takes it
(a mix has no categories); images render on the CPU, in the DataLoader's worker processes when it
has some.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from noisevision.data.stream import GeneratorSource, ImageSource
from noisevision.device import env_count
from noisevision.errors import NoisevisionError
from noisevision.rng import check_seed

OUTPUTS = ("pil", "tensor")


class DatasetIndexError(NoisevisionError, IndexError):
    """An index outside the dataset (an IndexError too, so that `for image in dataset` ends)."""


def open_generator(name: str, res: int | None, seed: int) -> ImageSource:
    """A generator or a mix of generators by name, as `--data` takes them (not a folder)."""
    if not isinstance(name, str):
        raise NoisevisionError(f"give the generator by name (noisevision list), not a {type(name).__name__}")
    if Path(name).is_dir():
        raise NoisevisionError(
            f"{name} is a folder: these datasets render generators (read a folder "
            "with torchvision.datasets.ImageFolder)"
        )
    return GeneratorSource(name, res, seed)


def _check_output(output: str) -> str:
    if output not in OUTPUTS:
        raise NoisevisionError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    return output


def _count(value: Any, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise NoisevisionError(f"{what} must be an integer ≥ {minimum}, got {value!r}")
    return int(value)


class _Images:
    """What both datasets share: a source rendered on the CPU, then samples in the chosen form."""

    def __init__(
        self, name: str, res: int | None, seed: int, transform: Callable | None, output: str, labels: bool
    ):
        self.name = name
        self.seed = check_seed(seed)
        self.source = open_generator(name, res, self.seed)
        self.res = self.source.res
        self.transform = transform
        self.output = _check_output(output)
        if not isinstance(labels, bool):
            raise NoisevisionError(f"labels must be True or False, got {labels!r}")
        if labels and not self.source.gen.num_classes:
            raise NoisevisionError(
                f"labels=True needs a generator with categories, and '{name}' has none "
                "(noisevision list: the FDSL families, e.g. fractaldb)"
            )
        self.labels = labels

    def samples(self, indices: Tensor) -> list[Any]:
        """Images `indices` (int64 [B]) rendered in one call, each then transformed; with labels,
        (image, label) pairs."""
        images = self.source.render(indices, "cpu")  # uint8 [B, 3, res, res]
        if self.output == "pil":
            hwc = images.permute(0, 2, 3, 1).contiguous().numpy()  # one copy for the batch
            out: list[Any] = [Image.fromarray(a) for a in hwc]
        else:
            out = list(images.unbind(0))
        out = out if self.transform is None else [self.transform(x) for x in out]
        if not self.labels:
            return out
        return list(zip(out, self.source.gen.labels(indices).tolist()))  # labels: int [B]

    def _describe(self) -> str:
        transform = f", transform={self.transform!r}" if self.transform is not None else ""
        labels = ", labels=True" if self.labels else ""
        return f"{self.name!r}, res={self.res}, seed={self.seed}, output={self.output!r}{transform}{labels}"


class GeneratorDataset(_Images, torch.utils.data.Dataset):
    """Images 0..size-1 of a generator: item i is image i (PIL or uint8 tensor), then `transform`;
    with `labels=True`, (image i, its category i mod num_classes)."""

    def __init__(
        self,
        name: str,
        size: int,
        res: int | None = None,
        seed: int = 0,
        transform: Callable | None = None,
        output: str = "pil",
        labels: bool = False,
    ):
        self.size = _count(size, "size (the number of images)", 1)
        super().__init__(name, res, seed, transform, output, labels)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """A batch of items in one generator call (DataLoader calls this with the batch's indices;
        the default collate stacks the list it returns)."""
        return self.samples(self._checked(indices))

    def _checked(self, indices: Sequence[int]) -> Tensor:
        """Indices as int64 [B] in 0..size-1 (negative ones count from the end, as in a list)."""
        items = indices.tolist() if isinstance(indices, (Tensor, np.ndarray)) else list(indices)
        out = []
        for i in items:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                raise NoisevisionError(f"dataset indices must be integers, got {i!r}")
            j = int(i) + self.size if i < 0 else int(i)
            if not 0 <= j < self.size:
                raise DatasetIndexError(
                    f"index {i} out of range for a dataset of {self.size} images (0..{self.size - 1})"
                )
            out.append(j)
        return torch.tensor(out, dtype=torch.int64)

    def __repr__(self) -> str:
        return f"GeneratorDataset({self._describe()}, size={self.size})"


def world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world size): as given, else torch.distributed's when it is initialised, else torchrun's
    RANK / WORLD_SIZE, else (0, 1)."""
    if rank is None or world_size is None:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            found = dist.get_rank(), dist.get_world_size()
        else:
            found = env_count("RANK", 0), env_count("WORLD_SIZE", 1, minimum=1)
        rank = found[0] if rank is None else rank
        world_size = found[1] if world_size is None else world_size
    world_size = _count(world_size, "world_size", 1)
    if not 0 <= _count(rank, "rank", 0) < world_size:
        raise NoisevisionError(f"rank {rank} is not in 0..{world_size - 1} (world size {world_size})")
    return int(rank), world_size


class GeneratorIterableDataset(_Images, torch.utils.data.IterableDataset):
    """An endless stream of a generator's images from position `start` on, split without repeats
    between DDP ranks and DataLoader workers (see the module docstring); with `labels=True`,
    (image, label) pairs, every shard's stream holding each category once in every num_classes
    images (the rotating order of the module docstring)."""

    def __init__(
        self,
        name: str,
        res: int | None = None,
        seed: int = 0,
        transform: Callable | None = None,
        output: str = "pil",
        start: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        chunk: int = 64,
        labels: bool = False,
    ):
        super().__init__(name, res, seed, transform, output, labels)
        self.start = _count(start, "start", 0)
        self.chunk = _count(chunk, "chunk", 1)  # images rendered per generator call
        # Resolved here when known (torch.distributed initialised, torchrun's variables, or given);
        # workers started by spawn inherit the values instead of a process group.
        self.rank, self.world_size = world(rank, world_size)

    def shard(self) -> tuple[int, int]:
        """(this worker's shard, number of shards): r·W + w of R·W."""
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.rank * workers + worker, self.world_size * workers

    def positions(self) -> Iterator[Tensor]:
        """This shard's image indices, `chunk` at a time: int64 [chunk], forever. Round k of
        `shards` consecutive positions gives this shard one: start + k·shards + its offset."""
        shard, shards = self.shard()
        classes = self.source.gen.num_classes if self.labels else 0
        period = classes // math.gcd(shards, classes) if classes else 0  # rounds per rotation step
        rounds = torch.arange(self.chunk, dtype=torch.int64)  # k, for this chunk
        while True:
            offset = (shard + rounds // period) % shards if period else shard  # int64 [chunk]
            yield self.start + shards * rounds + offset
            rounds = rounds + self.chunk

    def __iter__(self) -> Iterator[Any]:
        for indices in self.positions():
            yield from self.samples(indices)

    def __repr__(self) -> str:
        return (
            f"GeneratorIterableDataset({self._describe()}, start={self.start}, rank={self.rank}, "
            f"world_size={self.world_size})"
        )


__all__ = [
    "OUTPUTS",
    "DatasetIndexError",
    "GeneratorDataset",
    "GeneratorIterableDataset",
    "open_generator",
    "world",
]
