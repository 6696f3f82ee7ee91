"""The `noisevision` command line: list, show, generate, train, eval, export, reproduce, analyze,
search, bench.

`root` holds the typer app, `entry` the console entry point (`main`: user errors as one line);
each command group is a module that registers its commands on the app: `lists` (list, show),
`generate`, `train`, `evaluate` (eval), `export`, `reproduce`, `analyze`, `search`,
`bench`. Commands are thin calls into the library; they import it inside their bodies, so that
`noisevision --help` stays quick.
"""

import importlib

from noisevision.cli.root import _PLACEHOLDER, app, bench_app, console, err_console, fill_help

# registered in the order `noisevision --help` lists the commands
for _group in ("lists", "generate", "train", "evaluate", "export", "reproduce", "analyze", "search", "bench"):
    importlib.import_module(f"noisevision.cli.{_group}")

from noisevision.cli.entry import main, option_name, user_error_line  # noqa: E402

__all__ = [
    "_PLACEHOLDER",
    "app",
    "bench_app",
    "console",
    "err_console",
    "fill_help",
    "main",
    "option_name",
    "user_error_line",
]
