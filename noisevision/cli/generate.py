"""`noisevision generate`: a generator's images written to an ImageFolder dataset."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.markup import escape

from noisevision.cli.root import DEVICE_HELP, SEED_HELP, app, console
from noisevision.errors import NoisevisionError, at_least_one


@app.command()
def generate(
    name: str = typer.Argument(..., help="Generator name (see `noisevision list`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder (created; resumable)."),
    num: int = typer.Option(..., "--num-images", "-n", help="Number of training images (indices 0..N-1)."),
    val: int = typer.Option(
        0,
        "--val-images",
        "--val",
        help="Also write M validation images to DIR/val/: indices N..N+M-1, never among the training "
        "ones (with categories: class balanced, M/C instances of each).",
    ),
    res: int | None = typer.Option(None, "--res", help="Resolution (default: the generator's own)."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    fmt: str = typer.Option("jpg", "--format", help="jpg or png."),
    quality: int = typer.Option(95, "--quality", help="JPEG quality (the paper's files: 95)."),
    shard: str | None = typer.Option(
        None,
        "--shard",
        help="K/N: write only the K-th of N index ranges (of training and of validation images).",
    ),
    workers: int | None = typer.Option(None, "--workers", help="Processes (CPU) or encoder threads."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images rendered per batch."),
    precision: str | None = typer.Option(
        None,
        "--precision",
        help="Feature visualizations: the network's autocast, fp32, bf16 or fp16 "
        "(default auto: bf16 on GPUs, fp32 on CPU).",
    ),
    verify: bool = typer.Option(
        False,
        "--verify",
        help="Read every image already there and check it against its recorded "
        "checksum (without it: its size); damaged images are rendered again.",
    ),
    allow_other_cpu: bool = typer.Option(
        False,
        "--allow-other-cpu",
        help="Add images rendered on a CPU of another code path than the "
        "folder's so far (their last bits can differ, except for portable generators such as dead leaves).",
    ),
) -> None:
    """Write an ImageFolder dataset `DIR/train/<block>/<index>.<format>` plus a manifest; resumable.

    A generator with categories writes `DIR/train/<category>/<block>/<index>.<format>`, so that
    torchvision's ImageFolder(DIR/train) reads the labels (category i mod C of image i); with
    --val-images, `DIR/val/` likewise holds held-out images of every category.

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
    if val < 0:
        raise NoisevisionError(f"--val-images must be 0 or more images, got {val}")
    if fmt not in folder.FORMATS:
        raise NoisevisionError(f"--format must be jpg or png, not '{fmt}'")
    if not 1 <= quality <= 100:
        raise NoisevisionError(f"--quality must be in 1..100, got {quality}")
    at_least_one(("--batch-size", batch_size))
    gen = generators.get(name)
    if precision is not None:
        if not gen.spec.takes_precision:
            raise NoisevisionError(
                f"--precision sets the network precision of feature visualizations; '{name}' has none"
            )
        gen = generators.get(name, precision=precision)
    res = gen.check_res(gen.spec.default_res if res is None else res)
    dev = rank_device(device)  # under torchrun, each rank its own GPU (and its own shard below)
    k, n = folder.parse_shard(shard)
    spec = folder.DatasetSpec(name, gen.params, seed, res, num, fmt, quality, val, gen.num_classes)
    splits = {"train": folder.shard_range(num, k, n)}
    if val:  # the validation images follow the training ones; each shard writes its share of both
        share = folder.shard_range(val, k, n)
        splits["val"] = range(num + share.start, num + share.stop)
    indices = splits["train"]
    if workers is not None and workers < 0:
        raise NoisevisionError(f"--workers must be 0 or more, got {workers}")
    workers = default_workers(dev, "generate") if workers is None else workers
    # a foreign or unwritable folder fails before any progress bar
    mixed = folder.prepare_folder(out, spec, str(dev), allow_other_cpu)
    where = f" (shard {k + 1}/{n}: {indices.start}..{indices.stop - 1})" if n > 1 else ""
    what = f"{num} images" + (f" + {val} validation images" if val else "")
    what += f" of {gen.num_classes} categories" if gen.num_classes else ""
    console.print(f"{name} → {out}: {what} at {res} px, seed {seed}, {dev}{where}", soft_wrap=True)
    if mixed:
        console.print(f"[yellow]note:[/] {escape(mixed)}", soft_wrap=True)
    if note := gen.setup_note(res, dev):
        console.print(f"[dim]{name} {note}[/]", soft_wrap=True)
    start, first, written = time.perf_counter(), [True], 0
    total = sum(len(r) for r in splits.values())
    with Progress(name, total, console=console) as progress:

        def advance(count: int) -> None:
            if first[0]:  # each split's first call reports its images already there
                first[0] = False
                progress.already_done(progress.done + count)
            else:
                progress.update(count)

        with raising_on_stop_signals("the images being written were finished"):
            for split, share in splits.items():
                first[0] = True
                written += folder.write_dataset(
                    out,
                    spec,
                    share,
                    dev,
                    workers,
                    batch_size,
                    advance,
                    verify=verify,
                    allow_other_cpu=allow_other_cpu,
                    split=split,
                )
    elapsed = time.perf_counter() - start
    console.print(
        f"wrote {written} images ({total - written} already there) in {elapsed:.1f} s"
        + (f", {written / elapsed:,.1f} img/s" if written else "")
    )
