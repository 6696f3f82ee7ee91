"""Progress of long work: a live bar on a terminal, plain lines at a steady interval elsewhere.

Under SLURM, nohup or `cmd > log`, a live display draws nothing until it stops; there `Progress`
prints one self-contained line every `NOISEVISION_PROGRESS_SECONDS` (default 30) seconds instead:

    train: 1,200/27,300 (4.4%) | epoch 3/200 | loss 0.123 | 5,210 img/s | ETA 1:23:45

The rate and the ETA count only this run's work (a resumed run starts its clock at the resume).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from rich.console import Console

from noisevision import logs

DEFAULT_SECONDS = 30.0


def plain_interval() -> float:
    """Seconds between plain progress lines (NOISEVISION_PROGRESS_SECONDS, default 30)."""
    try:
        return max(0.0, float(os.environ.get("NOISEVISION_PROGRESS_SECONDS", DEFAULT_SECONDS)))
    except ValueError:
        return DEFAULT_SECONDS


def format_duration(seconds: float) -> str:
    """1:23:45 / 3:05 style."""
    seconds = int(max(0.0, seconds) + 0.5)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Progress of `total` units (steps, images …) of which `done` were already done before.

    `unit_items` converts units to items for the rate (e.g. images per training step) and `rate_unit`
    names them. `update(advance, **fields)` moves on and shows the fields (e.g. epoch, loss).
    Disabled (`enabled=False`) it does nothing; `note` still prints.
    """

    def __init__(
        self,
        description: str,
        total: int,
        done: int = 0,
        *,
        enabled: bool = True,
        unit_items: float = 1.0,
        rate_unit: str = "img",
        console: Console | None = None,
        live: bool | None = None,
    ):
        self.description, self.total, self.done = description, total, done
        self.enabled, self.unit_items, self.rate_unit = enabled, unit_items, rate_unit
        self.console = console or Console(stderr=False)
        self.live = self.console.is_terminal if live is None else live
        self.start_done, self.t0 = done, time.perf_counter()
        self.fields: dict[str, Any] = {}
        self.every, self.t_line = plain_interval(), self.t0
        self.bar = None
        if enabled and self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self.bar = Bar(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.bar.add_task(description, total=total, completed=done, info="")
            self.bar.start()
            logs.push_progress(self.note)  # the library's log lines print above the bar

    # ------------------------------------------------------------------ state
    def rate(self) -> float:
        """Items per second of this run's work."""
        elapsed = time.perf_counter() - self.t0
        return (self.done - self.start_done) * self.unit_items / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float | None:
        units_per_s = self.rate() / self.unit_items if self.unit_items else 0.0
        return (self.total - self.done) / units_per_s if units_per_s > 0 else None

    def line(self) -> str:
        """The plain progress line."""
        pct = 100.0 * self.done / self.total if self.total else 100.0
        parts = [f"{self.description}: {self.done:,}/{self.total:,} ({pct:.1f}%)"]
        parts += [f"{k} {v}" for k, v in self.fields.items() if v not in (None, "")]
        if self.done > self.start_done:
            parts.append(f"{self.rate():,.0f} {self.rate_unit}/s")
            eta = self.eta()
            if eta is not None and self.done < self.total:
                parts.append(f"ETA {format_duration(eta)}")
        return " | ".join(parts)

    # ------------------------------------------------------------------ updates
    def already_done(self, done: int) -> None:
        """Work found done before this run started (a resume): shown, not counted in the rate."""
        self.done = self.start_done = done
        self.t0 = time.perf_counter()
        if self.bar is not None:
            self.bar.update(self.task, completed=done)

    def update(self, advance: int = 1, **fields: Any) -> None:
        self.done += advance
        self.fields.update(fields)
        if not self.enabled:
            return
        if self.bar is not None:
            shown = {k: v for k, v in self.fields.items() if v not in (None, "")}
            epoch = shown.pop("epoch", None)
            desc = self.description if epoch is None else f"{self.description} epoch {epoch}"
            info = "  ".join(f"{k} {v}" for k, v in shown.items())
            self.bar.update(self.task, advance=advance, description=desc, info=info)
            return
        now = time.perf_counter()
        if now - self.t_line >= self.every:
            self.t_line = now
            self._print(self.line())

    def note(self, text: str) -> None:
        """A line of its own (dim on a terminal), whatever the mode."""
        if self.bar is not None:
            self.bar.console.print(f"[dim]{text}[/]", highlight=False)
        else:
            self._print(text)

    def close(self) -> None:
        """Stop the bar; in plain mode, a last line with the final state."""
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
            logs.pop_progress(self.note)
        elif self.enabled and self.done > self.start_done:
            self._print(self.line())
        self.enabled = False

    def _print(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        if not self.console.is_terminal:
            sys.stdout.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
