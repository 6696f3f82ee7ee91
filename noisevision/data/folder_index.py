"""What a dataset folder holds and who is writing it: per-block records, checksums, claims and scans.

Each block folder (train/NNNNN/, BLOCK images; with categories train/<category>/NNNNN/, BLOCK
instances of one category: see `Layout`) keeps, beside its images, an index of their sizes and
checksums, written before the files, and the claims of the writers rendering images into it
now. `scan` tells which images of a range are complete; `claim_missing` hands a writer the images
no live writer holds, block by block. noisevision.data.folder writes the images.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no locks; one writer per folder
    fcntl = None  # type: ignore[assignment]

from noisevision.io import atomic_write_bytes

BLOCK = 1000  # images per sub-folder


# ---------------------------------------------------------------------------------- block bookkeeping
# Each block folder keeps, beside its images (all hidden files, ignored by image loaders):
#   .index.json       size and checksum of every image written there (records before the file: a
#                     file whose record is missing or differs was never finished, or was damaged)
#   .lock             flock'ed for the milliseconds its index, claims or temporary files change
#   .claim-<pid>-...  images a writer renders now; the writer holds an flock on it while it lives,
#                     so a claim left by a killed writer is seen as free (the kernel dropped its lock)
INDEX = ".index.json"
LOCK = ".lock"
CLAIM = ".claim-"
POLL_S = 1.0  # while other writers hold the only images left: seconds between looks

# A file as it was seen when judged to need writing: (inode, size, mtime ns), or None when absent.
# A writer about to claim the image looks again: a changed signature means another writer did it.
Signature = tuple[int, int, int] | None
Items = list[tuple[int, Signature]]  # images to write: (index, signature)

# This process's live claims, path -> indices: known without probing their lock (on NFS, flock is
# emulated with POSIX locks, which never conflict within one process).
_OWN_CLAIMS: dict[Path, list[int]] = {}


def checksum(data: bytes) -> str:
    """The checksum recorded for an image file: blake2b-128 of its bytes, hex."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True)
class Layout:
    """Where the images of one split (train, val) live, in blocks of BLOCK images per folder.

    Without categories block k is images k·BLOCK..(k+1)·BLOCK−1 in `<split>/<k:05d>/`. With C
    categories image i is instance i // C of category i mod C, and a block holds BLOCK instances of
    one category: `<split>/<category>/<instance // BLOCK:05d>/`, the category zero-padded so that
    sorted folder names (ImageFolder's class order) are the category numbers. A block's key is then
    (instance // BLOCK)·C + category: keys in order walk the indices roughly in order. Files are
    always named by their index, `<index:08d>.<format>`.
    """

    split: str = "train"
    num_classes: int = 0

    def class_folder(self, category: int) -> str:
        return f"{category:0{len(str(self.num_classes - 1))}d}"

    def block_of(self, index: int) -> int:
        c = self.num_classes
        return index // BLOCK if not c else (index // c // BLOCK) * c + index % c

    def folder(self, root: Path, block: int) -> Path:
        if not self.num_classes:
            return root / self.split / f"{block:05d}"
        b, category = divmod(block, self.num_classes)
        return root / self.split / self.class_folder(category) / f"{b:05d}"

    def indices(self, block: int, within: range) -> range:
        """The indices of `within` (a step-1 range) that live in `block`, as a range."""
        c = self.num_classes
        if not c:
            return range(max(within.start, block * BLOCK), min(within.stop, (block + 1) * BLOCK))
        b, category = divmod(block, c)
        first = max(b * BLOCK, -(-(within.start - category) // c))  # instances, ceil division
        stop = min((b + 1) * BLOCK, -(-(within.stop - category) // c))
        return range(category + c * first, category + c * max(first, stop), c)

    def blocks(self, within: range) -> Iterator[int]:
        """Keys of the blocks that hold indices of `within`, in order, lazily."""
        if not len(within):
            return
        c = self.num_classes
        first, last = self.block_of(within.start), self.block_of(within.stop - 1)
        for block in range(first - first % c, last - last % c + c) if c else range(first, last + 1):
            if len(self.indices(block, within)):
                yield block

    def blocks_on_disk(self, root: Path) -> list[int]:
        """Keys of the block folders present below `root`'s split folder, sorted."""
        top = root / self.split
        if not self.num_classes:
            return sorted(int(n) for n in _listdir(top) if _is_block(n) and (top / n).is_dir())
        found = []
        for name in _listdir(top):
            if name.isdigit() and int(name) < self.num_classes and name == self.class_folder(int(name)):
                found += [int(n) * self.num_classes + int(name) for n in _listdir(top / name) if _is_block(n)]
        return sorted(b for b in found if self.folder(root, b).is_dir())

    def group(self, index: int, size: int) -> int:
        """The key of the fixed group of `size` images a device renders together that `index`
        belongs to: `size` consecutive indices, or with categories `size` consecutive instances of
        one category (so that a group's images share their category's block folders)."""
        c = self.num_classes
        return index // size if not c else (index // c // size) * c + index % c

    def group_indices(self, group: int, size: int) -> range:
        """The indices of group key `group` (see `group`), in order."""
        if not self.num_classes:
            return range(group * size, (group + 1) * size)
        c = self.num_classes
        g, category = divmod(group, c)
        return range(category + c * g * size, category + c * (g + 1) * size, c)

    def describe(self) -> str:
        """The layout in words, for the manifest."""
        if self.num_classes:
            return f"{self.split}/<category>/<(index // {self.num_classes}) // {BLOCK}>/<index:08d>.<format>"
        return f"{self.split}/<index // {BLOCK}>/<index:08d>.<format>"


TRAIN = Layout()


def _listdir(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _is_block(name: str) -> bool:
    return name.isdigit() and name == f"{int(name):05d}"


def block_folder(root: Path, block: int, layout: Layout = TRAIN) -> Path:
    return layout.folder(root, block)


def _open_to_lock(path: Path, create: bool = False) -> int | None:
    """A descriptor of `path` to flock: read-write, or read-only where this user may not write
    (another user's dataset); None where it cannot be opened at all (a read-only folder)."""
    for flags in (os.O_RDWR | (os.O_CREAT if create else 0), os.O_RDONLY):
        try:
            return os.open(path, flags, 0o666)
        except PermissionError:
            continue
        except OSError:
            return None
    return None


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """The block folder's lock (flock: released by the kernel if its holder dies). Without one (a
    read-only folder, a file system without locks) the block is read as it is."""
    fd = _open_to_lock(folder / LOCK, create=True)
    try:
        if fd is not None and fcntl is not None:
            with suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def read_index(folder: Path) -> dict[str, tuple[int, str]]:
    """A block's records, file name -> (size, checksum); {} when absent or unreadable."""
    return read_index_checked(folder)[0]


def read_index_checked(folder: Path) -> tuple[dict[str, tuple[int, str]], bool]:
    """A block's records and whether its index file is there but damaged. Absent (an older
    version's block), its images count as unrecorded: accepted by presence, rendered again under
    --verify. Damaged, nothing in the block can be trusted: its images are rendered again."""
    try:
        raw = (folder / INDEX).read_bytes()
    except FileNotFoundError:
        return {}, False
    except OSError:
        return {}, True
    try:
        images = json.loads(raw)["images"]
        return {name: (int(size), str(digest)) for name, (size, digest) in images.items()}, False
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}, True


def add_records(folder: Path, records: dict[str, tuple[int, str]]) -> None:
    """Add `records` to the block's index, under its lock: writers of one block never drop each
    other's records. The index is the same bytes for the same images, whoever wrote them."""
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        index = read_index(folder)
        index.update(records)
        body = {"format": 1, "checksum": "blake2b-128", "images": dict(sorted(index.items()))}
        atomic_write_bytes(folder / INDEX, json.dumps(body, separators=(",", ":")).encode(), durable=False)


def _signature(path: Path) -> Signature:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


@dataclass
class Claim:
    """Images this process renders now, and the open, flock'ed claim file that says so."""

    path: Path
    fd: int
    indices: list[int]

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
        _OWN_CLAIMS.pop(self.path, None)
        os.close(self.fd)


def _new_claim(folder: Path, indices: list[int]) -> Claim:
    """A claim file for `indices` (under the block's lock), flock'ed for as long as it is held."""
    path = folder / f"{CLAIM}{os.getpid()}-{indices[0]:08d}-{os.urandom(4).hex()}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    if fcntl is not None:
        with suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "indices": indices}).encode())
    _OWN_CLAIMS[path] = indices
    return Claim(path, fd, indices)


def _claimed(folder: Path, names: list[str]) -> set[int]:
    """Indices in the claims of live writers, this process's included (under the block's lock);
    claims whose writer died are removed."""
    taken: set[int] = set()
    for name in names:
        if not name.startswith(CLAIM):
            continue
        path = folder / name
        if path in _OWN_CLAIMS:
            taken.update(_OWN_CLAIMS[path])
            continue
        fd = _open_to_lock(path)
        if fd is None:  # gone since the listing
            continue
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:  # its writer holds it: alive
                    with suppress(ValueError, KeyError, TypeError):
                        taken.update(json.loads(os.pread(fd, 1 << 20, 0))["indices"])
                    continue
                except OSError:
                    pass
            path.unlink(missing_ok=True)  # its writer is gone
        finally:
            os.close(fd)
    return taken


def _temporary_index(name: str) -> int | None:
    """The image index of a temporary file atomic_write_bytes left, e.g. '.00000007.jpg.x1y2.tmp'."""
    digits = name[1:].split(".", 1)[0]
    return int(digits) if name.startswith(".") and name.endswith(".tmp") and digits.isdigit() else None


def _remove_orphans(folder: Path, names: list[str], wanted: Container[int], taken: set[int]) -> None:
    """Temporary files of the `wanted` images that no live writer claims (`taken`), and of the
    index, under the block's lock: left by killed writers. A live writer's temporary image files
    are always under its claim, and its index writes under the lock."""
    for name in names:
        if name.endswith(".tmp"):
            i = _temporary_index(name)
            if (i is not None and i in wanted and i not in taken) or name.startswith(f".{INDEX}."):
                (folder / name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------- what is there
@dataclass
class Scan:
    """What a dataset folder holds of `indices`: counts, and for every block folder on disk the
    images still to (re)write with the signature they were found with. Blocks without a folder are
    wholly missing and are not stored: a range stays a range whatever its length."""

    indices: range
    layout: Layout = TRAIN
    present: int = 0
    damaged: int = 0  # there, but the size (or with verify, the checksum) differs from the record
    unrecorded: int = 0  # there without a record (older versions): accepted unless verify
    unverifiable: int = 0  # the same under verify: rendered again, which records them
    untrusted: int = 0  # in a block whose index file is damaged: rendered again
    redo: dict[int, dict[int, Signature]] = field(default_factory=dict)  # block -> {index: signature}

    @property
    def missing(self) -> int:
        """Images of `indices` to write (absent or failed a check)."""
        return len(self.indices) - self.present

    def todo(self) -> Iterator[tuple[int, Items]]:
        """(block, [(index, signature)]) for every block with images to write, in order, lazily."""
        for block in self.layout.blocks(self.indices):
            if block in self.redo:
                items = sorted(self.redo[block].items())
            else:
                items = [(i, None) for i in self.layout.indices(block, self.indices)]
            if items:
                yield block, items

    def notes(self) -> list[str]:
        """What the scan found beyond present/absent, in words."""

        def images(n: int, verb: str) -> str:
            return f"{n} image {verb}s" if n == 1 else f"{n} images {verb}"

        notes = []
        if self.damaged:
            notes.append(
                f"{images(self.damaged, 'differ')} from the record (size or checksum): rendering again"
            )
        if self.unverifiable:
            notes.append(
                f"{images(self.unverifiable, 'lack')} a recorded checksum (written by an older "
                "version): rendering again to verify"
            )
        if self.untrusted:
            notes.append(
                f"{images(self.untrusted, 'sit')} in blocks whose record file ({INDEX}) is damaged: "
                "rendering again"
            )
        if self.unrecorded:
            notes.append(
                f"{images(self.unrecorded, 'lack')} a recorded checksum (written by an older "
                "version): counted as present; --verify renders them again"
            )
        return notes


def scan(
    root: Path, indices: range, fmt: str, verify: bool = False, clean: bool = True, layout: Layout = TRAIN
) -> Scan:
    """Which images of `indices` are complete: present with the size their record gives (and with
    `verify`, the same checksum: the whole files are read). `clean`: remove temporary files those
    images' killed writers left (never a live writer's: see `_remove_orphans`)."""
    result = Scan(indices, layout)
    if not len(indices):
        return result
    for block in layout.blocks_on_disk(root):
        if len(layout.indices(block, indices)):
            result.redo[block] = _scan_block(result, layout.folder(root, block), block, fmt, verify, clean)
    return result


def _scan_block(
    result: Scan, folder: Path, block: int, fmt: str, verify: bool, clean: bool
) -> dict[int, Signature]:
    mine = result.layout.indices(block, result.indices)
    with _locked(folder):
        names = os.listdir(folder)
        if clean:
            _remove_orphans(folder, names, mine, _claimed(folder, names))
        index, damaged_index = read_index_checked(folder)
    there = set(names)
    redo: dict[int, Signature] = {}
    for i in mine:
        name = f"{i:08d}.{fmt}"
        path = folder / name
        try:
            st = path.stat() if name in there else None
        except FileNotFoundError:
            st = None
        if st is None:
            redo[i] = None
            continue
        record = index.get(name)
        if damaged_index:
            ok = False
            result.untrusted += 1
        elif record is None and not verify:
            ok = st.st_size > 0
            result.unrecorded += ok
        elif record is None:
            ok = False
            result.unverifiable += 1
        else:
            ok = st.st_size == record[0] and (not verify or _checksum_of(path) == record[1])
            result.damaged += not ok
        if ok:
            result.present += 1
        else:
            redo[i] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return redo


def _checksum_of(path: Path) -> str | None:
    try:
        return checksum(path.read_bytes())
    except OSError:
        return None


def missing_indices(
    root: Path, indices: range, fmt: str, clean: bool = True, layout: Layout = TRAIN
) -> list[int]:
    """Indices of `indices` without a complete file, as a list (for small ranges; `scan` keeps
    large ones lazy). `clean`: remove those indices' temporary files that no live writer owns."""
    found = scan(root, indices, fmt, clean=clean, layout=layout)
    return sorted(i for _, items in found.todo() for i, _ in items)


def wait_until_complete(
    root: Path,
    indices: range,
    fmt: str,
    on_wait: Callable[[int], None] | None = None,
    poll_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    layout: Layout = TRAIN,
) -> float:
    """Block until every image of `indices` is in `root`, e.g. while other shard writers finish
    theirs; `on_wait(count missing)` once before the first wait. Returns the seconds waited."""
    start = time.perf_counter()
    missing = scan(root, indices, fmt, clean=False, layout=layout).missing
    if missing and on_wait:
        on_wait(missing)
    while missing:
        sleep(poll_s)
        missing = scan(root, indices, fmt, clean=False, layout=layout).missing
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------- claiming work
def _claim_some(
    folder: Path, fmt: str, items: Items, size: int, align: int | None, layout: Layout = TRAIN
) -> tuple[Claim | None, Items, Items, int]:
    """Under the block's lock, claim up to `size` of `items` (in order; with `align`, all in one
    aligned group of indices, `Layout.group`). Returns (the claim or None, the items not looked at
    yet, the items other live writers hold, how many items other writers have finished since the
    scan)."""
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        names = os.listdir(folder)
        taken = _claimed(folder, names)
        chosen: list[int] = []
        held: Items = []
        done_by_others, k = 0, 0
        while k < len(items) and len(chosen) < size:
            i, seen = items[k]
            if align and chosen and layout.group(i, align) != layout.group(chosen[0], align):
                break
            k += 1
            if i in taken:
                held.append((i, seen))
            elif _signature(folder / f"{i:08d}.{fmt}") != seen:
                done_by_others += 1
            else:
                chosen.append(i)
        claim = None
        if chosen:
            claim = _new_claim(folder, chosen)
            _remove_orphans(folder, names, set(chosen), set())
    return claim, items[k:], held, done_by_others


def claim_missing(
    root: Path,
    fmt: str,
    found: Scan,
    size: int,
    align: int | None = None,
    on_others: Callable[[int], None] = lambda n: None,
    on_wait: Callable[[int], None] = lambda n: None,
) -> Iterator[Claim | None]:
    """Claim the images still to write, `size` at a time, block by block (lazily: a range of 10^14
    indices costs nothing up front). Images another live writer holds are left to it and looked at
    again at the end: when nothing else is left this yields None (the caller then waits a moment on
    its own work) until that writer has finished them, or died and left them to this one.
    `on_others(n)`: n images turned out written by other writers; `on_wait(n)`: once, before waiting
    for n images other writers hold."""
    held: dict[int, Items] = {}

    def claim_all(block: int, items: Items) -> Iterator[Claim]:
        folder = found.layout.folder(root, block)
        while items:
            claim, items, theirs, others = _claim_some(folder, fmt, items, size, align, found.layout)
            held.setdefault(block, []).extend(theirs)
            if others:
                on_others(others)
            if claim is not None:
                yield claim

    for block, items in found.todo():
        yield from claim_all(block, items)
    told = False
    while held := {b: items for b, items in held.items() if items}:
        if not told:
            on_wait(sum(len(items) for items in held.values()))
            told = True
        yield None
        for block in list(held):
            yield from claim_all(block, held.pop(block))
