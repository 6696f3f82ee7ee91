"""Per-image datasets: images/s of a DataLoader over GeneratorDataset beside the generator's own
batched call (`noisevision bench datasets`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from noisevision.bench.timing import machine_line
from noisevision.errors import NoisevisionError

#: What `bench datasets` can time besides the generator's own call: GeneratorDataset outputs.
DATASET_OUTPUTS = ("tensor", "pil")


@dataclass(frozen=True)
class Rate:
    """Images per second of wall-clock time, and per second of this process's CPU time (all its
    threads): the second is what other processes sharing the cores change least."""

    wall: float
    cpu: float


def bench_dataset_loader(
    name: str,
    res: int,
    batch_size: int,
    outputs: tuple[str, ...] = DATASET_OUTPUTS,
    rounds: int = 3,
    min_time: float = 1.0,
) -> dict[str, list[Rate]]:
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
    datasets = {
        out: GeneratorDataset(
            name, huge, res=res, output=out, transform=v2.PILToTensor() if out == "pil" else None
        )
        for out in outputs
    }
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


def report_datasets(
    name: str,
    res: int,
    batch_size: int,
    outputs: tuple[str, ...] = DATASET_OUTPUTS,
    rounds: int = 3,
    min_time: float = 2.0,
    *,
    say: Callable[[str], None],
) -> None:
    """`bench datasets`: a machine line, then images/s (wall and CPU time) of the generator's call
    and of each loader output, the best of `rounds` each, with their ratio to the generator call."""
    from noisevision.data.datasets import open_generator

    open_generator(name, res, 0)  # an unknown name or resolution: one line, before the header
    for o in outputs:
        if o not in DATASET_OUTPUTS:
            raise NoisevisionError(f"unknown output '{o}': use {', '.join(DATASET_OUTPUTS)}")
    say(
        f"# {machine_line(torch.device('cpu'))} | {name} at {res} px | batch {batch_size} | "
        f"DataLoader num_workers=0 | {rounds} rounds"
    )
    rates = bench_dataset_loader(name, res, batch_size, outputs, rounds=rounds, min_time=min_time)
    # the best round of each: the least disturbed by other processes
    base = max(r.wall for r in rates["generator"]), max(r.cpu for r in rates["generator"])
    labels = {"generator": "generator call", "tensor": "loader, tensor", "pil": "loader, pil"}
    for key, values in rates.items():
        wall, cpu = max(r.wall for r in values), max(r.cpu for r in values)
        ratio = f"  ({wall / base[0]:.2f}×, {cpu / base[1]:.2f}× the generator call)"
        ratio = "" if key == "generator" else ratio
        each = ", ".join(f"{r.wall:,.1f}" for r in values)
        say(f"{labels[key]:16s} {wall:10,.1f} img/s {cpu:10,.1f} img/CPU-s{ratio}  (rounds, img/s: {each})")
