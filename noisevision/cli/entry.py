"""The console entry point: runs the app and turns user errors into one red line, naming the
option a user typed where the library names a setting."""

from __future__ import annotations

import errno
import sys

import typer
from rich.markup import escape

from noisevision.cli.evaluate import FLAGS as EVAL_FLAGS
from noisevision.cli.root import app, console, err_console, fill_help
from noisevision.cli.train import FLAGS
from noisevision.errors import FieldError, NoisevisionError, StopRequested, worker_exception
from noisevision.logs import install_cli_handler
from noisevision.memory import tune_process


def option_name(field: str) -> str:
    """The command-line option that sets `field`, for error messages: a TrainConfig field's `train`
    option (its own name when only --set sets it); another setting's option of the same name
    (`shots` -> --shots); a flag a command checked itself as it is."""
    if field in FLAGS or field in EVAL_FLAGS:
        return FLAGS.get(field) or EVAL_FLAGS[field]
    return f"--{field.replace('_', '-')}" if field.isidentifier() else field


def user_error_line(exc: BaseException) -> str | None:
    """The one line to show for an error the user caused, or None for a bug (traceback).

    NoisevisionError (a FieldError names the option that sets its field); a NoisevisionError or
    OSError re-raised by a DataLoader worker (torch puts the worker's whole traceback into the
    message: only its own last line is kept); a DataLoader worker that died (killed, out of memory);
    OS errors on the user's files (permissions, missing folders, a full disk, undecodable images).
    """
    text = exc.naming(option_name(exc.field)) if isinstance(exc, FieldError) else str(exc)
    worker = worker_exception(text)  # torch's re-raised worker exception: the worker's own line
    if worker and isinstance(exc, NoisevisionError | OSError):
        return " ".join(worker[1].split())
    if isinstance(exc, NoisevisionError):
        return " ".join(text.split())
    if isinstance(exc, RuntimeError) and "DataLoader worker" in text and "unexpectedly" in text:
        first = text.strip().splitlines()[0].rstrip(". ")
        return f"{first}: the work done so far is kept; run again (with fewer --workers if memory is short)"
    if isinstance(exc, OSError):
        what = exc.strerror or str(exc) or type(exc).__name__
        where = f": {exc.filename}" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            where += ": free some space and run the same command again (the work done so far is kept)"
        return " ".join(f"{what}{where}".split())
    return None


def main() -> None:
    """Console entry point: user errors become one red line and exit code 2."""
    # click's UsageError (bundled inside typer by recent versions): BadParameter's base class
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    tune_process()  # huge pages and kept heap memory for rendering on CPU (see noisevision.memory)
    install_cli_handler(console)  # the library's notes and warnings, as lines on the terminal or log
    try:
        fill_help(sys.argv[1:])
        code = app(standalone_mode=False, prog_name="noisevision")
        if code == 130:  # typer's exit code for Ctrl-C
            err_console.print("[yellow]interrupted[/]: run the same command again to resume")
        sys.exit(code if isinstance(code, int) else 0)
    except usage_error as exc:  # options that do not parse: one line, like every other user error
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help was shown
            sys.exit(2)
        where = exc.ctx.command_path if exc.ctx else "noisevision"
        line = escape(f"{where}: {exc.format_message()} (see {where} --help)")
        err_console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except StopRequested as exc:  # SIGTERM / SIGUSR1: what was done is kept, resumable
        err_console.print(f"[yellow]stopped[/] by {exc}", highlight=False, soft_wrap=True)
        sys.exit(128 + exc.signum)
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("[yellow]interrupted[/]: run the same command again to resume")
        sys.exit(130)
    except Exception as exc:
        line = user_error_line(exc)
        if line is None:
            raise  # a bug: the traceback says where
        err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
        sys.exit(2)
