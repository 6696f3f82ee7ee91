"""Running a reproduction: for each source, render (or stream), pre-train, probe, and write its
cells; every stage resumes where an interrupted run stopped.

Training streams a generator (its images regenerated every epoch) or, where the preset's
`materialize` policy says so, reads its images rendered once into OUT/data/NAME/. A source that
needs an encoder trained first gets it here (`prerequisite_encoder`). A cell whose file exists
is skipped, and training runs and renderings resume.

With several seeds every source is run once per repetition, seed by seed (all of seed 0 first),
each with its own images, augmentations, initial weights and probe draws (plan.repetition_seed);
seed 0 is the single run, with the same files.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

import noisevision
from noisevision.device import env_count, resolve_device
from noisevision.errors import NoisevisionError
from noisevision.evaluate import ProbeSettings, build_baseline, evaluate
from noisevision.io import atomic_write_text, check_output_folder, recorded_path, recorded_place
from noisevision.locks import folder_lock
from noisevision.logs import get_logger
from noisevision.reproduce.cells import cell_path, cell_problem, read_cell
from noisevision.reproduce.plan import (
    Needs,
    ReproPreset,
    Source,
    check_seeds,
    data_folder,
    generation_res,
    generator_spec,
    get_repro_preset,
    materialize_selectors,
    plan_prerequisites,
    prerequisite_path,
    renders_once,
    repetition_seed,
    resolve_sources,
    run_folder,
    runs_probe,
)
from noisevision.reproduce.report import build_report
from noisevision.tracking import DEFAULT as DEFAULT_LOGGER
from noisevision.tracking import TrackedPlace, Trackers, open_trackers, parse_loggers

log = get_logger(__name__)


# ---------------------------------------------------------------------------------- stages
def timed_training(cfg: Any) -> dict[str, Any]:
    """Train (or resume) the run of `cfg` and say what it cost this time: seconds, images, recipe."""
    from noisevision.train import train

    t0 = time.perf_counter()
    train(cfg)
    seconds = time.perf_counter() - t0
    images = cfg.num_images * cfg.epochs
    return {
        "seconds": seconds,
        "images": images,
        "images_per_s": images / seconds,
        "preset": cfg.preset,
        "arch": cfg.arch,
        "epochs": cfg.epochs,
    }


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
    return {
        "res": source.res,
        "sample_images": count,
        "sample_seconds": t2 - t1,
        "images_per_s": count / max(t2 - t1, 1e-9),
        "warmup_seconds": t1 - t0,
    }


def materialize(name: str, res: int | None, seed: int, num: int, root: Path, device: str) -> dict[str, Any]:
    """Render images 0..num-1 of `name` once into an image folder (JPEG q95, as the paper's data).

    Used where generation, not training, is the bottleneck and every epoch reuses the same images:
    each image is rendered once instead of once per epoch. Resumable: only missing files are
    rendered. Under torchrun (RANK/WORLD_SIZE) each rank renders its share, as `noisevision generate
    --shard` does, on its own GPU, then waits for the other shares: training reads the whole folder.
    Returns this process's rendering cost, summed over the runs that rendered images.
    """
    from noisevision import device as devices
    from noisevision.data.folder import (
        DatasetSpec,
        parse_shard,
        shard_range,
        wait_until_complete,
        write_dataset,
    )

    shard, shards = parse_shard(None)
    dev = devices.rank_device(device)
    res = res if res is not None else generator_spec(name).default_res
    spec = DatasetSpec(generator=name, params={}, seed=seed, res=res, num=num)
    share = shard_range(num, shard, shards)
    t0 = time.perf_counter()
    written = write_dataset(root, spec, share, dev, devices.default_workers(dev, "generate"), batch_size=64)
    seconds = time.perf_counter() - t0
    where = f" (share {shard + 1}/{shards}: {share.start}..{share.stop - 1})" if shards > 1 else ""
    log.info(
        f"[{name}] generated {written} images at {res} px in {seconds:.1f} s{where}; "
        f"{len(share) - written} were there already"
    )
    cost_file = root / ("generation.json" if shards == 1 else f"generation-{shard + 1}of{shards}.json")
    cost = read_cell(cost_file) or {"images": 0, "seconds": 0.0}
    if written:  # a rerun that found every image there keeps the cost of the runs that rendered them
        cost = {"images": cost["images"] + written, "seconds": cost["seconds"] + seconds}
        atomic_write_text(cost_file, json.dumps(cost))
    record = {
        "res": res,
        "num": num,
        **cost,
        "images_per_s": cost["images"] / cost["seconds"] if cost["images"] else None,
    }
    if shards > 1:
        record["shard"] = f"{shard + 1}/{shards}"
        record["wait_seconds"] = wait_until_complete(
            root,
            range(num),
            spec.format,
            lambda n: log.info(f"[{name}] waiting for {n} images from the other ranks"),
            layout=spec.layout(),
        )
    return record


def _tag(name: str, seed: int) -> str:
    """How the log names a source: [name], or [name seed S] in repetition S."""
    return f"[{name} seed {seed}]" if seed else f"[{name}]"


def prerequisite_encoder(
    source: Source, preset: ReproPreset, out: Path, device: str, overrides: dict[str, Any], seed: int = 0
) -> tuple[Path, dict[str, Any]]:
    """The encoder `source` needs in repetition `seed`, trained or resumed if need be, and what
    training it cost.

    When the preset shares the encoder's recipe (paper-large): the run of the source it trains on
    (its cost is that row's: "shared"). Otherwise a prerequisite run with the preset's encoder
    recipe, its cost kept beside it; of the caller's training options only the runtime ones
    (workers, threads, ...) apply to it, since the others are meant for the preset's own recipe.
    """
    from noisevision.train import TrainConfig

    needs: Needs = source.needs
    tag = _tag(source.name, seed)
    if preset.shares_encoder_recipe:
        spec = generator_spec(needs.trained_on)
        trained_on = Source(needs.trained_on, "generator", spec.family, spec.label, needs.trained_on)
        log.info(f"{tag} visualising the encoder of the {needs.trained_on} run")
        path, stages = pretrain(trained_on, preset, out, device, overrides, seed)
        return path, {**stages["pretrain"], "source": needs.trained_on, "shared": True}
    path = prerequisite_path(needs, preset, out, seed)
    cost_file = path.parent / "prerequisite.json"
    if path.is_file():
        log.info(f"{tag} reusing the prerequisite encoder {path}")
        return path, read_cell(cost_file) or {"source": needs.trained_on, "shared": False}
    runtime = {k: v for k, v in overrides.items() if k in TrainConfig.RUNTIME}
    values = {**preset.feature_vis_train_overrides, **runtime}
    base = TrainConfig.from_preset(preset.feature_vis_train_preset, **values).seed
    cfg = TrainConfig.from_preset(
        preset.feature_vis_train_preset,
        **{
            **values,
            "seed": repetition_seed(base, seed),
            "data": needs.trained_on,
            "out": str(path.parent),
            "device": device,
        },
    )
    log.info(
        f"{tag} prerequisite: training {cfg.arch} + {cfg.method} ({cfg.preset}: {cfg.num_images} "
        "images × "
        f"{cfg.epochs} epochs) on {needs.trained_on} in {path.parent}"
    )
    cost = {**timed_training(cfg), "source": needs.trained_on, "shared": False}
    atomic_write_text(cost_file, json.dumps(cost, indent=1))
    log.info(f"{tag} prerequisite trained in {cost['seconds']:.0f} s: {path}")
    return path, cost


def _follow_moved_out(out: Path, file: Path, key: str, new: str, path: str) -> None:
    """OUT was moved (or spelled another way) while a source was unfinished: `file` (a run's
    config, a rendered folder's manifest) names its data otherwise and would count as another
    configuration. `new` is how the data is named now, by way of `path` (a folder in OUT, or the
    encoder file in OUT that feature_vis-<encoder> renders from; "": no path to follow), either
    holding `path` itself or recording it from `file`'s folder (io.recorded_path). If `file` names
    the same place, or a place that is gone with the same path inside OUT, point `key` at `new`."""
    import yaml

    if not path:
        return
    record = yaml.safe_load(file.read_text()) if file.is_file() else None  # JSON is YAML too
    old = record.get(key) if isinstance(record, dict) else None
    if not isinstance(old, str) or old == new:
        return
    before, held, after = new.partition(path)  # how the data's name holds its path
    place = Path(path) if held else recorded_place(new, file.parent)
    before, after = (before, after) if held else ("", "")
    try:
        inside = place.resolve().relative_to(out.resolve()).parts
    except ValueError:
        return  # data from elsewhere: nothing moved with OUT
    if not (old.startswith(before) and old.endswith(after)) or len(old) <= len(before) + len(after):
        return
    was = Path(old[len(before) : len(old) - len(after)])
    same = was.resolve() == place.resolve()  # e.g. relative vs absolute
    moved = not was.exists() and was.parts[-len(inside) :] == inside
    if same or moved:
        record[key] = new
        text = yaml.safe_dump(record, sort_keys=False) if file.suffix == ".yaml" else None
        atomic_write_text(file, text or json.dumps(record, indent=2) + "\n")
        log.info(f"{out} was moved: {file} now names {new}" if moved else f"{file} now names {new}")


def train_values(
    preset: ReproPreset, overrides: dict[str, Any], seed: int = 0, recipe: str | None = None
) -> dict[str, Any]:
    """The training options of repetition `seed`: the preset's, the caller's, and the seed derived
    from theirs (plan.repetition_seed; seed 0 keeps it). `recipe`: the training preset (default:
    the reproduction's)."""
    from noisevision.train import TrainConfig

    values = {**preset.train_overrides, **overrides}
    base = TrainConfig.from_preset(recipe or preset.train_preset, **values).seed
    return {**values, "seed": repetition_seed(base, seed)}


def pretrain(
    source: Source, preset: ReproPreset, out: Path, device: str, overrides: dict[str, Any], seed: int = 0
) -> tuple[Path, dict[str, Any]]:
    """Generate (or stream), then train, resume or reuse the encoder of `source` in repetition
    `seed`.

    Returns the encoder file and what each stage cost (OUT/runs/NAME[__seedS]/stages.json).
    """
    from noisevision.data.folder import MANIFEST
    from noisevision.train import CONFIG, ENCODER, TrainConfig

    tag = _tag(source.name, seed)
    run_dir = run_folder(out, source.name, seed)
    stages_file = run_dir / "stages.json"
    if (run_dir / ENCODER).is_file() and stages_file.is_file():
        return run_dir / ENCODER, json.loads(stages_file.read_text())
    stages: dict[str, Any] = {}
    if source.needs is not None and not source.data:
        encoder, stages["prerequisite"] = prerequisite_encoder(source, preset, out, device, overrides, seed)
        source = source.with_encoder(encoder)
    recipe = preset.recipe(source.name)
    values = train_values(preset, overrides, seed, recipe)
    cfg = TrainConfig.from_preset(recipe, **values)
    if preset.distinct_images and cfg.num_images > preset.distinct_images and "epochs" not in values:
        seen = cfg.num_images * cfg.epochs
        values["num_images"] = preset.distinct_images
        values["epochs"] = max(1, round(seen / preset.distinct_images))
        cfg = TrainConfig.from_preset(recipe, **values)
    data, res = source.data, cfg.res
    named = source.data if source.kind == "folder" else source.encoder  # the path `data` names, if any
    if source.kind == "generator":
        res = generation_res(source.data, cfg.res)
        if renders_once(materialize_selectors(preset.materialize), source):
            folder = data_folder(out, source.name, seed)
            _follow_moved_out(out, folder / MANIFEST, "generator", source.data, source.encoder)
            stages["generation"] = materialize(source.data, res, cfg.seed, cfg.num_images, folder, device)
            stages["generation"]["folder"] = recorded_path(folder, out)
            # given relative (to the working directory), so that the run records the folder by its
            # path from the run folder, in OUT too (io.recorded_path): they move together
            data = named = os.path.relpath(folder)
        else:
            log.info(f"{tag} measuring generation speed")
            gen = measure_generation(source.data, res, cfg.seed)
            gen["images_rendered"] = cfg.num_images * cfg.epochs  # the stream renders every epoch
            gen["seconds"] = gen["images_rendered"] / gen["images_per_s"]
            gen["estimated"] = True  # rendering overlaps training in the stream's worker
            stages["generation"] = gen
        stages["generation"]["data"] = source.data  # what was rendered, e.g. feature_vis-<encoder.pt>
    cfg = TrainConfig.from_preset(
        recipe, **{**values, "res": res}, data=data, out=str(run_dir), device=device
    )
    log.info(
        f"{tag} pre-training ({cfg.preset}: {cfg.arch}, {cfg.num_images} images × "
        f"{cfg.epochs} epochs, seed {cfg.seed})"
    )
    _follow_moved_out(out, run_dir / CONFIG, "data", cfg.identity()["data"], named)
    stages["pretrain"] = timed_training(cfg)
    atomic_write_text(stages_file, json.dumps(stages, indent=1))
    return run_dir / ENCODER, stages


def baseline_model(
    source: Source, preset: ReproPreset, overrides: dict[str, Any], seed: int = 0
) -> torch.nn.Module:
    """The baseline probe model, matching the architecture and input size the preset trains (a
    random network's weights drawn from repetition `seed`'s training seed)."""
    from noisevision.train import TrainConfig

    cfg = TrainConfig.from_preset(preset.train_preset, **train_values(preset, overrides, seed))
    arch_kwargs = cfg.encoder_kwargs()
    input_size = (
        cfg.input_size or build_baseline("cnn-random", arch=cfg.arch, arch_kwargs=arch_kwargs).input_size
    )
    return build_baseline(source.name, input_size, cfg.arch, arch_kwargs, seed=cfg.seed)


# ---------------------------------------------------------------------------------- cells
def _done(path: Path) -> bool:
    """Whether the cell file `path` holds a finished cell (a damaged one is run again)."""
    cell = read_cell(path)
    return cell is not None and cell_problem(cell) is None


def run_source(
    source: Source,
    preset: ReproPreset,
    out: Path,
    dataset_name: str,
    dataset: Any,
    settings: ProbeSettings,
    device: str,
    train_overrides: dict[str, Any],
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Pre-train if needed, probe, and write the missing cells of `source` in repetition `seed`.

    The probes draw their subsets and initial heads from repetition_seed(settings.seed, seed). The
    low-shot probe's label draws are its own seeds 0..lowshot_seeds-1 in every repetition.
    """
    from noisevision.models import load_encoder

    tag = _tag(source.name, seed)
    todo = [
        p
        for p in settings.probes
        if runs_probe(source.name, p) and not _done(cell_path(out, source.name, p, seed))
    ]
    if not todo:
        log.info(f"{tag} done already: skipped")
        return []
    dev = resolve_device(device)
    stages: dict[str, Any] = {}
    encoder_path = ""
    if source.kind == "baseline":
        model = baseline_model(source, preset, train_overrides, seed)
        meta: dict[str, Any] = {"baseline": source.name}
    else:
        path, stages = pretrain(source, preset, out, device, train_overrides, seed)
        model, meta = load_encoder(path, map_location=dev)
        encoder_path = recorded_path(path, out)
    log.info(f"{tag} probing on {dataset_name}: {', '.join(todo)}")
    probe_seed = repetition_seed(settings.seed, seed)
    todo_settings = replace(settings, probes=tuple(todo), seed=probe_seed)
    result = evaluate(model, dataset, todo_settings, dev, meta)
    log.info(f"{tag} {result.summary()}")
    n_feat = result.n_train + result.n_test
    cells = []
    for probe, r in result.probes.items():
        probe_stage = {
            "seconds": r.get("seconds", 0.0) + result.feature_seconds,
            "feature_seconds": result.feature_seconds,
            "feature_images_per_s": n_feat / max(result.feature_seconds, 1e-9),
        }
        cell = {
            "preset": preset.name,
            "source": source.name,
            "kind": source.kind,
            "family": source.family,
            "label": source.label,
            "probe": probe,
            "dataset": dataset_name,
            "seed": seed,
            "probe_seed": probe_seed,
            "top1": r["top1"],
            "std": r.get("std"),
            "paper_top1": preset.reference.number(source.name, probe),
            "recipe": preset.recipe(source.name) if source.kind != "baseline" else None,
            "paper_scale": preset.paper_scale,
            "layer": result.layer,
            "feature_dim": result.feature_dim,
            "n_train": result.n_train,
            "n_test": result.n_test,
            "arch": getattr(model, "arch", type(model).__name__),
            "device": str(dev),
            "stages": {**stages, "probe": probe_stage},
            "details": r,
            "encoder": encoder_path,
            "version": noisevision.__version__,
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        atomic_write_text(cell_path(out, source.name, probe, seed), json.dumps(cell, indent=1))
        cells.append(cell)
    return cells


def _analyze(out: Path, preset: ReproPreset, sources: list[Source], dataset: str, device: str) -> None:
    """`noisevision analyze` of the generators (from their rendered folders where there are
    some) against the evaluation set, with the probe results so far, into OUT/analysis/; a
    failure is a line in the log, never the reproduction's."""
    from noisevision.analyze import AnalyzeSettings, analyze, plan
    from noisevision.data.folder import read_manifest

    settings = AnalyzeSettings(
        **{**preset.analysis, "real": dataset, "results": (str(out),), "device": device}
    )
    if settings.num_images == 0:
        return
    specs = []
    for s in sources:
        if s.kind != "generator" or s.needs is not None:
            continue
        folder = data_folder(out, s.name)
        specs.append(f"{s.name}={folder}" if read_manifest(folder) is not None else s.name)
    if len(specs) < 3:
        return  # a ranking of fewer than 3 sources says nothing
    log.info(f"analysing the data of {len(specs)} generators against {dataset} (OUT/analysis)")
    try:
        analyze(plan(specs, settings), out / "analysis")
    except NoisevisionError as exc:
        log.info(f"analysis skipped: {exc}")


def reproduce(
    preset: str | ReproPreset,
    out: str | Path,
    generators: list[str] | None = None,
    eval_dataset: str | None = None,
    extra_data: dict[str, str] | None = None,
    device: str = "auto",
    download: bool = False,
    probe_overrides: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    feature_vis_encoder: str | Path | None = None,
    materialize: str | None = None,
    seeds: int | None = None,
    logger: str = DEFAULT_LOGGER,
) -> Path:
    """Run (or resume) every cell of a preset (a name, or a ReproPreset of one's own) and write
    the report; returns the report folder.

    `seeds`: independent repetitions of every cell (default: the preset's `seeds`), run seed by
    seed; seed 0 is the single run, so that raising `seeds` on a finished folder adds repetitions.
    `feature_vis_encoder`: the encoder file feature_vis-dead_leaves visualises instead of the one
    trained on dead_leaves-mixed here. `materialize`: which generators to render once instead of
    streaming (MATERIALIZE_HELP), instead of the preset's choice. `logger`: the experiment trackers
    (tracking.TRACKERS) of every training run and of the reproduction itself (its plan, every
    cell's top-1 at step SEED, the report); MLflow's local store is OUT/mlflow.db for all of them.
    """
    from noisevision.data.eval_datasets import DATASETS, load_eval_dataset

    preset = get_repro_preset(preset)
    if materialize is not None:
        preset = replace(preset, materialize=materialize)
    seeds = check_seeds(preset.seeds if seeds is None else seeds)
    selectors = materialize_selectors(preset.materialize)
    parse_loggers(logger)  # an unknown or uninstalled tracker: one line, before any work
    out = Path(out).expanduser()  # files in OUT name each other by their paths from OUT (io.recorded_path)
    settings = preset.probe_settings(**(probe_overrides or {}))
    settings.check()
    check_output_folder(out)
    resolve_device(device)  # CUDA asked for but absent: one line now, not a failure per cell
    dataset_name = eval_dataset or preset.eval_dataset
    if dataset_name in DATASETS and DATASETS.get(dataset_name).needs_path:  # a kind without its folder
        raise NoisevisionError(
            f"preset '{preset.name}' probes on {dataset_name}: pass --eval-dataset "
            f"{dataset_name}:/path/to/folder (train/ and val/ class folders), or another set such as "
            "fashion-mnist"
        )
    sources, notes = resolve_sources(preset, generators, extra_data, feature_vis_encoder)
    sources, planned = plan_prerequisites(sources, preset, out)
    for note in planned:
        notes.append(note)
        log.info(note)
    once = [s.name for s in sources if renders_once(selectors, s)]
    if once:
        log.info(f"rendered once to {out / 'data'} (the others stream): {', '.join(once)}")
    _check_same_recipe(out, preset)
    dataset = load_eval_dataset(dataset_name, download=download)
    # a second reproduce into OUT stops here, in one line (under torchrun: rank 0 owns OUT)
    owner = env_count("RANK", 0) == 0
    train_overrides = {**(train_overrides or {}), "logger": logger, "tracking_dir": str(out)}
    with contextlib.ExitStack() as stack:
        stack.enter_context(folder_lock(out, "reproduction") if owner else contextlib.nullcontext(out))
        plan = _write_plan(out, preset, dataset_name, sources, notes, settings, seeds)
        trackers = open_trackers(logger, TrackedPlace(out, out.name, "reproduce")) if owner else Trackers()
        stack.callback(lambda: trackers.close("finished" if done else "failed"))
        done = False
        trackers.log_config(plan)
        t0 = time.perf_counter()
        failed: list[tuple[str, int]] = []
        for seed in range(seeds):
            if seeds > 1:
                log.info(f"--- seed {seed} of 0..{seeds - 1}")
            for source in sources:
                try:
                    cells = run_source(
                        source,
                        preset,
                        out,
                        dataset_name,
                        dataset,
                        settings,
                        device,
                        dict(train_overrides),
                        seed,
                    )
                    trackers.log_metrics(
                        {f"cells/{c['source']}/{c['probe']}/top1": c["top1"] for c in cells}, seed
                    )
                except NoisevisionError as exc:  # one broken source must not stop a day-long run
                    log.info(f"{_tag(source.name, seed)} FAILED: {exc}")
                    notes.append(f"{source.name}{f' (seed {seed})' if seed else ''} failed: {exc}")
                    failed.append((source.name, seed))
                    _write_plan(out, preset, dataset_name, sources, notes, settings, seeds)
        if owner:
            _analyze(out, preset, sources, dataset_name, device)
        paths = build_report(out)
        for path in paths.values():
            if path.is_file():
                trackers.log_artifact(path, "report")
        done = True
        log.info(
            f"reproduction '{preset.name}' finished in {time.perf_counter() - t0:.0f} s: "
            f"report in {paths['markdown']}"
        )
    if failed:
        missing = []
        for name, seed in failed:
            probes = [
                p for p in settings.probes if runs_probe(name, p) and not _done(cell_path(out, name, p, seed))
            ]
            missing.append(f"{name}{f' seed {seed}' if seed else ''} ({', '.join(probes)})")
        what = (
            f"{len(failed)} of {len(sources)} sources"
            if seeds == 1
            else f"{len(failed)} of {len(sources) * seeds} (source, seed) runs"
        )
        raise ReproductionFailed(
            f"{what} failed, their cells are missing: {'; '.join(missing)}; "
            "the report holds the others (the reasons are in the log above): run the same command to retry"
        )
    return out


class ReproductionFailed(NoisevisionError):
    """Some cells of a reproduction failed; the report was written with the others."""


def _check_same_recipe(out: Path, preset: ReproPreset) -> None:
    """Refuse, in one line, a folder whose cells were pre-trained with another recipe (e.g. a demo/
    of a version whose demo preset trained longer): new seeds would be averaged with old cells."""
    before = read_cell(out / "plan.json")
    if not before or not any((out / "cells").glob("*.json")):
        return
    now = json.loads(json.dumps([preset.train_preset, preset.train_overrides, preset.recipes]))
    was = [before.get("train_preset"), before.get("train_overrides"), before.get("recipes", {})]
    if was != now:
        raise NoisevisionError(
            f"{out} holds cells pre-trained with {was[0]} {was[1]}, but preset '{preset.name}' trains "
            f"with {now[0]} {now[1]}: give another --out, or remove {out}"
        )


def _write_plan(
    out: Path,
    preset: ReproPreset,
    dataset: str,
    sources: list[Source],
    notes: list[str],
    settings: ProbeSettings,
    seeds: int = 1,
) -> dict[str, Any]:
    """OUT/plan.json: which cells this reproduction consists of (read back by the report)."""
    plan = {
        "preset": preset.name,
        "description": preset.description,
        "dataset": dataset,
        "train_preset": preset.train_preset,
        "train_overrides": preset.train_overrides,
        "recipes": preset.recipes,
        "probes": list(settings.probes),
        "sources": [s.name for s in sources],
        "notes": notes,
        "paper_scale": preset.paper_scale,
        "materialize": preset.materialize,
        "seeds": seeds,
    }
    atomic_write_text(out / "plan.json", json.dumps(plan, indent=1))
    return plan
