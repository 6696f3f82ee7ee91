"""`noisevision eval`: probe a frozen encoder (or a baseline) on real images, or fine-tune it."""

from __future__ import annotations

from pathlib import Path

import typer

from noisevision.cli.root import DEVICE_HELP, app, console
from noisevision.errors import at_least_one
from noisevision.io import check_output_file, check_output_folder, recorded_path

#: ProbeSettings fields whose `eval` option has another name than the field's.
FLAGS = {"lowshot_seeds": "--seeds"}


@app.command("eval")
def eval_cmd(
    encoder: str = typer.Argument(..., help="Encoder file or run folder, or a baseline: {baselines}."),
    dataset: str = typer.Option("fashion-mnist", "--dataset", help="Evaluation set: {datasets}."),
    probe: list[str] | None = typer.Option(
        None, "--probe", help="{probes}; repeat (default: {probe.probes})."
    ),
    layer: str | None = typer.Option(None, "--layer", help="Feature layer (default: the encoder's)."),
    protocol: str | None = typer.Option(
        None,
        "--protocol",
        help="Linear probe recipe: {protocols} (default: the one the encoder file names; "
        "inputs are always normalised as the encoder was trained).",
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Linear probe epochs (default: the recipe's)."),
    subset: int | None = typer.Option(None, "--subset", help="At most N train images (balanced)."),
    test_subset: int | None = typer.Option(None, "--test-subset", help="At most N test images."),
    shots: int | None = typer.Option(
        None, "--shots", help="Labels per class of the low-shot probe (default {probe.shots})."
    ),
    seeds: int | None = typer.Option(
        None, "--seeds", help="Low-shot repetitions, mean ± std (default {probe.lowshot_seeds})."
    ),
    finetune_epochs: int | None = typer.Option(
        None, "--finetune-epochs", help="Fine-tuning epochs (default {probe.finetune_epochs})."
    ),
    finetune_batch_size: int | None = typer.Option(
        None, "--finetune-batch-size", help="Fine-tuning batch (default {probe.finetune_batch_size})."
    ),
    finetune_lr: float | None = typer.Option(
        None, "--finetune-lr", help="Fine-tuning SGD learning rate (default {probe.finetune_lr})."
    ),
    input_size: int | None = typer.Option(None, "--input-size", help="Input side of a baseline."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    workers: int | None = typer.Option(
        None, "--workers", help="Decoding processes for image files (default {probe.workers})."
    ),
    decoder: str = typer.Option(
        "auto",
        "--decoder",
        help="Image files: draft (PIL at a reduced JPEG scale, crops on the device), "
        "device (nvJPEG on the GPU), pil (full-size, per image); auto: device on CUDA, else draft.",
    ),
    precision: str = typer.Option(
        "auto", "--precision", help="Encoder autocast: fp32, bf16, fp16 (auto: bf16 on GPUs, else fp32)."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress display."),
    download: bool = typer.Option(
        False, "--download", help="Allow downloading CIFAR/STL-10 from the internet."
    ),
    seed: int = typer.Option(
        0,
        "--seed",
        help="Seed of the subsets, the train views, the probes' init and a random network's weights.",
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="torch CPU threads (default: torch's; 1 is often faster on a busy machine)."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Results JSON (default: beside it)."),
    logger: str = typer.Option(
        "tensorboard",
        "--logger",
        help="Experiment trackers for the results, comma-separated: {loggers}; none. An encoder of a "
        "training run logs into that run's tracked run.",
    ),
) -> None:
    """Probe a frozen encoder (or a baseline) on real images, or fine-tune it (--probe finetune);
    results to JSON + one line here."""
    import json

    from noisevision.data.eval_datasets import load_eval_dataset
    from noisevision.device import resolve_device
    from noisevision.evaluate import (
        ProbeSettings,
        check_trainable,
        evaluate,
        load_probe_model,
        result_file,
        track_result,
    )
    from noisevision.io import atomic_write_text
    from noisevision.tracking import parse_loggers

    given = {
        "probes": tuple(probe) if probe else None,
        "shots": shots,
        "lowshot_seeds": seeds,
        "workers": workers,
        "finetune_epochs": finetune_epochs,
        "finetune_batch_size": finetune_batch_size,
        "finetune_lr": finetune_lr,
    }  # None: ProbeSettings' default
    settings = ProbeSettings(
        layer=layer,
        protocol=protocol,
        epochs=epochs,
        subset=subset,
        test_subset=test_subset,
        seed=seed,
        precision=precision,
        decoder=decoder,
        progress=not no_progress,
        **{k: v for k, v in given.items() if v is not None},
    )
    settings.check()
    loggers = parse_loggers(logger)  # an unknown or uninstalled tracker: one line, before any work
    at_least_one(("--input-size", input_size), ("--threads", threads))
    if out is not None:
        check_output_file(out)
    dev = resolve_device(device)
    if threads:
        import torch

        torch.set_num_threads(threads)
    model, meta = load_probe_model(encoder, dev, input_size, seed)
    check_trainable(model, settings.probes, meta)
    if out is None and "path" in meta:
        check_output_folder(Path(meta["path"]).parent)  # the results go beside the encoder
    data = load_eval_dataset(dataset, download=download)
    result = evaluate(model, data, settings, dev, meta)
    if out is None:
        out = result_file(encoder, meta, dataset, settings.probes, result.layer)
    if "recipe" in meta:
        meta = {**meta, "recipe": meta["recipe"].to_dict()}
    recorded = dict(meta)
    if "path" in meta:  # the encoder by its path from the results file (export finds them so)
        recorded["path"] = recorded_path(meta["path"], Path(out).parent)
    atomic_write_text(out, json.dumps({"encoder": encoder, "meta": recorded, **result.to_dict()}, indent=1))
    track_result(loggers, result, Path(out), meta)
    console.print(f"{encoder}: {result.summary()} -> {out}", markup=False, highlight=False, soft_wrap=True)
