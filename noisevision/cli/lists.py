"""`noisevision list` and `noisevision show`: the names options take, and grids of samples."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

import typer
from rich.padding import Padding
from rich.table import Table

from noisevision.cli.root import DEVICE_HELP, SEED_HELP, app, console
from noisevision.errors import NoisevisionError, at_least_one
from noisevision.io import check_output_file
from noisevision.registry import LISTS, listing


@app.command("list")
def list_cmd(
    what: str = typer.Argument("generators", help=f"What to list: {', '.join(LISTS)}, or all."),
    as_json: bool = typer.Option(False, "--json", help="JSON: every entry's name, columns and description."),
    params: str | None = typer.Option(
        None,
        "--params",
        help="With generators: the searchable parameters of generator NAME (default, range, scale), "
        "which `search` varies and names accept (NAME:key=value).",
    ),
) -> None:
    """List the names that options accept: generators (default), architectures, methods, presets…

    On a terminal, a table whose names are never cut (descriptions wrap); through a pipe or into a
    file, tab-separated lines under a header line, so that `noisevision list | grep NAME` finds it.
    """
    import json

    if params is not None:
        if what != "generators":
            raise NoisevisionError(f"--params names a generator: use `list generators --params {params}`")
        listed = {"parameters": _parameter_rows(params)}
        if as_json:
            sys.stdout.write(json.dumps(listed, indent=1, ensure_ascii=False, default=str) + "\n")
        elif sys.stdout.isatty():
            _list_table("parameters", listed["parameters"])
        else:
            _list_tsv("parameters", listed["parameters"], titled=False)
        return
    listed = listing(LISTS if what == "all" else [what])  # an unknown list: one line, closest names
    if as_json:
        sys.stdout.write(json.dumps(listed, indent=1, ensure_ascii=False, default=str) + "\n")
    elif sys.stdout.isatty():
        for name, part in listed.items():
            _list_table(name, part)
    else:
        for name, part in listed.items():
            _list_tsv(name, part, titled=len(listed) > 1)


def _parameter_rows(name: str) -> dict:
    """`list`'s table of generator NAME's searchable parameters."""
    from noisevision.generators import params as gparams

    rows = gparams.parameter_rows(name)
    return {
        "kind": "parameter",
        "columns": ["default", "type", "search range"],
        "entries": rows,
        "usages": [],
    }


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
    shortest = [
        max(len(w) for x in [col, *column] for w in x.split())
        for col, column in zip(cols, zip(*cells), strict=True)
    ]
    name_width = max(len(r["name"]) for r in rows)
    room = console.width - 3 * (len(cols) + 2) - 1 - name_width  # borders and padding
    widths = natural if room - sum(natural) >= 30 else shortest
    description = min(room - sum(widths), max(len(_cell(r["description"])) for r in rows))
    if description < 20:
        console.print(f"noisevision {name}", style="italic")
        for r, row in zip(rows, cells, strict=True):
            console.print(r["name"], style="bold", no_wrap=True, overflow="ignore", crop=False)
            rest = "; ".join(f"{c}: {x}" for c, x in zip(cols, row, strict=True))
            console.print(
                Padding(f"{rest + '. ' if rest else ''}{_cell(r['description'])}", (0, 0, 0, 2)),
                highlight=False,
            )
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
    num: int = typer.Option(
        8, "--num-images", "-n", help="Samples per generator (with --by-class: per category)."
    ),
    res: int | None = typer.Option(None, "--res", help="Resolution (default: each generator's own)."),
    seed: int = typer.Option(0, "--seed", help=SEED_HELP),
    start: int = typer.Option(0, "--start", help="First image index."),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    describe: bool = typer.Option(
        False,
        "--describe",
        help="Also print each image's program (generators that draw one per image, e.g. program-shader).",
    ),
    by_class: bool = typer.Option(
        False,
        "--by-class",
        help="One row per category of a generator with categories (e.g. fractaldb): instances "
        "--start.. of the first --classes categories.",
    ),
    classes: int | None = typer.Option(
        None, "--classes", help="With --by-class: how many categories, the first ones (default up to 8)."
    ),
) -> None:
    """Save a labelled grid of samples, one row per generator (or with --by-class, per category)."""
    from noisevision import generators, visualize
    from noisevision.device import resolve_device

    at_least_one(("--num-images", num))
    if start < 0:
        raise NoisevisionError(f"--start must be 0 or more, got {start}")
    if classes is not None and not by_class:
        raise NoisevisionError("--classes chooses the rows of --by-class: add --by-class")
    if by_class and len(names) != 1:
        raise NoisevisionError(f"--by-class shows one generator's categories, not {len(names)} generators")
    check_output_file(out)
    common = {"num": num, "res": res, "seed": seed, "device": str(resolve_device(device)), "start": start}
    indices = range(start, start + num)
    if by_class:
        path = visualize.class_grid(names[0], out, classes, **common)
        total = generators.get(names[0]).num_classes
        indices = visualize.class_indices(total, classes or visualize.default_classes(total), num, start)
    else:
        path = visualize.sample_grid(list(names), out, **common)
    console.print(f"wrote {path}")
    if describe:
        _print_programs(names, indices, seed)


def _print_programs(names: list[str], indices: Iterable[int], seed: int) -> None:
    """`show --describe`: the program of each shown image, or a line saying a generator has none."""
    from noisevision import generators

    for name in names:
        gen = generators.get(name)
        if not hasattr(gen, "program_text"):
            console.print(
                f"{name}: no per-image program to print (parameters: {gen.params})",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            continue
        for index in indices:
            console.print(gen.program_text(index, seed), markup=False, highlight=False, soft_wrap=True)
