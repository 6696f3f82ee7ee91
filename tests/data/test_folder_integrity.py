"""Generated folders: per-image records (size, checksum), resume and --verify, claims shared by
concurrent writers, temporary files only removed when no live writer owns them, lazy ranges, seeds."""

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
import torch

from noisevision.data import folder, folder_index
from noisevision.errors import NoisevisionError
from noisevision.rng import MAX_SEED, check_seed

CPU = torch.device("cpu")


def images(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "train").rglob("*"))
        if p.suffix in (".jpg", ".png")
    }


class _Notes(logging.Handler):
    def __init__(self, notes: list):
        super().__init__(logging.INFO)
        self.notes = notes

    def emit(self, record: logging.LogRecord) -> None:
        self.notes.append(record.getMessage())


def write(root: Path, num: int = 12, verify: bool = False, notes: list | None = None, **kw) -> int:
    """Write test-blobs images into `root`; the writer's log lines (its notes) go to `notes`."""
    spec = folder.DatasetSpec("test-blobs", {}, kw.pop("seed", 0), 16, num)
    logger, handler = logging.getLogger(folder.__name__), _Notes(notes if notes is not None else [])
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        return folder.write_dataset(root, spec, kw.pop("indices", range(num)), CPU, 1, 4, verify=verify, **kw)
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def ref(tmp_path) -> dict[str, str]:
    write(tmp_path / "ref")
    return images(tmp_path / "ref")


def test_every_image_has_a_record_of_its_size_and_checksum(tmp_path):
    write(tmp_path)
    block = tmp_path / "train" / "00000"
    records = folder.read_index(block)
    assert sorted(records) == [f"{i:08d}.jpg" for i in range(12)]
    for name, (size, digest) in records.items():
        data = (block / name).read_bytes()
        assert size == len(data) and digest == folder.checksum(data)
    manifest = json.loads((tmp_path / folder.MANIFEST).read_text())
    assert "blake2b" in manifest["checksums"]


def test_resume_renders_again_an_image_whose_size_differs(tmp_path, ref):
    out = tmp_path / "d"
    write(out)
    (out / "train" / "00000" / "00000003.jpg").write_bytes(b"garbage")
    notes = []
    assert write(out, notes=notes) == 1
    assert images(out) == ref
    assert notes == ["1 image differs from the record (size or checksum): rendering again"]


def test_verify_finds_a_same_size_replacement(tmp_path, ref):
    out = tmp_path / "d"
    write(out)
    path = out / "train" / "00000" / "00000005.jpg"
    path.write_bytes(os.urandom(path.stat().st_size))
    assert write(out) == 0  # the size matches its record: a plain resume cannot tell
    assert images(out) != ref
    notes = []
    assert write(out, verify=True, notes=notes) == 1
    assert images(out) == ref and "1 image differs from the record" in notes[1]
    assert write(out, verify=True) == 0


def test_a_folder_written_before_records_still_resumes(tmp_path, ref):
    out = tmp_path / "d"
    write(out)
    (out / "train" / "00000" / folder.INDEX).unlink()  # as an older version left it
    notes = []
    assert write(out, notes=notes) == 0
    assert notes == [
        "12 images lack a recorded checksum (written by an older version): counted as present; "
        "--verify renders them again"
    ]
    notes.clear()
    assert write(out, verify=True, notes=notes) == 12  # verified by rendering them again
    assert notes[1] == (
        "12 images lack a recorded checksum (written by an older version): rendering again to verify"
    )
    assert images(out) == ref and len(folder.read_index(out / "train" / "00000")) == 12
    assert write(out, verify=True) == 0


@pytest.mark.parametrize("damage", [b"", b'{"format": 1, "images": {"00000', b"\x00" * 40])
def test_a_damaged_index_is_not_taken_for_an_older_versions(tmp_path, ref, damage):
    """A record file that is there but unreadable says nothing about its block: a truncated image
    beside it must not be kept as an older version's unrecorded one."""
    out = tmp_path / "d"
    write(out)
    block = out / "train" / "00000"
    (block / "00000004.jpg").write_bytes((block / "00000004.jpg").read_bytes()[:100])  # truncated
    (block / folder.INDEX).write_bytes(damage)
    notes = []
    assert write(out, notes=notes) == 12
    assert notes == [
        f"12 images sit in blocks whose record file ({folder.INDEX}) is damaged: rendering again"
    ]
    assert images(out) == ref and len(folder.read_index(block)) == 12
    assert write(out) == 0


def test_a_file_renamed_without_its_record_counts_as_damaged(tmp_path, ref):
    out = tmp_path / "d"
    """Records are written before the files: a record that disagrees with the file on disk means
    a writer was killed between the two, and the image is rendered again."""
    write(out)
    block = out / "train" / "00000"
    records = folder.read_index(block)
    records["00000002.jpg"] = (records["00000002.jpg"][0] + 1, "0" * 32)
    folder_index.add_records(block, records)
    assert folder.missing_indices(out, range(12), "jpg") == [2]
    assert write(out) == 1 and images(out) == ref


def _hold_claim(root: Path, indices: list[int]) -> subprocess.Popen:
    """Another process that claims `indices` of block 0, leaves a temporary file of each, and waits."""
    code = (
        "import sys, time; from pathlib import Path; from noisevision.data.folder_index import _claim_some\n"
        f"items = [(i, None) for i in {indices!r}]\n"
        f"claim, *_ = _claim_some(Path({str(root / 'train' / '00000')!r}), 'jpg', items, 99, None)\n"
        "for i in claim.indices: (claim.path.parent / f'.{i:08d}.jpg.live.tmp').write_bytes(b'x')\n"
        "print('claimed', flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "claimed"
    return proc


def test_a_scan_never_removes_a_live_writers_temporary_file(tmp_path):
    (tmp_path / "train" / "00000").mkdir(parents=True)
    proc = _hold_claim(tmp_path, [3, 4])
    try:
        block = tmp_path / "train" / "00000"
        (block / ".00000005.jpg.dead.tmp").write_bytes(b"x")  # a killed writer's: nobody claims 5
        for _ in range(20):
            assert folder.missing_indices(tmp_path, range(10), "jpg") == list(range(10))
        left = sorted(p.name for p in block.glob("*.tmp"))
        assert left == [".00000003.jpg.live.tmp", ".00000004.jpg.live.tmp"]
    finally:
        proc.kill()
        proc.wait()
    folder.missing_indices(tmp_path, range(10), "jpg")  # its writer is dead now: claim and files go
    assert not list(block.glob("*.tmp")) and not list(block.glob(folder.CLAIM + "*"))


def test_a_scan_in_a_loop_beside_a_writer_never_breaks_it(tmp_path):
    """The reported race: a start-of-run scan deleting a temporary file a live writer is about to
    rename into place. The writer here is another process; the scans run as fast as they can."""
    out = tmp_path / "d"
    args = [
        sys.executable,
        "-m",
        "noisevision.cli",
        "generate",
        "stat-spectrum",
        "--out",
        str(out),
        "--num-images",
        "300",
        "--res",
        "32",
        "--workers",
        "1",
        "--batch-size",
        "3",
        "--device",
        "cpu",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    scans = 0
    while proc.poll() is None:
        if (out / "train").is_dir():
            folder.missing_indices(out, range(300), "jpg")
            scans += 1
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert scans > 10 and folder.missing_indices(out, range(300), "jpg") == []


def test_writers_in_one_folder_split_the_work(tmp_path, ref):
    out = tmp_path / "d"
    """Two writers of the same range at once: every image written once, by one of them."""
    out, counts, errors = out / "d", [], []
    barrier = threading.Barrier(2)

    def writer() -> None:
        try:
            barrier.wait()
            counts.append(write(out, num=12))
        except BaseException as exc:  # pragma: no cover - shown by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sum(counts) == 12
    assert images(out) == ref


def test_two_generate_processes_split_the_work(tmp_path):
    out = tmp_path / "d"
    args = [
        sys.executable,
        "-m",
        "noisevision.cli",
        "generate",
        "stat-spectrum",
        "--out",
        str(out),
        "--num-images",
        "400",
        "--res",
        "32",
        "--workers",
        "1",
        "--batch-size",
        "8",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "NOISEVISION_PROGRESS_SECONDS": "3600"}
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    written = []
    for p in procs:
        stdout, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        written.append(int(stdout.split("wrote ")[1].split()[0]))
    assert sum(written) == 400  # none rendered twice (and both took part unless one started late)
    assert folder.missing_indices(out, range(400), "jpg") == []


def test_claims_of_a_dead_writer_are_taken_over(tmp_path, ref):
    out = tmp_path / "d"
    folder.prepare_folder(out, folder.DatasetSpec("test-blobs", {}, 0, 16, 12))
    (out / "train" / "00000").mkdir(parents=True)
    proc = _hold_claim(out, [0, 1, 2])
    notes = []
    timer = threading.Timer(1.5, proc.kill)  # the holder dies while this writer waits for it
    timer.start()
    try:
        assert write(out, notes=notes) == 12
    finally:
        timer.cancel()
        proc.kill()
        proc.wait()
    assert images(out) == ref
    assert notes == ["waiting for 3 images that another process is writing into " + str(out)]


def test_a_huge_range_starts_without_allocating(run_cli, tmp_path):
    """--num-images 10^14: the scan and the claims stay lazy; the disk check after the first batch
    stops it in one line, in seconds, with little memory used."""
    tracemalloc.start()
    t0 = time.perf_counter()
    code, _, err = run_cli(
        "generate",
        "test-blobs",
        "--out",
        tmp_path / "d",
        "--num-images",
        str(10**14),
        "--workers",
        "1",
        "--batch-size",
        "4",
        "--device",
        "cpu",
    )
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert code == 2 and "images still to write need" in err and len(err.strip().splitlines()) == 1
    assert time.perf_counter() - t0 < 30 and peak < 50e6


def test_a_huge_range_scans_lazily(tmp_path):
    write(tmp_path)
    found = folder.scan(tmp_path, range(10**14), "jpg")
    assert found.present == 12 and found.missing == 10**14 - 12
    first = next(found.todo())
    assert first[0] == 0 and first[1][0] == (12, None) and len(first[1]) == 1000 - 12


@pytest.mark.parametrize("seed", [-1, 2**63, 2**64, 1.5, True])
def test_seeds_outside_0_to_2_63_are_refused(seed):
    from noisevision import generators
    from noisevision.data.stream import IndexPlan, open_source

    with pytest.raises(NoisevisionError, match="seed must be"):
        folder.DatasetSpec("test-blobs", {}, seed, 16, 4)
    with pytest.raises(NoisevisionError, match="seed must be"):
        open_source("test-blobs", 16, seed)
    with pytest.raises(NoisevisionError, match="seed must be"):
        IndexPlan(8, 4, seed)
    if type(seed) is int:  # the generator call takes int(seed) of others
        with pytest.raises(NoisevisionError, match="seed must be"):
            generators.get("test-blobs")(range(2), res=16, seed=seed)


def test_the_largest_seed_works_and_differs_from_its_alias():
    from noisevision import generators

    gen = generators.get("test-blobs")
    assert check_seed(MAX_SEED) == MAX_SEED
    assert not torch.equal(gen(range(2), res=16, seed=MAX_SEED), gen(range(2), res=16, seed=0))


def test_seed_out_of_range_on_the_command_line_is_one_line(run_cli, tmp_path):
    code, stdout, err = run_cli(
        "generate", "test-blobs", "--out", tmp_path / "d", "--num-images", "3", "--seed", str(2**64)
    )
    assert code == 2 and "seed must be in 0..9223372036854775807" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "d").exists()


def test_gpu_claims_render_each_aligned_block_once(tmp_path, monkeypatch):
    """On a GPU, claims follow the generator's fixed blocks of indices (here 64, across the folder
    boundary at 1000), each block rendered once, and the files equal the CPU path's."""
    from noisevision import generators

    real, rendered = generators.get, []

    class OnCpu:  # a "GPU" generator that renders on the CPU and logs the blocks it is asked for
        def __init__(self, gen):
            self.gen = gen

        def device_block(self, res):
            return 64

        def __call__(self, indices, res, seed, device):
            rendered.append(list(indices))
            return self.gen(indices, res=res, seed=seed, device="cpu")

    spec = folder.DatasetSpec("test-blobs", {}, 0, 8, 1100)
    folder.write_dataset(tmp_path / "cpu", spec, range(900, 1100), CPU, 1, 16)
    monkeypatch.setattr(generators, "get", lambda name, **kw: OnCpu(real(name, **kw)))
    folder.write_dataset(tmp_path / "gpu", spec, range(900, 1100), torch.device("cuda"), 2, 16)
    assert [(b[0], len(b)) for b in rendered] == [(k * 64, 64) for k in range(14, 18)]
    assert images(tmp_path / "gpu") == images(tmp_path / "cpu")


def test_a_training_plan_too_large_for_memory_is_one_line():
    from noisevision.data.stream import IndexPlan

    with pytest.raises(NoisevisionError, match=r"^num_images 100,000,000,000,000 needs every index"):
        IndexPlan(10**14, 256)
    assert IndexPlan(10**6, 256).steps_per_epoch == 3906


def test_writers_of_overlapping_ranges_split_the_overlap(tmp_path):
    """Shards that overlap (say 0..599 and 400..999, across a block boundary) write each image once;
    the one that finds the overlap taken waits for it instead of writing it again."""
    spec = folder.DatasetSpec("test-blobs", {}, 0, 8, 1200)
    folder.write_dataset(tmp_path / "ref", spec, range(1200), CPU, 1, 16)
    out, counts = tmp_path / "d", {}
    barrier = threading.Barrier(2)

    def writer(share: range) -> None:
        barrier.wait()
        counts[share.start] = folder.write_dataset(out, spec, share, CPU, 1, 16)

    threads = [threading.Thread(target=writer, args=(r,)) for r in (range(0, 700), range(400, 1200))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts.values()) == 1200 and len(counts) == 2
    assert images(out) == images(tmp_path / "ref")
    assert not list(out.rglob(folder.CLAIM + "*")) and not list(out.rglob("*.tmp"))


def test_a_writer_starting_beside_another_accepts_the_manifest_it_just_made(tmp_path, monkeypatch):
    """The other writer's manifest and train/ appear between this one's look for a manifest and
    its look for foreign files: the folder is the same dataset, not a foreign one."""
    spec = folder.DatasetSpec("test-blobs", {}, 0, 16, 4)
    folder.prepare_folder(tmp_path, spec)  # the other writer
    real, looks = folder.read_manifest, []

    def late_manifest(root):  # the first look comes just before the other writer's manifest
        looks.append(root)
        return None if len(looks) == 1 else real(root)

    monkeypatch.setattr(folder, "read_manifest", late_manifest)
    folder.prepare_folder(tmp_path, spec)
    assert len(looks) == 2
