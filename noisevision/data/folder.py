"""Writing generated datasets to disk: `noisevision generate`.

Layout (readable by torchvision's ImageFolder and the paper's training code):

    DIR/noisevision.json            manifest: generator, parameters, seed, resolution, count, version
    DIR/train/00000/00000000.jpg    image 0, in blocks of 1000 images per folder
    DIR/train/00001/00001000.jpg    ...

Every file is written atomically (temporary name + rename), so a killed run never leaves a truncated
image; running the same command again writes only the missing images. Several processes or machines
can fill one folder at once with disjoint `--shard K/N` ranges.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from PIL import Image

import noisevision
from noisevision.errors import NoisevisionError
from noisevision.io import atomic_write_bytes
from noisevision.memory import keep_freed_memory
from noisevision.stopping import die_with_parent, ignore_stop_signals

MANIFEST = "noisevision.json"
BLOCK = 1000  # images per sub-folder
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

    def identity(self) -> dict[str, Any]:
        """Fields that must agree for two runs to write into the same folder (not `num`)."""
        d = asdict(self)
        d.pop("num")
        return json.loads(json.dumps(d))  # normalise tuples -> lists as in the JSON file


def image_path(root: Path, index: int, fmt: str) -> Path:
    return root / "train" / f"{index // BLOCK:05d}" / f"{index:08d}.{fmt}"


def shard_range(num: int, shard: int, num_shards: int) -> range:
    """Contiguous share `shard` (0-based) of indices 0..num-1 split into `num_shards` parts."""
    if not 0 <= shard < num_shards:
        raise NoisevisionError(f"shard {shard + 1}/{num_shards} does not exist: use K/N with 1 <= K <= N")
    lo, hi = num * shard // num_shards, num * (shard + 1) // num_shards
    return range(lo, hi)


def parse_shard(text: str | None) -> tuple[int, int]:
    """'K/N' (1-based K) -> (K-1, N); None -> torchrun's RANK/WORLD_SIZE, or the whole range."""
    if text is None:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    try:
        k, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise NoisevisionError(f"bad --shard '{text}': write K/N, e.g. 2/8") from None
    if n < 1 or not 1 <= k <= n:
        raise NoisevisionError(f"bad --shard '{text}': need 1 <= K <= N")
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


def prepare_folder(root: Path, spec: DatasetSpec) -> None:
    """Create or validate `root` for `spec`; refuse foreign folders and other generators/seeds."""
    if root.exists() and not root.is_dir():
        raise NoisevisionError(f"output '{root}' exists and is not a folder: choose another --out")
    manifest = read_manifest(root) if root.exists() else None
    if manifest is None:
        if root.exists() and any(p for p in root.iterdir() if not p.name.startswith(".")):
            raise NoisevisionError(
                f"output folder '{root}' is not empty and is not a noisevision dataset: "
                "choose an empty or new --out"
            )
    else:
        theirs = {k: manifest.get(k) for k in spec.identity()}
        if theirs != spec.identity():
            diff = ", ".join(
                f"{k}={theirs[k]!r} there vs {v!r} asked"
                for k, v in spec.identity().items()
                if theirs[k] != v
            )
            raise NoisevisionError(
                f"'{root}' holds another dataset ({diff}): use a new --out or the same settings"
            )
    try:
        num = max(spec.num, manifest["num"]) if manifest else spec.num
        body = {
            **asdict(spec),
            "num": num,
            "version": noisevision.__version__,
            "layout": "train/<index // 1000>/<index:08d>.<format>",
        }
        # The manifest before train/: a shard writer starting beside this one then never sees a
        # non-empty folder without a manifest (which it would refuse as foreign).
        atomic_write_bytes(root / MANIFEST, (json.dumps(body, indent=2) + "\n").encode())
        (root / "train").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NoisevisionError(f"cannot write to '{root}': {exc.strerror or exc}") from exc


def _temporary_index(name: str) -> int | None:
    """The image index of a temporary file atomic_write_bytes left, e.g. '.00000007.jpg.x1y2.tmp'."""
    digits = name[1:9]
    return int(digits) if name.startswith(".") and digits.isdigit() else None


def missing_indices(root: Path, indices: range, fmt: str, clean: bool = True) -> list[int]:
    """Indices of `indices` without a complete file. `clean`: remove the leftover temporary files
    of those indices (never others: a shard writer beside this one may be writing them)."""
    missing = []
    for block in range(indices.start // BLOCK, (max(indices.stop, 1) - 1) // BLOCK + 1):
        folder = root / "train" / f"{block:05d}"
        present: set[str] = set()
        if folder.is_dir():
            for name in os.listdir(folder):
                if not name.endswith(".tmp"):
                    present.add(name)
                elif clean and _temporary_index(name) in indices:
                    (folder / name).unlink(missing_ok=True)
        lo, hi = max(indices.start, block * BLOCK), min(indices.stop, (block + 1) * BLOCK)
        missing.extend(i for i in range(lo, hi) if f"{i:08d}.{fmt}" not in present)
    return missing


def wait_until_complete(
    root: Path,
    indices: range,
    fmt: str,
    on_wait: Callable[[int], None] | None = None,
    poll_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Block until every image of `indices` is in `root`, e.g. while other shard writers finish
    theirs; `on_wait(count missing)` once before the first wait. Returns the seconds waited."""
    start = time.perf_counter()
    missing = missing_indices(root, indices, fmt, clean=False)
    if missing and on_wait:
        on_wait(len(missing))
    while missing:
        sleep(poll_s)
        missing = missing_indices(root, indices, fmt, clean=False)
    return time.perf_counter() - start


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


def write_image(root: Path, spec: DatasetSpec, index: int, image: torch.Tensor) -> None:
    """Image `index` (uint8 [3, H, W]) to its file, atomically (not fsynced: see noisevision.io)."""
    data = encode(image, spec.format, spec.quality)
    atomic_write_bytes(image_path(root, index, spec.format), data, durable=False)


# A worker process's generators, kept across its tasks: what a generator builds once (e.g.
# dead_leaves-textures' texture bank) is then built once per worker, not per task.
_WORKER_GENERATORS: dict[str, Any] = {}


def _render_and_write(root: str, spec: DatasetSpec, indices: list[int], device: str) -> int:
    """Worker task: render `indices` with one thread, write them. Returns the count written."""
    from noisevision import generators

    torch.set_num_threads(1)
    key = json.dumps([spec.generator, spec.params], sort_keys=True, default=repr)
    if key not in _WORKER_GENERATORS:
        _WORKER_GENERATORS[key] = generators.get(spec.generator, **spec.params)
    images = _WORKER_GENERATORS[key](indices, res=spec.res, seed=spec.seed, device=device).cpu()
    for i, img in zip(indices, images):
        write_image(Path(root), spec, i, img)
    return len(indices)


def _init_worker() -> None:
    """A writer process: stop signals are the parent's to handle (it lets the tasks in flight
    finish), and the process ends with its parent (Linux), never left running on its own."""
    keep_freed_memory()
    ignore_stop_signals()
    die_with_parent()


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write_dataset(
    root: Path,
    spec: DatasetSpec,
    indices: range,
    device: torch.device,
    workers: int,
    batch_size: int,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Write the missing images of `indices` into `root`; returns how many were written.

    CPU: `workers` processes each render and encode whole batches (one torch thread each).
    CUDA: this process renders on the GPU, always in the generator's fixed blocks of indices
    (`Generator.device_block`), and a thread pool encodes (PIL releases the GIL).
    """
    prepare_folder(root, spec)
    todo = missing_indices(root, indices, spec.format)
    if on_progress:
        on_progress(len(indices) - len(todo))  # already present
    if not todo:
        return 0
    try:
        return _write_missing(root, spec, todo, device, workers, batch_size, on_progress)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise NoisevisionError(
            f"{root}: the disk is full; free some space and run the same command again (it resumes)"
        ) from exc


def _write_missing(
    root: Path,
    spec: DatasetSpec,
    todo: list[int],
    device: torch.device,
    workers: int,
    batch_size: int,
    on_progress: Callable[[int], None] | None,
) -> int:
    written = 0

    def done_with(chunk: list[int], count: int) -> None:
        nonlocal written
        if not written:  # the first images written tell how much room the rest needs
            check_free_space(root, spec, chunk, len(todo) - count)
        written += count
        if on_progress:
            on_progress(count)

    if device.type == "cpu" and workers > 1 and len(todo) > batch_size:  # (one batch: no worker start-up)
        ctx = get_context("spawn")  # fork after torch threads start is unsafe
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
            try:
                pending: dict[Future[int], list[int]] = {}
                for chunk in _chunks(todo, batch_size):  # keep at most 2 tasks per worker in flight
                    pending[pool.submit(_render_and_write, str(root), spec, chunk, "cpu")] = chunk
                    if len(pending) >= 2 * workers:
                        done, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for f in done:
                            done_with(pending.pop(f), f.result())
                for f, chunk in pending.items():
                    done_with(chunk, f.result())
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)  # finish in-flight files, start no more
                raise
        return written

    from noisevision import generators

    gen = generators.get(spec.generator, **spec.params)
    if device.type == "cpu":
        batches = ((chunk, chunk) for chunk in _chunks(todo, batch_size))
    else:  # GPU kernels may round by batch shape: always render the same blocks of indices
        batches = _aligned_blocks(todo, gen.device_block(spec.res))
    with ThreadPoolExecutor(max(workers, 1)) as pool:
        for rendered, chunk in batches:
            images = gen(rendered, res=spec.res, seed=spec.seed, device=device).cpu()
            wanted = set(chunk)
            jobs = [pool.submit(write_image, root, spec, i, img)
                    for i, img in zip(rendered, images) if i in wanted]  # fmt: skip
            for j in jobs:
                j.result()
            done_with(chunk, len(chunk))
    return written


def _aligned_blocks(todo: list[int], size: int) -> Iterator[tuple[list[int], list[int]]]:
    """(block, its indices in `todo`) for every block [k·size, (k+1)·size) that holds some of
    `todo`: rendering whole fixed blocks makes each image's batch the same at any batch size,
    worker count, shard or restart."""
    blocks: dict[int, list[int]] = {}
    for i in todo:
        blocks.setdefault(i // size, []).append(i)
    for k, chunk in blocks.items():
        yield list(range(k * size, (k + 1) * size)), chunk


def check_free_space(root: Path, spec: DatasetSpec, written: list[int], remaining: int) -> None:
    """Stop in one clear line, before the disk fills up, when `remaining` images would not fit.

    An image's size is measured on images just written (JPEG sizes depend on the generator).
    """
    sizes = [p.stat().st_size for i in written[:64] if (p := image_path(root, i, spec.format)).is_file()]
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
