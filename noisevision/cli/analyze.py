"""`noisevision analyze`: image statistics, diversity and naturalism of sources, tied to probe results."""

from __future__ import annotations

from pathlib import Path

import typer

from noisevision.cli.root import DEVICE_HELP, SEED_HELP, app, console
from noisevision.io import check_output_folder


@app.command()
def analyze(
    sources: list[str] = typer.Argument(
        ...,
        help="Generator names (any that `show` takes: mixes, labelled generators …) or image folders.",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Report folder (report.md, results.json/csv, plots, cache/)."
    ),
    num_images: int = typer.Option(
        2000, "--num-images", "-n", help="Images per source (and of the real set)."
    ),
    res: int = typer.Option(128, "--res", help="Resolution every image is measured at."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP + " Also the seed of the intervals."),
    real: str | None = typer.Option(
        None, "--real", help="Real images to compare with: an evaluation set, {datasets} (its train split)."
    ),
    encoder: str | None = typer.Option(
        None, "--encoder", help="A trained encoder file or run folder: a third feature space."
    ),
    results: list[str] | None = typer.Option(
        None,
        "--results",
        help="A `reproduce` folder or `eval` JSON files/folders (repeat): ρ of every measure.",
    ),
    bootstraps: int = typer.Option(25, "--bootstraps", help="Half-samples per interval (0: no intervals)."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress display."),
) -> None:
    """Measure each source's images — statistics, diversity, naturalism against --real — in three
    feature spaces, with 95 % intervals; with --results, which measure predicts the probes.

    Resumable: each source's features are cached in OUT/cache, so a second run (or one with more
    sources) computes only what is missing.
    """
    from noisevision.analyze import AnalyzeSettings, plan
    from noisevision.analyze import analyze as run_analysis

    settings = AnalyzeSettings(
        num_images=num_images,
        res=res,
        seed=seed,
        real=real,
        encoder=encoder,
        results=tuple(results or ()),
        device=device,
        bootstraps=bootstraps,
        progress=not no_progress,
    )
    check_output_folder(out)
    checked = plan(list(sources), settings)
    run_analysis(checked, out)
    console.print(f"report: {out / 'report.md'}", highlight=False, soft_wrap=True)
