"""Timing for the benchmarks: items/s of a repeated step, and the line naming the machine."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

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


def synchronize(device: torch.device) -> None:
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
    synchronize(device)
    rates = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while True:
            step(k)
            k += 1
            n += 1
            synchronize(device)
            dt = time.perf_counter() - start
            if dt >= min_time:
                break
        rates.append(n * items_per_step / dt)
    return statistics.median(rates), rates
