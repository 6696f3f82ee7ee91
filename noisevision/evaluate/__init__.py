"""Judging an encoder on real images: frozen probes of an encoder or a baseline, and fine-tuning.

    result = evaluate(model, load_eval_dataset("fashion-mnist"), ProbeSettings(probes=("fast", "knn")))

`probes` holds the probes and their classifier loop, `finetune` fine-tuning (the whole network),
`baselines` the baseline models and `load_probe_model`, `views` how images become probe inputs;
`evaluate` runs a set of probes: features of every image once for the probes that work on a cache,
the linear probe and fine-tuning on their own.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from noisevision.data.decode import resolve_decoder
from noisevision.data.eval_datasets import EvalDataset
from noisevision.errors import FieldError, NoisevisionError
from noisevision.evaluate.baselines import (
    BASELINES,
    MeanColors,
    RawPixels,
    build_baseline,
    load_probe_model,
    random_encoder,
)
from noisevision.evaluate.probes import (
    PROBES,
    PROTOCOLS,
    Cache,
    ImageRun,
    LinearProtocol,
    ProbeSettings,
    cached_probes,
    extract_features,
    feature_layer,
    fit_linear,
    input_stats,
    knn_top1,
    linear_probe,
    protocol_for,
    standardize,
    top1,
)
from noisevision.evaluate.views import NORMALIZATIONS, View, batch_view, iterate_views, view_rng
from noisevision.io import slug
from noisevision.logs import get_logger
from noisevision.precision import resolve_precision
from noisevision.progress import Progress

log = get_logger(__name__)


@dataclass
class EvalResult:
    """What `evaluate` measured: one entry per probe plus the shared context."""

    dataset: str
    layer: str
    feature_dim: int
    n_train: int
    n_test: int
    protocol: str
    device: str
    precision: str = "fp32"
    decoder: str = "in memory"
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)
    feature_seconds: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One terminal line: every probe's top-1."""
        parts = []
        for name, r in self.probes.items():
            if name == "lowshot":
                parts.append(f"lowshot({r['shots']}/class) {r['top1']:.2f}±{r['std']:.2f}")
            elif "last_top1" in r:  # fine-tuning: the reported epoch, and the last
                parts.append(
                    f"{name} {r['top1']:.2f} ({r['reported']} of {r['epochs']} epochs: "
                    f"{r['best_epoch']}; last {r['last_top1']:.2f})"
                )
            else:
                parts.append(f"{name} {r['top1']:.2f}")
        return (
            f"{' · '.join(parts)}  [{self.dataset}, layer {self.layer}, "
            f"{self.n_train}/{self.n_test} images, {self.seconds:.1f} s]"
        )


def check_trainable(model: nn.Module, probes: Iterable[str], meta: dict[str, Any]) -> None:
    """NoisevisionError when one of `probes` trains the network and `model` has no weights to train
    (the raw-pixels and mean-colors baselines)."""
    trains = [p for p in probes if PROBES.get(p).trains_model]
    if trains and not any(p.requires_grad for p in model.parameters()):
        name = meta.get("baseline") or getattr(model, "arch", type(model).__name__)
        raise NoisevisionError(
            f"probe {trains[0]} trains the network, and '{name}' has no trainable weights: give an "
            "encoder file, a run folder or scratch:ARCH"
        )


def evaluate(
    model: nn.Module,
    dataset: EvalDataset,
    settings: ProbeSettings | None = None,
    device: torch.device | str = "cpu",
    meta: dict[str, Any] | None = None,
) -> EvalResult:
    """Run `settings.probes` for a frozen probe model on `dataset` (subset first if asked)."""
    settings = settings or ProbeSettings()
    settings.check()
    device = torch.device(device)
    precision = resolve_precision(settings.precision, device)
    decoder = resolve_decoder(settings.decoder, device)
    t_start = time.perf_counter()
    meta = meta or {}
    layer = feature_layer(model, settings.layer or getattr(meta.get("recipe"), "layer", None) or None)
    protocol = PROTOCOLS.get(settings.protocol or protocol_for(meta))
    data = dataset.subset(settings.subset, settings.test_subset, settings.seed)
    if "lowshot" in settings.probes:
        fewest = int(torch.bincount(data.train.labels, minlength=dataset.num_classes).min())
        if settings.shots > fewest:
            raise FieldError(
                "shots",
                f"{{field}} {settings.shots}: the smallest class of the {len(data.train)} train "
                f"images has {fewest}: ask for at most {fewest} labels per class",
            )
    check_trainable(model, settings.probes, meta)
    mean, std = input_stats(meta, protocol)
    test_view = View(int(model.input_size), False, protocol.crop_scale, protocol.test_resize, mean, std)
    model = model.to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    result = EvalResult(
        dataset.name,
        layer,
        0,
        len(data.train),
        len(data.test),
        protocol.name,
        str(device),
        precision=precision,
        decoder=decoder if not data.train.in_memory else "in memory",
    )
    if any(PROBES.get(p).run is not None for p in settings.probes):
        t0 = time.perf_counter()
        extract = functools.partial(
            extract_features,
            model,
            layer=layer,
            device=device,
            view=test_view,
            batch_size=settings.batch_size,
            workers=settings.workers,
            precision=precision,
            decoder=decoder,
        )
        with Progress("features", len(data.train) + len(data.test), enabled=settings.progress) as bar:
            train_f, train_y = extract(data=data.train, progress=bar)
            test_f, test_y = extract(data=data.test, progress=bar)
        result.feature_seconds = time.perf_counter() - t0
        result.feature_dim = train_f.shape[1]
        n = len(train_f) + len(test_f)
        log.info(
            f"features: {n} images, {result.feature_dim}-d, {result.feature_seconds:.1f} s "
            f"({n / max(result.feature_seconds, 1e-9):.0f} images/s)"
        )
        cache = Cache(train_f, test_f, train_y, test_y, dataset.num_classes)
        result.probes.update(cached_probes(cache, settings, device))
    run = ImageRun(model, data, layer, protocol, settings, device, precision, decoder, (mean, std))
    for name in settings.probes:
        if (on_images := PROBES.get(name).on_images) is not None:
            result.probes[name] = on_images(run)
            result.feature_dim = result.feature_dim or result.probes[name].get("feature_dim", 0)
    # Keep the order the caller asked for.
    result.probes = {p: result.probes[p] for p in settings.probes}
    result.seconds = time.perf_counter() - t_start
    return result


def result_file(encoder: str, meta: dict[str, Any], dataset: str, probes: Iterable[str], layer: str) -> Path:
    """Where `noisevision eval` writes the results of `probes` on `dataset` when not told: beside
    the encoder file (`meta["path"]`), or in eval/ for a baseline, one file per (dataset, probes,
    layer), so that a later probe run never overwrites another."""
    where = Path(meta["path"]).parent if "path" in meta else Path("eval")
    stem = "" if "path" in meta else encoder.replace(":", "-") + "-"
    return where / f"eval-{stem}{slug(dataset)}-{'+'.join(probes)}-{slug(layer)}.json"


def track_result(
    loggers: str | tuple[str, ...], result: EvalResult, results_file: Path, meta: dict[str, Any]
) -> None:
    """Log `result` (written to `results_file`) to the trackers `loggers` names: into the tracked
    run of the encoder's training run when it lies in a run folder (which it continues, at its last
    step), else into a new tracked run named after the results file. Metrics are
    eval/DATASET/PROBE/top1 (and /std); the results file is kept as an artifact."""
    from noisevision.tracking import TrackedPlace, open_trackers

    run = Path(meta["path"]).parent if "path" in meta else None
    step = 0
    if run is not None and (run / "config.yaml").is_file():  # a training run folder
        batch = (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("batch_size")
        step = int(meta.get("images_seen") or 0) // batch if isinstance(batch, int) and batch > 0 else 0
        place = TrackedPlace(run, run.name, "eval")
    else:
        place = TrackedPlace(results_file.parent, results_file.stem, "eval", resume=False)
    trackers = open_trackers(loggers, place)
    if not trackers:
        return
    status = "failed"
    try:
        metrics = {}
        for probe, r in result.probes.items():
            for key in ("top1", "std"):
                if isinstance(r.get(key), int | float):
                    metrics[f"eval/{slug(result.dataset)}/{probe}/{key}"] = float(r[key])
        trackers.log_metrics(metrics, step)
        trackers.log_artifact(results_file, "eval")
        status = "finished"
    finally:
        trackers.close(status)


__all__ = [
    "BASELINES",
    "NORMALIZATIONS",
    "PROBES",
    "PROTOCOLS",
    "Cache",
    "EvalResult",
    "ImageRun",
    "LinearProtocol",
    "MeanColors",
    "ProbeSettings",
    "RawPixels",
    "View",
    "batch_view",
    "build_baseline",
    "check_trainable",
    "evaluate",
    "extract_features",
    "feature_layer",
    "fit_linear",
    "input_stats",
    "iterate_views",
    "knn_top1",
    "linear_probe",
    "load_probe_model",
    "protocol_for",
    "random_encoder",
    "result_file",
    "standardize",
    "top1",
    "track_result",
    "view_rng",
]
