"""One-command reproduction: every (data source × probe) cell, then a report (SPEC §9, §10).

    noisevision reproduce --preset tiny --out demo/

For each data source of a preset — a generator, an image folder (`--extra-data NAME=DIR`) or a
baseline (SPEC §6) — the pipeline is: pre-train (noisevision.train) → probe the frozen encoder
(noisevision.evaluate) → one JSON file per (source, probe) cell in OUT/cells/, written atomically.
Training streams a generator (the same images regenerated every epoch) or, where the preset's
`materialize` policy says so (`--materialize`), reads its images rendered once into OUT/data/NAME/:
the paper presets render the expensive generators (feature visualizations) once, as the paper's
fixed datasets were, and stream the cheap ones. A cell whose file exists is skipped, and training
runs and renderings resume, so an interrupted reproduction continues where it stopped. The report
(OUT/report.md, results.csv, results.json and bar charts like the paper's ImageNet-100 figure) is
rebuilt from the cell files.

Presets are rows of `REPRO_PRESETS`: which generators, which training preset (with overrides),
which evaluation set and probes. The paper presets list every SPEC §1 dataset; names not
registered in this installation are skipped with a note in the report.

`feature_vis-dead_leaves` (SPEC §5) visualises the ResNet-50 trained with MoCo v2 on
dead_leaves-mixed: the dead_leaves-mixed run itself where the preset trains that recipe
(paper-large), else a prerequisite run in OUT/prerequisites/ (paper-small), or the encoder file
given as `feature_vis_encoder`. Its images are then rendered and trained on like any generator's.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

import noisevision
from noisevision.data.folder import atomic_write_bytes
from noisevision.errors import NoisevisionError, UnknownNameError, unknown_name
from noisevision.evaluate import BASELINES, ProbeSettings, build_baseline, evaluate

Log = Callable[[str], None]

# SPEC §1 datasets, in the paper's order.
SPEC_DATASETS = (
    "dead_leaves-squares", "dead_leaves-oriented", "dead_leaves-mixed", "dead_leaves-textures",
    "stat-spectrum", "stat-wmm", "stat-spectrum_color", "stat-spectrum_color_wmm",
    "stylegan-random", "stylegan-highfreq", "stylegan-sparse", "stylegan-oriented",
    "feature_vis-random", "feature_vis-dead_leaves",
)  # fmt: skip

# SPEC §10, small scale (SmallAlexNet, ImageNet-100, read off the paper's chart, ±0.5).
PAPER_SMALL: dict[str, float] = {
    "mean-colors": 5.0, "raw-pixels": 8.8, "cnn-random": 20.9, "stat-spectrum": 30.6,
    "stat-wmm": 31.4, "fractaldb": 33.4, "stylegan-random": 34.0, "feature_vis-random": 34.6,
    "dead_leaves-squares": 35.1, "stat-spectrum_color": 36.7, "dead_leaves-oriented": 37.4,
    "dead_leaves-mixed": 38.9, "feature_vis-dead_leaves": 39.2, "stat-spectrum_color_wmm": 39.9,
    "dead_leaves-textures": 40.9, "stylegan-sparse": 42.0, "stylegan-highfreq": 42.1,
    "stylegan-oriented": 43.4,
}  # fmt: skip
# SPEC §10, large scale (ResNet-50, MoCo v2), ImageNet-100 column.
PAPER_LARGE: dict[str, float] = {
    "cnn-random": 10.84, "fractaldb": 44.06, "dead_leaves-mixed": 38.34,
    "feature_vis-dead_leaves": 49.48, "stat-spectrum_color_wmm": 56.04, "stylegan-oriented": 58.70,
}  # fmt: skip
PAPER_NUMBERS = {"small": PAPER_SMALL, "large": PAPER_LARGE}

# SPEC §5: feature_vis-dead_leaves = feature visualizations of a ResNet-50 trained on Dead leaves – Shapes.
FEATURE_VIS_DEAD_LEAVES = "feature_vis-dead_leaves"
FEATURE_VIS_DEAD_LEAVES_LABEL = "Feature vis. – Dead leaves"
DEAD_LEAVES_SHAPES = "dead_leaves-mixed"

# Families the "expensive" materialize policy renders once: generation, not training, is their cost,
# and streaming them would pay it once per epoch (feature visualization: 128 Adam steps through a
# ResNet-50 per image, SPEC §5).
EXPENSIVE_FAMILIES = ("feature visualization",)
MATERIALIZE_HELP = (
    "all, none, or expensive (feature visualizations), optionally with generator names or "
    "families to render once too, comma-separated (e.g. expensive,stylegan-random)"
)

FAMILY_COLORS = {
    "dead leaves": "#1f77b4", "statistical": "#2ca02c", "random StyleGAN": "#d62728",
    "feature visualization": "#9467bd", "fractals": "#ff7f0e", "mixing": "#e377c2",
    "image folder": "#8c564b", "baseline": "#7f7f7f",
}  # fmt: skip


# ---------------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class ReproPreset:
    """One reproduction recipe. `generators` entries may be "a|b": the first registered name."""

    name: str
    description: str
    generators: tuple[str, ...]
    train_preset: str
    train_overrides: dict[str, Any] = field(default_factory=dict)
    baselines: tuple[str, ...] = tuple(BASELINES)
    eval_dataset: str = "fashion-mnist"
    probe: dict[str, Any] = field(default_factory=dict)  # ProbeSettings fields
    paper_scale: str = "small"  # which SPEC §10 numbers the report shows beside ours
    # Which generators are rendered once to OUT/data/NAME/ and trained from there instead of streamed
    # (regenerated every epoch): MATERIALIZE_HELP, parsed by materialize_selectors.
    materialize: str = "none"
    distinct_images: int | None = None  # fewer distinct images, more epochs, same images seen
    # The recipe of the ResNet-50 that feature_vis-dead_leaves visualises (SPEC §5: MoCo v2, §8);
    # None: none is trained, feature_vis-dead_leaves needs a given encoder file.
    feature_vis_train_preset: str | None = "paper-large"
    feature_vis_train_overrides: dict[str, Any] = field(default_factory=dict)

    def probe_settings(self, **overrides: Any) -> ProbeSettings:
        values = {"progress": True, **self.probe, **{k: v for k, v in overrides.items() if v is not None}}
        return ProbeSettings(**values)


REPRO_PRESETS: dict[str, ReproPreset] = {
    p.name: p
    for p in (
        ReproPreset(
            "tiny",
            "CPU demo: 4 generator families + baselines, Fashion-MNIST probes",
            # One fast generator per family (CPU rendering is the bottleneck).
            generators=(
                "dead_leaves-mixed",
                "stat-spectrum_color|stat-spectrum_color_wmm|stat-spectrum",
                "stylegan-oriented|stylegan-random",
                "fractaldb|fractal-svd",
            ),
            train_preset="tiny",
            # As many training images as the training preset, over at most 2,048 distinct ones
            # rendered once (CPU rendering of StyleGAN / fractals costs more than training on them).
            materialize="all",
            distinct_images=2048,
            feature_vis_train_preset=None,  # a ResNet-50 + MoCo v2 run is no CPU demo
            eval_dataset="fashion-mnist",
            probe=dict(probes=("fast", "knn", "lowshot"), subset=5000, test_subset=2000,
                       lowshot_seeds=5, protocol="paper"),  # fmt: skip
        ),
        ReproPreset(
            "paper-small",
            "SPEC §7 + §9: SmallAlexNet on 105k images of every SPEC §1 dataset, ImageNet-100 probe",
            generators=(*SPEC_DATASETS, "fractaldb"),
            train_preset="paper-small",
            eval_dataset="imagenet100",
            probe=dict(probes=("linear", "fast", "knn"), protocol="paper", workers=8),
            materialize="expensive",  # the paper trained on fixed datasets, rendered once
        ),
        ReproPreset(
            "paper-large",
            "SPEC §8 + §9: ResNet-50 MoCo v2 on 1.3M images, MoCo's linear probe on ImageNet-100",
            generators=(*SPEC_DATASETS, "fractaldb"),
            train_preset="paper-large",
            eval_dataset="imagenet100",
            probe=dict(probes=("linear", "knn"), protocol="moco", workers=8),
            paper_scale="large",
            materialize="expensive",
        ),
    )
}


def get_repro_preset(name: str) -> ReproPreset:
    if name not in REPRO_PRESETS:
        raise unknown_name("reproduction preset", name, list(REPRO_PRESETS))
    return REPRO_PRESETS[name]


def materialize_selectors(policy: str) -> frozenset[str]:
    """The generator names and families a materialize policy renders once ("*": every generator)."""
    from noisevision import generators

    tokens = [t.strip() for t in policy.split(",") if t.strip()]
    if tokens in (["all"], ["none"]):
        return frozenset({"*"} if tokens == ["all"] else ())
    families = {s.family for s in generators.specs()}
    selected: set[str] = set()
    for token in tokens or [""]:
        if token == "expensive":
            selected.update(EXPENSIVE_FAMILIES)
        elif token in families or token == FEATURE_VIS_DEAD_LEAVES or _generator_spec(token) is not None:
            selected.add(token)
        else:
            alone = token in ("all", "none")
            why = f"{token} stands alone" if alone else f"'{token}' is no generator or family"
            raise NoisevisionError(f"bad --materialize '{policy}': {why}; use {MATERIALIZE_HELP}")
    return frozenset(selected)


def renders_once(selectors: frozenset[str], source: Source) -> bool:
    """Whether `source` is trained from its images rendered once (else streamed)."""
    return source.kind == "generator" and bool({"*", source.name, source.family} & selectors)


# ---------------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class Source:
    """One row of the report: what the encoder saw (or which baseline it is)."""

    name: str
    kind: str  # "generator" | "folder" | "baseline"
    family: str
    label: str
    data: str = ""  # what noisevision.train reads (generator name or folder); see feature_vis_source


def resolve_sources(preset: ReproPreset, generators: list[str] | None = None,
                    extra_data: dict[str, str] | None = None,
                    feature_vis_encoder: str | Path | None = None) -> tuple[list[Source], list[str]]:
    """The preset's sources (or `generators`), folders and baselines; plus notes on skipped names."""
    notes: list[str] = []
    sources: list[Source] = []
    fv_source = feature_vis_source(feature_vis_encoder)  # checks the file before any work
    for entry in generators or preset.generators:
        if entry == FEATURE_VIS_DEAD_LEAVES:
            if fv_source not in sources:
                sources.append(fv_source)
            continue
        choices = entry.split("|")
        found = next(((c, spec) for c in choices if (spec := _generator_spec(c)) is not None), None)
        if found is None:
            if generators:  # asked for explicitly: an error, not a note
                from noisevision.generators import get

                get(choices[0])
            notes.append(f"skipped {' / '.join(choices)}: {_why_unavailable(choices[-1])}")
            continue
        name, spec = found
        if not any(s.name == name for s in sources):
            sources.append(Source(name, "generator", spec.family, spec.label or name, name))
    for name, folder in (extra_data or {}).items():
        if not Path(folder).is_dir():
            raise NoisevisionError(f"--extra-data {name}={folder}: no such folder")
        sources.append(Source(name, "folder", "image folder", name, str(Path(folder).resolve())))
    for b in preset.baselines:
        sources.append(Source(b, "baseline", "baseline", BASELINES.get(b).label))
    if feature_vis_encoder and fv_source not in sources:
        notes.append(f"--feature-vis-encoder unused: {FEATURE_VIS_DEAD_LEAVES} is not among the generators")
    return sources, notes


def feature_vis_source(encoder: str | Path | None = None) -> Source:
    """The feature_vis-dead_leaves row. Its data, `feature_vis-<encoder.pt>`, is known now when an
    encoder file is given (checked here: a ResNet-50 encoder file, in one line); otherwise it is ""
    until the dead-leaves ResNet-50 exists (see dead_leaves_encoder)."""
    from noisevision.generators import get

    data = ""
    if encoder:
        path = Path(encoder).resolve()
        if not path.is_file():
            raise NoisevisionError(f"--feature-vis-encoder {encoder}: no such file")
        data = f"feature_vis-{path}"
        get(data)  # the feature_vis resolver refuses anything but a ResNet-50 encoder file
    return Source(FEATURE_VIS_DEAD_LEAVES, "generator", "feature visualization",
                  FEATURE_VIS_DEAD_LEAVES_LABEL, data)  # fmt: skip


def _generator_spec(name: str) -> Any:
    """The registry row of `name`, also for parametric names (e.g. mix6:a+b); None if unknown."""
    from noisevision import generators

    if name in generators.names():
        return generators.spec(name)
    try:
        return generators.get(name).spec
    except NoisevisionError:
        return None


def _why_unavailable(name: str) -> str:
    from noisevision.generators import get

    try:
        get(name)
    except UnknownNameError:
        return "not registered in this installation"
    except NoisevisionError as exc:  # e.g. a parametric name whose argument is missing
        return str(exc)
    return "unavailable"


def _shares_feature_vis_recipe(preset: ReproPreset) -> bool:
    """True where the preset trains every source with the feature-vis recipe (paper-large): then the
    dead_leaves-mixed source's own run is the ResNet-50 that feature_vis-dead_leaves visualises."""
    return (preset.train_preset, preset.train_overrides) == (
        preset.feature_vis_train_preset, preset.feature_vis_train_overrides)


def dead_leaves_encoder_path(preset: ReproPreset, out: Path) -> Path:
    """Where the ResNet-50 trained on dead_leaves-mixed for feature_vis-dead_leaves is (or will be)."""
    from noisevision.train import ENCODER, TrainConfig

    if _shares_feature_vis_recipe(preset):
        return run_folder(out, DEAD_LEAVES_SHAPES) / ENCODER
    arch = TrainConfig.from_preset(preset.feature_vis_train_preset, **preset.feature_vis_train_overrides).arch
    return out / "prerequisites" / f"{DEAD_LEAVES_SHAPES}-{_slug(arch)}" / ENCODER


def plan_feature_vis(sources: list[Source], preset: ReproPreset,
                     out: Path) -> tuple[list[Source], str | None]:
    """Keep feature_vis-dead_leaves where its encoder is given, exists, or can be trained here
    (dead_leaves-mixed is one of this reproduction's sources); a note says which encoder it
    visualises, or why it is skipped."""
    fv = next((s for s in sources if s.name == FEATURE_VIS_DEAD_LEAVES), None)
    if fv is None:
        return sources, None
    if fv.data:
        return sources, f"{fv.name} visualises {fv.data.removeprefix('feature_vis-')} (--feature-vis-encoder)"
    if preset.feature_vis_train_preset is None:
        return [s for s in sources if s is not fv], (
            f"skipped {fv.name}: preset '{preset.name}' trains no ResNet-50 on {DEAD_LEAVES_SHAPES} "
            "(pass --feature-vis-encoder PATH to a ResNet-50 encoder.pt)"
        )
    path = dead_leaves_encoder_path(preset, out)
    if _shares_feature_vis_recipe(preset):
        how = f"the ResNet-50 of the {DEAD_LEAVES_SHAPES} run"
    else:
        how = (f"a ResNet-50 trained first on {DEAD_LEAVES_SHAPES} with the "
               f"'{preset.feature_vis_train_preset}' recipe in {path.parent}")  # fmt: skip
    if any(s.name == DEAD_LEAVES_SHAPES for s in sources) or path.is_file():
        return sources, f"{fv.name} visualises {how}"
    return [s for s in sources if s is not fv], (
        f"skipped {fv.name}: it visualises {how}, but {DEAD_LEAVES_SHAPES} is not among the generators "
        f"(add it, or pass --feature-vis-encoder PATH to a ResNet-50 encoder.pt)"
    )


def dead_leaves_encoder(preset: ReproPreset, out: Path, device: str, log: Log,
                        overrides: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The ResNet-50 that feature_vis-dead_leaves visualises (SPEC §5), trained or resumed if need be,
    and what training it cost.

    paper-large: the dead_leaves-mixed source's own run (its cost is that row's: "shared").
    Otherwise a prerequisite run with the preset's feature-vis recipe, its cost kept beside it; of
    the caller's training options only the runtime ones (workers, threads, ...) apply to it,
    since the others are meant for the preset's own recipe.
    """
    from noisevision.train import TrainConfig

    tag = f"[{FEATURE_VIS_DEAD_LEAVES}]"
    if _shares_feature_vis_recipe(preset):
        spec = _generator_spec(DEAD_LEAVES_SHAPES)
        dead_leaves = Source(DEAD_LEAVES_SHAPES, "generator", spec.family, spec.label, DEAD_LEAVES_SHAPES)
        log(f"{tag} visualising the encoder of the {DEAD_LEAVES_SHAPES} run")
        path, stages = pretrain(dead_leaves, preset, out, device, log, overrides)
        return path, {**stages["pretrain"], "source": DEAD_LEAVES_SHAPES, "shared": True}
    path = dead_leaves_encoder_path(preset, out)
    cost_file = path.parent / "prerequisite.json"
    if path.is_file():
        log(f"{tag} reusing the prerequisite encoder {path}")
        return path, read_cell(cost_file) or {"source": DEAD_LEAVES_SHAPES, "shared": False}
    runtime = {k: v for k, v in overrides.items() if k in TrainConfig.RUNTIME}
    cfg = TrainConfig.from_preset(preset.feature_vis_train_preset, **{
        **preset.feature_vis_train_overrides, **runtime,
        "data": DEAD_LEAVES_SHAPES, "out": str(path.parent), "device": device})  # fmt: skip
    log(f"{tag} prerequisite: training {cfg.arch} + {cfg.method} ({cfg.preset}: {cfg.num_images} images × "
        f"{cfg.epochs} epochs) on {DEAD_LEAVES_SHAPES} in {path.parent}")  # fmt: skip
    cost = {**timed_training(cfg), "source": DEAD_LEAVES_SHAPES, "shared": False}
    atomic_write_text(cost_file, json.dumps(cost, indent=1))
    log(f"{tag} prerequisite trained in {cost['seconds']:.0f} s: {path}")
    return path, cost


def timed_training(cfg: Any) -> dict[str, Any]:
    """Train (or resume) the run of `cfg` and say what it cost this time: seconds, images, recipe."""
    from noisevision.train import train

    t0 = time.perf_counter()
    train(cfg)
    seconds = time.perf_counter() - t0
    images = cfg.num_images * cfg.epochs
    return {"seconds": seconds, "images": images, "images_per_s": images / seconds,
            "preset": cfg.preset, "arch": cfg.arch, "epochs": cfg.epochs}  # fmt: skip


def _follow_moved_out(out: Path, file: Path, key: str, new: str, log: Log) -> None:
    """OUT was moved (or spelled another way) while a source was unfinished: `file` (a run's
    config, a rendered folder's manifest) names its data (a folder in OUT, feature_vis-<an encoder
    in OUT>) otherwise and would count as another configuration. If it names the same file, or a
    place that is gone with the same path inside OUT, point `key` at `new`."""
    import yaml

    record = yaml.safe_load(file.read_text()) if file.is_file() else None  # JSON is YAML too
    old = record.get(key) if isinstance(record, dict) else None
    if not isinstance(old, str) or old == new:
        return
    prefix = "feature_vis-" if new.startswith("feature_vis-") else ""
    try:
        inside = Path(new.removeprefix(prefix)).resolve().relative_to(out.resolve()).parts
    except ValueError:
        return  # data from elsewhere: nothing moved with OUT
    was = Path(old.removeprefix(prefix))
    same = was.resolve() == Path(new.removeprefix(prefix)).resolve()  # e.g. relative vs absolute
    moved = not was.exists() and was.parts[-len(inside):] == inside
    if old.startswith(prefix) and (same or moved):
        record[key] = new
        text = yaml.safe_dump(record, sort_keys=False) if file.suffix == ".yaml" else None
        atomic_write_text(file, text or json.dumps(record, indent=2) + "\n")
        log(f"{out} was moved: {file} now names {new}" if moved else f"{file} now names {new}")


def parse_extra_data(items: list[str] | None) -> dict[str, str]:
    """["NAME=DIR", ...] -> {NAME: DIR}."""
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise NoisevisionError(f"bad --extra-data '{item}': write NAME=DIR")
        out[name] = folder
    return out


# ---------------------------------------------------------------------------------- cells
def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def run_folder(out: Path, source: str) -> Path:
    """The training run of `source` (noisevision.train's run folder)."""
    return out / "runs" / _slug(source)


def cell_path(out: Path, source: str, probe: str) -> Path:
    return out / "cells" / f"{_slug(source)}__{probe}.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Write so that readers see the old file or the whole new one, never a part."""
    atomic_write_bytes(path, text.encode())


def read_cell(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def generation_res(name: str, res: int | None) -> int | None:
    """The resolution to render `name` at: `res`, or the nearest one the generator can make
    (e.g. StyleGAN renders 128, 256 or 512 px only; training crops are resized anyway)."""
    spec = _generator_spec(name)
    if res is None or spec is None or not spec.resolutions or res in spec.resolutions:
        return res
    larger = [r for r in spec.resolutions if r >= res]
    return min(larger) if larger else max(spec.resolutions)


def measure_generation(name: str, res: int | None, seed: int, count: int = 64) -> dict[str, Any]:
    """Render `count` images once, as the training stream does (CPU): images/s of the generator."""
    from noisevision.data.stream import open_source

    source = open_source(name, res, seed)
    idx = torch.arange(count)
    t0 = time.perf_counter()
    source.render(idx[: min(8, count)])  # warm-up (lazy tables, first-call costs)
    t1 = time.perf_counter()
    source.render(idx)
    t2 = time.perf_counter()
    return {"res": source.res, "sample_images": count, "sample_seconds": t2 - t1,
            "images_per_s": count / max(t2 - t1, 1e-9), "warmup_seconds": t1 - t0}  # fmt: skip


def materialize(name: str, res: int | None, seed: int, num: int, root: Path, device: str,
                log: Log) -> dict[str, Any]:
    """Render images 0..num-1 of `name` once into an image folder (JPEG q95, as the paper's data).

    Used where generation, not training, is the bottleneck and every epoch reuses the same images:
    each image is rendered once instead of once per epoch. Resumable: only missing files are
    rendered. Under torchrun (RANK/WORLD_SIZE) each rank renders its share, as `noisevision generate
    --shard` does, on its own GPU, then waits for the other shares: training reads the whole folder.
    Returns this process's rendering cost, summed over the runs that rendered images.
    """
    from noisevision.data.folder import (
        DatasetSpec,
        parse_shard,
        shard_range,
        wait_until_complete,
        write_dataset,
    )
    from noisevision.device import default_workers, rank_device

    shard, shards = parse_shard(None)
    dev = rank_device(device)
    res = res if res is not None else _generator_spec(name).default_res
    spec = DatasetSpec(generator=name, params={}, seed=seed, res=res, num=num)
    share = shard_range(num, shard, shards)
    t0 = time.perf_counter()
    written = write_dataset(root, spec, share, dev, default_workers(dev, "generate"), batch_size=64)
    seconds = time.perf_counter() - t0
    where = f" (share {shard + 1}/{shards}: {share.start}..{share.stop - 1})" if shards > 1 else ""
    log(f"[{name}] generated {written} images at {res} px in {seconds:.1f} s{where}; "
        f"{len(share) - written} were there already")  # fmt: skip
    cost_file = root / ("generation.json" if shards == 1 else f"generation-{shard + 1}of{shards}.json")
    cost = read_cell(cost_file) or {"images": 0, "seconds": 0.0}
    if written:  # a rerun that found every image there keeps the cost of the runs that rendered them
        cost = {"images": cost["images"] + written, "seconds": cost["seconds"] + seconds}
        atomic_write_text(cost_file, json.dumps(cost))
    record = {"res": res, "num": num, **cost, "folder": str(root),
              "images_per_s": cost["images"] / cost["seconds"] if cost["images"] else None}  # fmt: skip
    if shards > 1:
        record["shard"] = f"{shard + 1}/{shards}"
        record["wait_seconds"] = wait_until_complete(root, range(num), spec.format, lambda n: log(
            f"[{name}] waiting for {n} images from the other ranks"))  # fmt: skip
    return record


def pretrain(source: Source, preset: ReproPreset, out: Path, device: str, log: Log,
             overrides: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Generate (or stream), then train, resume or reuse the encoder of `source`.

    Returns the encoder file and what each stage cost (OUT/runs/NAME/stages.json).
    """
    from noisevision.data.folder import MANIFEST
    from noisevision.train import CONFIG, ENCODER, TrainConfig

    run_dir = run_folder(out, source.name)
    stages_file = run_dir / "stages.json"
    if (run_dir / ENCODER).is_file() and stages_file.is_file():
        return run_dir / ENCODER, json.loads(stages_file.read_text())
    stages: dict[str, Any] = {}
    if source.name == FEATURE_VIS_DEAD_LEAVES and not source.data:
        encoder, stages["prerequisite"] = dead_leaves_encoder(preset, out, device, log, overrides)
        source = replace(source, data=f"feature_vis-{encoder.resolve()}")
    values = {**preset.train_overrides, **overrides}
    cfg = TrainConfig.from_preset(preset.train_preset, **values)
    if preset.distinct_images and cfg.num_images > preset.distinct_images and "epochs" not in values:
        seen = cfg.num_images * cfg.epochs
        values["num_images"] = preset.distinct_images
        values["epochs"] = max(1, round(seen / preset.distinct_images))
        cfg = TrainConfig.from_preset(preset.train_preset, **values)
    data, res = source.data, cfg.res
    if source.kind == "generator":
        res = generation_res(source.data, cfg.res)
        if renders_once(materialize_selectors(preset.materialize), source):
            folder = out / "data" / _slug(source.name)
            _follow_moved_out(out, folder / MANIFEST, "generator", source.data, log)
            stages["generation"] = materialize(source.data, res, cfg.seed, cfg.num_images, folder,
                                               device, log)  # fmt: skip
            data = str(folder)
        else:
            log(f"[{source.name}] measuring generation speed")
            gen = measure_generation(source.data, res, cfg.seed)
            gen["images_rendered"] = cfg.num_images * cfg.epochs  # the stream renders every epoch
            gen["seconds"] = gen["images_rendered"] / gen["images_per_s"]
            gen["estimated"] = True  # rendering overlaps training in the stream's worker
            stages["generation"] = gen
        stages["generation"]["data"] = source.data  # what was rendered, e.g. feature_vis-<encoder.pt>
    cfg = TrainConfig.from_preset(preset.train_preset, **{**values, "res": res},
                                  data=data, out=str(run_dir), device=device)  # fmt: skip
    log(f"[{source.name}] pre-training ({cfg.preset}: {cfg.arch}, {cfg.num_images} images × "
        f"{cfg.epochs} epochs)")  # fmt: skip
    _follow_moved_out(out, run_dir / CONFIG, "data", cfg.data, log)
    stages["pretrain"] = timed_training(cfg)
    atomic_write_text(stages_file, json.dumps(stages, indent=1))
    return run_dir / ENCODER, stages


def baseline_model(source: Source, preset: ReproPreset, overrides: dict[str, Any]) -> torch.nn.Module:
    """The baseline probe model, matching the architecture and input size the preset trains."""
    from noisevision.train import TrainConfig

    cfg = TrainConfig.from_preset(preset.train_preset, **{**preset.train_overrides, **overrides})
    arch_kwargs = dict(cfg.arch_kwargs)
    if cfg.input_size is not None:
        arch_kwargs["input_size"] = cfg.input_size
    input_size = cfg.input_size or build_baseline("cnn-random", arch=cfg.arch,
                                                  arch_kwargs=arch_kwargs).input_size  # fmt: skip
    return build_baseline(source.name, input_size, cfg.arch, arch_kwargs, seed=cfg.seed)


def run_source(source: Source, preset: ReproPreset, out: Path, dataset_name: str, dataset: Any,
               settings: ProbeSettings, device: str, log: Log,
               train_overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """Pre-train if needed, probe, and write the missing cells of `source`."""
    from noisevision.device import resolve_device
    from noisevision.models import load_encoder

    todo = [p for p in settings.probes if read_cell(cell_path(out, source.name, p)) is None]
    if not todo:
        log(f"[{source.name}] done already: skipped")
        return []
    dev = resolve_device(device)
    stages: dict[str, Any] = {}
    encoder_path = ""
    if source.kind == "baseline":
        model = baseline_model(source, preset, train_overrides)
        meta: dict[str, Any] = {"baseline": source.name}
    else:
        path, stages = pretrain(source, preset, out, device, log, train_overrides)
        model, meta = load_encoder(path, map_location=dev)
        encoder_path = str(path)
    log(f"[{source.name}] probing on {dataset_name}: {', '.join(todo)}")
    result = evaluate(model, dataset, replace(settings, probes=tuple(todo)), dev, meta, log=log)
    log(f"[{source.name}] {result.summary()}")
    n_feat = result.n_train + result.n_test
    cells = []
    paper = PAPER_NUMBERS.get(preset.paper_scale, {})
    for probe, r in result.probes.items():
        probe_stage = {"seconds": r.get("seconds", 0.0) + result.feature_seconds,
                       "feature_seconds": result.feature_seconds,
                       "feature_images_per_s": n_feat / max(result.feature_seconds, 1e-9)}  # fmt: skip
        cell = {
            "preset": preset.name, "source": source.name, "kind": source.kind,
            "family": source.family, "label": source.label, "probe": probe,
            "dataset": dataset_name, "top1": r["top1"], "std": r.get("std"),
            "paper_top1": paper.get(source.name), "paper_scale": preset.paper_scale,
            "layer": result.layer, "feature_dim": result.feature_dim, "n_train": result.n_train,
            "n_test": result.n_test, "arch": getattr(model, "arch", type(model).__name__),
            "device": str(dev), "stages": {**stages, "probe": probe_stage}, "details": r,
            "encoder": encoder_path, "version": noisevision.__version__,
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        }  # fmt: skip
        atomic_write_text(cell_path(out, source.name, probe), json.dumps(cell, indent=1))
        cells.append(cell)
    return cells


def reproduce(preset_name: str, out: str | Path, generators: list[str] | None = None,
              eval_dataset: str | None = None, extra_data: dict[str, str] | None = None,
              device: str = "auto", download: bool = False, probe_overrides: dict[str, Any] | None = None,
              train_overrides: dict[str, Any] | None = None, feature_vis_encoder: str | Path | None = None,
              materialize: str | None = None, log: Log = print) -> Path:
    """Run (or resume) every cell of a preset and write the report; returns the report folder.

    `feature_vis_encoder`: a ResNet-50 encoder file for feature_vis-dead_leaves to visualise
    instead of the one trained on dead_leaves-mixed here. `materialize`: which generators to
    render once instead of streaming (MATERIALIZE_HELP), instead of the preset's choice.
    """
    from noisevision.data.eval_datasets import load_eval_dataset

    preset = get_repro_preset(preset_name)
    if materialize is not None:
        preset = replace(preset, materialize=materialize)
    selectors = materialize_selectors(preset.materialize)
    out = Path(out).resolve()  # runs record their data by absolute path: resumable from any directory
    settings = preset.probe_settings(**(probe_overrides or {}))
    settings.check()
    dataset_name = eval_dataset or preset.eval_dataset
    if dataset_name in ("imagenet100", "imagefolder"):
        raise NoisevisionError(
            f"preset '{preset.name}' probes on {dataset_name}: pass --eval-dataset "
            f"{dataset_name}:/path/to/folder (train/ and val/ class folders), or another set such as "
            "fashion-mnist"
        )
    sources, notes = resolve_sources(preset, generators, extra_data, feature_vis_encoder)
    sources, fv_note = plan_feature_vis(sources, preset, out)
    if fv_note:
        notes.append(fv_note)
        log(fv_note)
    once = [s.name for s in sources if renders_once(selectors, s)]
    if once:
        log(f"rendered once to {out / 'data'} (the others stream): {', '.join(once)}")
    dataset = load_eval_dataset(dataset_name, download=download)
    out.mkdir(parents=True, exist_ok=True)
    _write_plan(out, preset, dataset_name, sources, notes, settings)
    t0 = time.perf_counter()
    for source in sources:
        try:
            run_source(source, preset, out, dataset_name, dataset, settings, device, log,
                       dict(train_overrides or {}))  # fmt: skip
        except NoisevisionError as exc:  # one broken source must not stop a day-long run
            log(f"[{source.name}] FAILED: {exc}")
            notes.append(f"{source.name} failed: {exc}")
            _write_plan(out, preset, dataset_name, sources, notes, settings)
    paths = build_report(out, log=log)
    log(f"reproduction '{preset.name}' finished in {time.perf_counter() - t0:.0f} s: "
        f"report in {paths['markdown']}")  # fmt: skip
    return out


def _write_plan(out: Path, preset: ReproPreset, dataset: str, sources: list[Source],
                notes: list[str], settings: ProbeSettings) -> None:
    """OUT/plan.json: which cells this reproduction consists of (read back by the report)."""
    plan = {
        "preset": preset.name, "description": preset.description, "dataset": dataset,
        "train_preset": preset.train_preset, "train_overrides": preset.train_overrides,
        "probes": list(settings.probes), "sources": [s.name for s in sources], "notes": notes,
        "paper_scale": preset.paper_scale, "materialize": preset.materialize,
    }  # fmt: skip
    atomic_write_text(out / "plan.json", json.dumps(plan, indent=1))


# ---------------------------------------------------------------------------------- report
CSV_FIELDS = (
    "source", "label", "family", "kind", "probe", "dataset", "top1", "std", "paper_top1",
    "gen_images_per_s", "gen_seconds", "pretrain_seconds", "pretrain_images_per_s",
    "probe_seconds", "probe_images_per_s", "device", "arch", "layer", "n_train", "n_test",
)  # fmt: skip


def _flat_row(cell: dict[str, Any]) -> dict[str, Any]:
    st = cell.get("stages", {})
    gen, pre, probe = st.get("generation", {}), st.get("pretrain", {}), st.get("probe", {})
    row = {k: cell.get(k) for k in CSV_FIELDS}
    row.update(
        gen_images_per_s=gen.get("images_per_s"), gen_seconds=gen.get("seconds"),
        pretrain_seconds=pre.get("seconds"), pretrain_images_per_s=pre.get("images_per_s"),
        probe_seconds=probe.get("seconds"), probe_images_per_s=probe.get("feature_images_per_s"),
    )  # fmt: skip
    return row


def load_cells(out: Path) -> list[dict[str, Any]]:
    """Every readable cell file of OUT, in the plan's source order when there is a plan."""
    cells = [c for p in sorted((out / "cells").glob("*.json")) if (c := read_cell(p)) is not None]
    plan = read_cell(out / "plan.json") or {}
    order = {name: i for i, name in enumerate(plan.get("sources", []))}
    return sorted(cells, key=lambda c: (order.get(c["source"], len(order)), c["probe"]))


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None or v == "":
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def verdict(cells: list[dict[str, Any]], probe: str) -> str | None:
    """One honest sentence: does noise pre-training beat CNN-Random on this probe, by how much."""
    rows = [c for c in cells if c["probe"] == probe]
    rand = next((c for c in rows if c["source"] == "cnn-random"), None)
    trained = [c for c in rows if c["kind"] == "generator"]
    if rand is None or not trained:
        return None
    best = max(trained, key=lambda c: c["top1"])
    wins = sum(c["top1"] > rand["top1"] for c in trained)
    sign = "beats" if best["top1"] > rand["top1"] else "does NOT beat"
    text = (f"{probe}: the best noise encoder ({best['label']}, {best['top1']:.1f}) {sign} "
            f"CNN-Random ({rand['top1']:.1f}) by {best['top1'] - rand['top1']:+.1f} points; "
            f"{wins} of {len(trained)} generators score above CNN-Random.")  # fmt: skip
    pixels = next((c for c in rows if c["source"] == "raw-pixels"), None)
    if pixels is not None and pixels["top1"] > best["top1"]:
        text += f" Raw pixels ({pixels['top1']:.1f}) score above every encoder on this set."
    return text


def render_markdown(cells: list[dict[str, Any]], plan: dict[str, Any], charts: dict[str, str]) -> str:
    """report.md: one table per probe (sorted by accuracy), verdicts, costs, notes."""
    probes = list(dict.fromkeys([*plan.get("probes", []), *(c["probe"] for c in cells)]))
    dataset = plan.get("dataset") or (cells[0]["dataset"] if cells else "?")
    scale = plan.get("paper_scale", "small")
    lines = [
        f"# noisevision reproduction: preset `{plan.get('preset', '?')}`", "",
        plan.get("description", ""), "",
        f"Evaluation set: **{dataset}**. Paper numbers (SPEC §10, {scale} scale) are ImageNet-100 "
        "linear-probe accuracies of the paper's own encoders: **a different dataset and budget**, shown "
        "only as a reference for the ranking, not as a target for the values.", "",
    ]  # fmt: skip
    for probe in probes:
        rows = sorted((c for c in cells if c["probe"] == probe), key=lambda c: -c["top1"])
        if not rows:
            continue
        lines += [f"## Probe `{probe}`", ""]
        if probe in charts:
            lines += [f"![{probe}]({charts[probe]})", ""]
        lines += ["| data | family | top-1 (%) | paper, ImageNet-100 | pre-train s | probe s |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for c in rows:
            acc = _fmt(c["top1"]) + (f" ± {c['std']:.1f}" if c.get("std") else "")
            st = c.get("stages", {})
            lines.append(
                f"| {c['label']} | {c['family']} | {acc} | {_fmt(c.get('paper_top1'))} | "
                f"{_fmt(st.get('pretrain', {}).get('seconds'), 0)} | "
                f"{_fmt(st.get('probe', {}).get('seconds'), 0)} |"
            )
        v = verdict(cells, probe)
        lines += ["", f"**{v}**" if v else "", ""]
    gens = {c["source"]: c for c in cells if c.get("stages", {}).get("pretrain")}
    if gens:
        lines += ["## Costs per data source", "",
                  "| data | device | generation img/s | generation s | pre-train s | "
                  "pre-train img/s | feature img/s |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for c in gens.values():
            st = c["stages"]
            g, p, q = st.get("generation", {}), st["pretrain"], st.get("probe", {})
            lines.append(
                f"| {c['label']} | {c['device']} | {_fmt(g.get('images_per_s'), 0)} | "
                f"{_fmt(g.get('seconds'), 0)}{' (est.)' if g.get('estimated') else ''} | "
                f"{_fmt(p.get('seconds'), 0)} | "
                f"{_fmt(p.get('images_per_s'), 0)} | {_fmt(q.get('feature_images_per_s'), 0)} |"
            )
            pre = st.get("prerequisite", {})
            if pre.get("seconds") is not None and not pre.get("shared"):
                lines.append(
                    f"| ↳ its {pre.get('arch', 'encoder')} on {pre.get('source')} (trained first) | "
                    f"{c['device']} | | | {_fmt(pre['seconds'], 0)} | {_fmt(pre.get('images_per_s'), 0)} | |"
                )
        lines += ["", "Generation: measured when the images are rendered once to a folder; '(est.)' "
                  "when streamed = images rendered during pre-training ÷ the generator's measured "
                  "rate (the stream renders in a worker, overlapping the training steps).", ""]
    missing = [s for s in plan.get("sources", []) for p in probes
               if not any(c["source"] == s and c["probe"] == p for c in cells)]  # fmt: skip
    notes = list(plan.get("notes", []))
    if missing:
        notes.append(f"{len(missing)} cell(s) not done yet: run the same command again to finish")
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def render_chart(cells: list[dict[str, Any]], probe: str, path: Path, title: str = "") -> Path:
    """Bar chart like the paper's ImageNet-100 figure: sorted by accuracy, coloured by family,
    the paper's number as a hatched bar beside ours where it exists."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = sorted((c for c in cells if c["probe"] == probe), key=lambda c: c["top1"])
    if not rows:
        raise NoisevisionError(f"no results for probe '{probe}' to chart")
    n = len(rows)
    fig, ax = plt.subplots(figsize=(10.5, 1.4 + 0.42 * n))
    y = list(range(n))
    has_paper = any(c.get("paper_top1") is not None for c in rows)
    h = 0.38 if has_paper else 0.7
    colors = [FAMILY_COLORS.get(c["family"], "#17becf") for c in rows]
    ours = ax.barh([i + (h / 2 if has_paper else 0) for i in y], [c["top1"] for c in rows], h,
                   color=colors, edgecolor="black", linewidth=0.5)  # fmt: skip
    for bar, c in zip(ours, rows, strict=True):
        err = f" ± {c['std']:.1f}" if c.get("std") else ""
        ax.text(bar.get_width() + 0.5, bar.get_y() + bar.get_height() / 2, f"{c['top1']:.1f}{err}",
                va="center", fontsize=8)  # fmt: skip
    if has_paper:
        for i, c in enumerate(rows):
            if c.get("paper_top1") is None:
                continue
            b = ax.barh(i - h / 2, c["paper_top1"], h, color="white", edgecolor=colors[i],
                        hatch="///", linewidth=0.8)  # fmt: skip
            ax.text(b[0].get_width() + 0.5, i - h / 2, f"{c['paper_top1']:.1f} (paper)", va="center",
                    fontsize=7, color="#555555")  # fmt: skip
    ax.set_yticks(y, [c["label"] for c in rows], fontsize=9)
    ax.set_xlabel(f"top-1 accuracy (%), probe '{probe}' on {rows[0]['dataset']}")
    top = max([c["top1"] for c in rows] + [c.get("paper_top1") or 0 for c in rows])
    ax.set_xlim(0, min(100, top * 1.18 + 2))
    ax.set_title(title or f"Linear evaluation: {rows[0]['dataset']}", fontsize=11)
    fams = list(dict.fromkeys(c["family"] for c in rows))
    handles = [Patch(color=FAMILY_COLORS.get(f, "#17becf"), label=f) for f in fams]
    if has_paper:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///",
                             label="paper (ImageNet-100, other data)"))  # fmt: skip
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def build_report(out: str | Path, log: Log | None = None) -> dict[str, Path]:
    """results.csv, results.json, a chart per probe (chart.png = the first) and report.md."""
    out = Path(out)
    cells = load_cells(out)
    if not cells:
        raise NoisevisionError(f"no results in {out / 'cells'}: run `noisevision reproduce` first")
    plan = read_cell(out / "plan.json") or {}
    probes = list(dict.fromkeys([*plan.get("probes", []), *(c["probe"] for c in cells)]))
    probes = [p for p in probes if any(c["probe"] == p for c in cells)]
    charts: dict[str, str] = {}
    for i, probe in enumerate(probes):
        name = "chart.png" if i == 0 else f"chart-{probe}.png"
        title = f"noisevision '{plan.get('preset', '?')}': {cells[0]['dataset']} ({probe} probe)"
        render_chart(cells, probe, out / name, title)
        charts[probe] = name
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for c in cells:
        writer.writerow(_flat_row(c))
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "results.json", json.dumps({"plan": plan, "cells": cells}, indent=1))
    atomic_write_text(out / "report.md", render_markdown(cells, plan, charts))
    if log:
        for probe in probes:
            v = verdict(cells, probe)
            if v:
                log(v)
    return {"markdown": out / "report.md", "csv": out / "results.csv",
            "json": out / "results.json", "chart": out / "chart.png"}  # fmt: skip
