"""`noisevision bench train`: where training time goes, measured side by side in one process.

Three ways to feed the same training step (augmentation + forward + backward + SGD):
(a) in memory: pre-rendered uint8 images, no data loading at all (the ceiling);
(b) streamed: images rendered from the generator while training (the `train` path);
(c) folder: JPEG files (quality 95, written here to a temporary folder) decoded by DataLoader
    workers, the classic pipeline of the original code.
The ratios b/a and c/a say what streaming and reading files cost compared with free data.
The modes run in interleaved rounds and each reports its best round, so that a load change on a
shared machine does not favour whichever mode happened to run first.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from PIL import Image

from noisevision.data.stream import StepDataset, iterate_steps, open_source
from noisevision.train import Components, TrainConfig, build_components, train_step


@dataclass
class BenchResult:
    name: str
    images_per_s: float  # best round
    rounds: list[float]


def _timed(parts: Components, cfg: TrainConfig, batches: Iterable, warmup: int) -> float:
    """Images/s of training on `batches` ((epoch, step, idx, images) items), after `warmup` steps."""
    device = next(parts.method.parameters()).device
    n, t0 = 0, None
    for k, (epoch, _step, idx, images) in enumerate(batches):
        if k == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        train_step(parts.method, parts.optimizer, parts.aug, images.to(device), idx, cfg.seed, epoch, k,
                   parts.numerics)  # fmt: skip
        if k >= warmup:
            n += len(idx)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return n / (time.perf_counter() - t0)


def _write_jpegs(images: torch.Tensor, root: Path) -> None:
    for i, img in enumerate(images):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(root / f"{i:08d}.jpg", quality=95)


MODES = ("in-memory", "streamed", "folder")


def bench_train(cfg: TrainConfig, device: torch.device, steps: int, warmup: int = 1,
                workers: int | None = None, rounds: int = 2,
                modes: tuple[str, ...] = MODES) -> list[BenchResult]:
    """Images/s of (a) in-memory, (b) streamed and (c) JPEG-folder training for `cfg` (the `modes`
    asked for; in-memory is always measured, as the reference)."""
    total = steps + warmup
    cfg = replace(cfg, num_images=cfg.batch_size * total, fresh=False)
    parts = build_components(cfg, device)
    parts.method.train()
    plan, source = parts.plan, parts.source
    workers = (0 if device.type == "cuda" else 1) if workers is None else workers
    stream = StepDataset(source, plan, (0, 0), 1, device=device if workers == 0 else "cpu")
    cached = [stream[k] for k in range(total)]  # (a) the same images (b) and (c) see
    modes = ("in-memory", *(m for m in modes if m != "in-memory"))
    rates: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="noisevision-bench-") as tmp:
        folder = None
        if "folder" in modes:
            images = torch.cat([c[3].cpu() for c in cached])
            order = torch.cat([c[2].cpu() for c in cached])
            _write_jpegs(images[torch.argsort(order)], Path(tmp))  # file i holds image i
            folder = StepDataset(open_source(tmp, source.res), plan, (0, 0), 1)
        feeds = {
            "in-memory": lambda: cached,
            "streamed": lambda: iterate_steps(stream, workers),
            "folder": lambda: iterate_steps(folder, max(1, workers)),
        }
        for _ in range(rounds):
            for mode in modes:
                rates[mode].append(_timed(parts, cfg, feeds[mode](), warmup))
    return [BenchResult(name, max(r), r) for name, r in rates.items()]
