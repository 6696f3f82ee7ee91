"""Owning a folder while working in it: a lock a second run into the same folder finds held.

A training run or a reproduction holds an advisory lock (flock) on FOLDER/.lock for as long as it
works there, so that a second process started on the same folder stops at once with one line
instead of training twice and writing every result twice. The kernel drops the lock when the
process ends, however it ends (SIGKILL, a node lost), so a stale lock never blocks a resume. The
file keeps the owner's host and process id for the message. `generate` needs none: its writers
share the work through claims (data.folder).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from noisevision.errors import NoisevisionError
from noisevision.io import file_mode

LOCK = ".lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str, flag: str = "--out") -> Iterator[Path]:
    """Hold FOLDER/.lock (creating the folder) while the block runs; NoisevisionError at once if
    another process holds it. `what` names this work for the message a second run gets."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, file_mode())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"a {what}, process {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    except BlockingIOError:
        owner = os.read(fd, 200).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise NoisevisionError(
            f"{folder} is in use by {owner}: wait for it to end, or give another {flag}"
        ) from None
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
            raise
        fd = -1  # a file system without locks: the work goes on unguarded
    try:
        yield path
    finally:
        if fd >= 0:
            os.close(fd)  # closing drops the lock; the file stays, harmless, for the next run


@contextlib.contextmanager
def waiting_lock(path: str | Path) -> Iterator[None]:
    """Hold an advisory lock on file `path` while the block runs, waiting for it: for a short
    critical section several processes of one machine enter in turn (e.g. creating a database)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, file_mode())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def is_lock_file(path: Path) -> bool:
    """Whether `path` is a folder's lock file (not content of the folder)."""
    return path.name == LOCK
