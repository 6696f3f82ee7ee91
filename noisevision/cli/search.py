"""`noisevision search`: tune a generator's parameters for a probe or an analysis measure (Optuna)."""

from __future__ import annotations

from pathlib import Path

import typer

from noisevision.cli.root import DEVICE_HELP, app, console


@app.command()
def search(
    name: str = typer.Argument(..., help="Generator to tune (`noisevision list generators --params NAME`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder: study.db, trials/, test/, report.md, plots."),
    param: list[str] | None = typer.Option(
        None,
        "--param",
        help="Narrow, widen or fix a parameter (repeat): KEY=LOW..HIGH, KEY=a,b,c or KEY=VALUE.",
    ),
    trials: int = typer.Option(
        20, "--trials", "-n", help="Trials the study holds when done (all processes)."
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Seconds after which this process starts no new trial (then reports)."
    ),
    objective: str = typer.Option("fast", "--objective", help="What to optimise: {objectives}."),
    budget: str = typer.Option(
        "tiny", "--budget", help="Training preset of each trial's pre-training: {presets}."
    ),
    images: int | None = typer.Option(
        None, "--images", help="Pre-training images per trial (default: the budget's)."
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", help="Pre-training epochs per trial (default: the budget's)."
    ),
    dataset: str = typer.Option("fashion-mnist", "--dataset", help="Real images: {datasets}."),
    val_images: int = typer.Option(
        2000, "--val-images", help="Validation images, carved from the training split."
    ),
    probe_images: int = typer.Option(
        5000, "--probe-images", help="Labelled training images the probes fit on."
    ),
    test_images: int = typer.Option(2000, "--test-images", help="Test images of the held-out comparison."),
    test_seeds: int = typer.Option(
        3, "--test-seeds", help="Seeds of the held-out comparison (best vs defaults)."
    ),
    compare: list[str] | None = typer.Option(
        None,
        "--compare",
        help="Another generator to measure beside the best setting and the defaults on held-out data "
        "(repeat), e.g. the paper's best.",
    ),
    analysis_images: int = typer.Option(
        512, "--analysis-images", help="Images per setting for a measure objective and the report's analysis."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the sampler, the trials' pre-training and the splits."
    ),
    sampler: str = typer.Option("tpe", "--sampler", help="Optuna sampler: tpe or random."),
    pruner: str = typer.Option(
        "median",
        "--pruner",
        help="Stop bad trials from the probe after each epoch: median, hyperband or none.",
    ),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="Optuna storage URL shared by several processes or machines (e.g. postgresql://user@host/db); "
        "default: sqlite in OUT.",
    ),
    study: str | None = typer.Option(
        None, "--study", help="Study name in the storage (default: OUT's folder name)."
    ),
    report: bool = typer.Option(
        True,
        "--report/--no-report",
        help="After the trials, compare best and defaults on held-out data and report.",
    ),
    logger: str = typer.Option(
        "none", "--logger", help="Trackers of each trial's training run: {loggers}; none."
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> None:
    """Search a generator's parameters for the best synthetic pre-training data (Optuna).

    Each trial renders the generator with sampled parameters, pre-trains on it with the --budget
    preset and probes on a validation split of the real training images (or, with a measure
    objective, measures its images without training). The best setting and the defaults are then
    compared on the untouched test split over --test-seeds seeds.

    Resumable: kill it and run the same command again; no trial is lost or run twice. Several
    processes or machines given one --storage search one study together.
    """
    import os

    from noisevision.search import SearchSettings, plan
    from noisevision.search import search as run_search

    if "RANK" in os.environ:  # under torchrun: every rank searches on its own; rank 0 reports
        report = report and os.environ["RANK"] == "0"
        if device == "auto" and "LOCAL_RANK" in os.environ:
            import torch

            device = f"cuda:{os.environ['LOCAL_RANK']}" if torch.cuda.is_available() else "cpu"
        os.environ["WORLD_SIZE"] = "1"  # each trial's training runs on this rank alone
    settings = SearchSettings(
        name=name,
        params=tuple(param or ()),
        trials=trials,
        timeout=timeout,
        objective=objective,
        budget=budget,
        images=images,
        epochs=epochs,
        dataset=dataset,
        val_images=val_images,
        probe_images=probe_images,
        test_images=test_images,
        test_seeds=test_seeds,
        compare=tuple(compare or ()),
        analysis_images=analysis_images,
        seed=seed,
        sampler=sampler,
        pruner=pruner,
        storage=storage,
        study=study,
        device=device,
        logger=logger,
        report=report,
    )
    result = run_search(plan(settings, out))
    console.print(f"best: {result['generator']} ({objective} {result['value']:.4g})", highlight=False)
    if "held_out" in result:
        h = result["held_out"]
        g = h["gain"]
        verdict = (
            "holds" if h["holds"] else "not significant" if h["significant"] is not True else "does not hold"
        )
        console.print(
            f"held out ({h['where']}): gain {g['mean']:+.3g} [{g['low']:+.3g}, {g['high']:+.3g}], {verdict}",
            highlight=False,
        )
        console.print(f"report: {out / 'report.md'}", highlight=False)
