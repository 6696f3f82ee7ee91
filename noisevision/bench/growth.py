"""How a generator's cost grows with resolution: images/s, 64 px tiles/s and memory per image at
each size (`noisevision bench generators --sizes`).

Memory per image is the peak memory a batch adds over a one-image batch, divided by the extra
images: on a CPU the process's peak resident set (`ru_maxrss`), which only ever grows, so each
(generator, size) runs in a fresh process; on a GPU torch's peak allocation.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch

from noisevision.bench.generators import bench_generator
from noisevision.bench.timing import machine_line, synchronize
from noisevision.errors import NoisevisionError

TILE = 64  # px: rates are also given per 64 × 64 tile, so that sizes compare


@dataclass
class Point:
    """One generator at one size: median images/s, the batch timed, peak bytes per image."""

    rate: float
    batch: int
    bytes_per_image: float


def _peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def measure(name: str, res: int, batch: int, device: torch.device, repeats: int, min_time: float) -> Point:
    """`Point` of `name` at `res`, measured in this process (on a CPU: a fresh one, see above)."""
    from noisevision import generators

    gen = generators.get(name)
    gen.prepare(res, device)
    gen([10**6], res=res, seed=0, device=device)  # one-time costs, and the one-image peak
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        gen([10**6 + 1], res=res, seed=0, device=device)
    one = _peak_bytes(device)
    rate, _, used, _ = bench_generator(name, res, batch, device, repeats=repeats, min_time=min_time, gen=gen)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    gen(range(2 * 10**6, 2 * 10**6 + used), res=res, seed=0, device=device)
    synchronize(device)
    extra = max(0, _peak_bytes(device) - one)
    return Point(rate, used, extra / max(1, used - 1))


def measure_apart(
    name: str, res: int, batch: int, device: torch.device, repeats: int, min_time: float
) -> Point:
    """`measure` in a fresh Python process on a CPU (its peak resident set starts there), in this
    one on a GPU."""
    if device.type == "cuda":
        return measure(name, res, batch, device, repeats, min_time)
    args = [name, str(res), str(batch), str(torch.get_num_threads()), str(repeats), str(min_time)]
    done = subprocess.run(
        [sys.executable, "-m", "noisevision.bench.growth", *args],
        capture_output=True,
        text=True,
        env=os.environ,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise NoisevisionError(f"measuring {name} at {res} px failed: {last}")
    return Point(**json.loads(done.stdout.strip().splitlines()[-1]))


def report_growth(
    names: list[str],
    sizes: list[int],
    batch: int,
    device: torch.device,
    repeats: int,
    min_time: float,
    *,
    say: Callable[[str], None],
) -> None:
    """A machine line, then one line per generator and size: images/s, 64 px tiles/s and MB per
    image ("cannot" where the generator does not render that size). Unknown names fail first."""
    from noisevision import generators

    built = {n: generators.get(n) for n in names}
    say(f"# {machine_line(device)} | batch {batch}")
    head = f"{'generator':32s} {'res':>5s} {'img/s':>10s} {'tiles/s':>10s} {'MB/image':>9s}"
    say(f"{head}  (tile: {TILE}×{TILE} px)")
    for n, gen in built.items():
        for res in sizes:
            try:
                gen.check_res(res)
            except NoisevisionError:
                say(f"{n:32s} {res:5d} {'cannot':>10s}")
                continue
            p = measure_apart(n, res, batch, device, repeats, min_time)
            tiles = p.rate * (res / TILE) ** 2
            note = f"  (batch {p.batch})" if p.batch != batch else ""
            mb = p.bytes_per_image / 2**20
            say(f"{n:32s} {res:5d} {_rate(p.rate):>10s} {_rate(tiles):>10s} {mb:9.2f}{note}")


def _rate(value: float) -> str:
    """A rate with three significant digits below 100 (slow generators), whole numbers above."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


if __name__ == "__main__":  # one measurement in a fresh process: name res batch threads repeats min_time
    from noisevision.memory import keep_freed_memory

    keep_freed_memory()  # as the command line renders (its huge-page switch comes in the environment)
    name, res, batch, threads, repeats, min_time = sys.argv[1:7]
    torch.set_num_threads(int(threads))
    point = measure(name, int(res), int(batch), torch.device("cpu"), int(repeats), float(min_time))
    print(json.dumps(vars(point)))
