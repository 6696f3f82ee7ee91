"""What experiment tracking costs a training run (`noisevision bench logging`).

The same run (same seed, data, recipe) is trained once per set of loggers, in interleaved rounds
so that a load change on a shared machine does not favour whichever set ran first, and each set
reports its best round of:
- loop: the epoch loop, every step's log line and every epoch's records (metrics.jsonl, the
  trackers' epoch metrics and flushes) included: what `--logger` may slow down;
- in calls: the part of the loop spent inside the trackers' calls (what the loop waits for), and
  its share of the loop: on a loaded machine, where the loop's wall time swings by tens of per
  cent between rounds, the share is what resolves a cost of a few per cent;
- CPU: the training process's CPU time over the loop (all its threads: TensorBoard's writer,
  MLflow's logging thread), which a busy machine's other work does not inflate as it does wall
  time; W&B's service process is not in it;
- start: opening the trackers (MLflow creating its local store, W&B starting its service) and the
  sample grid, once per run;
- end: the encoder as an artifact and closing the trackers (W&B and MLflow finishing their uploads).
W&B runs offline (WANDB_MODE=offline unless set), MLflow on a local store in a temporary folder.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from noisevision.errors import NoisevisionError
from noisevision.tracking import Tracker, parse_loggers

#: The sets of loggers timed unless told: none first (the reference), then each alone, then all.
LOGGER_SETS = ("none", "tensorboard", "wandb", "mlflow", "tensorboard,wandb,mlflow")


@dataclass
class TrackedTiming:
    loggers: str
    loop: list[float]  # seconds per round
    start: list[float]
    end: list[float]
    calls: list[float] = field(default_factory=list)  # seconds inside the trackers' calls in the loop
    cpu: list[float] = field(default_factory=list)  # the process's CPU seconds over the loop

    def best(self) -> int:
        """The round with the fastest loop."""
        return min(range(len(self.loop)), key=self.loop.__getitem__)


class _TimedTrackers(Tracker):
    """The run's trackers, with the time spent inside their calls added up."""

    def __init__(self, trackers: Tracker):
        self.trackers, self.seconds = trackers, 0.0

    def _timed(self, name: str, *args) -> None:
        t0 = time.perf_counter()
        getattr(self.trackers, name)(*args)
        self.seconds += time.perf_counter() - t0

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._timed("log_metrics", metrics, step)

    def log_image(self, key: str, path: Path, step: int) -> None:
        self._timed("log_image", key, path, step)

    def flush(self) -> None:
        self._timed("flush")


def time_tracked_run(cfg, device: torch.device) -> tuple[float, float, float, float, float]:
    """(start, loop, end, in calls, CPU) seconds of training `cfg` from scratch with its loggers
    (cfg.out: a new folder), built from the same pieces as `train`."""
    from noisevision.models import save_encoder
    from noisevision.train import ENCODER, RunState, build_components, open_loader, run_epochs
    from noisevision.train.run import open_run_trackers, training_recipe

    out = Path(cfg.out)
    out.mkdir(parents=True)
    parts = build_components(cfg, device)
    state = RunState()
    loader = open_loader(cfg, parts, state, device)
    t0 = time.perf_counter()
    trackers = open_run_trackers(cfg, parts, state)
    timed = _TimedTrackers(trackers)
    t1, cpu = time.perf_counter(), time.process_time()
    run_epochs(cfg, parts, loader, state, device, [], timed)
    t2, cpu = time.perf_counter(), time.process_time() - cpu
    save_encoder(
        out / ENCODER, parts.method.encoder, {"images_seen": state.images_seen}, training_recipe(cfg, parts)
    )
    t3 = time.perf_counter()
    trackers.log_artifact(out / ENCODER, "encoder")
    trackers.close()
    return t1 - t0, t2 - t1, time.perf_counter() - t3, timed.seconds, cpu


def bench_tracking(
    cfg, device: torch.device, logger_sets: tuple[str, ...], rounds: int
) -> list[TrackedTiming]:
    """Every set of `logger_sets` timed `rounds` times, interleaved, each run in a new folder."""
    for loggers in logger_sets:
        parse_loggers(loggers)  # an unknown or uninstalled tracker: one line, before any run
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    timings = {s: TrackedTiming(s, [], [], []) for s in logger_sets}
    with tempfile.TemporaryDirectory(prefix="noisevision-bench-logging-") as root:
        for r in range(rounds):
            for loggers, t in timings.items():
                run = replace(cfg, logger=loggers, out=str(Path(root) / f"{r}-{len(t.loop)}-{loggers}"))
                start, loop, end, calls, cpu = time_tracked_run(run, device)
                t.start.append(start)
                t.loop.append(loop)
                t.end.append(end)
                t.calls.append(calls)
                t.cpu.append(cpu)
    return list(timings.values())


def report_tracking(
    cfg, device: torch.device, logger_sets: tuple[str, ...], rounds: int, *, say: Callable[[str], None]
) -> list[TrackedTiming]:
    """`bench logging`: a machine line, then a Markdown table: per set of loggers its best loop, the
    loop's cost over no logger, and the start and end of that round."""
    from noisevision.bench.timing import machine_line

    cfg.validate()
    if "none" not in logger_sets:
        raise NoisevisionError("--loggers must include none: the reference the others are compared with")
    steps = -(-cfg.num_images // cfg.batch_size) * cfg.epochs
    say(
        f"# {machine_line(device)} | {cfg.preset}: {cfg.arch}, {cfg.data} at {cfg.res} px, "
        f"{cfg.epochs} epochs × {cfg.num_images} images, batch {cfg.batch_size}, {steps} steps, "
        f"a log line every {cfg.log_every} | {rounds} rounds, best loop of each | W&B "
        f"{os.environ.get('WANDB_MODE') or 'offline'}, MLflow local store"
    )
    results = bench_tracking(cfg, device, logger_sets, rounds)
    base = min(next(t for t in results if t.loggers == "none").loop)
    cpu_base = min(next(t for t in results if t.loggers == "none").cpu)
    say(
        "| loggers | loop s (best) | loop vs none | in calls s | in calls / loop | CPU s | CPU vs none "
        "| start s | end s | loop s, every round |"
    )
    say("|---|---|---|---|---|---|---|---|---|---|")
    for t in results:
        k = t.best()
        rounds_text = ", ".join(f"{x:.1f}" for x in t.loop)
        cpu = min(t.cpu)
        say(
            f"| {t.loggers} | {t.loop[k]:.2f} | {100 * (t.loop[k] / base - 1):+.1f} % | {t.calls[k]:.3f} | "
            f"{100 * t.calls[k] / t.loop[k]:.2f} % | {cpu:.1f} | {100 * (cpu / cpu_base - 1):+.1f} % "
            f"| {t.start[k]:.2f} | {t.end[k]:.2f} | {rounds_text} |"
        )
    return results
