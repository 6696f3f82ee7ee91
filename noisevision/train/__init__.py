"""Self-supervised pre-training on streamed noise images: `noisevision train`.

    cfg = TrainConfig.from_preset("tiny", data="dead_leaves-mixed", out="runs/dl")
    run_dir = train(cfg)            # run_dir / "encoder.pt" is the trained encoder

Data flows one way: source (generator / folder) → IndexPlan (which indices each step) →
two_views (augment on the device) → method (loss) → SGD step → checkpoint every epoch (and inside
long epochs every `checkpoint_minutes`). A run reads top to bottom in `run._train`:
build_components, the run folder, `resume` (RunState), `open_loader` (Loader), `run_epochs` (with a
Checkpointer), then the encoder export.

`config` holds TrainConfig and its checks, `components` what a run is built from, `checkpoint`
the checkpoint file and where a run stands, `loop` the epoch loop, `run` the run folder, resuming
and `train` itself.

A run folder holds config.yaml, checkpoint.pt (written atomically after every epoch and, inside
long epochs, every `checkpoint_minutes`), metrics.jsonl (one line per epoch), what its experiment
trackers keep there (`logger`, noisevision.tracking: tb/ for the default TensorBoard, samples.png,
trackers.json) and, at the end, encoder.pt. Running the same command again resumes from the last
checkpoint and continues exactly as an uninterrupted run would: the data order is a seeded permutation per
epoch, the augmentations are keyed by (seed, epoch, image index), MoCo's shuffle by (seed, step),
and model, optimiser and torch RNG state are restored. Under `torchrun` the same code runs
DistributedDataParallel (gloo on CPU, nccl on GPU), each rank rendering its own share of every
batch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_FORMAT",
    "CONFIG",
    "ENCODER",
    "METRICS",
    "OPTIMIZERS",
    "SCHEDULES",
    "Checkpointer",
    "Components",
    "Loader",
    "Numerics",
    "RunState",
    "TrainConfig",
    "build_components",
    "check_checkpoint",
    "check_field",
    "check_finite",
    "checkpoint_tensors",
    "lr_at",
    "open_loader",
    "parse_options",
    "parse_settings",
    "read_checkpoint",
    "read_config_file",
    "resume",
    "run_epochs",
    "train",
    "train_step",
    "training_recipe",
]

# The modules, each importing only from those before it: a name is defined in the first that has it.
_MODULES = ("config", "components", "checkpoint", "loop", "run")


def __getattr__(name: str) -> Any:
    """The names of __all__, imported on first use (PEP 562): `noisevision.train.config` alone, which
    the CLI reads to build `train`'s options, then loads without torch."""
    if name in __all__:
        for module in _MODULES:
            found = importlib.import_module(f"{__name__}.{module}")
            if hasattr(found, name):
                globals()[name] = value = getattr(found, name)
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from noisevision.train.checkpoint import (
        CHECKPOINT,
        CHECKPOINT_FORMAT,
        Checkpointer,
        RunState,
        check_checkpoint,
        checkpoint_tensors,
        read_checkpoint,
    )
    from noisevision.train.components import Components, Numerics, build_components
    from noisevision.train.config import (
        OPTIMIZERS,
        SCHEDULES,
        TrainConfig,
        check_field,
        lr_at,
        parse_options,
        parse_settings,
        read_config_file,
    )
    from noisevision.train.loop import METRICS, Loader, check_finite, open_loader, run_epochs, train_step
    from noisevision.train.run import CONFIG, ENCODER, resume, train, training_recipe
