"""Writing generated datasets to disk: `noisevision generate`.

Layout (readable by torchvision's ImageFolder and the paper's training code):

    DIR/noisevision.json            manifest: generator, parameters, seed, resolution, count, version
    DIR/train/00000/00000000.jpg    image 0, in blocks of 1000 images per folder
    DIR/train/00000/.index.json     size and blake2b checksum of every image of the block
    DIR/train/00001/00001000.jpg    ...
    DIR/val/...                     with --val-images M: images N..N+M-1 after the N training ones

A generator with C categories (formula-driven supervised learning) writes one folder per
category, so that `torchvision.datasets.ImageFolder(DIR/train)` reads the labels: image i
(category i mod C, instance i // C) is DIR/train/<category>/<instance // 1000>/<index>.jpg, the
category zero-padded (000..999 for C = 1000) so that ImageFolder's sorted class order is the
category number (folder_index.Layout). Indices interleave the categories, so any count of training
or validation images is class balanced to within one image.

Every file is written atomically (temporary name + rename), its record first, so a killed run never
leaves a truncated image; running the same command again writes only the missing images, and
renders again those whose size differs from their record (with `--verify`, whose checksum does).
Several processes or machines can fill one folder at once, with disjoint `--shard K/N` ranges or
not: each claims the images it renders (a claim file it holds an flock on), so no image is rendered
twice and a temporary file is only ever removed when no live writer owns it. The records and
claims are kept by noisevision.data.folder_index; this module writes the images.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from PIL import Image

import noisevision
from noisevision import generators
from noisevision.data.folder_index import (  # noqa: F401 (the whole folder API importable from here)
    BLOCK,
    CLAIM,
    INDEX,
    POLL_S,
    TRAIN,
    Claim,
    Layout,
    Scan,
    add_records,
    block_folder,
    checksum,
    claim_missing,
    missing_indices,
    read_index,
    scan,
    wait_until_complete,
)
from noisevision.device import cpu_code_path, env_count
from noisevision.errors import FieldError, NoisevisionError
from noisevision.io import atomic_write_bytes
from noisevision.logs import get_logger
from noisevision.memory import keep_freed_memory
from noisevision.rng import check_seed
from noisevision.stopping import die_with_parent, ignore_stop_signals

log = get_logger(__name__)
MANIFEST = "noisevision.json"
FORMATS = {"jpg": "JPEG", "png": "PNG"}


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset folder holds; the manifest is this plus bookkeeping."""

    generator: str
    params: dict[str, Any]
    seed: int
    res: int
    num: int
    format: str = "jpg"
    quality: int = 95
    val: int = 0  # validation images: indices num..num+val-1, written to DIR/val/
    num_classes: int | None = None  # the generator's categories; None: ask the generator

    def __post_init__(self) -> None:
        check_seed(self.seed)
        if isinstance(self.val, bool) or not isinstance(self.val, int) or self.val < 0:
            raise FieldError("val", f"{{field}} must be 0 or more images, got {self.val!r}")
        if self.num_classes is None:
            classes = generators.get(self.generator, **self.params).num_classes
            object.__setattr__(self, "num_classes", classes)

    def identity(self) -> dict[str, Any]:
        """Fields that must agree for two runs to write into the same folder (not the counts)."""
        d = asdict(self)
        d.pop("num")
        d.pop("val")
        return json.loads(json.dumps(d))  # normalise tuples -> lists as in the JSON file

    def layout(self, split: str = "train") -> Layout:
        return Layout(split, self.num_classes or 0)

    def val_indices(self) -> range:
        """The validation images: the `val` indices after the training ones."""
        return range(self.num, self.num + self.val)


# What a manifest without a field (an older version's) means by it.
MANIFEST_DEFAULTS: dict[str, Any] = {"num_classes": 0, "val": 0}


def image_path(root: Path, index: int, fmt: str, layout: Layout = TRAIN) -> Path:
    return layout.folder(root, layout.block_of(index)) / f"{index:08d}.{fmt}"


def shard_range(num: int, shard: int, num_shards: int) -> range:
    """Contiguous share `shard` (0-based) of indices 0..num-1 split into `num_shards` parts."""
    if not 0 <= shard < num_shards:
        raise NoisevisionError(f"shard {shard + 1}/{num_shards} does not exist: use K/N with 1 <= K <= N")
    lo, hi = num * shard // num_shards, num * (shard + 1) // num_shards
    return range(lo, hi)


def parse_shard(text: str | None) -> tuple[int, int]:
    """'K/N' (1-based K) -> (K-1, N); None -> torchrun's RANK/WORLD_SIZE, or the whole range."""
    if text is None:
        return env_count("RANK", 0), env_count("WORLD_SIZE", 1, minimum=1)
    try:
        k, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise FieldError("shard", f"bad {{field}} '{text}': write K/N, e.g. 2/8") from None
    if n < 1 or not 1 <= k <= n:
        raise FieldError("shard", f"bad {{field}} '{text}': need 1 <= K <= N")
    return k - 1, n


# ---------------------------------------------------------------------------------- manifest
def read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise NoisevisionError(f"{path} is unreadable ({exc}): move the folder away or fix it") from exc


def prepare_folder(
    root: Path, spec: DatasetSpec, device: str | None = None, allow_other_cpu: bool = False
) -> str | None:
    """Create or validate `root` for `spec`; refuse foreign folders and other generators/seeds.

    The manifest lists the device types that rendered into the folder (`device`, e.g. "cuda:0").
    Returns a note when this one is new to a folder rendered elsewhere: a GPU's images can differ
    from the CPU's by rounding, so the folder would mix the two. It also lists the CPU code paths
    (`device.cpu_code_path`) that rendered into it: a CPU of another path is refused, unless
    `allow_other_cpu`, for generators that are not `portable`, whose last bits can differ there."""
    if root.exists() and not root.is_dir():
        raise NoisevisionError(f"output '{root}' exists and is not a folder: choose another --out")
    manifest = read_manifest(root) if root.exists() else None
    if manifest is None and root.exists() and any(p for p in root.iterdir() if not p.name.startswith(".")):
        manifest = read_manifest(root)  # a writer starting beside this one may have just made it
        if manifest is None:
            raise NoisevisionError(
                f"output folder '{root}' is not empty and is not a noisevision dataset: "
                "choose an empty or new --out"
            )
    if manifest is not None:
        theirs = {k: manifest.get(k, MANIFEST_DEFAULTS.get(k)) for k in spec.identity()}
        if theirs != spec.identity():
            diff = ", ".join(
                f"{k}={theirs[k]!r} there vs {v!r} asked"
                for k, v in spec.identity().items()
                if theirs[k] != v
            )
            raise NoisevisionError(
                f"'{root}' holds another dataset ({diff}): use a new --out or the same settings"
            )
        _check_splits(root, spec, manifest)
    kind = str(device).split(":")[0] if device is not None else None
    cpu_paths = list((manifest or {}).get("cpu_paths", []))
    if kind == "cpu" and (here := cpu_code_path()) not in cpu_paths:
        if cpu_paths and not allow_other_cpu and not generators.get(spec.generator, **spec.params).portable:
            raise NoisevisionError(
                f"'{root}' was rendered by CPUs of another code path ({'; '.join(cpu_paths)}) than this one "
                f"({here}), where {spec.generator}'s images can differ in last bits: finish it on such a "
                "CPU, or pass --allow-other-cpu to mix the two"
            )
        cpu_paths.append(here)
    devices = sorted(set((manifest or {}).get("devices", [])) | ({kind} if kind else set()))
    before = [d for d in devices if d != kind]
    note = None
    if kind and before and kind not in (manifest or {}).get("devices", []):
        note = (
            f"{root}'s images so far were rendered on {', '.join(before)}; these on {kind}: its "
            "bytes may differ by rounding (--device to keep one)"
        )
    try:
        num = max(spec.num, manifest["num"]) if manifest else spec.num
        val = max(spec.val, (manifest or {}).get("val", 0))
        layout = spec.layout()
        body = {
            **asdict(spec),
            "num": num,
            "val": val,
            "devices": devices,
            "cpu_paths": cpu_paths,
            "version": noisevision.__version__,
            "layout": layout.describe(),
            "checksums": f"{layout.describe().rsplit('/', 1)[0]}/{INDEX}: [size, blake2b-128] per image",
        }
        if val:
            body["val_layout"] = f"{spec.layout('val').describe()}, indices {num}..{num + val - 1}"
        # The manifest before train/: a shard writer starting beside this one then never sees a
        # non-empty folder without a manifest (which it would refuse as foreign).
        atomic_write_bytes(root / MANIFEST, (json.dumps(body, indent=2) + "\n").encode())
        for split in ("train", "val") if val else ("train",):
            (root / split).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NoisevisionError(f"cannot write to '{root}': {exc.strerror or exc}") from exc
    return note


def _check_splits(root: Path, spec: DatasetSpec, manifest: dict[str, Any]) -> None:
    """Validation images are the indices right after the training ones: refuse a run that would
    train on the folder's validation images, or validate on its training images."""
    there, there_val = int(manifest["num"]), int(manifest.get("val", MANIFEST_DEFAULTS["val"]))
    if there_val and spec.num > there:
        raise NoisevisionError(
            f"'{root}' holds validation images {there}..{there + there_val - 1}, which --num-images "
            f"{spec.num} would train on: keep --num-images {there} or use a new --out"
        )
    if spec.val and spec.num < there:
        raise NoisevisionError(
            f"'{root}' holds {there} training images, which validation images from {spec.num} on would "
            f"repeat: use --num-images {there} with --val-images, or a new --out"
        )


# ---------------------------------------------------------------------------------- writing
def encode(image: torch.Tensor, fmt: str, quality: int) -> bytes:
    """uint8 [3, H, W] -> JPEG/PNG bytes."""
    pil = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    buf = io.BytesIO()
    if fmt == "jpg":
        pil.save(buf, "JPEG", quality=quality)
    else:
        pil.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _commit(
    root: Path,
    spec: DatasetSpec,
    indices: list[int],
    blobs: list[bytes],
    map_: Callable[..., Iterable[Any]] = map,
    layout: Layout = TRAIN,
) -> None:
    """Record the images' sizes and checksums in their blocks' indexes, then write the files
    atomically (not fsynced: see noisevision.io). In that order, a file whose record is missing or
    differs is one a killed run never finished, and a resume renders it again."""
    by_block: dict[int, dict[str, tuple[int, str]]] = {}
    for i, data in zip(indices, blobs):
        by_block.setdefault(layout.block_of(i), {})[f"{i:08d}.{spec.format}"] = (len(data), checksum(data))
    for block, records in by_block.items():
        add_records(layout.folder(root, block), records)

    def write(item: tuple[int, bytes]) -> None:
        atomic_write_bytes(image_path(root, item[0], spec.format, layout), item[1], durable=False)

    for _ in map_(write, zip(indices, blobs)):
        pass


# A worker process's generators, kept across its tasks: what a generator builds once (e.g.
# dead_leaves-textures' texture bank) is then built once per worker, not per task.
_WORKER_GENERATORS: dict[str, Any] = {}


def _render_and_write(
    root: str, spec: DatasetSpec, indices: list[int], device: str, split: str = "train"
) -> int:
    """Worker task: render `indices` with one thread, write them. Returns the count written."""
    from noisevision import generators

    torch.set_num_threads(1)
    key = json.dumps([spec.generator, spec.params], sort_keys=True, default=repr)
    if key not in _WORKER_GENERATORS:
        _WORKER_GENERATORS[key] = generators.get(spec.generator, **spec.params)
    images = _WORKER_GENERATORS[key](indices, res=spec.res, seed=spec.seed, device=device).cpu()
    blobs = [encode(img, spec.format, spec.quality) for img in images]
    _commit(Path(root), spec, indices, blobs, layout=spec.layout(split))
    return len(indices)


def _init_worker(parent: int) -> None:
    """A writer process: stop signals are the parent's to handle (it lets the tasks in flight
    finish), and the process ends with its parent (Linux: the kernel kills it; a parent that died
    while this one started, before it could ask, is noticed here)."""
    keep_freed_memory()
    ignore_stop_signals()
    die_with_parent(parent)


def write_dataset(
    root: Path,
    spec: DatasetSpec,
    indices: range,
    device: torch.device,
    workers: int,
    batch_size: int,
    on_progress: Callable[[int], None] | None = None,
    verify: bool = False,
    allow_other_cpu: bool = False,
    split: str = "train",
) -> int:
    """Write the images of `indices` that are missing or damaged into `root`'s `split` folder
    (train, or val for `spec.val_indices()`); returns how many this process wrote
    (`allow_other_cpu`: see `prepare_folder`).

    A resume checks each image's size against its record (`verify`: its checksum, reading every
    file) and renders the damaged ones again. Several processes may write into one folder at once
    (shards, or the same command twice): each claims the images it renders, so none is rendered
    twice, and a writer whose range others hold waits for them, or takes over if they die.

    CPU: `workers` processes each render and encode whole batches (one torch thread each).
    CUDA: this process renders on the GPU, always in the generator's fixed blocks of indices
    (`Generator.device_block`), and a thread pool encodes (PIL releases the GIL).
    `on_progress(n)`: first the images already there, then n more done (by this or another writer).
    """
    _check_not_starting_a_worker()
    prepare_folder(root, spec, str(device), allow_other_cpu)
    if verify:
        log.info(f"reading the images already in {root} to check them against their checksums")
    found = scan(root, indices, spec.format, verify=verify, layout=spec.layout(split))
    for note in found.notes():
        log.info(note)
    if on_progress:
        on_progress(found.present)
    if not found.missing:
        return 0
    try:
        return _write_missing(root, spec, found, device, workers, batch_size, on_progress, split)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise NoisevisionError(
            f"{root}: the disk is full; free some space and run the same command again (it resumes)"
        ) from exc


def _write_missing(
    root: Path,
    spec: DatasetSpec,
    found: Scan,
    device: torch.device,
    workers: int,
    batch_size: int,
    on_progress: Callable[[int], None] | None,
    split: str = "train",
) -> int:
    written = 0
    layout = spec.layout(split)

    def done_with(indices: list[int], count: int) -> None:
        nonlocal written
        if not written:  # the first images written tell how much room the rest needs
            check_free_space(root, spec, indices, found.missing - count, layout)
        written += count
        if on_progress:
            on_progress(count)

    def waiting(n: int) -> None:
        log.info(f"waiting for {n} images that another process is writing into {root}")

    on_others = on_progress or (lambda n: None)
    if device.type == "cpu" and workers > 1 and found.missing > batch_size:  # (one batch: no start-up)
        work = claim_missing(root, spec.format, found, batch_size, None, on_others, waiting)
        _write_with_workers(root, spec, work, workers, done_with, split)
        return written

    from noisevision import generators

    gen = generators.get(spec.generator, **spec.params)
    # GPU kernels may round by batch shape: always render the same groups of indices there
    # (consecutive indices, or consecutive instances of one category: Layout.group)
    align = None if device.type == "cpu" else gen.device_block(spec.res)
    if align and layout.num_classes and gen.batch_invariant(device):
        # A category's group is `align` of its instances, often more than a dataset has of each:
        # where the batch cannot change the bytes, render just the images claimed.
        align = None
    work = claim_missing(root, spec.format, found, align or batch_size, align, on_others, waiting)
    last: tuple[list[int], torch.Tensor] | None = None  # a block a claim in another folder shares
    with ThreadPoolExecutor(max(workers, 1)) as pool:
        for claim in work:
            if claim is None:
                time.sleep(POLL_S)
                continue
            try:
                if align is None:
                    images = gen(claim.indices, res=spec.res, seed=spec.seed, device=device).cpu()
                else:
                    ((block, _),) = _aligned_blocks(claim.indices, align, layout)
                    if last is None or last[0] != block:
                        last = block, gen(block, res=spec.res, seed=spec.seed, device=device).cpu()
                    step = layout.num_classes or 1  # a group's indices: block[0] + step·k
                    images = last[1][[(i - block[0]) // step for i in claim.indices]]
                blobs = list(pool.map(lambda img: encode(img, spec.format, spec.quality), images))
                _commit(root, spec, claim.indices, blobs, pool.map, layout)
            finally:
                claim.release()
            done_with(claim.indices, len(claim.indices))
    return written


def _check_not_starting_a_worker() -> None:
    """A worker process runs an unguarded script's top level again while it starts: refuse at once
    (it would otherwise wait for the images its parent claimed, and the parent for it)."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise NoisevisionError(
            "noisevision was called while a worker process was starting: put the "
            'script\'s calls under `if __name__ == "__main__":`'
        )


def _script_hint() -> str:
    """Run from a script (not `python -m`), spawned workers import it again: without a main guard
    they re-run it and die at once. Say so, since the worker's own error never reaches here."""
    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None and hasattr(main, "__file__"):
        return (
            ' (a script that calls noisevision must run it under `if __name__ == "__main__":`: '
            "worker processes import the script)"
        )
    return ""


def _write_with_workers(
    root: Path,
    spec: DatasetSpec,
    work: Iterator[Claim | None],
    workers: int,
    done_with: Callable[[list[int], int], None],
    split: str = "train",
) -> None:
    """The claims of `work` rendered by `workers` processes, at most 2 tasks per worker in flight."""
    ctx = get_context("spawn")  # fork after torch threads start is unsafe
    pending: dict[Future[int], Claim] = {}

    def finish(futures: Iterable[Future[int]]) -> None:
        for f in futures:
            claim = pending.pop(f)
            try:
                count = f.result()
            finally:
                claim.release()
            done_with(claim.indices, count)

    init = (os.getpid(),)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init) as pool:
        try:
            for claim in work:
                if claim is None:  # the rest is other writers': wait on our own tasks, or a moment
                    if pending:
                        finish(wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)[0])
                    else:
                        time.sleep(POLL_S)
                    continue
                pending[pool.submit(_render_and_write, str(root), spec, claim.indices, "cpu", split)] = claim
                while len(pending) >= 2 * workers:
                    finish(wait(pending, return_when=FIRST_COMPLETED)[0])
            while pending:
                finish(wait(pending, return_when=FIRST_COMPLETED)[0])
        except BrokenProcessPool:
            cause = _end_workers(pool)
            raise NoisevisionError(
                f"a worker process died ({cause}); the images finished so far are kept: run the same "
                f"command again to resume{_script_hint()}"
            ) from None
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # finish in-flight files, start no more
            raise
        finally:
            for claim in pending.values():
                claim.release()


def _end_workers(pool: ProcessPoolExecutor) -> str:
    """Kill a broken pool's remaining workers (they ignore SIGTERM, which the pool sends them);
    returns how the first dead one ended, in words."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    deadline = time.monotonic() + 1.0  # the pool notices a death (its pipe closing) a moment before
    while not (ended := [p.exitcode for p in processes if p.exitcode is not None]):  # it can be reaped
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    for p in processes:
        if p.exitcode is None:
            p.kill()
    if not ended:
        return "it ended without an exit status"
    code = ended[0]
    if code < 0:
        with suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"


def _aligned_blocks(
    todo: list[int], size: int, layout: Layout = TRAIN
) -> Iterator[tuple[list[int], list[int]]]:
    """(block, its indices in `todo`) for every group of `size` indices (`Layout.group`: [k·size,
    (k+1)·size), or with categories `size` consecutive instances of one) that holds some of `todo`:
    rendering whole fixed groups makes each image's batch the same at any batch size, worker
    count, shard or restart."""
    blocks: dict[int, list[int]] = {}
    for i in todo:
        blocks.setdefault(layout.group(i, size), []).append(i)
    for k, chunk in blocks.items():
        yield list(layout.group_indices(k, size)), chunk


def check_free_space(
    root: Path, spec: DatasetSpec, written: list[int], remaining: int, layout: Layout = TRAIN
) -> None:
    """Stop in one clear line, before the disk fills up, when `remaining` images would not fit.

    An image's size is measured on images just written (JPEG sizes depend on the generator).
    """
    paths = [image_path(root, i, spec.format, layout) for i in written[:64]]
    sizes = [p.stat().st_size for p in paths if p.is_file()]
    if not sizes or remaining <= 0:
        return
    need = remaining * sum(sizes) / len(sizes) * 1.02 + 2**26  # + room for folders and temporaries
    free = shutil.disk_usage(root).free
    if need > free:
        raise NoisevisionError(
            f"{root}: the {remaining} images still to write need about {need / 1e9:.1f} GB, but "
            f"{free / 1e9:.1f} GB are free; free some space (or write a --shard elsewhere) and run the "
            "same command again: it resumes"
        )
