"""How noisevision speaks: library code logs to the `noisevision` logger and never prints; the
command line shows those records (dim notes and yellow warnings on a terminal, plain lines in a
pipe or a log file, above a live progress bar while one runs).

A program of your own sees warnings through Python's default handler, and the notes of long work
(what a resume found, a texture bank being rendered, a reproduction's steps) with e.g.
`logging.basicConfig(level=logging.INFO)`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

LOGGER = "noisevision"

# What prints a line while a live progress display holds the terminal (progress.Progress.note).
_above_progress: list[Callable[[str], None]] = []


def get_logger(name: str) -> logging.Logger:
    """The logger of module `name` (a child of `noisevision`): `log = get_logger(__name__)`."""
    return logging.getLogger(name if name.startswith(LOGGER) else f"{LOGGER}.{name}")


class ConsoleHandler(logging.Handler):
    """Records as lines on a rich console: INFO as notes, WARNING and above with their level."""

    def __init__(self, console: Console):
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.levelno >= logging.WARNING:
                text = f"{record.levelname.lower()}: {text}"
            if _above_progress:
                _above_progress[-1](text)
            elif not self.console.is_terminal:
                self.console.print(text, markup=False, highlight=False, soft_wrap=True)
            elif record.levelno >= logging.WARNING:
                self.console.print(f"[yellow]{escape(text)}[/]", highlight=False, soft_wrap=True)
            else:
                self.console.print(f"[dim]{escape(text)}[/]", highlight=False, soft_wrap=True)
        except Exception:  # a logging call must never break the work it reports on
            self.handleError(record)


def install_cli_handler(console: Console) -> None:
    """Show the library's records on `console` (the command line calls this once)."""
    logger = logging.getLogger(LOGGER)
    logger.handlers = [h for h in logger.handlers if not isinstance(h, ConsoleHandler)]
    logger.addHandler(ConsoleHandler(console))
    logger.setLevel(logging.INFO)


def push_progress(note: Callable[[str], None]) -> None:
    """While a live progress display runs, records go through `note` (above the bar)."""
    _above_progress.append(note)


def pop_progress(note: Callable[[str], None]) -> None:
    if note in _above_progress:
        _above_progress.remove(note)
