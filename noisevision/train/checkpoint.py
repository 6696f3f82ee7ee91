"""The training checkpoint: where a run stands (RunState), what a checkpoint holds and its checks,
and the Checkpointer that writes it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from noisevision.errors import NoisevisionError
from noisevision.io import atomic_save
from noisevision.methods.common import world
from noisevision.models import check_weights_finite, tensors_checksum
from noisevision.train.components import Components
from noisevision.train.config import TrainConfig

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "noisevision-train-checkpoint"


@dataclass
class RunState:
    """Where a run stands: the next (epoch, step) to run, the images seen so far, and the loss sums
    of the steps already run in the unfinished epoch (floats in a checkpoint, device tensors while
    training, so that the CPU never waits for the GPU between log lines)."""

    epoch: int = 0
    step: int = 0
    images_seen: int = 0
    sums: dict[str, Any] = field(default_factory=dict)


def numerics_record(parts: Components, device: torch.device) -> dict[str, Any]:
    """How the run computes, as a checkpoint records it; a resume that changes any of it warns. On a
    CPU that includes the thread count: it changes how sums are split, hence their rounding."""
    now: dict[str, Any] = {"precision": parts.numerics.precision, "device": device.type}
    if device.type == "cpu":
        now["threads"] = torch.get_num_threads()
    return now


def checkpoint_tensors(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Every tensor a checkpoint resumes from (model and optimiser state), by a flat name."""
    flat: dict[str, torch.Tensor] = {}

    def walk(obj: Any, name: str) -> None:
        if isinstance(obj, torch.Tensor):
            flat[name] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{name}.{k}")
        elif isinstance(obj, list | tuple):
            for i, v in enumerate(obj):
                walk(v, f"{name}.{i}")

    walk(ckpt.get("method", {}), "method")
    walk(ckpt.get("optimizer", {}), "optimizer")
    return flat


def read_checkpoint(ckpt_file: Path) -> dict[str, Any]:
    """A run's checkpoint.pt, checked: one-line errors for a file that is unreadable, not a training
    checkpoint, or damaged."""
    try:
        ckpt = torch.load(ckpt_file, map_location="cpu", weights_only=True)  # never unpickles code
    except Exception as exc:
        why = type(exc).__name__
        raise NoisevisionError(f"{ckpt_file} is unreadable ({why}): delete it to restart") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise NoisevisionError(f"{ckpt_file} is not a noisevision training checkpoint")
    check_checkpoint(ckpt, ckpt_file)
    return ckpt


def check_checkpoint(ckpt: dict[str, Any], path: Path) -> None:
    """A damaged checkpoint is refused in one line, before it resumes into NaN: the checksum of its
    tensors (checkpoints written before it existed have none), then NaN / Inf weights."""
    tensors = checkpoint_tensors(ckpt)
    if "checksum" in ckpt and tensors_checksum(tensors) != ckpt["checksum"]:
        raise NoisevisionError(
            f"{path}: its tensors do not match their checksum (the file is damaged): "
            "delete it to restart the run"
        )
    try:
        check_weights_finite({k: v for k, v in tensors.items() if k.startswith("method.")}, path)
    except NoisevisionError as exc:
        raise NoisevisionError(f"{exc}: delete it to restart the run") from None


class Checkpointer:
    """Writes checkpoint.pt: after every epoch and, inside long epochs, every `checkpoint_minutes`.
    Only rank 0 writes (every rank holds the same state); each write is atomic."""

    def __init__(self, cfg: TrainConfig, parts: Components, device: torch.device):
        self.cfg, self.parts, self.device = cfg, parts, device
        self.rank = world()[0]
        self.every = 60.0 * cfg.checkpoint_minutes
        self.saved = time.perf_counter()

    def due(self) -> bool:
        """Time for a checkpoint inside an epoch (on rank 0; the others never write)."""
        return self.rank == 0 and time.perf_counter() - self.saved >= self.every

    def save(self, state: RunState, epoch: int, step: int) -> None:
        """The state before step `step` of epoch `epoch` (step 0: a finished epoch, no loss sums)."""
        if self.rank == 0:
            parts, scaler = self.parts, self.parts.numerics.scaler
            ckpt = {
                "format": CHECKPOINT_FORMAT,
                "config": self.cfg.identity(),
                "epoch": epoch,
                "step": step,
                "images_seen": state.images_seen,
                "method": parts.method.state_dict(),
                "optimizer": parts.optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "scaler": scaler.state_dict() if scaler is not None else {},
                "numerics": numerics_record(parts, self.device),
                "epoch_sums": {k: float(v) for k, v in state.sums.items()} if step else {},
            }
            ckpt["checksum"] = tensors_checksum(checkpoint_tensors(ckpt))
            atomic_save(ckpt, Path(self.cfg.out) / CHECKPOINT)
        self.saved = time.perf_counter()
