"""Writing files: atomically (readers see the old file or the whole new one, never a part of
either), under names made safe from any text (`slug`).

Every writer goes through a temporary file in the target's folder, then `os.replace`; the
temporary file is removed if anything fails. `durable` (the default) also flushes the data to the
disk before the rename, so that a power cut cannot leave a renamed but empty file; the images of
a generated dataset skip it (one fsync per image would cost more than encoding it, and a
damaged image is found and rewritten when the folder is resumed).
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from noisevision.errors import NoisevisionError


@functools.cache
def file_mode() -> int:
    """The mode a new file gets from open() under this process's umask (0o644 under 022).

    mkstemp makes its files 0600 whatever the umask; our files are datasets, runs and results that
    other users of a cluster read, so they get the mode any other new file would. Read from
    /proc where it is there: setting the umask to read it back would race with other threads.
    """
    try:
        status = Path("/proc/self/status").read_text()
        umask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("Umask:")), 8)
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def _atomic(path: str | Path, write: Callable[[IO[bytes]], None], durable: bool) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, file_mode())
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if _out_of_space(exc, path.parent):
            raise NoisevisionError(
                f"no space left on the device for {path}: free some space (or give another --out) and run "
                "the same command again: the work done so far is kept"
            ) from exc
        raise
    return path


def _out_of_space(exc: BaseException, folder: Path) -> bool:
    """Whether a failed write ran out of disk space or quota: an OSError says so; torch's stream
    writer only says "file write failed" (a RuntimeError), so the free space is asked then."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, RuntimeError) and "write failed" in str(exc):
        try:
            return shutil.disk_usage(folder).free < 1 << 20
        except OSError:
            return False
    return False


def slug(text: str) -> str:
    """`text` as a file name: letters, digits and -_. kept, everything else "_"."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> Path:
    return _atomic(path, lambda f: f.write(data), durable)


def atomic_write_text(path: str | Path, text: str, durable: bool = True) -> Path:
    return atomic_write_bytes(path, text.encode(), durable)


def atomic_save(obj: Any, path: str | Path) -> Path:
    """torch.save streamed to the temporary file (a checkpoint of several hundred MB is not
    serialised in memory first), durable."""
    import torch

    return _atomic(path, lambda f: torch.save(obj, f), durable=True)


# ---------------------------------------------------------------------------------- recorded paths
def recorded_path(path: str | Path, base: str | Path) -> str:
    """How a file in folder `base` records `path`: relative to `base` when `path` lies inside it
    or was given relative, else as given (the user's own absolute path).

    Never the machine's absolute spelling of a relative path: the record stays right when the tree
    is moved, shared with other users, or read from another working directory (`recorded_place`).
    """
    path, base = Path(path), Path(base)
    inside = os.path.abspath(path).startswith(os.path.abspath(base) + os.sep)
    return os.path.relpath(path, base) if inside or not path.is_absolute() else str(path)


def recorded_place(text: str | Path, base: str | Path) -> Path:
    """The place a path recorded by a file in folder `base` names (`recorded_path` undone)."""
    return Path(base) / text


# ---------------------------------------------------------------------------------- output places
def _writable_ancestor(path: Path, flag: str) -> None:
    """The nearest existing ancestor of `path` is a folder this process can create files in (tried
    for real: permission bits do not tell for root, read-only mounts or /proc)."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NoisevisionError(f"{flag} {path}: {ancestor} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=ancestor, prefix=".noisevision-probe-")
    except OSError as exc:
        raise NoisevisionError(f"{flag} {path}: cannot write in {ancestor} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: str | Path, flag: str = "--out") -> Path:
    """NoisevisionError unless `path` can be written as a file (its folders are created later)."""
    path = Path(path)
    if path.is_dir():
        raise NoisevisionError(f"{flag} {path} is a folder: give a file name")
    _writable_ancestor(path, flag)
    return path


def check_output_folder(path: str | Path, flag: str = "--out") -> Path:
    """NoisevisionError unless `path` is, or can be created as, a folder that can be written in."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NoisevisionError(f"{flag} {path} is a file, not a folder")
    _writable_ancestor(path / "x", flag)
    return path
