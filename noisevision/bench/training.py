"""Training throughput: where training time goes, measured side by side in one process
(`noisevision bench train`).

Four ways to feed the same training step (augmentation + forward + backward + SGD):
(a) in memory: pre-rendered uint8 images, no data loading at all (the ceiling);
(b) streamed: images rendered from the generator while training (the `train` path);
(c) cached: the streamed images read back from the device after the first epoch (`train
    --cache-images`, the path of the later epochs of a fixed dataset);
(d) folder: JPEG files (quality 95, written here to a temporary folder) decoded by DataLoader
    workers, the classic pipeline of the original code.
The ratios to (a) say what streaming and reading files cost compared with free data.
The modes run in interleaved rounds and each reports its best round, so that a load change on a
shared machine does not favour whichever mode happened to run first.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from PIL import Image

from noisevision.data.stream import CachedSource, StepDataset, iterate_steps, open_source
from noisevision.device import default_workers
from noisevision.errors import NoisevisionError
from noisevision.train import Components, TrainConfig, build_components, train_step


@dataclass
class BenchResult:
    name: str
    images_per_s: float  # best round
    rounds: list[float]


def _timed(parts: Components, cfg: TrainConfig, batches: Iterable, warmup: int, total: int) -> float:
    """Images/s of training on the first `total` of `batches` ((epoch, step, idx, images) items),
    after `warmup` steps."""
    device = next(parts.method.parameters()).device
    n, t0 = 0, None
    for k, (epoch, _step, idx, images) in enumerate(itertools.islice(batches, total)):
        if k == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        train_step(
            parts.method,
            parts.optimizer,
            parts.aug,
            images.to(device),
            idx,
            cfg.seed,
            epoch,
            k,
            parts.numerics,
        )
        if k >= warmup:
            n += len(idx)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return n / (time.perf_counter() - t0)


def _write_jpegs(images: torch.Tensor, order: torch.Tensor, root: Path) -> None:
    """Image k to a file named by its dataset index order[k] (so files sort by index)."""
    from concurrent.futures import ThreadPoolExecutor

    def save(k: int) -> None:
        pic = Image.fromarray(images[k].permute(1, 2, 0).numpy())
        pic.save(root / f"{int(order[k]):010d}.jpg", quality=95)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(save, range(len(images))))


class _Reindexed(torch.utils.data.Dataset):
    """Step k of `steps` ((epoch, step, folder positions, _)) read from the folder source."""

    device = "cpu"  # decoded in the workers (iterate_steps pins their batches for a GPU)

    def __init__(self, source, steps):
        self.source, self.steps = source, steps

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, k: int):
        epoch, step, pos, _ = self.steps[k]
        return epoch, step, pos, self.source.render(pos)


MODES = ("in-memory", "streamed", "cached", "folder")


def bench_train(
    cfg: TrainConfig,
    device: torch.device,
    steps: int,
    warmup: int = 1,
    workers: int | None = None,
    rounds: int = 2,
    modes: tuple[str, ...] = MODES,
    folder_workers: int | None = None,
) -> list[BenchResult]:
    """Images/s of training for `cfg` fed (a) from memory, (b) streamed from the generator, (c)
    from a cache of the streamed images on the device (`--cache-images`: the epochs after the
    first) and (d) from a folder of JPEGs; the `modes` asked for, in-memory always (the
    reference).

    The steps are the first ones of the run's real first epoch, over its `num_images` (a
    generator whose images share state by blocks of indices, e.g. StyleGAN's networks, is then
    timed on as many blocks as the run would meet).
    """
    total = steps + warmup
    cfg = replace(cfg, fresh=False)
    parts = build_components(cfg, device)
    parts.method.train()
    plan, source = parts.plan, parts.source
    if plan.steps_per_epoch < total:
        raise NoisevisionError(f"{cfg.num_images} images make fewer than {total} steps of {cfg.batch_size}")
    workers = default_workers(device, "train") if workers is None else workers
    render_device = device if workers == 0 else torch.device("cpu")
    stream = StepDataset(source, plan, (0, 0), 1, device=render_device)
    cached = [stream[k] for k in range(total)]  # (a) the same images (b), (c) and (d) see
    modes = ("in-memory", *(m for m in modes if m != "in-memory"))
    rates: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="noisevision-bench-") as tmp:
        feeds = {
            "in-memory": lambda: cached,
            "streamed": lambda: iterate_steps(stream, workers),
        }
        if "cached" in modes:
            cache = StepDataset(
                CachedSource(source, cfg.num_images, render_device), plan, (0, 0), 1, device=render_device
            )
            for k in range(total):  # the first epoch's rendering
                cache[k]
            feeds["cached"] = lambda: (cache[k] for k in range(total))
        if "folder" in modes:
            order = torch.cat([c[2].cpu() for c in cached])
            images = torch.cat([c[3].cpu() for c in cached])
            _write_jpegs(images, order, Path(tmp))  # file of image i: its index's rank among them
            rank = torch.empty(int(order.max()) + 1, dtype=torch.int64)
            rank[order.sort().values] = torch.arange(len(order))
            files = [(e, s, rank[i], img) for e, s, i, img in cached]  # indices into the folder
            folder_src = open_source(tmp, source.res)
            folder = _Reindexed(folder_src, files)
            n_folder = max(1, workers) if folder_workers is None else folder_workers
            feeds["folder"] = lambda: (
                (e, s, i, x) for (e, s, i, _), (_, _, _, x) in zip(cached, iterate_steps(folder, n_folder))
            )
        for _ in range(rounds):
            for mode in modes:
                rates[mode].append(_timed(parts, cfg, feeds[mode](), warmup, total))
    return [BenchResult(name, max(r), r) for name, r in rates.items()]


def report_train(
    cfg: TrainConfig,
    device: torch.device,
    steps: int,
    rounds: int = 2,
    workers: int | None = None,
    modes: tuple[str, ...] = MODES,
    *,
    say: Callable[[str], None],
) -> None:
    """`bench train`: a machine line, one line per feed (its best round, and every round), then each
    feed's ratio to training from memory."""
    from noisevision.bench.timing import machine_line
    from noisevision.precision import resolve_precision

    cfg.validate()
    for m in modes:
        if m not in MODES:
            raise NoisevisionError(f"unknown mode '{m}': use {', '.join(MODES)}")
    n_workers = default_workers(device, "train") if workers is None else workers
    say(
        f"# {machine_line(device)} | {cfg.arch} {cfg.method} {resolve_precision(cfg.precision, device)} | "
        f"{cfg.data} at {cfg.res} px | batch {cfg.batch_size} | {steps} steps × {rounds} rounds | workers "
        f"{n_workers} (1 thread each)"
    )
    results = bench_train(cfg, device, steps, workers=workers, rounds=rounds, modes=modes)
    base = results[0].images_per_s
    for r in results:
        each = ", ".join(f"{x:,.1f}" for x in r.rounds)
        say(f"{r.name:12s} {r.images_per_s:10,.1f} img/s  (rounds: {each})")
    say("  ".join(f"{r.name}/in-memory {r.images_per_s / base:.2f}" for r in results[1:]))
