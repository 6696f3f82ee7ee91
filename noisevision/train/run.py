"""A training run from start to encoder file: the run folder, resuming from its checkpoint, the
process group under torchrun, and `train` itself."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml

from noisevision.device import env_count, resolve_device
from noisevision.errors import FieldError, NoisevisionError, StopRequested
from noisevision.io import atomic_write_text, check_output_folder, recorded_path
from noisevision.locks import folder_lock, is_lock_file
from noisevision.methods.common import world
from noisevision.models import Recipe, save_encoder
from noisevision.presets import BASE, get_preset
from noisevision.tracking import TrackedPlace, Trackers, open_trackers
from noisevision.train.checkpoint import CHECKPOINT, RunState, numerics_record, read_checkpoint
from noisevision.train.components import Components, build_components
from noisevision.train.config import TrainConfig
from noisevision.train.loop import EpochEnd, open_loader, run_epochs
from noisevision.visualize import pixel_grid

ENCODER = "encoder.pt"
CONFIG = "config.yaml"
SAMPLES = "samples.png"  # images 0..SAMPLE_COUNT-1 of the training source, as rendered
SAMPLE_COUNT = 16


# ---------------------------------------------------------------------------------------- run folder, resume
def _prepare_run_dir(cfg: TrainConfig, rank: int) -> dict[str, Any] | None:
    """Check the run folder; returns the checkpoint to resume from, or None for a new run."""
    out = Path(cfg.out)
    cfg_file = out / CONFIG
    if cfg_file.is_file():
        try:
            old = yaml.safe_load(cfg_file.read_text())
        except yaml.YAMLError as exc:
            raise NoisevisionError(f"{cfg_file} is not readable YAML: {exc}") from exc
        new, old = cfg.identity(), old if isinstance(old, dict) else {}
        # a setting added since the run was made (optimizer) counts as its default there
        old = {**{k: json.loads(json.dumps(v)) for k, v in BASE.items() if k in new and k not in old}, **old}
        diff = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        if diff:
            shown = ", ".join(f"{k} {old.get(k)!r} → {new.get(k)!r}" for k in diff[:3])
            raise FieldError(
                "out",
                f"{out} holds a run with another configuration ({shown}): use a new {{field}} to start over",
            )
        ckpt_file = out / CHECKPOINT
        return read_checkpoint(ckpt_file) if ckpt_file.is_file() else None
    if out.exists() and any(not is_lock_file(p) for p in out.iterdir()):
        raise FieldError("out", f"{out} exists and is not a noisevision run folder: choose another {{field}}")
    if rank == 0:
        atomic_write_text(cfg_file, yaml.safe_dump(cfg.identity(), sort_keys=False))
    return None


def resume(
    ckpt: dict[str, Any] | None, parts: Components, device: torch.device
) -> tuple[RunState, list[str]]:
    """Load a checkpoint into the run's model, optimiser, loss scaler and torch RNG; returns the
    state to continue from (the start for None) and notes for the user."""
    if ckpt is None:
        return RunState(), []
    parts.method.load_state_dict(ckpt["method"])
    parts.optimizer.load_state_dict(ckpt["optimizer"])
    if "scaler" in ckpt and parts.numerics.scaler is not None:
        parts.numerics.scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["torch_rng"])
    sums = dict(ckpt.get("epoch_sums", {}))
    state = RunState(ckpt["epoch"], ckpt.get("step", 0), ckpt["images_seen"], sums)
    before = ckpt.get("numerics", {})
    now = numerics_record(parts, device)
    changed = {k: (before[k], v) for k, v in now.items() if k in before and before[k] != v}
    if not changed:
        return state, []
    what = ", ".join(f"{k} {a} → {b}" for k, (a, b) in changed.items())
    return state, [f"resuming with {what}: the result will differ from an uninterrupted run"]


# ---------------------------------------------------------------------------------------- distributed
def _rank0_first(fn: Callable[[], Any]) -> Any:
    """Run fn on rank 0, then (if it succeeded) on the other ranks; a NoisevisionError on rank 0
    is raised on every rank (itself, or its copy) instead of leaving the others waiting."""
    rank, size = world()
    result, error = None, None
    if rank == 0:
        try:
            result = fn()
        except NoisevisionError as exc:
            error = exc
    if size > 1:
        box = [error]
        dist.broadcast_object_list(box, src=0)
        error = box[0]
    if error is not None:
        raise error
    return result if rank == 0 else fn()


def _init_distributed(device_arg: str) -> tuple[bool, torch.device]:
    """Join the torchrun process group if WORLD_SIZE > 1; returns (created, device)."""
    size = env_count("WORLD_SIZE", 1, minimum=1)
    device = resolve_device(device_arg)
    if size <= 1 or (dist.is_available() and dist.is_initialized()):
        if dist.is_available() and dist.is_initialized() and device.type == "cuda":
            device = torch.device("cuda", env_count("LOCAL_RANK", dist.get_rank()))
        return False, device
    if device.type == "cuda":
        device = torch.device("cuda", env_count("LOCAL_RANK", 0))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True, device


# ---------------------------------------------------------------------------------------- training
#: train's per-epoch callback: (epochs done, the encoder, its metadata as load_encoder returns it).
TrainEpochEnd = Callable[[int, torch.nn.Module, dict[str, Any]], None]


def train(cfg: TrainConfig, epoch_end: TrainEpochEnd | None = None) -> Path:
    """Train (or resume) the run `cfg` describes; returns the run folder (encoder in encoder.pt).

    SIGTERM or SIGUSR1 (a cluster pre-empting the job) make it write a checkpoint at the next step
    and raise `StopRequested`; the same call later resumes there. `epoch_end(epochs done, encoder,
    meta)` runs after each epoch's checkpoint on rank 0 (loop.run_epochs), `meta` as the encoder
    file will record it (its recipe: how a probe normalises its inputs).
    """
    cfg.validate()
    check_output_folder(cfg.out)  # the run folder: a file there, or no place to write, fails now
    created, device = _init_distributed(cfg.device)
    try:
        with _kernel_choice(device, cfg.deterministic):
            return _train(cfg, device, epoch_end)
    except torch.cuda.OutOfMemoryError as exc:
        raise FieldError(
            "batch_size",
            f"out of GPU memory at batch size {cfg.batch_size}: lower {{field}} (or use more GPUs)",
        ) from exc
    finally:
        if created:
            dist.destroy_process_group()


@contextlib.contextmanager
def _kernel_choice(device: torch.device, deterministic: bool) -> Iterator[None]:
    """cuDNN picks its fastest kernels by timing them (fixed input shapes), or, `deterministic`,
    deterministic kernels only: on a GPU that is what makes an interrupted and resumed run equal
    bit for bit to an uninterrupted one (CPU kernels are deterministic anyway). Restored after."""
    before = (
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic mode
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[:2]
        torch.use_deterministic_algorithms(before[2], warn_only=before[3])


def _train(cfg: TrainConfig, device: torch.device, epoch_end: TrainEpochEnd | None = None) -> Path:
    """Build, resume, run the remaining epochs, export the encoder: the whole run, top to bottom."""
    rank, size = world()
    out = Path(cfg.out)
    _set_threads(cfg, device, size)
    parts = build_components(cfg, device)  # bad data or options fail here, before the folder exists
    with contextlib.ExitStack() as stack:
        # one owner per run folder: rank 0, under whose lock the other ranks of a torchrun job work
        # (taken through _rank0_first, so that a refusal reaches every rank)
        _rank0_first(lambda: stack.enter_context(folder_lock(out, "training run")) if rank == 0 else None)
        return _run(cfg, parts, out, device, epoch_end)


def _run(
    cfg: TrainConfig,
    parts: Components,
    out: Path,
    device: torch.device,
    epoch_end: TrainEpochEnd | None = None,
) -> Path:
    """The run in its folder (owned by this job): resume, train the remaining epochs, export."""
    rank, size = world()
    ckpt = _rank0_first(lambda: _prepare_run_dir(cfg, rank))
    state, notes = resume(ckpt, parts, device)
    identity = cfg.identity()
    meta = {
        "data": identity["data"],
        "source": recorded_source(parts.source.describe(), out),
        "preset": cfg.preset,
        "arch": cfg.arch,
        "method": cfg.method,
        "epochs": cfg.epochs,
        "input_size": parts.method.encoder.input_size,
        "res": parts.source.res,
        "num_images": cfg.num_images,
        "fresh": cfg.fresh,
        "seed": cfg.seed,
        "precision": parts.numerics.precision,
    }
    recipe = training_recipe(cfg, parts)

    def export() -> None:
        save_encoder(out / ENCODER, parts.method.encoder, {**meta, "images_seen": state.images_seen}, recipe)

    if state.epoch >= cfg.epochs:  # finished earlier: only the export may be missing
        if rank == 0 and not (out / ENCODER).is_file():
            export()
        return out
    # opened through _rank0_first: a tracker that cannot start (no W&B login) stops every rank
    trackers = _rank0_first(lambda: open_run_trackers(cfg, parts, state) if rank == 0 else Trackers())
    status = "failed"
    try:
        loader = open_loader(cfg, parts, state, device)
        hook: EpochEnd | None = None
        if epoch_end is not None:

            def hook(epoch: int, encoder: torch.nn.Module) -> None:
                epoch_end(epoch, encoder, {**meta, "images_seen": state.images_seen, "recipe": recipe})

        run_epochs(cfg, parts, loader, state, device, notes + loader.notes, trackers, hook)
        if rank == 0:
            export()
            trackers.log_artifact(out / ENCODER, "encoder")
        status = "finished"
    except (StopRequested, KeyboardInterrupt):
        status = "stopped"  # resumable: the tracked run continues when the command runs again
        raise
    finally:
        trackers.close(status)
    if size > 1:
        dist.barrier()
    return out


def open_run_trackers(cfg: TrainConfig, parts: Components, state: RunState) -> Trackers:
    """The run's trackers (cfg.logger), continuing the tracked runs of an earlier attempt; a run
    that starts from its first step logs its settings and sample grid (RUN/samples.png) first."""
    out = Path(cfg.out)
    start = state.epoch * parts.plan.steps_per_epoch + state.step
    store = Path(cfg.tracking_dir) if cfg.tracking_dir else None
    trackers = open_trackers(cfg.logger, TrackedPlace(out, out.name, "train", store, start))
    if not trackers:
        return trackers
    trackers.log_config({**cfg.identity(), **{k: getattr(cfg, k) for k in ("device", "precision", "logger")}})
    if start == 0:
        count = min(SAMPLE_COUNT, cfg.num_images)
        images = parts.source.render(torch.arange(count))  # uint8 [count, 3, res, res]
        trackers.log_image("samples", pixel_grid(images.cpu(), out / SAMPLES), 0)
    return trackers


def training_recipe(cfg: TrainConfig, parts: Components) -> Recipe:
    """What the encoder file records of how the encoder's inputs were made (models.Recipe)."""
    encoder = parts.method.encoder
    return Recipe(
        parts.aug.mean,
        parts.aug.std,
        int(encoder.input_size),
        parts.source.res,
        cfg.augment,
        encoder.default_layer,
        cfg.method,
        get_preset(cfg.preset).protocol,
        recorded_source(parts.source.describe(), cfg.out),
    )


def recorded_source(described: dict[str, Any], out: str | Path) -> dict[str, Any]:
    """An image source's description as the run folder `out` records it: a folder by its path from
    there (io.recorded_path), not by the machine's absolute path."""
    if described.get("kind") == "folder":
        return {**described, "root": recorded_path(described["root"], out)}
    return described


def _set_threads(cfg: TrainConfig, device: torch.device, size: int) -> None:
    """`threads`, or under torchrun on CPU a fair share of the cores per process."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif size > 1 and device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // env_count("LOCAL_WORLD_SIZE", size, minimum=1)))
