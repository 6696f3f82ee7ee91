"""Throughput benchmarks: images/s measured side by side in one process (`noisevision bench`)."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


def machine_line(device: torch.device) -> str:
    """One line naming the hardware, thread count and torch version the numbers come from."""
    if device.type == "cuda":
        hw = torch.cuda.get_device_name(device)
    else:
        hw = _cpu_name()
    return (
        f"{hw} | device {device} | torch threads {torch.get_num_threads()} | "
        f"torch {torch.__version__} | python {platform.python_version()}"
    )


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(
    step: Callable[[int], object],
    items_per_step: int,
    device: torch.device,
    repeats: int = 5,
    min_time: float = 0.5,
    warmup: int = 1,
) -> tuple[float, list[float]]:
    """Median items/s of `step(k)` over `repeats` timed runs (each at least `min_time` seconds).

    `step(k)` gets a running counter so callers can vary inputs (e.g. fresh indices) per call.
    """
    k = 0
    for _ in range(warmup):
        step(k)
        k += 1
    _sync(device)
    rates = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while True:
            step(k)
            k += 1
            n += 1
            _sync(device)
            dt = time.perf_counter() - start
            if dt >= min_time:
                break
        rates.append(n * items_per_step / dt)
    return statistics.median(rates), rates


def bench_generator(
    name: str, res: int | None, batch: int, device: torch.device, repeats: int = 5, min_time: float = 0.5,
    params: dict | None = None,
) -> tuple[float, list[float], int, float]:
    """images/s of one generator rendering fresh index batches (as a training stream would).

    What calls share (a texture bank, tables) is built first and timed apart (`prepare`).
    Slow generators (feature visualisation, StyleGAN at one image per second…) are timed on
    smaller batches and fewer repeats, so that benchmarking every generator stays in minutes:
    a first call on 2 images estimates the cost (a second on 1 image when the first looks slow,
    which may be one-time set-up such as JIT compilation). Returns (median, all rates, batch
    used, seconds of set-up).
    """
    from noisevision import generators

    gen = generators.get(name, **(params or {}))
    start = time.perf_counter()
    gen.prepare(res, device)
    _sync(device)
    setup = time.perf_counter() - start

    def seconds_per_image(first: int, count: int) -> float:
        start = time.perf_counter()
        gen(range(first, first + count), res=res, seed=0, device=device)
        _sync(device)
        return (time.perf_counter() - start) / count

    per_image = seconds_per_image(10**6, min(batch, 2))  # warm-up + cost probe
    if device.type == "cuda":  # the warm-up held one-time costs; a GPU needs a batch to show its rate
        per_image = seconds_per_image(10**6 + 2, min(batch, 16))
    elif per_image * batch > 10.0:  # slow, or one-time costs (JIT compilation, tables): probe again
        per_image = seconds_per_image(10**6 + 2, 1)
    if per_image * batch > 10.0:  # seconds per call: only really slow generators are cut down
        batch = max(1, int(10.0 / per_image))
        if per_image * batch > 5.0:
            repeats = 1

    def step(k: int) -> None:
        gen(range(k * batch, (k + 1) * batch), res=res, seed=0, device=device)

    median, rates = throughput(step, batch, device, repeats=repeats, min_time=min_time, warmup=0)
    return median, rates, batch, setup


def bench_reference(name: str, res: int, images: int = 5) -> tuple[float, list[float]] | None:
    """images/s of the plain per-image recipe of `name` (noisevision.reference) on CPU: `images`
    images, one at a time after a warm-up image, over their total time (images differ in cost,
    e.g. in their number of shapes), with the per-image rates; None when it has no reference.

    Raises NoisevisionError when the reference needs a library that is missing (pyrtools).
    """
    from noisevision import generators, reference
    from noisevision.errors import NoisevisionError

    gen = generators.get(name)
    if not reference.has_reference(gen):
        return None
    try:
        reference.render_reference(gen, [10**6], res)  # warm-up: imports, first-call costs
    except ModuleNotFoundError as exc:
        raise NoisevisionError(f"the reference of '{name}' needs {exc.name}: pip install {exc.name}") from exc
    seconds = []
    for i in range(images):
        start = time.perf_counter()
        reference.render_reference(gen, [i], res)
        seconds.append(time.perf_counter() - start)
    return images / sum(seconds), [1.0 / s for s in seconds]


# ---------------------------------------------------------------------------------------- evaluation input
#: Frame sizes of ImageNet's most common photos (landscape, portrait, 3:2), width × height.
PHOTO_SIZES = ((500, 375), (375, 500), (500, 333))


def write_photo_folder(root, classes: int = 4, per_class: int = 32, seed: int = 0,
                       generator: str = "stat-spectrum_color", threads: int = 1) -> None:
    """An ImageNet-style folder of JPEGs (quality 90) at the usual photo sizes, for benchmarks:
    ROOT/{train,val}/class<k>/<i>.jpg, the pictures resized from a generator's images (PIL resizes
    and encodes outside the GIL, so `threads` share the work)."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from PIL import Image

    from noisevision import generators

    gen = generators.get(generator)
    root = Path(root)
    total = classes * per_class
    images = gen(range(2 * total), res=128, seed=seed).permute(0, 2, 3, 1).numpy()
    for split in ("train", "val"):
        for c in range(classes):
            (root / split / f"class{c}").mkdir(parents=True, exist_ok=True)

    def save(k: int) -> None:
        split, i = ("train", k) if k < total else ("val", k - total)
        w, h = PHOTO_SIZES[k % len(PHOTO_SIZES)]
        pic = Image.fromarray(images[k]).resize((w, h), Image.BICUBIC)
        pic.save(root / split / f"class{i % classes}" / f"{i}.jpg", quality=90)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(save, range(2 * total)))


def bench_eval_input(data, model, view, device: torch.device, decoder: str, batch_size: int,
                     workers: int, precision: str = "fp32", features: bool = True) -> float:
    """Images/s of reading `data` (an ImageSet of files) into probe inputs on `device` with
    `decoder`, and, with `features`, through `model.features` (autocast `precision`) too."""
    from noisevision.evaluate import extract_features, iterate_views

    def run(images) -> None:
        if features:
            extract_features(model, images, view, model.default_layer, device, batch_size, workers,
                             precision, decoder)  # fmt: skip
        else:
            for _ in iterate_views(images, view, batch_size, device, None, workers, decoder):
                pass
        _sync(device)

    run(data.take(torch.arange(min(len(data), batch_size))))  # imports, kernels, cuDNN's choice
    start = time.perf_counter()
    run(data)
    return len(data) / (time.perf_counter() - start)


# ---------------------------------------------------------------------------------------- per-image datasets
#: What `bench datasets` can time besides the generator's own call: GeneratorDataset outputs.
DATASET_OUTPUTS = ("tensor", "pil")


@dataclass(frozen=True)
class Rate:
    """Images per second of wall-clock time, and per second of this process's CPU time (all its
    threads): the second is what other processes sharing the cores change least."""

    wall: float
    cpu: float


def bench_dataset_loader(name: str, res: int, batch_size: int, outputs: tuple[str, ...] = DATASET_OUTPUTS,
                         rounds: int = 3, min_time: float = 1.0) -> dict[str, list[Rate]]:
    """The generator's own batched call and DataLoader(GeneratorDataset(...), batch_size,
    num_workers=0) over the very same indices, on the CPU, in rounds whose order alternates:
    {"generator": [Rate per round], "tensor": [...], "pil": [...]}. The "pil" loader turns its PIL
    images back into tensors (v2.PILToTensor) so that its batches collate, as a user's transform would.
    """
    from torchvision.transforms import v2

    from noisevision.data.datasets import GeneratorDataset, open_generator

    source = open_generator(name, res, 0)  # a generator's call, or a mix's (one call per part)
    for part in getattr(source, "sources", [source]):
        part.gen.prepare(source.res, "cpu")  # shared tables built before the clock starts
    huge = 1 << 40
    datasets = {out: GeneratorDataset(name, huge, res=res, output=out,
                                      transform=v2.PILToTensor() if out == "pil" else None)
                for out in outputs}  # fmt: skip
    modes = ["generator", *outputs]
    rates: dict[str, list[Rate]] = {mode: [] for mode in modes}
    for r in range(rounds):
        first = (r + 1) * 10**7  # each round renders indices no round rendered before
        for mode in modes if r % 2 == 0 else modes[::-1]:
            if mode == "generator":
                step = _generator_steps(source.render, first, batch_size)
            else:
                step = _loader_steps(datasets[mode], first, batch_size)
            rates[mode].append(_timed(step, batch_size, min_time))
    return rates


def _generator_steps(render: Callable, first: int, batch_size: int) -> Callable[[int], object]:
    return lambda k: render(torch.arange(first + k * batch_size, first + (k + 1) * batch_size))


def _loader_steps(data, first: int, batch_size: int) -> Callable[[int], object]:
    """Step k = the loader's k-th batch: indices first + k·batch_size …, as `_generator_steps`."""
    from torch.utils.data import DataLoader

    batches = iter(DataLoader(data, batch_size=batch_size, sampler=range(first, len(data)), num_workers=0))
    return lambda _k: next(batches)


def _timed(step: Callable[[int], object], batch_size: int, min_time: float) -> Rate:
    """Rate of `step(1), step(2), …` until `min_time` seconds have passed, after `step(0)` (warm-up)."""
    step(0)
    n, wall, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        n += 1
        step(n)
        elapsed = time.perf_counter() - wall
        if elapsed >= min_time:
            break
    return Rate(n * batch_size / elapsed, n * batch_size / (time.process_time() - cpu))
