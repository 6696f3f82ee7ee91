"""Writing files: atomically (readers see the old file or the whole new one, never a part of
either), under names made safe from any text (`slug`).

Every writer goes through a temporary file in the target's folder, then `os.replace`; the
temporary file is removed if anything fails. `durable` (the default) also flushes the data to the
disk before the rename, so that a power cut cannot leave a renamed but empty file; the images of
a generated dataset skip it (one fsync per image would cost more than encoding it, and a
damaged image is found and rewritten when the folder is resumed).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _atomic(path: str | Path, write: Callable[[IO[bytes]], None], durable: bool) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
