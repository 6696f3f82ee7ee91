"""The typer app of `noisevision`: the root command, the consoles, help texts the commands share,
and the help placeholders filled from the registries."""

from __future__ import annotations

import inspect
import re

import typer
from rich.console import Console

from noisevision.registry import LISTS, registry

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
