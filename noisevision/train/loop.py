"""Self-supervised pre-training on streamed noise images: `noisevision train` (SPEC §7, §8).

    cfg = TrainConfig.from_preset("tiny", data="dead_leaves-mixed", out="runs/dl")
    run_dir = train(cfg)            # run_dir / "encoder.pt" is the trained encoder

Data flows one way: source (generator / folder) → IndexPlan (which indices each step) →
two_views (augment on the device) → method (loss) → SGD step → checkpoint every epoch (and inside
long epochs every `checkpoint_minutes`). A run reads top to bottom in `_train`: build_components,
the run folder, `resume` (RunState), `open_loader` (Loader), `run_epochs` (with a Checkpointer),
then the encoder export.

A run folder holds config.yaml, checkpoint.pt (written atomically after every epoch and, inside
long epochs, every `checkpoint_minutes`), metrics.jsonl (one line per epoch), tb/ (TensorBoard)
and, at the end, encoder.pt. Running the same command again resumes from the last checkpoint and
continues exactly as an uninterrupted run would: the data order is a seeded permutation per
epoch, the augmentations are keyed by (seed, epoch, image index), MoCo's shuffle by (seed, step),
and model, optimiser and torch RNG state are restored. Under `torchrun` the same code runs
DistributedDataParallel (gloo on CPU, nccl on GPU), each rank rendering its own share of every
batch.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import os
import time
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml

from noisevision import augment
from noisevision.data.stream import (
    CachedSource,
    GeneratorSource,
    IndexPlan,
    StepDataset,
    batch_invariant,
    iterate_steps,
    open_source,
)
from noisevision.device import default_workers, resolve_device
from noisevision.errors import NoisevisionError, StopRequested, at_least_one, checkpoint_place
from noisevision.io import atomic_save, atomic_write_text, check_output_folder
from noisevision.methods import METHODS, build_method
from noisevision.methods.common import gather, world
from noisevision.models import (
    ARCHS,
    Recipe,
    build_encoder,
    check_weights_finite,
    save_encoder,
    tensors_checksum,
)
from noisevision.precision import autocast, check_precision, grad_scaler, resolve_precision
from noisevision.presets import BASE, get_preset
from noisevision.progress import Progress
from noisevision.registry import Registry
from noisevision.stopping import StopSignals

CHECKPOINT = "checkpoint.pt"
ENCODER = "encoder.pt"
CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CHECKPOINT_FORMAT = "noisevision-train-checkpoint"


def _base(name: str) -> Any:
    """A recipe field's default: paper-small's value (presets.BASE), copied if mutable."""
    value = BASE[name]
    return field(default_factory=lambda: copy.deepcopy(value)) if isinstance(value, dict) else value


@dataclass
class TrainConfig:
    """Every hyper-parameter of a run; the recipe fields default to paper-small's (presets.BASE).
    Fields after `seed` only say how to run it (device, workers, logging) and may change between
    a run and its resumption; all others define the run."""

    data: str = ""
    preset: str = "paper-small"
    arch: str = _base("arch")
    arch_kwargs: dict[str, Any] = _base("arch_kwargs")
    method: str = _base("method")
    method_kwargs: dict[str, Any] = _base("method_kwargs")
    augment: str = _base("augment")
    input_size: int | None = _base("input_size")  # crop side fed to the encoder; None: the encoder's own
    res: int | None = _base("res")  # generation resolution; None: the generator's default
    num_images: int = _base("num_images")
    fresh: bool = _base("fresh")  # new indices every epoch instead of the fixed 0..num_images-1
    epochs: int = _base("epochs")
    batch_size: int = _base("batch_size")  # global, over all processes
    lr: float = _base("lr")
    momentum: float = _base("momentum")
    weight_decay: float = _base("weight_decay")
    schedule: str = _base("schedule")  # a name in SCHEDULES
    milestones: tuple[int, ...] = _base("milestones")
    gamma: float = _base("gamma")
    warmup_epochs: int = _base("warmup_epochs")  # linear warm-up, per step
    bn_groups: int | None = _base("bn_groups")  # BN groups over the global batch (methods.common)
    seed: int = _base("seed")
    # ---- how to run (not part of the run's identity)
    out: str = ""
    device: str = "auto"
    workers: int | None = None  # rendering processes; None: 1 on CPU, 0 (render on the GPU) on CUDA
    threads: int | None = None  # torch threads of the training process; None: torch's default
    log_every: int = 10
    progress: bool = True
    checkpoint_minutes: float = 30.0  # also checkpoint inside an epoch when this much time has passed
    precision: str = "auto"  # fp32 | bf16 | fp16 autocast; auto: bf16 on GPUs that have it, else fp32
    channels_last: bool | None = None  # NHWC activations; None: on CUDA only
    compile: bool = False  # torch.compile the encoder(s)
    deterministic: bool = False  # GPU: deterministic kernels, so that a resumed run is bit-exact there too
    cache_images: str = "auto"  # keep a generated dataset on the GPU after epoch 1: auto | on | off

    RUNTIME = (
        "out", "device", "workers", "threads", "log_every", "progress", "checkpoint_minutes",
        "precision", "channels_last", "compile", "deterministic", "cache_images",
    )
    CACHE_MODES = ("auto", "on", "off")

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> TrainConfig:
        """The preset's values, then `overrides` (None values are ignored: 'not given').

        Options of the preset's own architecture / method do not carry over to another one, and
        given `arch_kwargs` / `method_kwargs` update the preset's rather than replace them.
        """
        return cls._build({"preset": name, **copy.deepcopy(get_preset(name).values)}, overrides)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """A run's config.yaml (or any YAML of TrainConfig fields), its preset filling the fields it
        does not give, then `overrides` as in from_preset. Unknown keys and values of the wrong
        type are one-line errors."""
        values = read_config_file(path)
        preset = values.get("preset", cls.preset)
        return cls._build({"preset": preset, **copy.deepcopy(get_preset(preset).values), **values}, overrides)

    @classmethod
    def _build(cls, values: dict[str, Any], overrides: dict[str, Any]) -> TrainConfig:
        overrides = dict(overrides)
        for key in ("arch", "method"):
            if overrides.get(key) not in (None, values.get(key)):
                values[f"{key}_kwargs"] = {}
            if overrides.get(f"{key}_kwargs") is not None:
                values[f"{key}_kwargs"] = {**values[f"{key}_kwargs"], **overrides.pop(f"{key}_kwargs")}
        for key, value in overrides.items():
            value = check_field(key, value, "training option")
            if value is not None:
                values[key] = value
        cfg = cls(**values)
        cfg.milestones = tuple(cfg.milestones)
        return cfg

    def encoder_kwargs(self) -> dict[str, Any]:
        """The options the encoder is built with: `arch_kwargs`, and `input_size` when set."""
        kwargs = dict(self.arch_kwargs)
        if self.input_size is not None:
            kwargs["input_size"] = self.input_size
        return kwargs

    def identity(self) -> dict[str, Any]:
        """The fields that define the run, JSON-normalised (tuples as lists)."""
        d = {k: v for k, v in asdict(self).items() if k not in self.RUNTIME}
        return json.loads(json.dumps(d))

    def validate(self) -> None:
        """Cheap checks with one-line messages, before anything is built or written."""
        if not self.data:
            raise NoisevisionError("no training data: pass --data GENERATOR|FOLDER")
        if not self.out:
            raise NoisevisionError("no run folder: pass --out RUN_DIR")
        for table, name in ((ARCHS, self.arch), (METHODS, self.method), (augment.AUGMENTATIONS, self.augment),
                            (SCHEDULES, self.schedule)):  # fmt: skip
            table.entry(name)  # an unknown name: one line with the closest ones
        counts = ("epochs", "batch_size", "num_images", "threads", "bn_groups", "res", "input_size")
        at_least_one(*((f"--{name.replace('_', '-')}", getattr(self, name)) for name in counts))
        if not self.lr > 0:
            raise NoisevisionError(f"learning rate must be positive, got {self.lr}")
        if self.workers is not None and self.workers < 0:
            raise NoisevisionError(f"--workers must be 0 or more, got {self.workers}")
        if not self.checkpoint_minutes >= 0:
            raise NoisevisionError(f"--checkpoint-minutes must be 0 or more, got {self.checkpoint_minutes}")
        if self.log_every < 1:
            raise NoisevisionError(f"log_every must be at least 1, got {self.log_every}")
        check_precision(self.precision)
        if self.cache_images not in self.CACHE_MODES:
            raise NoisevisionError(f"--cache-images must be auto, on or off, not '{self.cache_images}'")


def parse_options(items: list[str] | None, what: str | None = None) -> dict[str, Any] | None:
    """['width=0.5', 'head=mlp'] -> {'width': 0.5, 'head': 'mlp'} (values read as YAML scalars)."""
    if not items:
        return None
    opts = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise NoisevisionError(f"option '{item}' for {what or 'the run'} must look like KEY=VALUE")
        opts[key.strip()] = yaml.safe_load(value)
    return opts


def parse_settings(items: list[str] | None) -> dict[str, Any]:
    """--set KEY=VALUE items -> {field: value}, each a TrainConfig field of the right type."""
    values = parse_options(items, "--set") or {}
    return {key: check_field(key, value, "--set key") for key, value in values.items()}


def check_field(key: str, value: Any, what: str) -> Any:
    """`value` as TrainConfig field `key` takes it (lists as tuples, "5e-4" as a float; None: not
    given); NoisevisionError for an unknown key or a value of another type."""
    hints = _field_types()
    if key not in hints:
        raise NoisevisionError(f"unknown {what} '{key}': valid ones are {', '.join(hints)}")
    if isinstance(value, str) and _accepts(hints[key], float):
        with contextlib.suppress(ValueError):
            value = float(value)  # YAML 1.1 reads 5e-4 (no dot) as a string
    if value is not None and not _is_a(value, hints[key]):
        raise NoisevisionError(f"{key} must be {_in_words(hints[key])}, not {value!r}")
    return tuple(value) if isinstance(value, list) else value


def _in_words(hint: Any) -> str:
    """A field's type as a user reads it: 'an integer or null', 'a list of integers'."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join("null" if a is type(None) else _in_words(a) for a in args)
    if typing.get_origin(hint) is tuple:
        return f"a list of {_in_words(args[0]).split(' ', 1)[1]}s"
    words = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    return words.get(hint, "a mapping such as {key: value}" if typing.get_origin(hint) is dict else str(hint))


def _accepts(hint: Any, kind: type) -> bool:
    return hint is kind or kind in typing.get_args(hint)


@functools.cache
def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in fields(TrainConfig)}


def _is_a(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a TrainConfig annotation (int for float; list for tuple)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_is_a(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is tuple:
        return isinstance(value, list | tuple) and all(_is_a(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    return isinstance(value, hint)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The checked fields of a config YAML file (a run's config.yaml)."""
    path = Path(path)
    if not path.is_file():
        raise NoisevisionError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise NoisevisionError(f"{path} is not readable YAML ({type(exc).__name__})") from exc
    if not isinstance(values, dict):
        raise NoisevisionError(f"{path} must hold KEY: VALUE lines of training options")
    return {str(k): check_field(str(k), v, f"key in {path.name}") for k, v in values.items()}


SCHEDULES: Registry[Callable[[TrainConfig, int], float]] = Registry("schedule")
SCHEDULES.add("multistep", lambda cfg, epoch: cfg.lr * cfg.gamma ** sum(epoch >= m for m in cfg.milestones),
              "lr × gamma at each milestone epoch (paper-small)")  # fmt: skip
SCHEDULES.add("cosine", lambda cfg, epoch: cfg.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / cfg.epochs)),
              "MoCo's: lr · ½(1 + cos(π · epoch / epochs)), per epoch")  # fmt: skip
SCHEDULES.add("constant", lambda cfg, epoch: cfg.lr, "lr throughout")


def lr_at(cfg: TrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Learning rate of one step: per-epoch schedule (as the reference code) × per-step warm-up."""
    lr = SCHEDULES.get(cfg.schedule)(cfg, epoch)
    if epoch < cfg.warmup_epochs:
        lr *= (epoch * steps_per_epoch + step + 1) / (cfg.warmup_epochs * steps_per_epoch)
    return lr


# ---------------------------------------------------------------------------------------- run folder
def _prepare_run_dir(cfg: TrainConfig, rank: int) -> dict[str, Any] | None:
    """Check the run folder; returns the checkpoint to resume from, or None for a new run."""
    out = Path(cfg.out)
    cfg_file = out / CONFIG
    if cfg_file.is_file():
        try:
            old = yaml.safe_load(cfg_file.read_text())
        except yaml.YAMLError as exc:
            raise NoisevisionError(f"{cfg_file} is not readable YAML: {exc}") from exc
        new = cfg.identity()
        diff = [k for k in sorted(set(old or {}) | set(new)) if (old or {}).get(k) != new.get(k)]
        if diff:
            shown = ", ".join(f"{k} {(old or {}).get(k)!r} → {new.get(k)!r}" for k in diff[:3])
            raise NoisevisionError(
                f"{out} holds a run with another configuration ({shown}): use a new --out to start over"
            )
        ckpt_file = out / CHECKPOINT
        if ckpt_file.is_file():
            try:
                ckpt = torch.load(ckpt_file, map_location="cpu", weights_only=False)
            except Exception as exc:
                why = type(exc).__name__
                raise NoisevisionError(f"{ckpt_file} is unreadable ({why}): delete it to restart") from exc
            if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
                raise NoisevisionError(f"{ckpt_file} is not a noisevision training checkpoint")
            check_checkpoint(ckpt, ckpt_file)
            return ckpt
        return None
    if out.exists() and any(out.iterdir()):
        raise NoisevisionError(f"{out} exists and is not a noisevision run folder: choose another --out")
    if rank == 0:
        atomic_write_text(cfg_file, yaml.safe_dump(cfg.identity(), sort_keys=False))
    return None


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


def check_checkpoint(ckpt: dict[str, Any], path: Path) -> None:
    """A damaged checkpoint is refused in one line, before it resumes into NaN: the checksum of its
    tensors (checkpoints written before it existed have none), then NaN / Inf weights."""
    tensors = checkpoint_tensors(ckpt)
    if "checksum" in ckpt and tensors_checksum(tensors) != ckpt["checksum"]:
        raise NoisevisionError(f"{path}: its tensors do not match their checksum (the file is damaged): "
                               "delete it to restart the run")  # fmt: skip
    try:
        check_weights_finite({k: v for k, v in tensors.items() if k.startswith("method.")}, path)
    except NoisevisionError as exc:
        raise NoisevisionError(f"{exc}: delete it to restart the run") from None


# ---------------------------------------------------------------------------------------- distributed
def _rank0_first(fn: Callable[[], Any]) -> Any:
    """Run fn on rank 0, then (if it succeeded) on the other ranks; a NoisevisionError on rank 0
    is raised on every rank instead of leaving the others waiting."""
    rank, size = world()
    result, error = None, None
    if rank == 0:
        try:
            result = fn()
        except NoisevisionError as exc:
            error = str(exc)
    if size > 1:
        box = [error]
        dist.broadcast_object_list(box, src=0)
        error = box[0]
    if error is not None:
        raise NoisevisionError(error)
    return result if rank == 0 else fn()


def _init_distributed(device_arg: str) -> tuple[bool, torch.device]:
    """Join the torchrun process group if WORLD_SIZE > 1; returns (created, device)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_arg)
    if size <= 1 or (dist.is_available() and dist.is_initialized()):
        if dist.is_available() and dist.is_initialized() and device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", dist.get_rank())))
        return False, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True, device


# ---------------------------------------------------------------------------------------- training
def train(cfg: TrainConfig) -> Path:
    """Train (or resume) the run `cfg` describes; returns the run folder (encoder in encoder.pt).

    SIGTERM or SIGUSR1 (a cluster pre-empting the job) make it write a checkpoint at the next step
    and raise `StopRequested`; the same call later resumes there.
    """
    cfg.validate()
    check_output_folder(cfg.out)  # the run folder: a file there, or no place to write, fails now
    created, device = _init_distributed(cfg.device)
    try:
        with _kernel_choice(device, cfg.deterministic):
            return _train(cfg, device)
    except torch.cuda.OutOfMemoryError as exc:
        raise NoisevisionError(
            f"out of GPU memory at batch size {cfg.batch_size}: lower --batch-size (or use more GPUs)"
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
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
    )  # fmt: skip
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


@dataclass
class Numerics:
    """How the step computes: autocast precision, memory layout, fp16 loss scaling."""

    precision: str = "fp32"
    channels_last: bool = False
    scaler: torch.amp.GradScaler | None = None


@dataclass
class Components:
    """What a run is made of, built from its config (shared by `train` and `bench train`)."""

    source: Any  # data.stream.ImageSource
    plan: IndexPlan
    method: torch.nn.Module  # methods.Method, on the device
    optimizer: torch.optim.Optimizer
    aug: augment.AugmentConfig
    numerics: Numerics = field(default_factory=Numerics)


def build_components(cfg: TrainConfig, device: torch.device) -> Components:
    """Source, plan, encoder + method, optimiser and augmentation of `cfg`; every user error
    (unknown names, bad sizes) is raised here, before anything is written."""
    _, size = world()
    precision = resolve_precision(cfg.precision, device)
    source = open_source(cfg.data, cfg.res, cfg.seed)
    if cfg.fresh and source.size is not None:
        raise NoisevisionError("--fresh needs a generator: a folder holds a fixed set of images")
    if source.size is not None and cfg.num_images > source.size:
        raise NoisevisionError(
            f"--num-images {cfg.num_images} but {source.name} holds only {source.size} images"
        )
    plan = IndexPlan(cfg.num_images, cfg.batch_size, cfg.seed, cfg.fresh)
    if cfg.batch_size % size:
        raise NoisevisionError(f"batch size {cfg.batch_size} does not split over {size} processes")
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    encoder = build_encoder(cfg.arch, **cfg.encoder_kwargs())
    method = build_method(cfg.method, encoder, seed=cfg.seed, bn_groups=cfg.bn_groups, **cfg.method_kwargs)
    method = method.to(device)
    method.check_batch(cfg.batch_size)  # the method's own constraints (BN groups, MoCo's queue)
    channels_last = device.type == "cuda" if cfg.channels_last is None else bool(cfg.channels_last)
    if channels_last:
        method.to(memory_format=torch.channels_last)  # conv weights NHWC: tensor-core friendly
    if cfg.compile:
        for net in (method.encoder, getattr(method, "key_encoder", None)):
            if net is not None:
                net.compile()  # in place: parameter names (and so checkpoints) stay the same
    optimizer = torch.optim.SGD(
        [p for p in method.parameters() if p.requires_grad],
        lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
    )
    numerics = Numerics(precision, channels_last, grad_scaler(device, precision))
    aug = augment.get_augment(cfg.augment, encoder.input_size)
    return Components(source, plan, method, optimizer, aug, numerics)


def train_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, aug: augment.AugmentConfig,
    images: torch.Tensor, indices: torch.Tensor, seed: int, epoch: int, step: int,
    numerics: Numerics | None = None,
) -> dict[str, torch.Tensor]:
    """One optimisation step on uint8 images [b, 3, r, r] (on the device): the logged terms, as
    detached 0-d tensors on the device (reading them waits for the GPU: do it only when logging)."""
    num = numerics or Numerics()
    v1, v2 = augment.two_views(aug, images, indices, seed, epoch)  # fp32, outside autocast
    if num.channels_last:
        v1 = v1.contiguous(memory_format=torch.channels_last)
        v2 = v2.contiguous(memory_format=torch.channels_last)
    with autocast(images.device, num.precision):
        loss, terms = model(v1, v2, step=step)
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
        raise NoisevisionError(f"loss became {values['loss']} at step {step}: lower --lr")
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


def _train(cfg: TrainConfig, device: torch.device) -> Path:
    """Build, resume, run the remaining epochs, export the encoder: the whole run, top to bottom."""
    rank, size = world()
    out = Path(cfg.out)
    _set_threads(cfg, device, size)
    parts = build_components(cfg, device)
    ckpt = _rank0_first(lambda: _prepare_run_dir(cfg, rank))
    state, notes = resume(ckpt, parts, device)
    meta = {
        "data": cfg.data, "source": parts.source.describe(), "preset": cfg.preset, "arch": cfg.arch,
        "method": cfg.method, "epochs": cfg.epochs, "input_size": parts.method.encoder.input_size,
        "res": parts.source.res, "num_images": cfg.num_images, "fresh": cfg.fresh, "seed": cfg.seed,
        "precision": parts.numerics.precision,
    }  # fmt: skip
    recipe = training_recipe(cfg, parts)

    def export() -> None:
        save_encoder(out / ENCODER, parts.method.encoder, {**meta, "images_seen": state.images_seen}, recipe)

    if state.epoch >= cfg.epochs:  # finished earlier: only the export may be missing
        if rank == 0 and not (out / ENCODER).is_file():
            export()
        return out
    loader = open_loader(cfg, parts, state, device)
    run_epochs(cfg, parts, loader, state, device, notes + loader.notes)
    if rank == 0:
        export()
    if size > 1:
        dist.barrier()
    return out


def training_recipe(cfg: TrainConfig, parts: Components) -> Recipe:
    """What the encoder file records of how the encoder's inputs were made (models.Recipe)."""
    encoder = parts.method.encoder
    return Recipe(
        parts.aug.mean, parts.aug.std, int(encoder.input_size), parts.source.res, cfg.augment,
        encoder.default_layer, cfg.method, get_preset(cfg.preset).protocol, parts.source.describe(),
    )  # fmt: skip


def _set_threads(cfg: TrainConfig, device: torch.device, size: int) -> None:
    """--threads, or under torchrun on CPU a fair share of the cores per process."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif size > 1 and device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", size))))


# ---------------------------------------------------------------------------------------- resume state
@dataclass
class RunState:
    """Where a run stands: the next (epoch, step) to run, the images seen so far, and the loss sums
    of the steps already run in the unfinished epoch (floats in a checkpoint, device tensors while
    training, so that the CPU never waits for the GPU between log lines)."""

    epoch: int = 0
    step: int = 0
    images_seen: int = 0
    sums: dict[str, Any] = field(default_factory=dict)


def _numerics(parts: Components, device: torch.device) -> dict[str, Any]:
    """How the run computes, as a checkpoint records it; a resume that changes any of it warns. On a
    CPU that includes the thread count: it changes how sums are split, hence their rounding."""
    now: dict[str, Any] = {"precision": parts.numerics.precision, "device": device.type}
    if device.type == "cpu":
        now["threads"] = torch.get_num_threads()
    return now


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
    now = _numerics(parts, device)
    changed = {k: (before[k], v) for k, v in now.items() if k in before and before[k] != v}
    if not changed:
        return state, []
    what = ", ".join(f"{k} {a} → {b}" for k, (a, b) in changed.items())
    return state, [f"resuming with {what}: the result will differ from an uninterrupted run"]


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


# ---------------------------------------------------------------------------------------- checkpointer
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
                "format": CHECKPOINT_FORMAT, "config": self.cfg.identity(), "epoch": epoch, "step": step,
                "images_seen": state.images_seen, "method": parts.method.state_dict(),
                "optimizer": parts.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                "scaler": scaler.state_dict() if scaler is not None else {},
                "numerics": _numerics(parts, self.device),
                "epoch_sums": {k: float(v) for k, v in state.sums.items()} if step else {},
            }  # fmt: skip
            ckpt["checksum"] = tensors_checksum(checkpoint_tensors(ckpt))
            atomic_save(ckpt, Path(self.cfg.out) / CHECKPOINT)
        self.saved = time.perf_counter()


# ---------------------------------------------------------------------------------------- epoch loop
def run_epochs(
    cfg: TrainConfig, parts: Components, loader: Loader, state: RunState, device: torch.device,
    notes: list[str],
) -> None:  # fmt: skip
    """Train from `state` to the end: a step per batch, log lines every `log_every` steps, epoch
    means and a checkpoint per epoch; on SIGTERM / SIGUSR1 checkpoint and raise StopRequested."""
    rank, size = world()
    method, optimizer = parts.method, parts.optimizer
    model: torch.nn.Module = method
    if size > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            method, device_ids=[device.index] if device.type == "cuda" else None,
            forward_sync_buffers=False,  # MoCo's queue is identical everywhere; BN stats stay per rank
        )
    steps = parts.plan.steps_per_epoch
    log = _Logger(Path(cfg.out), rank, state.epoch * steps + state.step, state.epoch)
    progress = Progress(
        "train", cfg.epochs * steps, state.epoch * steps + state.step, enabled=cfg.progress and rank == 0,
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
    state.sums = {k: torch.tensor(float(v), dtype=torch.float64, device=device)
                  for k, v in state.sums.items()}  # fmt: skip
    stop = _StopSignals()
    try:
        with stop:
            for epoch, step, idx, images in loader:
                global_step = epoch * steps + step
                lr = lr_at(cfg, epoch, step, steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                images = images.to(device, non_blocking=True)
                terms = train_step(model, optimizer, parts.aug, images, idx, cfg.seed, epoch, global_step,
                                   parts.numerics)  # fmt: skip
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
                        raise NoisevisionError(f"mean loss {means['loss']} in epoch {epoch + 1}: lower --lr")
                    saver.save(state, epoch + 1, 0)
                    now = time.perf_counter()
                    log.epoch({"epoch": epoch + 1, **means, "lr": lr,
                               "images_per_s": (steps - first_step) * cfg.batch_size / (now - t_epoch)})
                    state.sums, t_epoch, first_step = {}, now, 0
                    if size > 1:
                        _check_in_sync(method)
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
        log.close()


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
    """TensorBoard scalars + metrics.jsonl on rank 0 (TensorBoard imported only when used)."""

    def __init__(self, out: Path, rank: int, start_step: int, start_epoch: int):
        self.out, self.writer = out, None
        if rank == 0:
            _truncate_metrics(out / METRICS, start_epoch)
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events logged after the checkpoint by an interrupted attempt
            self.writer = SummaryWriter(str(out / "tb"), purge_step=start_step or None)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            tag = k if k in ("lr", "images_per_s") else f"train/{k}"
            self.writer.add_scalar(tag, v, step)

    def epoch(self, record: dict[str, float]) -> None:
        if self.writer is None:
            return
        with open(self.out / METRICS, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _truncate_metrics(path: Path, epochs: int) -> None:
    """Keep the first `epochs` epoch records (those the checkpoint covers)."""
    if path.is_file():
        lines = path.read_text().splitlines(keepends=True)
        kept = [line for line in lines if line.strip() and json.loads(line)["epoch"] <= epochs]
        if len(kept) != len(lines):
            atomic_write_text(path, "".join(kept))
