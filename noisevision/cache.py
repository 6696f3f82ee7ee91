"""On-disk cache of tensors that are slow to build and shared by processes and runs.

Its user is dead_leaves-textures' texture bank: 512 Spectrum+Color+WMM images, tens of seconds of
CPU work, and every worker of `generate`, every data-loader worker and every later run needs the same
bank. An entry is named by a hash of what determines its bytes (the request, the package's
generator code and the versions of torch and numba), so an entry from other code is never read.
Files are written atomically, and a lock file per entry lets processes that start together split
the entries between them instead of each building all of them.

NOISEVISION_CACHE picks the folder (default: $XDG_CACHE_HOME/noisevision or ~/.cache/noisevision);
NOISEVISION_CACHE=off turns the cache off. Deleting the folder is always safe.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor

import noisevision
from noisevision.io import atomic_save

try:
    import fcntl
except ImportError:  # (Windows: no locks; processes that start together may build an entry twice)
    fcntl = None


def cache_dir() -> Path | None:
    """The cache folder, or None when NOISEVISION_CACHE=off."""
    value = os.environ.get("NOISEVISION_CACHE", "")
    if value.lower() == "off":
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "noisevision"


def code_files() -> list[Path]:
    """The source files of the code that renders images: every module of the generators and of
    the random streams, in subpackages too (a test checks that every loaded one is listed)."""
    root = Path(noisevision.__file__).parent
    return sorted([*root.glob("generators/**/*.py"), *root.glob("rng/**/*.py")])


@functools.cache
def code_fingerprint() -> str:
    """Hash of the code that renders images: the generator modules, the random streams and the
    versions of the libraries whose arithmetic they use."""
    root = Path(noisevision.__file__).parent
    h = hashlib.sha256()
    for path in code_files():
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    for lib in ("torch", "numba"):
        try:
            h.update(f"{lib}={importlib.metadata.version(lib)}".encode())
        except importlib.metadata.PackageNotFoundError:
            pass
    return h.hexdigest()


@functools.cache
def _file_hash(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def source_hash(obj: object) -> str:
    """Hash of the file that defines `obj`'s class: code registered from outside this package (a
    user's own texture generator) is part of an entry's name too."""
    try:
        return _file_hash(inspect.getfile(type(obj)))
    except (TypeError, OSError):
        return ""


def entry_name(label: str, *parts: object) -> str:
    """File stem of the entry for `parts` (anything with a stable repr) under this code: the
    readable `label`, then a hash."""
    return f"{label}.{hashlib.sha256(repr((label, parts, code_fingerprint())).encode()).hexdigest()[:32]}"


def is_cached(name: str) -> bool:
    """Whether entry `name` is in the cache folder."""
    folder = cache_dir()
    return folder is not None and (folder / f"{name}.pt").is_file()


def shared_tensors(names: Sequence[str], build: Callable[[int], Tensor]) -> Iterator[tuple[int, Tensor]]:
    """Yield (i, tensor) for every entry i of `names` (in some order), reading each from the cache
    or building it with `build(i)` and storing it there.

    Entries are visited from a per-process starting point; an entry locked by another process is
    left for later, then waited for and read. Without a usable cache folder everything is built here.
    """
    folder = cache_dir()
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            folder = None
    if folder is None or not os.access(folder, os.W_OK):
        for i in range(len(names)):
            yield i, build(i)
        return
    start = os.getpid() % max(len(names), 1)
    later = []
    for i in (*range(start, len(names)), *range(start)):
        with _locked(folder / f"{names[i]}.lock", wait=False) as held:
            if held:
                yield i, _read_or_build(folder / f"{names[i]}.pt", lambda i=i: build(i))
            else:
                later.append(i)
    for i in later:
        with _locked(folder / f"{names[i]}.lock", wait=True):
            yield i, _read_or_build(folder / f"{names[i]}.pt", lambda i=i: build(i))


def checksum(value: Tensor) -> str:
    """blake2b-128 of a tensor's bytes, stored beside it: a flipped byte on disk must never become
    other images (and then checksums of those in a dataset folder) without anyone noticing."""
    data = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
    return hashlib.blake2b(data.tobytes(), digest_size=16).hexdigest()


def _read_or_build(path: Path, build: Callable[[], Tensor]) -> Tensor:
    if path.is_file():
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            if checksum(entry["tensor"]) == entry["blake2b"]:
                return entry["tensor"]
        except Exception:  # unreadable, damaged or of another layout: build it again below
            pass
    value = build()
    try:
        cpu = value.cpu()
        atomic_save({"tensor": cpu, "blake2b": checksum(cpu)}, path)
    except OSError:  # a full or read-only disk only costs the next run the time to build it again
        pass
    return value


@contextmanager
def _locked(path: Path, wait: bool) -> Iterator[bool]:
    """Hold an exclusive lock on `path` (created if needed); yields False when `wait` is False and
    another process holds it."""
    if fcntl is None:
        yield True
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield True  # no lock file possible: build without one (at worst the work is done twice)
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        except OSError:  # a file system without locks: build without one
            pass
        yield True
    finally:
        os.close(fd)  # (releases the lock)
