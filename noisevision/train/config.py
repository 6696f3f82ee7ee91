"""A run's configuration: TrainConfig (paper-small's recipe as defaults), its type checks for YAML
files and `--set` items, and the learning-rate schedules."""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from noisevision.errors import FieldError, NoisevisionError, at_least_one
from noisevision.io import recorded_path, recorded_place
from noisevision.presets import BASE, get_preset
from noisevision.registry import Registry
from noisevision.tracking import DEFAULT as DEFAULT_LOGGER


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
    optimizer: str = _base("optimizer")  # a name in OPTIMIZERS
    lr: float = _base("lr")
    momentum: float = _base("momentum")  # SGD's
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
    logger: str = DEFAULT_LOGGER  # experiment trackers, comma-separated names of tracking.TRACKERS, or none
    tracking_dir: str | None = None  # where local tracking stores live (MLflow's); None: the run folder

    RUNTIME = (
        "out",
        "device",
        "workers",
        "threads",
        "log_every",
        "progress",
        "checkpoint_minutes",
        "precision",
        "channels_last",
        "compile",
        "deterministic",
        "cache_images",
        "logger",
        "tracking_dir",
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
        data = values.get("data")
        if isinstance(data, str) and data and (place := recorded_place(data, Path(path).parent)).is_dir():
            values["data"] = str(place)  # a folder recorded from the run folder (identity)
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
        """The fields that define the run, JSON-normalised (tuples as lists), as the run folder's
        config.yaml records them: a folder of training images by its path from the run folder
        (io.recorded_path), so that the two can move together and be resumed from anywhere."""
        d = {k: v for k, v in asdict(self).items() if k not in self.RUNTIME}
        if self.data and self.out and Path(self.data).is_dir():
            d["data"] = recorded_path(self.data, self.out)
        return json.loads(json.dumps(d))

    def validate(self) -> None:
        """Cheap checks with one-line messages, before anything is built or written."""
        # the registries import torch: only here, so that reading TrainConfig's fields (the CLI
        # builds `train`'s options from them) stays quick
        from noisevision import augment
        from noisevision.methods import METHODS
        from noisevision.models import ARCHS
        from noisevision.precision import check_precision
        from noisevision.tracking import parse_loggers

        if not self.data:
            raise FieldError("data", "no training data: pass {field} GENERATOR|FOLDER")
        if not self.out:
            raise FieldError("out", "no run folder: pass {field} RUN_DIR")
        for table, name in (
            (ARCHS, self.arch),
            (METHODS, self.method),
            (augment.AUGMENTATIONS, self.augment),
            (SCHEDULES, self.schedule),
            (OPTIMIZERS, self.optimizer),
        ):
            table.entry(name)  # an unknown name: one line with the closest ones
        counts = ("epochs", "batch_size", "num_images", "threads", "bn_groups", "res", "input_size")
        at_least_one(*((name, getattr(self, name)) for name in counts))
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise FieldError("lr", f"{{field}} must be a positive finite number, got {self.lr}")
        for name in ("momentum", "weight_decay", "gamma"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise FieldError(name, f"{{field}} must be a finite number ≥ 0, got {value}")
        if self.workers is not None and self.workers < 0:
            raise FieldError("workers", f"{{field}} must be 0 or more, got {self.workers}")
        if not self.checkpoint_minutes >= 0:
            raise FieldError(
                "checkpoint_minutes", f"{{field}} must be 0 or more, got {self.checkpoint_minutes}"
            )
        if self.log_every < 1:
            raise FieldError("log_every", f"{{field}} must be at least 1, got {self.log_every}")
        check_precision(self.precision)
        parse_loggers(self.logger)  # an unknown or uninstalled tracker: one line, before any work
        if self.cache_images not in self.CACHE_MODES:
            raise FieldError("cache_images", f"{{field}} must be auto, on or off, not '{self.cache_images}'")


MAX_CONFIG_BYTES = 1 << 20  # a run's config is a few hundred bytes; anything near this is a mistake
INT64 = 1 << 63


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases, which configs never need and which let a small file
    expand into an exponentially large value ("billion laughs")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not accepted here", self.peek_event().start_mark
            )
        return super().compose_node(parent, index)


def read_yaml(text: str, where: str) -> Any:
    """Plain YAML data (no tags that build Python objects, no aliases); one-line errors."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise NoisevisionError(f"{where} is not valid YAML{at}: {' '.join(str(problem).split())}") from None


def parse_options(items: list[str] | None, what: str | None = None) -> dict[str, Any] | None:
    """['width=0.5', 'head=mlp'] -> {'width': 0.5, 'head': 'mlp'} (values read as YAML scalars)."""
    if not items:
        return None
    opts = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise NoisevisionError(f"option '{item}' for {what or 'the run'} must look like KEY=VALUE")
        opts[key.strip()] = read_yaml(value, f"the value of {item!r}")
    return opts


def parse_settings(items: list[str] | None) -> dict[str, Any]:
    """--set KEY=VALUE items -> {field: value}, each a TrainConfig field of the right type."""
    values = parse_options(items, "--set") or {}
    return {key: check_field(key, value, "--set key") for key, value in values.items()}


def check_field(key: str, value: Any, what: str) -> Any:
    """`value` as TrainConfig field `key` takes it (lists as tuples, "5e-4" as a float; None: not
    given); NoisevisionError for an unknown key or a value of another type."""
    hints = field_types()
    if key not in hints:
        raise NoisevisionError(f"unknown {what} '{key}': valid ones are {', '.join(hints)}")
    if isinstance(value, str) and _accepts(hints[key], float):
        with contextlib.suppress(ValueError):
            value = float(value)  # YAML 1.1 reads 5e-4 (no dot) as a string
    if value is not None and not _is_a(value, hints[key]):
        raise NoisevisionError(f"{key} must be {_in_words(hints[key])}, not {value!r}")
    numbers = value if isinstance(value, list) else [value]
    if any(isinstance(v, int) and not -INT64 <= v < INT64 for v in numbers):
        raise NoisevisionError(f"{key} is too large a number: at most {INT64 - 1}")
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
def field_types() -> dict[str, Any]:
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
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise NoisevisionError(
            f"config file {path} is {path.stat().st_size:,} bytes: a run's config is a "
            "few hundred (is it the right file?)"
        )
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise NoisevisionError(f"{path} is not readable YAML ({type(exc).__name__})") from exc
    values = read_yaml(text, str(path))
    if not isinstance(values, dict):
        raise NoisevisionError(f"{path} must hold KEY: VALUE lines of training options")
    return {str(k): check_field(str(k), v, f"key in {path.name}") for k, v in values.items()}


def _sgd(params: list[Any], cfg: TrainConfig) -> Any:
    import torch  # here, not at the top: the CLI reads TrainConfig's fields without torch

    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _adamw(params: list[Any], cfg: TrainConfig) -> Any:
    import torch

    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


#: Optimisers by name: (trainable parameters, config) -> torch optimiser.
OPTIMIZERS: Registry[Callable[[list[Any], TrainConfig], Any]] = Registry("optimizer")
OPTIMIZERS.add("sgd", _sgd, "SGD with momentum (the paper's methods)")
OPTIMIZERS.add("adamw", _adamw, "AdamW, betas (0.9, 0.999) (ViTs, the formula-driven supervised recipes)")

SCHEDULES: Registry[Callable[[TrainConfig, int], float]] = Registry("schedule")
SCHEDULES.add(
    "multistep",
    lambda cfg, epoch: cfg.lr * cfg.gamma ** sum(epoch >= m for m in cfg.milestones),
    "lr × gamma at each milestone epoch (paper-small)",
)
SCHEDULES.add(
    "cosine",
    lambda cfg, epoch: cfg.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / cfg.epochs)),
    "MoCo's: lr · ½(1 + cos(π · epoch / epochs)), per epoch",
)
SCHEDULES.add("constant", lambda cfg, epoch: cfg.lr, "lr throughout")


def lr_at(cfg: TrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Learning rate of one step: per-epoch schedule (as the reference code) × per-step warm-up."""
    lr = SCHEDULES.get(cfg.schedule)(cfg, epoch)
    if epoch < cfg.warmup_epochs:
        lr *= (epoch * steps_per_epoch + step + 1) / (cfg.warmup_epochs * steps_per_epoch)
    return lr
