"""`noisevision bench`: the throughput benchmarks' commands (generators, train, eval, datasets)."""

from __future__ import annotations

from pathlib import Path

import typer

from noisevision.cli.root import DEVICE_HELP, bench_app, console
from noisevision.errors import NoisevisionError, at_least_one

MAX_MIN_TIME = 600.0  # seconds per timed run: beyond it a benchmark is an accident, not a measurement


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

    from noisevision.bench import report_train
    from noisevision.device import resolve_device
    from noisevision.train import TrainConfig

    at_least_one(
        ("--steps", steps), ("--rounds", rounds), ("--batch-size", batch_size), ("--threads", threads)
    )
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    cfg = TrainConfig.from_preset(
        preset, data=data, arch=arch, res=res, batch_size=batch_size, precision=precision, out="unused"
    )
    chosen = tuple(m.strip() for m in modes.split(",") if m.strip())
    report_train(cfg, dev, steps, rounds=rounds, workers=workers, modes=chosen, say=_say)


@bench_app.command("logging")
def bench_logging_cmd(
    data: str = typer.Option("dead_leaves-mixed", "--data", help="Generator or folder to train on."),
    preset: str = typer.Option("tiny", "--preset", help="Recipe: {presets}."),
    loggers: list[str] | None = typer.Option(
        None, "--loggers", help="A set of loggers, comma-separated (repeat; default: none, each, all)."
    ),
    rounds: int = typer.Option(2, "--rounds", help="Interleaved rounds; each set reports its best loop."),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs (default: the preset's)."),
    num_images: int | None = typer.Option(None, "--num-images", help="Images (default: the preset's)."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    workers: int | None = typer.Option(None, "--workers", help="Rendering processes."),
    threads: int | None = typer.Option(None, "--threads", help="torch threads of the training process."),
) -> None:
    """What --logger costs training: the same run trained with each set of loggers (interleaved
    rounds), its epoch loop timed (every log line included), and the trackers' start and end."""
    import torch

    from noisevision.bench import LOGGER_SETS, report_tracking
    from noisevision.device import resolve_device
    from noisevision.train import TrainConfig

    at_least_one(
        ("--rounds", rounds), ("--epochs", epochs), ("--num-images", num_images), ("--threads", threads)
    )
    if threads:
        torch.set_num_threads(threads)
    cfg = TrainConfig.from_preset(
        preset,
        data=data,
        epochs=epochs,
        num_images=num_images,
        device=device,
        workers=workers,
        out="unused",
        progress=False,
        checkpoint_minutes=1e9,
    )
    report_tracking(cfg, resolve_device(device), tuple(loggers or LOGGER_SETS), rounds, say=_say)


@bench_app.command("eval")
def bench_eval_cmd(
    folder: Path | None = typer.Option(
        None,
        "--folder",
        help="ImageFolder-style set (train/<class>/*); default: a temporary folder of "
        "JPEG photos (500×375 and the like), written first.",
    ),
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
    from noisevision.bench import report_eval_input
    from noisevision.device import resolve_device
    from noisevision.evaluate import ProbeSettings
    from noisevision.precision import resolve_precision

    dev = resolve_device(device)
    precision = resolve_precision(precision, dev)
    workers = ProbeSettings.workers if workers is None else workers
    names = decoders.split(",") if decoders else ["pil", "draft"] + (["device"] if dev.type == "cuda" else [])
    at_least_one(("--images", images), ("--batch-size", batch_size))
    if folder is not None and not folder.is_dir():
        raise NoisevisionError(f"--folder {folder} is not a folder of train/<class>/ images")
    report_eval_input(folder, images, arch, input_size, batch_size, workers, names, dev, precision, say=_say)


@bench_app.command("generators")
def bench_generators(
    names: list[str] | None = typer.Argument(None, help="Generators (default: all registered)."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    res: int = typer.Option(128, "--res", help="Resolution (generators that cannot make it are skipped)."),
    batch: int = typer.Option(64, "--batch-size", help="Images per call."),
    threads: int | None = typer.Option(
        1,
        "--threads",
        help="torch CPU threads (default 1: one core; statistical models and feature "
        "visualisation always render on one, for the same bytes at any thread count).",
    ),
    repeats: int = typer.Option(5, "--repeats", help="Timed runs per generator (median reported)."),
    min_time: float = typer.Option(0.5, "--min-time", help="Seconds per timed run."),
    reference: bool = typer.Option(
        False,
        "--reference",
        help="Also time the original recipe, image by image (dead leaves, statistical models, "
        "FractalDB, 1p-frac, RCDB, VisualAtom; on CPU; slow), and print the speed-up.",
    ),
    profile: bool = typer.Option(
        False,
        "--profile",
        help="Also profile one batch per generator: its torch ops by their own time, and the time "
        "outside them (Python, compiled loops).",
    ),
    sizes: str | None = typer.Option(
        None,
        "--sizes",
        help="Comma-separated resolutions, e.g. 64,128,256,512: how cost grows, per generator and "
        "size images/s, 64 px tiles/s and peak memory per image (on a CPU each in a fresh process).",
    ),
) -> None:
    """Images/s of every registered generator, one line each (median of repeats)."""
    import torch

    from noisevision.bench import report_generators
    from noisevision.device import resolve_device

    at_least_one(("--batch-size", batch), ("--repeats", repeats), ("--threads", threads))
    if not 0 <= min_time <= MAX_MIN_TIME:
        raise NoisevisionError(f"--min-time must be 0 to {MAX_MIN_TIME:g} seconds, got {min_time}")
    resolutions = _sizes(sizes) if sizes is not None else None
    if resolutions and (reference or profile):
        raise NoisevisionError("--sizes times each size on its own: leave out --reference and --profile")
    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    if resolutions:
        from noisevision import generators
        from noisevision.bench.growth import report_growth

        report_growth(
            list(names or []) or generators.names(), resolutions, batch, dev, repeats, min_time, say=_say
        )
        return
    report_generators(
        list(names or []),
        dev,
        res,
        batch,
        repeats=repeats,
        min_time=min_time,
        reference=reference,
        profile=profile,
        say=_say,
    )


@bench_app.command("datasets")
def bench_datasets_cmd(
    name: str = typer.Argument("dead_leaves-mixed", help="Generator (or A+B mix) the dataset renders."),
    res: int = typer.Option(128, "--res", help="Resolution."),
    batch_size: int = typer.Option(256, "--batch-size", help="DataLoader batch = images per generator call."),
    outputs: str = typer.Option(
        "tensor,pil",
        "--outputs",
        help="GeneratorDataset outputs to time, comma-separated: tensor, pil "
        "(PIL images, turned back into tensors by v2.PILToTensor so that the batch collates).",
    ),
    rounds: int = typer.Option(
        3,
        "--rounds",
        help="Rounds in alternating order; each line reports its best, in images per second "
        "of wall time and of the process's CPU time (the one other processes on the cores change least).",
    ),
    min_time: float = typer.Option(2.0, "--min-time", help="Seconds per timed run."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (default: torch's)."),
) -> None:
    """Per-image datasets: images/s of DataLoader(GeneratorDataset, batch_size, num_workers=0) beside
    the generator's own batched call on the same indices, on the CPU."""
    import torch

    from noisevision.bench import report_datasets

    if threads:
        torch.set_num_threads(threads)
    chosen = tuple(o.strip() for o in outputs.split(",") if o.strip())
    at_least_one(("--batch-size", batch_size), ("--rounds", rounds))
    if not 0 <= min_time <= MAX_MIN_TIME:
        raise NoisevisionError(f"--min-time must be 0 to {MAX_MIN_TIME:g} seconds, got {min_time}")
    report_datasets(name, res, batch_size, chosen, rounds=rounds, min_time=min_time, say=_say)


def _say(line: str) -> None:
    """A report line, unwrapped (a terminal wraps it; a pipe or file gets it whole)."""
    console.print(line, soft_wrap=True)


def _sizes(text: str) -> list[int]:
    """--sizes as resolutions: a comma-separated list of whole numbers from 8 px."""
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 8:
        raise NoisevisionError(
            f"--sizes takes resolutions from 8 px, comma-separated (e.g. 64,128,256), got '{text}'"
        )
    return out
