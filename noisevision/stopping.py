"""Stopping cleanly when a cluster asks: SIGTERM (pre-emption, `scancel`) and SIGUSR1 (SLURM's
`--signal=USR1@…` warning before the time limit).

Training notes the signal and stops at the next step after writing a checkpoint (`StopSignals`);
`generate` stops at once, letting the files being written finish (`raising_on_stop_signals`).
Either way the same command run again resumes, and the CLI exits with 128 + the signal's number.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from noisevision.errors import StopRequested

SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGUSR1") if hasattr(signal, n))


class StopSignals:
    """Inside the block, SIGTERM / SIGUSR1 set `received` (main thread only; elsewhere a no-op)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        self.received = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


@contextmanager
def raising_on_stop_signals(saved: str) -> Iterator[None]:
    """Inside the block, SIGTERM / SIGUSR1 raise StopRequested(signum, saved) in the main thread,
    so that `finally` clauses and executors' exits let the work in flight finish."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: Any) -> None:
        raise StopRequested(signum, saved)

    previous = {sig: signal.signal(sig, handle) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def ignore_stop_signals() -> None:
    """For worker processes: leave SIGTERM / SIGUSR1 to the parent, which lets their tasks finish."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def die_with_parent(parent: int) -> None:
    """End this process with its parent (pid `parent`), so that a killed command leaves no worker
    behind: on Linux the kernel kills it when the parent dies (PR_SET_PDEATHSIG); a parent that died
    while this process started, before it could ask, is noticed here (it exits at once)."""
    import ctypes
    import os
    import sys

    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)
