"""MkDocs hook: pages generated from the code at build time, so that they cannot drift from it.

* `<!-- noisevision:cli -->` becomes the reference of every command of the typer app
  `noisevision.cli.app`, walked as click's command tree (usage, help, arguments and options);
* `<!-- noisevision:list WHAT -->` becomes the table `noisevision list WHAT` prints (the same
  registries, through `noisevision.registry`), and `<!-- noisevision:list-params NAME -->` the
  table of `noisevision list generators --params NAME`.

Help texts name their choices as `{archs}`, `{datasets}`, … placeholders that the command line
fills from the registries when help is asked for; they are filled here the same way.
"""

from __future__ import annotations

import re
from typing import Any

MARK_CLI = "<!-- noisevision:cli -->"
MARK_LIST = re.compile(r"<!-- noisevision:list ([\w-]+) -->")
MARK_PARAMS = re.compile(r"<!-- noisevision:list-params ([\w-]+) -->")
PLACEHOLDER = re.compile(r"\{([a-z][\w.-]*)\}")


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if MARK_CLI in markdown:
        markdown = markdown.replace(MARK_CLI, cli_reference())
    markdown = MARK_PARAMS.sub(lambda m: params_table(m[1]), markdown)
    return MARK_LIST.sub(lambda m: list_table(m[1]), markdown)


# ----------------------------------------------------------------------------------------- the CLI
def cli_reference() -> str:
    import typer

    from noisevision import cli

    root = typer.main.get_command(cli.app)
    out: list[str] = []
    # typer may bundle its own click: its classes come from the command, not from `import click`
    ctx = root.context_class(root, info_name="noisevision")
    _command(root, ctx, out, level=2)
    return "\n".join(out)


def _command(cmd: Any, ctx: Any, out: list[str], level: int) -> None:
    if level > 2:
        out.append(f"{'#' * level} `{ctx.command_path}`\n")
    pieces = [_metavar(p) for p in cmd.collect_usage_pieces(ctx)]
    usage = " ".join([ctx.command_path, *pieces])
    out.append(f"```text\n{usage}\n```\n")
    if cmd.help:
        out.append(_text(_fill(_dedent(cmd.help))) + "\n")
    rows = [_param_row(p, ctx) for p in cmd.get_params(ctx)]
    rows = [r for r in rows if r]
    if rows:
        out.append("| argument / option | default | description |\n|---|---|---|")
        out.extend(rows)
        out.append("")
    if hasattr(cmd, "list_commands"):  # a group: its commands, in the app's order
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            _command(sub, sub.context_class(sub, info_name=name, parent=ctx), out, level + 1)


def _metavar(piece: str) -> str:
    """A usage piece with argument names in capitals, as arguments are written: `{names}...` (how
    typer writes a required one) -> `NAMES...`, `[what]` -> `[WHAT]`."""
    piece = re.sub(r"\{([a-z_]+)\}", lambda m: m[1].upper(), piece)
    return re.sub(r"\[([a-z_]+)\]", lambda m: f"[{m[1].upper()}]", piece)


def _param_row(param: Any, ctx: Any) -> str | None:
    if getattr(param, "hidden", False):
        return None
    if param.param_type_name == "argument":
        name = f"`{(param.metavar or param.name).upper()}`" + ("" if param.required else " (optional)")
    else:
        names = param.opts + param.secondary_opts
        name = ", ".join(f"`{n}`" for n in names)
        if param.name == "help":
            return None
    default = param.default
    if callable(default) or default is None or (getattr(param, "is_flag", False) and not default):
        shown = ""
    elif isinstance(default, (list, tuple)):
        shown = ", ".join(map(str, default))
    else:
        shown = str(default)
    shown = f"`{shown}`" if shown else ""
    description = _fill(" ".join((getattr(param, "help", None) or "").split()))
    return f"| {name} | {_cell(shown)} | {_cell(description)} |"


def _dedent(text: str) -> str:
    import inspect

    return inspect.cleandoc(text)


def _cell(text: str) -> str:
    """Text for a table cell: pipes escaped, and `<`, `>` outside code spans (not HTML)."""
    return _text(text).replace("|", "\\|")


def _text(text: str) -> str:
    parts = text.split("`")
    parts[::2] = [p.replace("<", "&lt;").replace(">", "&gt;") for p in parts[::2]]
    return "`".join(parts)


def _fill(text: str) -> str:
    """Help placeholders filled from the registries, as the command line fills them."""
    return PLACEHOLDER.sub(lambda m: _placeholder(m[1]) or m[0], text)


def _placeholder(key: str) -> str | None:
    from noisevision.registry import LISTS, registry

    if key in LISTS:
        return registry(key).choices()
    if key.startswith("probe."):
        try:
            from noisevision.evaluate.probes import ProbeSettings
        except ImportError:
            return None
        value = getattr(ProbeSettings, key.removeprefix("probe."), None)
        if value is None:
            return None
        return ", ".join(map(str, value)) if isinstance(value, tuple) else str(value)
    return None


# ------------------------------------------------------------------------------- `noisevision list`
def params_table(name: str) -> str:
    """The table `noisevision list generators --params NAME` shows, as markdown."""
    from noisevision.generators.params import parameter_rows

    columns = ["name", "default", "type", "search range", "description"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in parameter_rows(name):
        cells = [f"`{row['name']}`", *(row[c] for c in columns[1:])]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def list_table(what: str) -> str:
    """The rows `noisevision list WHAT` shows, as a markdown table (and its usage lines)."""
    from noisevision.registry import listing

    part = listing([what])[what]
    columns = ["name", *part["columns"], "description"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in part["entries"]:
        cells = [f"`{row['name']}`", *(_value(row[c]) for c in columns[1:])]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if part["usages"]:
        lines.append("\nNames built on the fly:\n")
        lines.extend(f"- {_cell(u)}" for u in part["usages"])
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)
