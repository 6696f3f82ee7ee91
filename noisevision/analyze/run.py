"""`analyze`, from sources to report: check everything, extract each source (cached), measure every
set in every space, relate the measures to probe results, write the report and its plots."""

from __future__ import annotations

import contextlib
import json
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from noisevision.analyze import sets
from noisevision.analyze.correlate import Correlation, correlate, match, read_results
from noisevision.analyze.extract import extract
from noisevision.analyze.features import (
    RANDOM_NAMES,
    encoder_net,
    random_nets,
    space_features,
    standardisation,
)
from noisevision.analyze.sets import scalar_measures
from noisevision.analyze.sources import ImageSource, Source, resolve_source
from noisevision.device import one_cpu_thread
from noisevision.errors import FieldError, NoisevisionError
from noisevision.io import atomic_write_text
from noisevision.logs import get_logger

log = get_logger(__name__)

MIN_IMAGES = 20  # k-NN balls of k = 5 in half-samples need a dozen images at least
REAL = "real"


@dataclass
class AnalyzeSettings:
    """What `noisevision analyze` is told; every default here and nowhere else."""

    num_images: int = 2000
    res: int = 128
    seed: int = 0
    real: str | None = None  # an evaluation set name (fashion-mnist, imagefolder:PATH …)
    encoder: str | None = None  # an encoder file or run folder
    results: tuple[str, ...] = ()  # reproduce folders or eval JSON files
    device: str = "auto"
    bootstraps: int = 25  # half-samples: their intervals within ~10 % of 200 half-samples' (docs/analysis.md)
    progress: bool = True

    def check(self) -> None:
        if self.num_images < MIN_IMAGES:
            raise FieldError(
                "num_images",
                f"{{field}} must be at least {MIN_IMAGES} (nearest-neighbour measures of half-samples "
                f"need that many), not {self.num_images}",
            )
        if self.res < 32:
            raise FieldError("res", f"{{field}} must be at least 32, not {self.res}")
        if self.bootstraps < 0 or self.bootstraps == 1:
            raise FieldError(
                "bootstraps", f"{{field}} must be 0 (no intervals) or at least 2, not {self.bootstraps}"
            )


@dataclass
class Plan:
    """A checked analysis: its sources (the real set first, when given) and the probe results."""

    settings: AnalyzeSettings
    sources: list[Source]
    real: Source | None
    results: dict[str, dict[str, float]] = field(default_factory=dict)


def plan(specs: list[str], settings: AnalyzeSettings) -> Plan:
    """Every check that needs no image: NoisevisionError (one line) before any work."""
    settings.check()
    if not specs:
        raise NoisevisionError(
            "name at least one source: a generator (see `noisevision list`) or an image folder"
        )
    sources = [resolve_source(s) for s in specs]
    labels = [s.label for s in sources]
    if dup := next((x for x in labels if labels.count(x) > 1), None):
        raise NoisevisionError(f"source '{dup}' is named twice")
    if REAL in labels:
        raise NoisevisionError(f"'{REAL}' names the --real set in the report: rename that folder")
    real = None
    if settings.real is not None:
        from noisevision.data.eval_datasets import DATASETS

        kind, _, arg = settings.real.partition(":")
        if DATASETS.get(kind).needs_path and not arg:  # an unknown name: "did you mean …"
            raise NoisevisionError(f"--real {kind} needs a folder: write {kind}:/path/to/folder")
        real = Source(REAL, "real", settings.real)
    if settings.encoder is not None:
        from noisevision.models import encoder_path

        encoder_path(settings.encoder)
    results = read_results([Path(p) for p in settings.results]) if settings.results else {}
    return Plan(settings, sources, real, results)


def _seed(settings: AnalyzeSettings, label: str) -> int:
    """The half-sampling seed of one source: its own, whatever the other sources are."""
    return zlib.crc32(f"{settings.seed}|{label}".encode())


def analyze(p: Plan, out: Path) -> dict[str, Any]:
    """Run a checked plan into folder `out`: the report's numbers (also written to out/)."""
    from noisevision.analyze.report import write_report

    numbers, data, images, timing = compute(p, out / "cache")
    t = time.perf_counter()
    write_report(out, numbers, data, images, RANDOM_NAMES[0])
    timing["report"] = time.perf_counter() - t
    atomic_write_text(out / "timing.json", json.dumps(timing, indent=1))  # apart: results.json stays the same
    return numbers


def compute(
    p: Plan, cache: Path
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, ImageSource], dict[str, Any]]:
    """Every number of a checked plan, no report: (numbers, per-source data, image sources,
    seconds taken), per-source features cached in `cache` (shared by runs that measure the same
    real set, e.g. the trials of a search)."""
    from noisevision.analyze.extract import encoder_id
    from noisevision.device import resolve_device

    s = p.settings
    device = resolve_device(s.device)
    built: list = []

    def random() -> list:  # the random networks, built on first need (a resumed run may need none)
        if not built:
            built.extend(random_nets(device))
        return built

    enc = encoder_net(s.encoder, device) if s.encoder else None
    enc_id = encoder_id(s.encoder) if s.encoder else None
    images: dict[str, ImageSource] = {}
    data: dict[str, dict[str, Any]] = {}
    # On a CPU everything runs on one thread: its sums (convolutions, FFTs) do not depend on the
    # core count, so results.json does not either; and on a shared machine two threads of many
    # small operations wait for each other (measured under a load of 5 on 2 cores: the random
    # networks 9× and the statistics 1.7× slower on two threads than on one; the bootstrap's
    # spectra and k-NN searches 5× slower under a load of 9–12).
    single = one_cpu_thread() if device.type == "cpu" else contextlib.nullcontext()
    with single:
        for src in ([p.real] if p.real else []) + p.sources:
            images[src.label] = ImageSource(src, s.num_images, s.res, s.seed, device)
            if images[src.label].count < MIN_IMAGES:
                raise NoisevisionError(
                    f"'{src.spec}' gives {images[src.label].count} images: at least {MIN_IMAGES} are needed"
                )
            data[src.label] = extract(images[src.label], cache, random, enc, enc_id, s.progress)
    timing: dict[str, Any] = {"device": str(device), "sources": {k: d["seconds"] for k, d in data.items()}}
    labels = _usable(data, [x.label for x in p.sources])
    t = time.perf_counter()
    spaces = ["random", *(["encoder"] if enc else []), "stats"]
    with one_cpu_thread() if device.type == "cpu" else contextlib.nullcontext():
        numbers = measure(data, labels, spaces, list(RANDOM_NAMES), s, p.real is not None, device)
    numbers["correlations"] = [c.to_dict() for c in correlations(numbers, p)]
    numbers["settings"] = {**asdict(s), "sources": [x.given for x in p.sources]}
    timing["measures"] = time.perf_counter() - t
    return numbers, data, images, timing


def _usable(data: dict[str, dict[str, Any]], labels: list[str]) -> list[str]:
    """The sources whose images are not all blank; a warning for each blank one."""
    keep = []
    for label in labels:
        blank, count = data[label]["blank"], data[label]["count"]
        if blank == count:
            log.warning(f"{label}: every image is blank (one flat colour): left out of the measures")
            continue
        if blank > count // 2:
            log.warning(f"{label}: {blank} of {count} images are blank (one flat colour)")
        keep.append(label)
    if not keep:
        raise NoisevisionError("every source renders blank images: nothing to measure")
    return keep


def measure(
    data: dict[str, dict[str, Any]],
    labels: list[str],
    spaces: list[str],
    nets: list[str],
    s: AnalyzeSettings,
    real: bool,
    device: torch.device,
) -> dict[str, Any]:
    """Every number of the report (before the correlations); the set measures on `device`."""
    rows = ([REAL] if real else []) + labels
    norms = {sp: standardisation(data, rows, sp, nets) for sp in spaces}
    out: dict[str, Any] = {"spaces": spaces, "sources": {}}
    for label in rows:
        d = data[label]
        own = {sp: space_features(d, sp, nets, norms[sp]) for sp in spaces}
        with_real = real and label != REAL
        ref = {sp: space_features(data[REAL], sp, nets, norms[sp]) for sp in spaces} if with_real else None
        seed = _seed(s, label)
        measures = {}
        for sp in spaces:
            sd_ = sets.SpaceData(own[sp]["x"], ref[sp]["x"] if ref else None, own[sp]["views"])
            measures[sp] = {
                k: v.to_dict() for k, v in sets.space_measures(sd_, s.bootstraps, seed, device).items()
            }
        out["sources"][label] = {
            "kind": d["kind"],
            "spec": d["spec"],
            "count": d["count"],
            "blank": d["blank"],
            "measures": measures,
            "statistics": sets.statistic_medians(
                d["stats"], data[REAL]["stats"] if real and label != REAL else None, s.bootstraps, seed
            ),
            "vendi_curve": {sp: sets.vendi_curve(own[sp]["x"]) for sp in spaces},
            "spectrum": d["curve"].nanmedian(0).values.tolist(),
        }
    return out


def correlations(numbers: dict[str, Any], p: Plan) -> list[Correlation]:
    """ρ of every scalar measure against every probe, over the sources that have a result."""
    found = []
    for probe, results in p.results.items():
        rows = [
            (label, acc)
            for label, src in numbers["sources"].items()
            if label != REAL and (acc := match(results, label, src["spec"])) is not None
        ]
        for label, acc in rows:
            numbers["sources"][label].setdefault("accuracy", {})[probe] = acc
        if len(rows) < 3:
            log.warning(
                f"{probe}: {len(rows)} analysed source(s) have a result; a ranking needs 3 or more: "
                "no correlations"
            )
            continue
        flat = {label: scalar_measures(numbers["sources"][label]) for label, _ in rows}
        for measure_name in flat[rows[0][0]]:
            c = correlate(
                measure_name, probe, [flat[lb][measure_name] for lb, _ in rows], [a for _, a in rows]
            )
            if c is not None:
                found.append(c)
    return found
