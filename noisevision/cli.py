"""The `noisevision` command line: list, show, generate, train, eval, reproduce, bench."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.table import Table

from noisevision.errors import NoisevisionError

app = typer.Typer(
    help="noisevision: learn to see by looking at noise.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Throughput benchmarks (images/s).", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
console = Console()
err_console = Console(stderr=True)


@app.command("list")
def list_generators() -> None:
    """List every registered generator: name, family, paper label, default resolution."""
    from noisevision import generators

    table = Table(title="noisevision generators")
    for col in ("name", "family", "paper label", "res", "description"):
        table.add_column(col, overflow="fold")
    for s in generators.specs():
        table.add_row(s.name, s.family, s.label or "-", str(s.default_res), s.description)
    console.print(table)


def main() -> None:
    """Console entry point: user errors become one red line and exit code 2."""
    try:
        app()
    except NoisevisionError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: run the same command again to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
