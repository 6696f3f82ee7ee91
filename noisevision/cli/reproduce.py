"""`noisevision reproduce`: pre-train on every generator of a preset, probe, and report."""

from __future__ import annotations

from pathlib import Path

import typer

from noisevision.cli.root import DEVICE_HELP, app, console
from noisevision.errors import NoisevisionError


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
        None,
        "--feature-vis-encoder",
        help="ResNet-50 encoder.pt for feature_vis-dead_leaves to visualise, instead of training one on "
        "dead_leaves-mixed (MoCo v2, paper-large recipe) first.",
    ),
    materialize: str | None = typer.Option(
        None,
        "--materialize",
        help="Generators to render once to OUT/data/NAME/ and train from, instead of regenerating their "
        "images every epoch: all, none, or expensive (feature visualizations), optionally with generator "
        "names or families, comma-separated (e.g. expensive,stylegan-random). Default: the preset's "
        "(demo: all; paper presets: expensive).",
    ),
    seeds: int | None = typer.Option(
        None,
        "--seeds",
        help="Independent repetitions of every cell (own images, augmentations, weights, probe draws), "
        "1 to 100; the report gives means, 95 % intervals and paired tests. Default: the preset's. "
        "Seed 0 is the single run: raising it on a finished folder adds repetitions.",
    ),
    report_only: bool = typer.Option(False, "--report-only", help="Rebuild the report from done cells."),
    logger: str = typer.Option(
        "tensorboard",
        "--logger",
        help="Experiment trackers, comma-separated: {loggers}; none. Every training run is tracked, "
        "and the reproduction itself (its cells and report).",
    ),
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
        paths = build_report(out)
        console.print(f"report: {paths['markdown']}")
        return
    run_reproduction(
        preset,
        out,
        generators=names,
        eval_dataset=eval_dataset,
        extra_data=parse_extra_data(extra_data),
        device=device,
        download=download,
        probe_overrides={"subset": subset, "test_subset": test_subset},
        feature_vis_encoder=feature_vis_encoder,
        materialize=materialize,
        seeds=seeds,
        logger=logger,
    )
