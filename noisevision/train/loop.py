"""The epoch loop: the run's batches (Loader), one optimisation step, logging, checkpoints and
stop signals, from a RunState to the last epoch."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from noisevision import augment
from noisevision.data.stream import (
    CachedSource,
    GeneratorSource,
    StepDataset,
    batch_invariant,
    iterate_steps,
)
from noisevision.device import default_workers
from noisevision.errors import FieldError, StopRequested, checkpoint_place
from noisevision.io import atomic_write_text
from noisevision.methods.common import gather, world
from noisevision.precision import autocast
from noisevision.progress import Progress
from noisevision.stopping import StopSignals
from noisevision.tracking import Tracker, Trackers
from noisevision.train.checkpoint import Checkpointer, RunState
from noisevision.train.components import Components, Numerics
from noisevision.train.config import TrainConfig, lr_at

METRICS = "metrics.jsonl"


#: Called after each epoch's checkpoint with (epochs done, the encoder): see run_epochs.
EpochEnd = Callable[[int, torch.nn.Module], None]


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    aug: augment.AugmentConfig,
    images: torch.Tensor,
    indices: torch.Tensor,
    seed: int,
    epoch: int,
    step: int,
    numerics: Numerics | None = None,
    labels: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One optimisation step on uint8 images [b, 3, r, r] (on the device): the logged terms, as
    detached 0-d tensors on the device (reading them waits for the GPU: do it only when logging).
    With `labels` [b] (a supervised method), one view per image and its category; else two views."""
    num = numerics or Numerics()
    count = 1 if labels is not None else 2
    views = augment.views(aug, images, indices, seed, epoch, count)  # fp32, outside autocast
    if num.channels_last:
        views = tuple(v.contiguous(memory_format=torch.channels_last) for v in views)
    with autocast(images.device, num.precision):
        loss, terms = model(views[0], labels if labels is not None else views[1], step=step)
    optimizer.zero_grad(set_to_none=True)
    if num.scaler is not None and num.scaler.is_enabled():
        num.scaler.scale(loss).backward()
        num.scaler.step(optimizer)  # skips the step when fp16 gradients overflowed
        num.scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return {k: v.detach() for k, v in terms.items()}


def check_finite(terms: dict[str, torch.Tensor], step: int) -> dict[str, float]:
    """The terms as floats; NoisevisionError when the loss is not finite."""
    values = {k: float(v) for k, v in terms.items()}
    if not math.isfinite(values["loss"]):
        raise FieldError("lr", f"loss became {values['loss']} at step {step}: lower {{field}}")
    return values


class _StopSignals(StopSignals):
    """StopSignals with the ranks of a DDP run agreeing on when to stop."""

    def agreed(self, device: torch.device) -> int | None:
        """The signal to stop on, the same on every rank (any rank's signal stops them all)."""
        if world()[1] == 1:
            return self.received
        flag = torch.tensor([self.received or 0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag) or None


# ---------------------------------------------------------------------------------------- loader
@dataclass
class Loader:
    """The run's batches from its resume point on: (epoch, step, indices, uint8 images) per step."""

    dataset: StepDataset
    workers: int  # rendering processes; 0: render in this process, on the training device
    notes: list[str]

    def __iter__(self) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
        return iter(iterate_steps(self.dataset, self.workers))


def open_loader(cfg: TrainConfig, parts: Components, state: RunState, device: torch.device) -> Loader:
    """Where the images are rendered (worker processes on the CPU, or the training GPU itself),
    whether a generated dataset stays cached on the GPU, and this rank's share of every batch."""
    rank, size = world()
    source = parts.source
    workers = cfg.workers
    if workers is None:
        workers = default_workers(device, "train" if source.size is None else "train-folder")
    render_device = device if workers == 0 else torch.device("cpu")
    notes = []
    if workers == 0 and (note := _cache_choice(cfg, source, device)):
        source = CachedSource(source, cfg.num_images, device)
        notes.append(note)
    for part in getattr(source, "sources", [source]):  # slow one-time set-up, e.g. a texture bank
        if isinstance(part, GeneratorSource) and (note := part.gen.setup_note(part.res, render_device)):
            notes.append(f"{part.name} {note}")
    start = (state.epoch, state.step)
    dataset = StepDataset(source, parts.plan, start, cfg.epochs, rank, size, render_device)
    return Loader(dataset, workers, notes)


# ---------------------------------------------------------------------------------------- epoch loop
def run_epochs(
    cfg: TrainConfig,
    parts: Components,
    loader: Loader,
    state: RunState,
    device: torch.device,
    notes: list[str],
    trackers: Tracker | None = None,
    epoch_end: EpochEnd | None = None,
) -> None:
    """Train from `state` to the end: a step per batch, log lines every `log_every` steps (to
    `trackers`, opened by the caller on rank 0), epoch means (metrics.jsonl and the trackers) and a
    checkpoint per epoch, then `epoch_end(epochs done, encoder)` on rank 0 (a search measures the
    encoder there and may stop the run by raising); on SIGTERM / SIGUSR1 checkpoint and raise
    StopRequested."""
    rank, size = world()
    method, optimizer = parts.method, parts.optimizer
    model: torch.nn.Module = method
    if size > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            method,
            device_ids=[device.index] if device.type == "cuda" else None,
            forward_sync_buffers=False,  # MoCo's queue is identical everywhere; BN stats stay per rank
        )
    steps = parts.plan.steps_per_epoch
    log = _Logger(Path(cfg.out), rank, state.epoch, trackers or Trackers())
    progress = Progress(
        "train",
        cfg.epochs * steps,
        state.epoch * steps + state.step,
        enabled=cfg.progress and rank == 0,
        unit_items=cfg.batch_size,
    )
    if rank == 0:
        for note in notes:
            progress.note(note)
    saver = Checkpointer(cfg, parts, device)
    method.train()
    t_last = t_epoch = time.perf_counter()
    first_step = state.step  # the first step of the current epoch run by this attempt
    since_log = 0  # steps run by this attempt since the last log line
    state.sums = {
        k: torch.tensor(float(v), dtype=torch.float64, device=device) for k, v in state.sums.items()
    }
    stop = _StopSignals()
    try:
        with stop:
            for epoch, step, idx, images in loader:
                global_step = epoch * steps + step
                lr = lr_at(cfg, epoch, step, steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                images = images.to(device, non_blocking=True)
                labels = parts.source.labels(idx).to(device) if method.supervised else None
                terms = train_step(
                    model,
                    optimizer,
                    parts.aug,
                    images,
                    idx,
                    cfg.seed,
                    epoch,
                    global_step,
                    parts.numerics,
                    labels,
                )
                state.images_seen += cfg.batch_size
                since_log += 1
                for k, v in terms.items():
                    state.sums[k] = state.sums[k] + v.double() if k in state.sums else v.double().clone()
                end_of_epoch = step + 1 == steps
                logged = (step + 1) % cfg.log_every == 0 or end_of_epoch
                if logged:
                    values = check_finite(terms, global_step)
                    now = time.perf_counter()
                    rate = since_log * cfg.batch_size / max(now - t_last, 1e-9)
                    t_last, since_log = now, 0
                    log.scalars(global_step + 1, {**values, "lr": lr, "images_per_s": rate})
                    progress.update(0, loss=f"{values['loss']:.3f}")
                progress.update(1, epoch=f"{epoch + 1}/{cfg.epochs}")
                if end_of_epoch:  # checkpoint, then epoch means
                    means = {k: float(v) / steps for k, v in state.sums.items()}
                    if not math.isfinite(means["loss"]):
                        raise FieldError(
                            "lr", f"mean loss {means['loss']} in epoch {epoch + 1}: lower {{field}}"
                        )
                    saver.save(state, epoch + 1, 0)
                    now = time.perf_counter()
                    log.epoch(
                        global_step + 1,
                        {
                            "epoch": epoch + 1,
                            **means,
                            "lr": lr,
                            "images_per_s": (steps - first_step) * cfg.batch_size / (now - t_epoch),
                        },
                    )
                    state.sums, t_epoch, first_step = {}, now, 0
                    if size > 1:
                        _check_in_sync(method)
                    if epoch_end is not None and rank == 0:
                        epoch_end(epoch + 1, method.encoder)
                        method.train()  # the callback may have put the encoder in eval mode
                elif saver.due():
                    check_finite(terms, global_step)
                    saver.save(state, epoch, step + 1)  # long epochs: lose at most checkpoint_minutes of work
                last = global_step + 1 == cfg.epochs * steps
                if not last and (signum := _stop_now(stop, device, size == 1 or logged)):
                    if end_of_epoch:  # just checkpointed
                        raise StopRequested(signum, checkpoint_place(epoch + 1, 0, steps))
                    check_finite(terms, global_step)
                    saver.save(state, epoch, step + 1)
                    raise StopRequested(signum, checkpoint_place(epoch, step + 1, steps))
    finally:
        progress.close()


def _cache_choice(cfg: TrainConfig, source: Any, device: torch.device) -> str | None:
    """Why the generated dataset is kept on `device` after its first rendering, or None when it
    is not: a fixed set of generated images (not --fresh, not a folder) whose bytes do not depend
    on their batch there; with 'auto', on a GPU and when it takes at most half its free memory."""
    if cfg.cache_images == "off" or cfg.fresh or source.size is not None:
        return None
    if not batch_invariant(source, device):
        return None  # re-rendered in another batch, an image could differ from its cached bytes
    nbytes = CachedSource.nbytes(source, cfg.num_images)
    if cfg.cache_images == "auto":
        if device.type != "cuda" or nbytes > torch.cuda.mem_get_info(device)[0] // 2:
            return None
    return (
        f"keeping the {cfg.num_images:,} images ({nbytes / 1e9:.1f} GB) on {device} after their first "
        "rendering (--cache-images off renders them every epoch)"
    )


def _stop_now(stop: _StopSignals, device: torch.device, check: bool) -> int | None:
    """The stop signal to act on now, if any (under DDP the ranks agree at log steps only)."""
    return stop.agreed(device) if check else None


def _check_in_sync(method: torch.nn.Module) -> None:
    """DDP keeps every rank's parameters identical; verify it (a cheap checksum per tensor)."""
    sums = torch.stack([p.detach().double().sum() for p in method.parameters() if p.requires_grad])
    every = gather(sums[None])  # [world, n_params]
    if not torch.equal(every, every[:1].expand_as(every)):
        raise RuntimeError("DDP ranks hold different parameters: the processes diverged")


class _Logger:
    """metrics.jsonl and the run's trackers, on rank 0 (the other ranks' trackers are empty)."""

    def __init__(self, out: Path, rank: int, start_epoch: int, trackers: Tracker):
        self.out, self.rank, self.trackers = out, rank, trackers
        if rank == 0:
            _truncate_metrics(out / METRICS, start_epoch)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """A log step's values: the loss terms as train/NAME, lr and images_per_s as they are."""
        tagged = {k if k in ("lr", "images_per_s") else f"train/{k}": v for k, v in values.items()}
        self.trackers.log_metrics(tagged, step)

    def epoch(self, step: int, record: dict[str, float]) -> None:
        """An epoch's means: a metrics.jsonl line, and epoch/NAME in the trackers."""
        if self.rank != 0:
            return
        with open(self.out / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.trackers.log_metrics({k if k == "epoch" else f"epoch/{k}": v for k, v in record.items()}, step)
        self.trackers.flush()


def _truncate_metrics(path: Path, epochs: int) -> None:
    """Keep the first `epochs` epoch records (those the checkpoint covers). A line that does not
    read as a record (torn by a crash mid-write, or edited by hand) is dropped, not a traceback:
    every record the checkpoint covers is written again if it is missing."""
    if path.is_file():
        lines = path.read_text(errors="replace").splitlines(keepends=True)
        kept = [line for line in lines if _epoch_of(line) is not None and _epoch_of(line) <= epochs]
        if len(kept) != len(lines) or (kept and not kept[-1].endswith("\n")):
            atomic_write_text(path, "".join(line if line.endswith("\n") else line + "\n" for line in kept))


def _epoch_of(line: str) -> int | None:
    """The epoch of a metrics.jsonl record, None for a line that is not one."""
    try:
        record = json.loads(line)
        return int(record["epoch"]) if isinstance(record, dict) else None
    except (ValueError, KeyError, TypeError):
        return None
