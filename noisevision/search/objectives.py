"""What a search optimises, and where it is measured.

An objective is either a probe's top-1 after a short pre-training on the trial's generator (the
`--budget` training preset), measured on a validation split carved from the real set's training
part, or a training-free `analyze` measure of the generator's images against that training part.
The test split stays untouched until the best setting and the defaults are compared on it
(noisevision.search.confirm).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from noisevision.data.eval_datasets import EvalDataset, balanced_subset
from noisevision.errors import NoisevisionError
from noisevision.io import atomic_write_text
from noisevision.logs import get_logger
from noisevision.registry import Registry

log = get_logger(__name__)

VALIDATION_SEED = 7919  # the validation images: the same for every search of a dataset
BLANK_STD = 0.5 / 255  # a rendered image whose grey levels vary less than this is one flat colour
BLANK_CHECK = 16  # images rendered before a trial trains, to fail a blank setting in seconds


@dataclass(frozen=True)
class Objective:
    """A number a search maximises or minimises."""

    kind: str  # "probe" (pre-train, then probe) or "measure" (analyze, no training)
    direction: str  # "maximize" | "minimize"
    target: str  # the probe's name, or the analyze measure as SPACE:NAME


OBJECTIVES: Registry[Objective] = Registry("objective")
for _probe, _what in (
    ("fast", "a linear probe on cached features (seconds)"),
    ("knn", "20-NN on cached features"),
    ("lowshot", "a linear probe on 10 labels per class"),
    ("linear", "the paper's linear probe on augmented views (slow)"),
    ("finetune", "fine-tuning the whole network (formula-supervised encoders)"),
):
    OBJECTIVES.add(
        _probe, Objective("probe", "maximize", _probe), f"top-1 after a short pre-training: {_what}"
    )
for _measure, _direction, _what in (
    ("coverage", "maximize", "share of real images with a generated image nearby (k = 5)"),
    ("density", "maximize", "how densely generated images fill the real images' neighbourhoods"),
    ("precision", "maximize", "share of generated images inside the real images' k-NN balls"),
    ("recall", "maximize", "share of real images inside the generated images' k-NN balls"),
    ("vendi", "maximize", "Vendi score (q = 1): effective number of distinct images"),
    ("effective_rank", "maximize", "effective rank of the features"),
    ("kid", "minimize", "kernel distance (KID, unbiased) to the real images"),
    ("fd", "minimize", "Fréchet distance to the real images"),
    ("near_duplicates", "minimize", "share of images with a near-duplicate"),
):
    _target = "random:vendi_q1" if _measure == "vendi" else f"random:{_measure}"
    OBJECTIVES.add(
        _measure,
        Objective("measure", _direction, _target),
        f"training-free: {_what} (analyze, random-network features)",
    )


# ---------------------------------------------------------------------------------- real data
def splits(dataset: EvalDataset, val_images: int, probe_images: int, test_images: int, seed: int) -> dict:
    """The real set's parts: "validation" (probes fit on `probe_images` training images, scored on
    `val_images` other training images) and "test" (fit on the same, scored on the test split)."""
    train = dataset.train
    if val_images + probe_images > len(train):
        raise NoisevisionError(
            f"{dataset.name} has {len(train):,} training images: fewer than --val-images "
            f"{val_images:,} + --probe-images {probe_images:,}"
        )
    val = balanced_subset(train.labels, val_images, VALIDATION_SEED)
    rest = torch.ones(len(train), dtype=torch.bool)
    rest[val] = False
    others = rest.nonzero().flatten()
    fit = others[balanced_subset(train.labels[others], probe_images, seed)]
    test = balanced_subset(dataset.test.labels, test_images, seed + 1)
    fit_set = train.take(fit)
    return {
        "validation": EvalDataset(
            dataset.name, dataset.classes, fit_set, train.take(val), dict(dataset.info)
        ),
        "test": EvalDataset(
            dataset.name, dataset.classes, fit_set, dataset.test.take(test), dict(dataset.info)
        ),
    }


# ---------------------------------------------------------------------------------- a trial
class TrialFailed(NoisevisionError):
    """A setting that cannot be measured (blank images, out of memory …): the trial is recorded
    as failed with this reason, and the study goes on."""


def folder_name(name: str) -> str:
    """A run folder for generator `name`: readable, and unique by a hash of the whole name."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
    return f"{safe}-{hashlib.blake2b(name.encode(), digest_size=4).hexdigest()}"


def check_not_blank(name: str, res: int | None, seed: int, device: str) -> None:
    """TrialFailed when the generator's first images are all one flat colour."""
    from noisevision import generators
    from noisevision.device import resolve_device

    gen = generators.get(name)
    images = gen(range(BLANK_CHECK), res=res, seed=seed, device=resolve_device(device))
    grey = images.float().mean(1).flatten(1) / 255.0
    if bool((grey.std(1) < BLANK_STD).all()):
        raise TrialFailed(f"{name} renders blank images (each one flat colour)")


@dataclass
class Budget:
    """How a probe objective pre-trains: the training preset and what the search overrides."""

    preset: str
    overrides: dict[str, Any]
    device: str
    logger: str

    def config(self, name: str, out: Path, seed: int) -> Any:
        """The training run of generator `name`, rendered at the preset's resolution or the
        nearest one the generator makes (StyleGAN: 128, 256 or 512 px; crops are resized)."""
        from noisevision.reproduce.plan import generation_res
        from noisevision.train import TrainConfig

        res = generation_res(name, TrainConfig.from_preset(self.preset, **self.overrides).res)
        return TrainConfig.from_preset(
            self.preset,
            **self.overrides,
            res=res,
            data=name,
            out=str(out),
            seed=seed,
            device=self.device,
            progress=False,
            logger=self.logger,
        )


def probe_value(
    encoder: Any,
    meta: dict[str, Any],
    data: EvalDataset,
    probe: str,
    device: str,
    seed: int,
) -> float:
    """Top-1 of `probe` for a frozen or fine-tuned encoder on `data` (all of it: already cut)."""
    from noisevision.device import resolve_device
    from noisevision.evaluate import evaluate
    from noisevision.evaluate.probes import ProbeSettings

    settings = ProbeSettings(probes=(probe,), seed=seed, finetune_epochs=5)
    result = evaluate(encoder, data, settings, resolve_device(device), meta)
    return float(result.probes[probe]["top1"])


def pretrain_and_probe(
    name: str,
    run_dir: Path,
    budget: Budget,
    seed: int,
    data: EvalDataset,
    probe: str,
    report: Callable[[int, float], None] | None = None,
) -> float:
    """Pre-train on `name` into `run_dir` (resuming a run cut short), then `probe` on `data`.
    `report(epoch, top1)` gets the probe after each epoch but the last (pruning); it may raise to
    stop the run. The value is kept in RUN/objective.json, so that a retried trial reuses it."""
    from noisevision.models import load_encoder
    from noisevision.train import ENCODER, train

    done = run_dir / "objective.json"
    if done.is_file():
        kept = json.loads(done.read_text())
        if kept.get("probe") == probe and kept.get("data") == _data_id(data):
            return float(kept["top1"])
    cfg = budget.config(name, run_dir, seed)
    epoch_end = None
    if report is not None:

        def epoch_end(epoch: int, encoder: torch.nn.Module, meta: dict[str, Any]) -> None:
            if epoch < cfg.epochs:  # the last epoch's probe is the trial's value, below
                report(
                    epoch,
                    probe_value(
                        encoder, meta, data, "fast" if probe == "finetune" else probe, budget.device, seed
                    ),
                )

    try:
        train(cfg, epoch_end=epoch_end)
    except torch.cuda.OutOfMemoryError as exc:
        raise TrialFailed(f"{name}: out of memory ({exc})") from exc
    except MemoryError as exc:
        raise TrialFailed(f"{name}: out of memory") from exc
    model, meta = load_encoder(run_dir / ENCODER)
    top1 = probe_value(model, meta, data, probe, budget.device, seed)
    atomic_write_text(done, json.dumps({"probe": probe, "data": _data_id(data), "top1": top1}))
    return top1


def _data_id(data: EvalDataset) -> str:
    """Which images a probe value was measured on (its labels' digest and sizes)."""
    h = hashlib.blake2b(digest_size=6)
    for part in (data.train.labels, data.test.labels):
        h.update(part.numpy().tobytes())
    return f"{data.name}:{len(data.train)}:{len(data.test)}:{h.hexdigest()}"


def measure_value(
    name: str, target: str, dataset: str, images: int, res: int, seed: int, cache: Path, device: str
) -> float:
    """The analyze measure `target` (SPACE:NAME) of `images` images of `name` against the real
    training images, no intervals; features cached in `cache` (the real set's once per search)."""
    from noisevision.analyze import AnalyzeSettings, plan
    from noisevision.analyze.run import compute

    settings = AnalyzeSettings(
        num_images=images, res=res, seed=seed, real=dataset, bootstraps=0, progress=False, device=device
    )
    numbers, *_ = compute(plan([name], settings), cache)
    space, _, measure = target.partition(":")
    sources = [v for k, v in numbers["sources"].items() if v["kind"] != "real"]
    if not sources:
        raise TrialFailed(f"{name} renders blank images: nothing to measure")
    value = sources[0]["measures"][space][measure]["value"]
    if value is None:
        raise TrialFailed(f"{name}: {target} is undefined for its images")
    return float(value)
