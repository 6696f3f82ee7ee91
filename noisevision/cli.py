"""The `noisevision` command line: list, show, generate, train, eval, reproduce, bench."""

from __future__ import annotations

import inspect
import os
import re
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from noisevision.errors import NoisevisionError, StopRequested, at_least_one, worker_exception
from noisevision.io import check_output_file, check_output_folder
from noisevision.memory import keep_freed_memory
from noisevision.registry import LISTS, listing, registry

app = typer.Typer(
    help="noisevision: learn to see by looking at noise.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # help paragraphs reflowed, `code` shown as code
)
bench_app = typer.Typer(help="Throughput benchmarks (images/s).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
console = Console()
err_console = Console(stderr=True)
DEVICE_HELP = "cpu, cuda, cuda:N or auto (a GPU when there is one, else the CPU)."
SEED_HELP = "Seed: image i of a generator is the same for the same (name, seed, i)."


def _print_version(asked: bool) -> None:
    if asked:
        from noisevision import __version__

        console.print(f"noisevision {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """noisevision: learn to see by looking at noise."""


@app.command("list")
def list_cmd(
    what: str = typer.Argument("generators", help=f"What to list: {', '.join(LISTS)}, or all."),
    as_json: bool = typer.Option(False, "--json", help="JSON: every entry's name, columns and description."),
) -> None:
    """List the names that options accept: generators (default), architectures, methods, presets…

    On a terminal, a table whose names are never cut (descriptions wrap); through a pipe or into a
    file, tab-separated lines under a header line, so that `noisevision list | grep NAME` finds it.
    """
    import json

    listed = listing(LISTS if what == "all" else [what])  # an unknown list: one line, closest names
    if as_json:
        sys.stdout.write(json.dumps(listed, indent=1, ensure_ascii=False, default=str) + "\n")
    elif sys.stdout.isatty():
        for name, part in listed.items():
            _list_table(name, part)
    else:
        for name, part in listed.items():
            _list_tsv(name, part, titled=len(listed) > 1)


def _cell(value: object) -> str:
    """One table cell: dicts as k=v pairs, no tabs or newlines."""
    if isinstance(value, dict):
        value = " ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return " ".join(str(value).split())


def _list_table(name: str, part: dict) -> None:
    """A table whose names never wrap, its other columns wrapped between words to fit the terminal;
    a terminal too narrow for that gets one block per entry (the name on its own line)."""
    rows, cols = part["entries"], part["columns"]
    cells = [[_cell(r[c]) for c in cols] for r in rows]
    natural = [max(len(x) for x in [col, *column]) for col, column in zip(cols, zip(*cells), strict=True)]
    shortest = [max(len(w) for x in [col, *column] for w in x.split()) for col, column in
                zip(cols, zip(*cells), strict=True)]  # fmt: skip
    name_width = max(len(r["name"]) for r in rows)
    room = console.width - 3 * (len(cols) + 2) - 1 - name_width  # borders and padding
    widths = natural if room - sum(natural) >= 30 else shortest
    description = min(room - sum(widths), max(len(_cell(r["description"])) for r in rows))
    if description < 20:
        console.print(f"noisevision {name}", style="italic")
        for r, row in zip(rows, cells, strict=True):
            console.print(r["name"], style="bold", no_wrap=True, overflow="ignore", crop=False)
            rest = "; ".join(f"{c}: {x}" for c, x in zip(cols, row, strict=True))
            console.print(Padding(f"{rest + '. ' if rest else ''}{_cell(r['description'])}", (0, 0, 0, 2)),
                          highlight=False)  # fmt: skip
    else:
        table = Table(title=f"noisevision {name}", title_justify="left")
        table.add_column("name", no_wrap=True, width=name_width)
        for col, width in zip(cols, widths, strict=True):
            table.add_column(col, width=width, overflow="fold")
        table.add_column("description", width=description, overflow="fold")
        for r, row in zip(rows, cells, strict=True):
            table.add_row(r["name"], *row, _cell(r["description"]))
        console.print(table)
    for usage in part["usages"]:
        console.print(f"also: {usage}", highlight=False)


def _list_tsv(name: str, part: dict, titled: bool) -> None:
    cols = ["name", *part["columns"], "description"]
    lines = ([f"# {name}"] if titled else []) + ["\t".join(cols)]
    lines += ["\t".join(_cell(r[c]) for c in cols) for r in part["entries"]]
    lines += [f"# also: {_cell(u)}" for u in part["usages"]]
    sys.stdout.write("\n".join(lines) + "\n")


@app.command()
def show(
    names: list[str] = typer.Argument(..., help="Generator names (see `noisevision list`)."),
    out: Path = typer.Option(Path("grid.png"), "--out", "-o", help="PNG file to write."),
    num: int = typer.Option(8, "--num-images", "-n", help="Samples per generator."),
    res: int | None = typer.Option(None, "--res", help="Resolution (default: each generator's own)."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    start: int = typer.Option(0, "--start", help="First image index."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    describe: bool = typer.Option(
        False, "--describe", help="Also print each image's program (generators that draw one per image, "
        "e.g. program-shader).",
    ),  # fmt: skip
) -> None:
    """Save a labelled grid of samples, one row per generator."""
    from noisevision.device import resolve_device
    from noisevision.visualize import sample_grid

    at_least_one(("--num-images", num))
    if start < 0:
        raise NoisevisionError(f"--start must be 0 or more, got {start}")
    check_output_file(out)
    path = sample_grid(
        list(names),
        out,
        num=num,
        res=res,
        seed=seed,
        device=str(resolve_device(device)),
        start=start,
        say=lambda line: console.print(f"[dim]{line}[/]"),
    )
    console.print(f"wrote {path}")
    if describe:
        _print_programs(names, start, num, seed)


def _print_programs(names: list[str], start: int, num: int, seed: int) -> None:
    """`show --describe`: the program of each shown image, or a line saying a generator has none."""
    from noisevision import generators

    for name in names:
        gen = generators.get(name)
        if not hasattr(gen, "program_text"):
            console.print(f"{name}: no per-image program to print (parameters: {gen.params})",
                          markup=False, highlight=False, soft_wrap=True)  # fmt: skip
            continue
        for index in range(start, start + num):
            console.print(gen.program_text(index, seed), markup=False, highlight=False, soft_wrap=True)


@app.command()
def generate(
    name: str = typer.Argument(..., help="Generator name (see `noisevision list`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder (created; resumable)."),
    num: int = typer.Option(..., "--num-images", "-n", help="Number of images (indices 0..N-1)."),
    res: int | None = typer.Option(None, "--res", help="Resolution (default: the generator's own)."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    fmt: str = typer.Option("jpg", "--format", help="jpg or png."),
    quality: int = typer.Option(95, "--quality", help="JPEG quality (the paper's files: 95)."),
    shard: str | None = typer.Option(None, "--shard", help="K/N: write only the K-th of N index ranges."),
    workers: int | None = typer.Option(None, "--workers", help="Processes (CPU) or encoder threads."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images rendered per batch."),
    precision: str | None = typer.Option(
        None, "--precision", help="Feature visualizations: the network's autocast, fp32, bf16 or fp16 "
        "(default auto: bf16 on GPUs, fp32 on CPU).",
    ),  # fmt: skip
    verify: bool = typer.Option(
        False, "--verify", help="Read every image already there and check it against its recorded "
        "checksum (without it: its size); damaged images are rendered again.",
    ),  # fmt: skip
) -> None:
    """Write an ImageFolder dataset DIR/train/<block>/<index>.<format> plus a manifest; resumable.

    A rerun writes what is missing and renders again what is damaged (size, or with --verify
    checksum, differing from the record). Several runs into one folder share the work. SIGTERM or
    SIGUSR1 stop it once the images being written are finished; the same command resumes. Without a
    terminal, progress is printed as plain lines.
    """
    from noisevision import generators
    from noisevision.data import folder
    from noisevision.device import default_workers, rank_device
    from noisevision.progress import Progress
    from noisevision.stopping import raising_on_stop_signals

    if num < 1:
        raise NoisevisionError(f"--num-images must be a positive number of images, got {num}")
    if fmt not in folder.FORMATS:
        raise NoisevisionError(f"--format must be jpg or png, not '{fmt}'")
    if not 1 <= quality <= 100:
        raise NoisevisionError(f"--quality must be in 1..100, got {quality}")
    at_least_one(("--batch-size", batch_size))
    gen = generators.get(name)
    if precision is not None:
        if not gen.spec.takes_precision:
            raise NoisevisionError(f"--precision sets the network precision of feature visualizations; "
                                   f"'{name}' has none")  # fmt: skip
        gen = generators.get(name, precision=precision)
    res = gen.check_res(gen.spec.default_res if res is None else res)
    dev = rank_device(device)  # under torchrun, each rank its own GPU (and its own shard below)
    k, n = folder.parse_shard(shard)
    indices = folder.shard_range(num, k, n)
    spec = folder.DatasetSpec(name, gen.params, seed, res, num, fmt, quality)
    if workers is not None and workers < 0:
        raise NoisevisionError(f"--workers must be 0 or more, got {workers}")
    workers = default_workers(dev, "generate") if workers is None else workers
    # a foreign or unwritable folder fails before any progress bar
    mixed = folder.prepare_folder(out, spec, str(dev))
    where = f" (shard {k + 1}/{n}: {indices.start}..{indices.stop - 1})" if n > 1 else ""
    console.print(f"{name} → {out}: {num} images at {res} px, seed {seed}, {dev}{where}", soft_wrap=True)
    if mixed:
        console.print(f"[yellow]note:[/] {escape(mixed)}", soft_wrap=True)
    if note := gen.setup_note(res, dev):
        console.print(f"[dim]{name} {note}[/]", soft_wrap=True)
    start, first = time.perf_counter(), [True]
    with Progress(name, len(indices), console=console) as progress:

        def advance(count: int) -> None:
            if first[0]:  # the first call reports the images already there
                first[0] = False
                progress.already_done(count)
            else:
                progress.update(count)

        with raising_on_stop_signals("the images being written were finished"):
            written = folder.write_dataset(out, spec, indices, dev, workers, batch_size, advance,
                                           verify=verify, on_note=progress.note)  # fmt: skip
    elapsed = time.perf_counter() - start
    console.print(
        f"wrote {written} images ({len(indices) - written} already there) in {elapsed:.1f} s"
        + (f", {written / elapsed:,.1f} img/s" if written else "")
    )


@app.command()
def train(
    data: str | None = typer.Option(
        None, "--data", help="Generator name, A+B / A:0.7+B:0.3 mix, or image folder."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Run folder (resumed when it exists; with --config: the config's own)."
    ),
    preset: str | None = typer.Option(None, "--preset", help="Recipe: {presets} (default paper-small)."),
    config: Path | None = typer.Option(
        None, "--config", help="A run's config.yaml (or YAML of training options): its values instead "
        "of a preset's; the options given here override them.",
    ),  # fmt: skip
    settings: list[str] | None = typer.Option(
        None, "--set", help="KEY=VALUE for any training option, e.g. momentum=0.99, milestones=[60,80], "
        "arch_kwargs={width: 0.5} (repeat; values read as YAML).",
    ),  # fmt: skip
    arch: str | None = typer.Option(None, "--arch", help="Encoder: {archs}."),
    arch_opt: list[str] | None = typer.Option(None, "--arch-opt", help="Encoder option KEY=VALUE (repeat)."),
    method: str | None = typer.Option(None, "--method", help="{methods}."),
    method_opt: list[str] | None = typer.Option(None, "--method-opt", help="Method option KEY=VALUE."),
    augment: str | None = typer.Option(None, "--augment", help="Augmentation: {augmentations}."),
    schedule: str | None = typer.Option(None, "--schedule", help="Learning-rate schedule: {schedules}."),
    epochs: int | None = typer.Option(None, "--epochs", help="Training epochs (passes over the dataset)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Global batch size."),
    lr: float | None = typer.Option(None, "--lr", help="Base learning rate (SGD) of the schedule."),
    res: int | None = typer.Option(None, "--res", help="Generation resolution."),
    input_size: int | None = typer.Option(None, "--input-size", help="Crop side fed to the encoder."),
    num_images: int | None = typer.Option(None, "--num-images", help="Dataset size (indices 0..N-1)."),
    fresh: bool = typer.Option(False, "--fresh", help="New images every epoch (infinite dataset)."),
    bn_groups: int | None = typer.Option(None, "--bn-groups", help="BN groups over the global batch."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    workers: int | None = typer.Option(None, "--workers", help="Rendering processes (CPU default 1)."),
    threads: int | None = typer.Option(None, "--threads", help="torch threads of the training process."),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed of the images, augmentations, initial weights and data order."
    ),
    checkpoint_minutes: float | None = typer.Option(
        None, "--checkpoint-minutes", help="Also checkpoint inside an epoch this often (default 30)."
    ),
    precision: str = typer.Option(
        "auto", "--precision", help="fp32, bf16 or fp16 autocast (auto: bf16 on GPUs with it, else fp32)."
    ),
    channels_last: bool | None = typer.Option(
        None, "--channels-last/--no-channels-last", help="NHWC memory layout (default: on with CUDA)."
    ),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the encoder (slow start)."),
    deterministic: bool = typer.Option(
        False, "--deterministic", help="GPU: deterministic kernels only (a resumed run equals an "
        "uninterrupted one bit for bit; slower).",
    ),  # fmt: skip
    cache_images: str = typer.Option(
        "auto", "--cache-images", help="Keep a generated dataset on the GPU after its first epoch: auto "
        "(when it takes at most half the free memory), on, off.",
    ),  # fmt: skip
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress display."),
) -> None:
    """Pre-train an encoder on streamed noise images; run again to resume (torchrun for DDP).

    SIGTERM or SIGUSR1 (e.g. a cluster pre-empting the job) write a checkpoint at the next step and
    stop; the same command resumes there. Without a terminal, progress is printed as plain lines.
    """
    from noisevision.train import TrainConfig, parse_options, parse_settings
    from noisevision.train import train as run_training

    options = dict(
        data=data, out=str(out) if out else None, arch=arch, arch_kwargs=parse_options(arch_opt, arch),
        method=method, method_kwargs=parse_options(method_opt, method), augment=augment, schedule=schedule,
        epochs=epochs, batch_size=batch_size, lr=lr, res=res, input_size=input_size, num_images=num_images,
        fresh=fresh or None, bn_groups=bn_groups, device=device, workers=workers, threads=threads,
        seed=seed, checkpoint_minutes=checkpoint_minutes, progress=not no_progress, precision=precision,
        channels_last=channels_last, compile=compile_ or None, deterministic=deterministic or None,
        cache_images=cache_images,
    )  # fmt: skip
    given = parse_settings(settings)
    for key, value in given.items():
        if options.get(key) is not None and key not in ("device", "progress", "precision", "cache_images"):
            raise NoisevisionError(f"{key} is given twice (an option and --set {key}=…): keep one")
        options[key] = value
    if config is None:
        cfg = TrainConfig.from_preset(preset or "paper-small", **options)
    elif preset is not None:
        raise NoisevisionError("--preset and --config both give the recipe: keep one")
    else:
        if options["out"] is None and config.name == "config.yaml":
            options["out"] = str(config.parent)  # the run the file belongs to: resume it
        cfg = TrainConfig.from_file(config, **options)
    for key in (k for k, v in given.items() if v is None):  # --set KEY=null: None, not "not given"
        setattr(cfg, key, None)
    run_dir = run_training(cfg)
    if os.environ.get("RANK", "0") == "0":  # once under torchrun
        console.print(f"encoder written to {run_dir / 'encoder.pt'}", highlight=False, soft_wrap=True)


@app.command("eval")
def eval_cmd(
    encoder: str = typer.Argument(
        ..., help="Encoder file or run folder, or a baseline: {baselines}."
    ),
    dataset: str = typer.Option(
        "fashion-mnist", "--dataset", help="Evaluation set: {datasets}."
    ),
    probe: list[str] | None = typer.Option(
        None, "--probe", help="{probes}; repeat (default: {probe.probes})."
    ),
    layer: str | None = typer.Option(None, "--layer", help="Feature layer (default: the encoder's)."),
    protocol: str | None = typer.Option(
        None, "--protocol", help="Linear probe recipe: {protocols} (default: the one the encoder file names; "
        "inputs are always normalised as the encoder was trained).",
    ),  # fmt: skip
    epochs: int | None = typer.Option(None, "--epochs", help="Linear probe epochs (default: the recipe's)."),
    subset: int | None = typer.Option(None, "--subset", help="At most N train images (balanced)."),
    test_subset: int | None = typer.Option(None, "--test-subset", help="At most N test images."),
    shots: int | None = typer.Option(
        None, "--shots", help="Labels per class of the low-shot probe (default {probe.shots})."
    ),
    seeds: int | None = typer.Option(
        None, "--seeds", help="Low-shot repetitions, mean ± std (default {probe.lowshot_seeds})."
    ),
    input_size: int | None = typer.Option(None, "--input-size", help="Input side of a baseline."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    workers: int | None = typer.Option(
        None, "--workers", help="Decoding processes for image files (default {probe.workers})."
    ),
    decoder: str = typer.Option(
        "auto", "--decoder", help="Image files: draft (PIL at a reduced JPEG scale, crops on the device), "
        "device (nvJPEG on the GPU), pil (full-size, per image); auto: device on CUDA, else draft.",
    ),  # fmt: skip
    precision: str = typer.Option(
        "auto", "--precision", help="Encoder autocast: fp32, bf16, fp16 (auto: bf16 on GPUs, else fp32)."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress display."),
    download: bool = typer.Option(
        False, "--download", help="Allow downloading CIFAR/STL-10 from the internet."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the subsets, the train views and the probes' init."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Results JSON (default: beside it)."),
) -> None:
    """Probe a frozen encoder (or a baseline) on real images; results to JSON + one line here."""
    import json

    from noisevision.data.eval_datasets import load_eval_dataset
    from noisevision.device import resolve_device
    from noisevision.evaluate import ProbeSettings, evaluate, load_probe_model
    from noisevision.io import atomic_write_text, slug

    given = {"probes": tuple(probe) if probe else None, "shots": shots, "lowshot_seeds": seeds,
             "workers": workers}  # None: ProbeSettings' default
    settings = ProbeSettings(
        layer=layer, protocol=protocol, epochs=epochs, subset=subset, test_subset=test_subset, seed=seed,
        precision=precision, decoder=decoder, progress=not no_progress,
        **{k: v for k, v in given.items() if v is not None},
    )  # fmt: skip
    settings.check()
    at_least_one(("--input-size", input_size))
    if out is not None:
        check_output_file(out)
    dev = resolve_device(device)
    model, meta = load_probe_model(encoder, dev, input_size)
    if out is None and "path" in meta:
        check_output_folder(Path(meta["path"]).parent)  # the results go beside the encoder
    data = load_eval_dataset(dataset, download=download)
    result = evaluate(model, data, settings, dev, meta, log=lambda m: err_console.print(m, markup=False))
    if out is None:  # one file per (dataset, probes, layer): a later probe run never overwrites another
        where = Path(meta["path"]).parent if "path" in meta else Path("eval")
        stem = "" if "path" in meta else encoder.replace(":", "-") + "-"
        out = where / f"eval-{stem}{slug(dataset)}-{'+'.join(settings.probes)}-{slug(result.layer)}.json"
    if "recipe" in meta:
        meta = {**meta, "recipe": meta["recipe"].to_dict()}
    atomic_write_text(out, json.dumps({"encoder": encoder, "meta": meta, **result.to_dict()}, indent=1))
    console.print(f"{encoder}: {result.summary()} -> {out}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def export(
    encoder: str = typer.Argument(..., help="Encoder file or training run folder."),
    fmt: str = typer.Option(..., "--format", help="{export-formats}."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Weights file to write (FILE.safetensors); its model card is written "
        "beside it (README.md, or FILE.README.md when the folder has another README.md).",
    ),  # fmt: skip
) -> None:
    """Write an encoder's weights as safetensors for torchvision, timm or noisevision, with a model card.

    torchvision and timm get the ResNet backbone (no projection head, no fc: load it into a model
    whose fc is nn.Identity(), as the card shows); noisevision keeps everything, and load_encoder
    and `noisevision eval` read the file back.
    """
    from noisevision.export import export_encoder

    done = export_encoder(encoder, fmt, out)
    parts = sorted({k.split(".")[0] for k in done.dropped})  # e.g. "head", the projection head
    dropped = f"; left out: {', '.join(parts)}" if parts else ""
    console.print(f"wrote {done.weights} ({done.format}, {done.tensors} tensors{dropped}) and its model card "
                  f"{done.card}", markup=False, highlight=False, soft_wrap=True)  # fmt: skip


@app.command()
def reproduce(
    preset: str = typer.Option("demo", "--preset", help="Reproduction: {repro-presets}."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Report folder (default: reproduce-PRESET)."),
    generators: str | None = typer.Option(
        None, "--generators", help="Comma-separated generators instead of the preset's."
    ),
    eval_dataset: str | None = typer.Option(None, "--eval-dataset", help="Evaluation set (see eval)."),
    extra_data: list[str] | None = typer.Option(
        None, "--extra-data", help="NAME=DIR: pre-train on an image folder too (repeat)."
    ),
    subset: int | None = typer.Option(None, "--subset", help="At most N probe train images."),
    test_subset: int | None = typer.Option(None, "--test-subset", help="At most N probe test images."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    download: bool = typer.Option(
        False, "--download", help="Allow downloading CIFAR/STL-10 from the internet."
    ),
    feature_vis_encoder: Path | None = typer.Option(
        None, "--feature-vis-encoder",
        help="ResNet-50 encoder.pt for feature_vis-dead_leaves to visualise, instead of training one on "
        "dead_leaves-mixed (MoCo v2, paper-large recipe) first.",
    ),  # fmt: skip
    materialize: str | None = typer.Option(
        None, "--materialize",
        help="Generators to render once to OUT/data/NAME/ and train from, instead of regenerating their "
        "images every epoch: all, none, or expensive (feature visualizations), optionally with generator "
        "names or families, comma-separated (e.g. expensive,stylegan-random). Default: the preset's "
        "(demo: all; paper presets: expensive).",
    ),  # fmt: skip
    report_only: bool = typer.Option(False, "--report-only", help="Rebuild the report from done cells."),
) -> None:
    """Pre-train on every generator of a preset, probe, and write a report; resumable.

    feature_vis-dead_leaves visualises a ResNet-50 trained with MoCo v2 on dead_leaves-mixed: in
    paper-large the dead_leaves-mixed run itself, in paper-small a prerequisite run trained first in
    OUT/prerequisites/ (or the file given with --feature-vis-encoder).

    Cheap generators stream; those --materialize names are rendered once (resumable; under torchrun
    each rank renders its share). Changing it for a source whose training has started fails that
    source, whose run would read other data: remove OUT/runs/NAME/ first.
    """
    from noisevision.reproduce import build_report, parse_extra_data
    from noisevision.reproduce import reproduce as run_reproduction

    out = out or Path(f"reproduce-{preset}")
    names = None if generators is None else [g.strip() for g in generators.split(",") if g.strip()]
    if names == []:
        raise NoisevisionError(f"--generators '{generators}' names no generator: give NAME,NAME,…")
    if report_only:
        paths = build_report(out, log=console.print)
        console.print(f"report: {paths['markdown']}")
        return
    run_reproduction(
        preset, out, generators=names,
        eval_dataset=eval_dataset, extra_data=parse_extra_data(extra_data), device=device,
        download=download, probe_overrides={"subset": subset, "test_subset": test_subset},
        feature_vis_encoder=feature_vis_encoder, materialize=materialize,
        log=lambda m: console.print(m, markup=False, highlight=False, soft_wrap=True),
    )  # fmt: skip


@bench_app.command("train")
def bench_train_cmd(
    arch: str = typer.Option("smallalexnet", "--arch", help="Encoder: {archs}."),
    data: str = typer.Option("dead_leaves-mixed", "--data", help="Generator to stream from."),
    res: int = typer.Option(128, "--res", help="Generation resolution."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per training step."),
    steps: int = typer.Option(5, "--steps", help="Timed steps per mode and round (after one warm-up)."),
    rounds: int = typer.Option(2, "--rounds", help="Interleaved rounds; each mode reports its best."),
    preset: str = typer.Option(
        "paper-small", "--preset", help="Recipe whose method, augmentation, input size are timed: {presets}."
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    workers: int | None = typer.Option(None, "--workers", help="Rendering/decoding processes."),
    threads: int | None = typer.Option(None, "--threads", help="torch threads of the training process."),
    precision: str = typer.Option("auto", "--precision", help="fp32, bf16, fp16 (auto: bf16 on GPUs)."),
    modes: str = typer.Option(
        "in-memory,streamed,cached,folder", "--modes", help="Which feeds to time (comma-separated)."
    ),
) -> None:
    """Training images/s fed from memory, streamed from the generator, from the device cache of
    the streamed images (the epochs after the first), and from a folder of JPEGs."""
    import torch

    from noisevision.bench import machine_line
    from noisevision.device import default_workers, resolve_device
    from noisevision.precision import resolve_precision
    from noisevision.train import TrainConfig
    from noisevision.bench import MODES, bench_train

    at_least_one(("--steps", steps), ("--rounds", rounds), ("--batch-size", batch_size),
                 ("--threads", threads))
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    cfg = TrainConfig.from_preset(preset, data=data, arch=arch, res=res, batch_size=batch_size,
                                  precision=precision, out="unused")  # fmt: skip
    cfg.validate()
    chosen = tuple(m.strip() for m in modes.split(",") if m.strip())
    for m in chosen:
        if m not in MODES:
            raise NoisevisionError(f"unknown mode '{m}': use {', '.join(MODES)}")
    n_workers = default_workers(dev, "train") if workers is None else workers
    console.print(
        f"# {machine_line(dev)} | {arch} {cfg.method} {resolve_precision(precision, dev)} | {data} at "
        f"{res} px | batch {batch_size} | {steps} steps × {rounds} rounds | workers {n_workers} "
        "(1 thread each)", soft_wrap=True,
    )  # fmt: skip
    results = bench_train(cfg, dev, steps, workers=workers, rounds=rounds, modes=chosen)
    base = results[0].images_per_s
    for r in results:
        each = ", ".join(f"{x:,.1f}" for x in r.rounds)
        console.print(f"{r.name:12s} {r.images_per_s:10,.1f} img/s  (rounds: {each})")
    console.print(
        "  ".join(f"{r.name}/in-memory {r.images_per_s / base:.2f}" for r in results[1:])
    )


@bench_app.command("eval")
def bench_eval_cmd(
    folder: Path | None = typer.Option(
        None, "--folder", help="ImageFolder-style set (train/<class>/*); default: a temporary folder of "
        "JPEG photos (500×375 and the like), written first.",
    ),  # fmt: skip
    images: int = typer.Option(1024, "--images", help="Images read per measurement."),
    arch: str = typer.Option("resnet50", "--arch", help="Encoder whose features are extracted: {archs}."),
    input_size: int | None = typer.Option(None, "--input-size", help="Probe input side (default: arch's)."),
    batch_size: int = typer.Option(256, "--batch-size", help="Images per feature-extraction batch."),
    workers: int | None = typer.Option(
        None, "--workers", help="Decoding processes (default {probe.workers})."
    ),
    decoders: str | None = typer.Option(
        None, "--decoders", help="Comma-separated: pil, draft, device (default: pil, draft; device on CUDA)."
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    precision: str = typer.Option("auto", "--precision", help="Encoder autocast (auto: bf16 on GPUs)."),
) -> None:
    """Evaluation input: images/s of reading image files into probe inputs, and of feature extraction,
    for each decoder side by side (the plain full-size PIL path first)."""
    import functools
    import tempfile

    import torch

    from noisevision.bench import bench_eval_input, machine_line, write_photo_folder
    from noisevision.data.decode import resolve_decoder
    from noisevision.data.eval_datasets import balanced_subset, load_image_folder
    from noisevision.device import resolve_device
    from noisevision.evaluate import ProbeSettings, View
    from noisevision.models import build_encoder
    from noisevision.precision import resolve_precision

    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    workers = ProbeSettings.workers if workers is None else workers
    names = decoders.split(",") if decoders else ["pil", "draft"] + (["device"] if dev.type == "cuda" else [])
    for name in names:
        resolve_decoder(name, dev)
    at_least_one(("--images", images), ("--batch-size", batch_size))
    if folder is not None and not folder.is_dir():
        raise NoisevisionError(f"--folder {folder} is not a folder of train/<class>/ images")
    model = build_encoder(arch, **({"input_size": input_size} if input_size else {})).to(dev).eval()
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    view = View(int(model.input_size), False)
    with tempfile.TemporaryDirectory(prefix="noisevision-bench-") as tmp:
        if folder is None:
            folder = Path(tmp)
            console.print(f"writing {images} JPEG photos to a temporary folder …")
            write_photo_folder(folder, classes=8, per_class=-(-images // 8))
        data = load_image_folder(folder).train
        data = data.take(balanced_subset(data.labels, images))
        console.print(
            f"# {machine_line(dev)} | {arch} at {view.size} px, {precision} | {len(data)} files of "
            f"{folder} | batch {batch_size} | {workers} workers", soft_wrap=True,
        )  # fmt: skip
        run = functools.partial(bench_eval_input, data, model, view, dev, batch_size=batch_size,
                                workers=workers, precision=precision)  # fmt: skip
        # Two rounds in alternating order, the best of each kept: what runs right after the
        # encoder's matrix products would otherwise share the cores with their spinning threads.
        best: dict[tuple[str, bool], float] = {}
        for features in (False, True):
            for order in (names, names[::-1]):
                for name in order:
                    rate = run(decoder=name, features=features)
                    best[name, features] = max(best.get((name, features), 0.0), rate)
        for name in names:
            inp, feat = best[name, False], best[name, True]
            line = f"{name:8s} input {inp:10,.1f} img/s   features {feat:10,.1f} img/s"
            console.print(line, soft_wrap=True)


@bench_app.command("generators")
def bench_generators(
    names: list[str] | None = typer.Argument(None, help="Generators (default: all registered)."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    res: int = typer.Option(128, "--res", help="Resolution (generators that cannot make it are skipped)."),
    batch: int = typer.Option(64, "--batch-size", help="Images per call."),
    threads: int | None = typer.Option(
        1, "--threads", help="torch CPU threads (default 1: one core; statistical models and feature "
        "visualisation always render on one, for the same bytes at any thread count).",
    ),  # fmt: skip
    repeats: int = typer.Option(5, "--repeats", help="Timed runs per generator (median reported)."),
    min_time: float = typer.Option(0.5, "--min-time", help="Seconds per timed run."),
    reference: bool = typer.Option(
        False, "--reference", help="Also time the original recipe, image by image (dead leaves and "
        "statistical models, on CPU; slow), and print the speed-up.",
    ),  # fmt: skip
) -> None:
    """Images/s of every registered generator, one line each (median of repeats)."""
    import torch

    from noisevision import generators
    from noisevision.bench import bench_generator, bench_reference, machine_line
    from noisevision.device import resolve_device

    at_least_one(("--batch-size", batch), ("--repeats", repeats), ("--threads", threads))
    if not min_time >= 0:
        raise NoisevisionError(f"--min-time must be 0 or more seconds, got {min_time}")
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    todo = list(names) if names else generators.names()
    for n in todo:
        generators.spec(n) if n in generators.names() else generators.get(n)
    console.print(f"# {machine_line(dev)} | res {res} | batch {batch}", soft_wrap=True)
    for n in todo:
        gen = generators.get(n)
        try:
            gen.check_res(res)
        except NoisevisionError as exc:
            console.print(f"{n:32s} skipped: {exc}")
            continue
        median, rates, used, setup = bench_generator(n, res, batch, dev, repeats=repeats, min_time=min_time)
        spread = f"(min {min(rates):,.1f}, max {max(rates):,.1f}, {len(rates)} runs"
        spread += f", batch {used}" if used != batch else ""
        spread += f"; set-up {setup:,.1f} s first)" if setup >= 0.1 else ")"
        console.print(f"{n:32s} {median:10,.2f} img/s  {spread}", soft_wrap=True)
        if reference:
            try:
                ref = bench_reference(n, res)
            except NoisevisionError as exc:
                console.print(f"{'  reference':32s} skipped: {exc}", soft_wrap=True)
                continue
            if ref is not None:
                ref_rate, rates = ref
                spread = f"(min {min(rates):,.2f}, max {max(rates):,.2f}, {len(rates)} images, cpu)"
                line = f"{'  reference, image by image':32s} {ref_rate:10,.2f} img/s  {spread}"
                console.print(f"{line}: {median / ref_rate:,.0f}× faster", soft_wrap=True)


@bench_app.command("datasets")
def bench_datasets_cmd(
    name: str = typer.Argument("dead_leaves-mixed", help="Generator (or A+B mix) the dataset renders."),
    res: int = typer.Option(128, "--res", help="Resolution."),
    batch_size: int = typer.Option(256, "--batch-size", help="DataLoader batch = images per generator call."),
    outputs: str = typer.Option(
        "tensor,pil", "--outputs", help="GeneratorDataset outputs to time, comma-separated: tensor, pil "
        "(PIL images, turned back into tensors by v2.PILToTensor so that the batch collates).",
    ),  # fmt: skip
    rounds: int = typer.Option(
        3, "--rounds", help="Rounds in alternating order; each line reports its best, in images per second "
        "of wall time and of the process's CPU time (the one other processes on the cores change least).",
    ),  # fmt: skip
    min_time: float = typer.Option(2.0, "--min-time", help="Seconds per timed run."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (default: torch's)."),
) -> None:
    """Per-image datasets: images/s of DataLoader(GeneratorDataset, batch_size, num_workers=0) beside
    the generator's own batched call on the same indices, on the CPU."""
    import torch

    from noisevision.bench import DATASET_OUTPUTS, bench_dataset_loader, machine_line
    from noisevision.data.datasets import open_generator

    open_generator(name, res, 0)  # an unknown name or resolution: one line, before the header
    if threads:
        torch.set_num_threads(threads)
    chosen = tuple(o.strip() for o in outputs.split(",") if o.strip())
    for o in chosen:
        if o not in DATASET_OUTPUTS:
            raise NoisevisionError(f"unknown output '{o}': use {', '.join(DATASET_OUTPUTS)}")
    at_least_one(("--batch-size", batch_size), ("--rounds", rounds))
    console.print(f"# {machine_line(torch.device('cpu'))} | {name} at {res} px | batch {batch_size} | "
                  f"DataLoader num_workers=0 | {rounds} rounds", soft_wrap=True)  # fmt: skip
    rates = bench_dataset_loader(name, res, batch_size, chosen, rounds=rounds, min_time=min_time)
    # the best round of each: the least disturbed by other processes
    base = max(r.wall for r in rates["generator"]), max(r.cpu for r in rates["generator"])
    labels = {"generator": "generator call", "tensor": "loader, tensor", "pil": "loader, pil"}
    for key, values in rates.items():
        wall, cpu = max(r.wall for r in values), max(r.cpu for r in values)
        ratio = f"  ({wall / base[0]:.2f}×, {cpu / base[1]:.2f}× the generator call)"
        ratio = "" if key == "generator" else ratio
        each = ", ".join(f"{r.wall:,.1f}" for r in values)
        console.print(f"{labels[key]:16s} {wall:10,.1f} img/s {cpu:10,.1f} img/CPU-s{ratio}  (rounds, img/s: "
                      f"{each})", soft_wrap=True)  # fmt: skip


# Help texts name their choices as {archs}, {datasets}, … (a registry's names) or {probe.shots}
# (a ProbeSettings default): filled from the registries when help is shown, and only for the
# command asked about, since the registries take seconds to import.
_PLACEHOLDER = re.compile(r"\{([a-z][\w.-]*)\}")


def _placeholder(key: str) -> str | None:
    if key in LISTS:
        return registry(key).choices()
    if key.startswith("probe."):
        from noisevision.evaluate.probes import ProbeSettings

        value = getattr(ProbeSettings, key.removeprefix("probe."))
        return ", ".join(value) if isinstance(value, tuple) else str(value)
    return None


def fill_help(argv: list[str]) -> None:
    """Fill the help placeholders of the command `argv` asks help for (nothing otherwise)."""
    if "--help" not in argv and "-h" not in argv:
        return
    words = [a for a in argv if not a.startswith("-")]
    group, rest = (bench_app, words[1:]) if words[:1] == ["bench"] else (app, words)
    for command in group.registered_commands:
        name = command.name or command.callback.__name__.replace("_", "-")
        if not rest or name != rest[0]:
            continue
        for param in inspect.signature(command.callback).parameters.values():
            info = param.default
            if isinstance(info, typer.models.ParameterInfo) and info.help:
                info.help = _PLACEHOLDER.sub(lambda m: _placeholder(m[1]) or m[0], info.help)


#: Former option names, still accepted but no longer shown: --batch-size and --num-images everywhere.
ALIASES = {"--batch": "--batch-size", "--num": "--num-images"}


def expand_aliases(argv: list[str]) -> list[str]:
    """argv with the former option names (also as --name=VALUE) replaced by today's."""
    out = []
    for arg in argv:
        name, sep, value = arg.partition("=")
        out.append(ALIASES[name] + sep + value if name in ALIASES else arg)
    return out


def user_error_line(exc: BaseException) -> str | None:
    """The one line to show for an error the user caused, or None for a bug (traceback).

    NoisevisionError; a NoisevisionError or OSError re-raised by a DataLoader worker (torch puts the
    worker's whole traceback into the message: only its own last line is kept); a DataLoader worker
    that died (killed, out of memory); OS errors on the user's files (permissions, missing folders,
    a full disk, undecodable images).
    """
    text = str(exc)
    worker = worker_exception(text)  # torch's re-raised worker exception: the worker's own line
    if worker and isinstance(exc, NoisevisionError | OSError):
        return " ".join(worker[1].split())
    if isinstance(exc, NoisevisionError):
        return " ".join(text.split())
    if isinstance(exc, RuntimeError) and "DataLoader worker" in text and "unexpectedly" in text:
        first = text.strip().splitlines()[0].rstrip(". ")
        return f"{first}: the work done so far is kept; run again (with fewer --workers if memory is short)"
    if isinstance(exc, OSError):
        what = exc.strerror or str(exc) or type(exc).__name__
        where = f": {exc.filename}" if exc.filename else ""
        return " ".join(f"{what}{where}".split())
    return None


def main() -> None:
    """Console entry point: user errors become one red line and exit code 2."""
    # click's UsageError (bundled inside typer by recent versions): BadParameter's base class
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    keep_freed_memory()  # rendering on CPU reuses its temporaries' pages (see noisevision.memory)
    try:
        sys.argv[1:] = expand_aliases(sys.argv[1:])
        fill_help(sys.argv[1:])
        code = app(standalone_mode=False, prog_name="noisevision")
        if code == 130:  # typer's exit code for Ctrl-C
            err_console.print("[yellow]interrupted[/]: run the same command again to resume")
        sys.exit(code if isinstance(code, int) else 0)
    except usage_error as exc:  # options that do not parse: one line, like every other user error
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help was shown
            sys.exit(2)
        where = exc.ctx.command_path if exc.ctx else "noisevision"
        line = escape(f"{where}: {exc.format_message()} (see {where} --help)")
        err_console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except StopRequested as exc:  # SIGTERM / SIGUSR1: what was done is kept, resumable
        err_console.print(f"[yellow]stopped[/] by {exc}", highlight=False, soft_wrap=True)
        sys.exit(128 + exc.signum)
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("[yellow]interrupted[/]: run the same command again to resume")
        sys.exit(130)
    except Exception as exc:
        line = user_error_line(exc)
        if line is None:
            raise  # a bug: the traceback says where
        err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
