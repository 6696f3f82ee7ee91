"""Generator throughput: images/s of every registered generator, and of the original per-image
recipe beside it (`noisevision bench generators`)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch

from noisevision.bench.timing import machine_line, synchronize, throughput
from noisevision.errors import NoisevisionError, UnknownNameError

if TYPE_CHECKING:
    from noisevision.generators.registry import Generator


def bench_generator(
    name: str,
    res: int | None,
    batch: int,
    device: torch.device,
    repeats: int = 5,
    min_time: float = 0.5,
    params: dict | None = None,
    gen: Generator | None = None,
) -> tuple[float, list[float], int, float]:
    """images/s of one generator rendering fresh index batches (as a training stream would);
    `gen`: that generator already built, to time it rather than a new one.

    What calls share (a texture bank, tables) is built first and timed apart (`prepare`).
    Slow generators (feature visualisation, StyleGAN on a CPU…) are timed on
    smaller batches and fewer repeats, so that benchmarking every generator stays in minutes:
    a first call on 2 images estimates the cost (a second on 1 image when the first looks slow,
    which may be one-time set-up such as JIT compilation). Returns (median, all rates, batch
    used, seconds of set-up).
    """
    from noisevision import generators

    gen = gen if gen is not None else generators.get(name, **(params or {}))
    # A generator with categories times batches of the same categories (indices `stride` apart
    # hold them): their one-time search (FractalDB's codes, 1p-frac's perturbations) is set-up.
    classes = gen.num_classes
    stride = batch if not classes else classes * -(-batch // classes)
    start = time.perf_counter()
    gen.prepare(res, device)
    if classes:
        gen.prepare_classes(range(min(batch, classes)), seed=0, device=device)
    synchronize(device)
    setup = time.perf_counter() - start

    def seconds_per_image(first: int, count: int) -> float:
        start = time.perf_counter()
        gen(range(first, first + count), res=res, seed=0, device=device)
        synchronize(device)
        return (time.perf_counter() - start) / count

    probe = stride * -(-(10**6) // stride)  # far from the timed indices, of the same categories
    per_image = seconds_per_image(probe, min(batch, 2))  # warm-up + cost probe
    if device.type == "cuda":  # the warm-up held one-time costs; a GPU needs a batch to show its rate
        per_image = seconds_per_image(probe + stride, min(batch, 16))
    elif per_image * batch > 10.0:  # slow, or one-time costs (JIT compilation, tables): probe again
        per_image = seconds_per_image(probe + stride, 1)
    if per_image * batch > 10.0:  # seconds per call: only really slow generators are cut down
        batch = max(1, int(10.0 / per_image))
        if per_image * batch > 5.0:
            repeats = 1

    def step(k: int) -> None:
        gen(range(k * stride, k * stride + batch), res=res, seed=0, device=device)

    median, rates = throughput(step, batch, device, repeats=repeats, min_time=min_time, warmup=0)
    return median, rates, batch, setup


def bench_reference(
    name: str, res: int, images: int = 5, min_time: float = 3.0, max_images: int = 200
) -> tuple[float, list[float]] | None:
    """images/s of the plain per-image recipe of `name` (noisevision.reference) on CPU: at least
    `images` images, one at a time after a warm-up image, and more until `min_time` seconds are
    spent (images differ in cost, e.g. in their number of shapes or orbits), over their total
    time, with the per-image rates; None when it has no reference.

    Raises NoisevisionError when the reference needs a library that is missing (pyrtools, noise).
    """
    from noisevision import generators, reference
    from noisevision.errors import NoisevisionError

    gen = generators.get(name)
    if not reference.has_reference(gen):
        return None
    if gen.num_classes:  # the categories' one-time search is set-up here too
        gen.prepare_classes([10**6], seed=0, device="cpu")
    try:
        reference.render_reference(gen, [10**6], res)  # warm-up: imports, first-call costs
    except ModuleNotFoundError as exc:
        raise NoisevisionError(f"the reference of '{name}' needs {exc.name}: pip install {exc.name}") from exc
    seconds: list[float] = []
    while len(seconds) < images or (sum(seconds) < min_time and len(seconds) < max_images):
        if gen.num_classes:  # searched before its image is timed, only when it is
            gen.prepare_classes([len(seconds)], seed=0, device="cpu")
        start = time.perf_counter()
        reference.render_reference(gen, [len(seconds)], res)
        seconds.append(time.perf_counter() - start)
    return len(seconds) / sum(seconds), [1.0 / s for s in seconds]


def profile_generator(
    name: str, res: int | None, batch: int, device: torch.device, top: int = 12
) -> tuple[float, list[tuple[str, float, int]]]:
    """Where one batch of `name` spends its time: (seconds of the call, [(torch op, self seconds,
    calls)] for the `top` ops by their own time). What no torch op accounts for is Python and
    compiled loops (numba): the call's time minus the ops' sum. A first batch is rendered before,
    so that one-time set-up is not profiled."""
    from torch.profiler import ProfilerActivity, profile

    from noisevision import generators

    gen = generators.get(name)
    gen.prepare(res, device)
    classes = gen.num_classes
    stride = batch if not classes else classes * -(-batch // classes)
    gen(range(stride, stride + batch), res=res, seed=0, device=device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with _quiet_stderr(), profile(activities=activities) as prof:  # the profiler's start/stop lines
        start = time.perf_counter()
        gen(range(2 * stride, 2 * stride + batch), res=res, seed=0, device=device)
        synchronize(device)
        seconds = time.perf_counter() - start
    ops = [
        (e.key, e.self_cpu_time_total / 1e6, e.count)
        for e in prof.key_averages()
        if e.self_cpu_time_total > 0
    ]
    ops.sort(key=lambda r: -r[1])
    return seconds, ops[:top] + [("(all ops)", sum(r[1] for r in ops), sum(r[2] for r in ops))]


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null: torch's profiler writes its own lines there from C++."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def report_generators(
    names: list[str],
    device: torch.device,
    res: int,
    batch: int,
    repeats: int = 5,
    min_time: float = 0.5,
    reference: bool = False,
    profile: bool = False,
    *,
    say: Callable[[str], None],
) -> None:
    """`bench generators`: a machine line, then one line per generator of `names` (all registered
    when empty) with its median images/s, and with `reference` a line for the original recipe and
    the speed-up; a generator that cannot render `res` is reported as skipped."""
    from noisevision import generators

    todo = list(names) if names else generators.names()
    cannot = {}
    for n in todo:  # every unknown name, and a resolution a named one cannot make, fail before timing
        try:
            generators.get(n).check_res(res)
        except NoisevisionError as exc:
            if names or isinstance(exc, UnknownNameError):
                raise
            cannot[n] = exc
    if len(cannot) == len(todo):
        raise NoisevisionError(f"no generator renders {res} px: {next(iter(cannot.values()))}")
    say(f"# {machine_line(device)} | res {res} | batch {batch}")
    for n in todo:
        if n in cannot:  # all generators asked for: those without this resolution are listed
            say(f"{n:32s} skipped: {cannot[n]}")
            continue
        median, rates, used, setup = bench_generator(
            n, res, batch, device, repeats=repeats, min_time=min_time
        )
        spread = f"(min {min(rates):,.1f}, max {max(rates):,.1f}, {len(rates)} runs"
        spread += f", batch {used}" if used != batch else ""
        spread += f"; set-up {setup:,.1f} s first)" if setup >= 0.1 else ")"
        say(f"{n:32s} {median:10,.2f} img/s  {spread}")
        if profile:
            seconds, ops = profile_generator(n, res, used, device)
            say(f"  profile of one batch of {used}: {seconds:,.3f} s")
            for op, self_s, calls in ops:
                say(f"    {op[:48]:48s} {self_s:8.3f} s {100 * self_s / seconds:5.1f} %  {calls:7,d} calls")
            outside = seconds - ops[-1][1]
            what = "(outside torch ops: Python, numba loops)"
            say(f"    {what:48s} {outside:8.3f} s {100 * outside / seconds:5.1f} %")
        if reference:
            try:
                ref = bench_reference(n, res)
            except NoisevisionError as exc:
                say(f"{'  reference':32s} skipped: {exc}")
                continue
            if ref is not None:
                ref_rate, rates = ref
                spread = f"(min {min(rates):,.2f}, max {max(rates):,.2f}, {len(rates)} images, cpu)"
                line = f"{'  reference, image by image':32s} {ref_rate:10,.2f} img/s  {spread}"
                say(f"{line}: {median / ref_rate:,.0f}× faster")
