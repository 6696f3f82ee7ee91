"""`noisevision train`: its options, one per TrainConfig field (the type from the dataclass, no
default of their own: the library's apply), and the command that runs the training."""

from __future__ import annotations

import dataclasses
import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from noisevision.cli.root import DEVICE_HELP, app, console
from noisevision.errors import NoisevisionError
from noisevision.train.config import TrainConfig, field_types


@dataclass(frozen=True)
class Opt:
    """How `train` offers one setting: its help, and where they are not the field's own, its flags
    (default --field-name) and its type (default the field's)."""

    help: str
    flags: tuple[str, ...] = ()
    type: Any = None
    invert: bool = False  # a flag that turns the field off (--no-progress)


#: The options of `noisevision train`, in the order --help lists them. Every key is a TrainConfig
#: field except `config` and `settings`, the command's own; the fields missing here (momentum,
#: milestones, log_every …) are set with --set.
OPTIONS: dict[str, Opt] = {
    "data": Opt("Generator name, A+B / A:0.7+B:0.3 mix, or image folder."),
    "out": Opt("Run folder (resumed when it exists; with --config: the config's own).", ("--out", "-o"),
               Path),
    "preset": Opt("Recipe: {presets} (default paper-small)."),
    "config": Opt("A run's config.yaml (or YAML of training options): its values instead of a preset's; the "
                  "options given here override them.", type=Path),
    "settings": Opt("KEY=VALUE for any training option, e.g. momentum=0.99, milestones=[60,80], "
                    "arch_kwargs={width: 0.5} (repeat; values read as YAML).", ("--set",), list[str]),
    "arch": Opt("Encoder: {archs}."),
    "arch_kwargs": Opt("Encoder option KEY=VALUE (repeat).", ("--arch-opt",), list[str]),
    "method": Opt("{methods}."),
    "method_kwargs": Opt("Method option KEY=VALUE.", ("--method-opt",), list[str]),
    "augment": Opt("Augmentation: {augmentations}."),
    "schedule": Opt("Learning-rate schedule: {schedules}."),
    "optimizer": Opt("Optimiser: {optimizers}."),
    "epochs": Opt("Training epochs (passes over the dataset)."),
    "batch_size": Opt("Global batch size."),
    "lr": Opt("Base learning rate of the schedule."),
    "res": Opt("Generation resolution."),
    "input_size": Opt("Crop side fed to the encoder."),
    "num_images": Opt("Dataset size (indices 0..N-1)."),
    "fresh": Opt("New images every epoch (infinite dataset)."),
    "bn_groups": Opt("BN groups over the global batch."),
    "device": Opt(DEVICE_HELP),
    "workers": Opt("Rendering processes (CPU default 1)."),
    "threads": Opt("torch threads of the training process."),
    "seed": Opt("Seed of the images, augmentations, initial weights and data order."),
    "checkpoint_minutes": Opt("Also checkpoint inside an epoch this often (default 30)."),
    "precision": Opt("fp32, bf16 or fp16 autocast (auto: bf16 on GPUs with it, else fp32)."),
    "channels_last": Opt("NHWC memory layout (default: on with CUDA).",
                         ("--channels-last/--no-channels-last",)),
    "compile": Opt("torch.compile the encoder (slow start)."),
    "deterministic": Opt("GPU: deterministic kernels only (a resumed run equals an uninterrupted one bit for "
                         "bit; slower)."),
    "cache_images": Opt("Keep a generated dataset on the GPU after its first epoch: auto (when it takes at "
                        "most half the free memory), on, off."),
    "progress": Opt("No progress display.", ("--no-progress",), invert=True),
    "logger": Opt("Experiment trackers, comma-separated: {loggers}; none: only metrics.jsonl."),
}  # fmt: skip
_OWN = ("config", "settings")


def _flags(name: str) -> tuple[str, ...]:
    return OPTIONS[name].flags or (f"--{name.replace('_', '-')}",)


#: The option that sets each TrainConfig field, as error messages name it (the field's own name
#: when only --set sets it).
FLAGS: dict[str, str] = {
    f.name: _flags(f.name)[0].split("/")[0] if f.name in OPTIONS else f.name
    for f in dataclasses.fields(TrainConfig)
}


def _parameter(name: str, opt: Opt) -> inspect.Parameter:
    """The typer parameter of one option: not given, None."""
    kind = opt.type or field_types()[name]
    default = next((f.default for f in dataclasses.fields(TrainConfig) if f.name == name), None)
    # the run-time settings' string defaults ("auto") are shown, as the help of the other commands does
    shown = default if name in TrainConfig.RUNTIME and isinstance(default, str) and default else False
    info = typer.Option(None, *_flags(name), help=opt.help, show_default=shown)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=kind | None)


def train(**given: Any) -> None:
    """Pre-train an encoder on streamed noise images; run again to resume (torchrun for DDP).

    SIGTERM or SIGUSR1 (e.g. a cluster pre-empting the job) write a checkpoint at the next step and
    stop; the same command resumes there. Without a terminal, progress is printed as plain lines.
    """
    from noisevision.train import TrainConfig, parse_options, parse_settings
    from noisevision.train import train as run_training

    config, settings, preset = given.pop("config"), given.pop("settings"), given.pop("preset")
    options: dict[str, Any] = {}
    for name, value in given.items():
        if value is not None and OPTIONS[name].invert:
            value = not value
        elif isinstance(value, list):  # KEY=VALUE items of the `*_kwargs` fields
            value = parse_options(value, given[name.removesuffix("_kwargs")])
        elif isinstance(value, Path):
            value = str(value)
        options[name] = value
    chosen = parse_settings(settings)
    for key, value in chosen.items():
        if options.get(key) is not None:
            raise NoisevisionError(f"{key} is given twice (an option and --set {key}=…): keep one")
        options[key] = value
    if config is None:
        cfg = TrainConfig.from_preset(preset or TrainConfig.preset, **options)
    elif preset is not None:
        raise NoisevisionError("--preset and --config both give the recipe: keep one")
    else:
        if options.get("out") is None and config.name == "config.yaml":
            options["out"] = str(config.parent)  # the run the file belongs to: resume it
        cfg = TrainConfig.from_file(config, **options)
    for key in (k for k, v in chosen.items() if v is None):  # --set KEY=null: None, not "not given"
        setattr(cfg, key, None)
    run_dir = run_training(cfg)
    if os.environ.get("RANK", "0") == "0":  # once under torchrun
        console.print(f"encoder written to {run_dir / 'encoder.pt'}", highlight=False, soft_wrap=True)


train.__signature__ = inspect.Signature(
    [_parameter(name, opt) for name, opt in OPTIONS.items()], return_annotation=None
)
app.command()(train)
