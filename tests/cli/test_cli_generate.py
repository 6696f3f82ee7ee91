"""`noisevision generate/show/list/bench`: datasets on disk, resume, shards and user errors."""

import hashlib
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from noisevision.data import folder


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != folder.MANIFEST
    }


def gen_args(out, *extra):
    return (
        "generate",
        "test-blobs",
        "--out",
        out,
        "--num-images",
        "25",
        "--workers",
        "1",
        "--batch-size",
        "4",
        *extra,
    )


def test_generate_writes_imagefolder_and_manifest(run_cli, tmp_path):
    out = tmp_path / "ds"
    code, stdout, _ = run_cli(*gen_args(out))
    assert code == 0, stdout
    files = sorted((out / "train").rglob("*.jpg"))
    assert len(files) == 25 and files[0].relative_to(out).as_posix() == "train/00000/00000000.jpg"
    assert Image.open(files[3]).size == (32, 32)
    manifest = json.loads((out / folder.MANIFEST).read_text())
    assert manifest["generator"] == "test-blobs" and manifest["num"] == 25 and manifest["seed"] == 0
    assert "version" in manifest
    code, stdout, _ = run_cli(*gen_args(out))
    assert code == 0 and "wrote 0 images (25 already there)" in stdout


def test_interrupted_run_resumes_to_identical_folder(run_cli, tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    assert run_cli(*gen_args(ref))[0] == 0

    real_encode, calls = folder.encode, [0]

    def flaky_encode(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 11:
            raise KeyboardInterrupt
        return real_encode(*args, **kwargs)

    out = tmp_path / "out"
    monkeypatch.setattr(folder, "encode", flaky_encode)
    code, _, err = run_cli(*gen_args(out))
    assert code == 130 and "resume" in err
    partial = tree_digest(out)
    assert 0 < len(partial) < 25 and all(not k.endswith(".tmp") for k in partial)
    (out / "train" / "00000" / ".00000007.jpg.abc.tmp").write_bytes(b"truncated")  # a killed write
    monkeypatch.setattr(folder, "encode", real_encode)
    code, stdout, _ = run_cli(*gen_args(out))
    assert code == 0 and "already there" in stdout
    assert tree_digest(out) == tree_digest(ref)


def test_a_disk_too_small_stops_early_in_one_line_and_resumes(run_cli, tmp_path, monkeypatch):
    ref, out = tmp_path / "ref", tmp_path / "out"
    run_cli(*gen_args(ref))
    real = folder.shutil.disk_usage
    # room for about 10 more images: the check after the first 4 stops the run before the disk fills
    room = 10 * sum(p.stat().st_size for p in ref.rglob("*.jpg")) / 25 + 2**26
    monkeypatch.setattr(folder.shutil, "disk_usage", lambda p: real(p)._replace(free=int(room)))
    code, stdout, err = run_cli(*gen_args(out))
    assert code == 2 and "21 images still to write" in err and "GB are free" in err
    assert len(err.strip().splitlines()) == 1
    assert len([k for k in tree_digest(out) if k.endswith(".jpg")]) == 4  # the first batch, complete
    monkeypatch.setattr(folder.shutil, "disk_usage", real)
    assert run_cli(*gen_args(out))[0] == 0
    assert tree_digest(out) == tree_digest(ref)


def test_a_full_disk_is_one_line(run_cli, tmp_path, monkeypatch):
    real_write = folder.atomic_write_bytes

    def no_space_for_images(path, data, durable=True):
        if path.suffix == ".jpg":
            raise OSError(28, "No space left on device")
        return real_write(path, data, durable)

    monkeypatch.setattr(folder, "atomic_write_bytes", no_space_for_images)
    code, _, err = run_cli(*gen_args(tmp_path / "out"))
    assert code == 2 and "disk is full" in err and len(err.strip().splitlines()) == 1


def test_shards_fill_one_folder(run_cli, tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    run_cli(*gen_args(ref))
    for k in (1, 2, 3):
        assert run_cli(*gen_args(out, "--shard", f"{k}/3"))[0] == 0
    assert tree_digest(out) == tree_digest(ref)


def test_a_shard_leaves_the_other_shards_temporary_files_alone(tmp_path):
    """Shards 0..4 and 5..9 share block 00000: one writer's scan must not delete the other's writes."""
    block = tmp_path / "train" / "00000"
    block.mkdir(parents=True)
    mine, theirs = block / ".00000002.jpg.a1.tmp", block / ".00000007.jpg.b2.tmp"
    for path in (mine, theirs, block / "00000004.jpg"):
        path.write_bytes(b"x")
    assert folder.missing_indices(tmp_path, range(0, 5), "jpg") == [0, 1, 2, 3]
    assert not mine.exists() and theirs.exists()
    assert folder.missing_indices(tmp_path, range(5, 10), "jpg", clean=False) == [5, 6, 7, 8, 9]
    assert theirs.exists()


def test_wait_until_complete_polls_until_every_image_is_there(tmp_path):
    spec = folder.DatasetSpec("test-blobs", {}, 0, 16, 6)
    waits, told = [], []

    def sleep(seconds):  # another writer fills one more index per poll
        waits.append(seconds)
        folder.write_dataset(tmp_path, spec, range(len(waits) - 1, len(waits)), torch.device("cpu"), 1, 4)

    folder.write_dataset(tmp_path, spec, range(3, 6), torch.device("cpu"), 1, 4)
    folder.wait_until_complete(tmp_path, range(6), "jpg", told.append, poll_s=2.0, sleep=sleep)
    assert told == [3] and waits == [2.0, 2.0, 2.0]
    assert folder.wait_until_complete(tmp_path, range(6), "jpg", told.append, sleep=sleep) >= 0
    assert told == [3] and len(waits) == 3  # complete: no wait, no message


def test_shard_range_partitions_indices():
    parts = [folder.shard_range(103, k, 4) for k in range(4)]
    assert [i for r in parts for i in r] == list(range(103))


@pytest.mark.parametrize(
    "args, message",
    [
        (("generate", "test-blob", "--out", "{tmp}/a", "--num-images", "3"), "did you mean test-blobs"),
        (("generate", "test-blobs", "--out", "{tmp}/a", "--num-images", "0"), "--num-images must be a"),
        (
            ("generate", "test-blobs", "--out", "{tmp}/a", "--num-images", "-4"),
            "--num-images must be a positive",
        ),
        (("generate", "test-blobs", "--out", "{tmp}/a", "--num-images", "3", "--res", "4"), "too small"),
        (
            ("generate", "test-blobs", "--out", "{tmp}/a", "--num-images", "3", "--format", "gif"),
            "jpg or png",
        ),
        (("generate", "test-blobs", "--out", "{tmp}/a", "--num-images", "3", "--shard", "3/2"), "--shard"),
        (("generate", "test-blobs", "--out", "{tmp}/file/x", "--num-images", "3"), "cannot write"),
        (("show", "nope-generator", "--out", "{tmp}/g.png"), "unknown generator"),
    ],
)
def test_bad_input_is_one_line(run_cli, tmp_path, args, message):
    (tmp_path / "file").write_text("x")
    code, stdout, err = run_cli(*(a.format(tmp=tmp_path) for a in args))
    assert code == 2
    assert message in err and "Traceback" not in err + stdout
    assert len(err.strip().splitlines()) == 1


def test_cuda_asked_but_absent(run_cli, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    code, _, err = run_cli(*gen_args(tmp_path / "a", "--device", "cuda"))
    assert code == 2 and "CUDA is not available" in err


def test_refuses_foreign_folder_and_other_seed_without_damage(run_cli, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    code, _, err = run_cli(*gen_args(foreign))
    assert code == 2 and "not a noisevision dataset" in err
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]

    out = tmp_path / "ds"
    run_cli(*gen_args(out))
    before = tree_digest(out)
    manifest = (out / folder.MANIFEST).read_text()
    code, _, err = run_cli(*gen_args(out, "--seed", "5"))
    assert code == 2 and "seed=0 there vs 5 asked" in err
    assert tree_digest(out) == before and (out / folder.MANIFEST).read_text() == manifest


def test_list_and_show(run_cli, tmp_path):
    code, stdout, _ = run_cli("list")
    assert code == 0 and "test-blobs" in stdout
    grid = tmp_path / "grid.png"
    code, _, _ = run_cli("show", "test-blobs", "--num-images", "3", "--out", grid)
    assert code == 0 and Image.open(grid).size[0] > 3 * 32


def test_bench_generators_prints_rates(run_cli):
    code, stdout, _ = run_cli("bench", "generators", "test-blobs", "--repeats", "1", "--min-time", "0.05")
    assert code == 0
    assert "threads 1" in stdout and "img/s" in stdout.split("test-blobs", 1)[1]


def test_bench_generators_profiles_a_batch(run_cli):
    args = ("--res", "32", "--batch-size", "4", "--repeats", "1", "--min-time", "0.01", "--profile")
    code, stdout, _ = run_cli("bench", "generators", "dead_leaves-squares", *args)
    assert code == 0
    profile = stdout.split("profile of one batch of 4:", 1)[1]
    ops = re.findall(r"^    (aten::\S+)\s+([\d.]+) s", profile, re.M)
    assert ops and all(float(a[1]) >= float(b[1]) for a, b in zip(ops, ops[1:]))  # by their own time
    assert "(all ops)" in profile and "(outside torch ops" in profile


def test_bench_generators_times_the_reference_recipe_beside(run_cli):
    args = ("--res", "32", "--batch-size", "4", "--repeats", "1", "--min-time", "0.01", "--reference")
    code, stdout, _ = run_cli("bench", "generators", "dead_leaves-squares", "test-blobs", *args)
    assert code == 0
    squares, blobs = stdout.split("dead_leaves-squares", 1)[1].split("test-blobs")
    assert "reference, image by image" in squares and "× faster" in squares
    images = int(re.search(r"(\d+) images, cpu", squares).group(1))
    assert images >= 5  # at least 5, more while under 3 s
    assert "reference" not in blobs  # no reference recipe: no line


def test_bench_generators_sizes_show_how_cost_grows(run_cli):
    args = ("--sizes", "16,128", "--batch-size", "8", "--repeats", "1", "--min-time", "0.01")
    code, stdout, _ = run_cli("bench", "generators", "dead_leaves-squares", "stylegan-oriented", *args)
    assert code == 0
    rows = re.findall(r"^(\S+)\s+(\d+)\s+([\d,.]+)\s+([\d,.]+)\s+([\d.]+)", stdout, re.M)
    got = {(name, int(res)): [float(v.replace(",", "")) for v in rest] for name, res, *rest in rows}
    assert set(got) == {("dead_leaves-squares", 16), ("dead_leaves-squares", 128), ("stylegan-oriented", 128)}
    for (_, res), (rate, tiles, mb) in got.items():
        assert rate > 0 and tiles == pytest.approx(rate * (res / 64) ** 2, rel=0.01) and 0 <= mb < 200
    assert re.search(r"^stylegan-oriented\s+16\s+cannot", stdout, re.M)  # below its smallest size


def test_two_worker_processes_write_the_same_bytes(run_cli, tmp_path):
    common = ("--num-images", "20", "--res", "32", "--batch-size", "3", "--format", "png")
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_cli("generate", "dead_leaves-squares", "--out", one, "--workers", "1", *common)[0] == 0
    assert run_cli("generate", "dead_leaves-squares", "--out", two, "--workers", "2", *common)[0] == 0
    assert len([k for k in tree_digest(one) if k.endswith(".png")]) == 20
    assert tree_digest(one) == tree_digest(two)  # images and their records


def test_under_torchrun_plain_cuda_is_the_ranks_own_gpu(monkeypatch):
    from noisevision.device import rank_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert rank_device("cuda") == torch.device("cuda", 2)
    assert rank_device("cuda:1") == torch.device("cuda", 1)  # an explicit GPU stays
    assert rank_device("cpu") == torch.device("cpu")
    monkeypatch.delenv("LOCAL_RANK")
    assert rank_device("cuda") == torch.device("cuda")


def test_worker_tasks_reuse_their_generator(tmp_path, monkeypatch):
    """A worker builds its generator (and what it caches, e.g. a texture bank) once, not per task."""
    from noisevision import generators

    spec = folder.DatasetSpec("dead_leaves-squares", {}, 0, 32, 4, format="png")  # (asks the generator)
    made = []
    real = generators.get
    monkeypatch.setattr(generators, "get", lambda name, **kw: made.append(name) or real(name, **kw))
    monkeypatch.setattr(folder, "_WORKER_GENERATORS", {})
    folder.prepare_folder(tmp_path / "d", spec)
    threads = torch.get_num_threads()
    try:
        for chunk in ([0, 1], [2, 3]):
            assert folder._render_and_write(str(tmp_path / "d"), spec, chunk, "cpu") == 2
    finally:
        torch.set_num_threads(threads)  # the task narrows this process to one thread
    assert made == ["dead_leaves-squares"]
    assert len(list((tmp_path / "d" / "train").rglob("*.png"))) == 4


def test_device_blocks_are_aligned_and_cover_the_missing_indices():
    blocks = list(folder._aligned_blocks([3, 5, 70, 130, 131], 64))
    assert [(b[0], b[-1], len(b), todo) for b, todo in blocks] == [
        (0, 63, 64, [3, 5]),
        (64, 127, 64, [70]),
        (128, 191, 64, [130, 131]),
    ]


def _generate_in_background(out: Path, num: int):
    import os
    import subprocess
    import sys

    args = [
        sys.executable,
        "-m",
        "noisevision.cli",
        "generate",
        "stat-spectrum_color_wmm",
        "--num-images",
        str(num),
        "--res",
        "64",
        "--out",
        str(out),
        "--workers",
        "2",
        "--batch-size",
        "4",
        "--format",
        "png",
    ]
    env = {**os.environ, "NOISEVISION_PROGRESS_SECONDS": "3600"}
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_files(out: Path, count: int, proc, timeout: float = 120.0) -> None:
    import time

    start = time.time()
    while len(list((out / "train").rglob("*.png"))) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.time() - start < timeout
        time.sleep(0.2)


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="signals and /proc as on Linux")
def test_sigterm_finishes_the_files_in_flight_and_resumes(tmp_path):
    import signal

    out = tmp_path / "d"
    proc = _generate_in_background(out, 400)
    _wait_for_files(out, 8, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip().splitlines() == [
        "stopped by SIGTERM: the images being written were finished; run the same command again to resume"
    ]
    assert not list(out.rglob("*.tmp"))  # every file in flight was finished
    done = len(list((out / "train").rglob("*.png")))
    assert 8 <= done < 400
    rerun = _generate_in_background(out, 400)
    stdout, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"({done} already there)" in stdout
    assert len(list((out / "train").rglob("*.png"))) == 400


@pytest.mark.skipif(sys.platform != "linux", reason="signals and /proc as on Linux")
def test_a_killed_generate_leaves_no_worker_running(tmp_path):
    import signal
    import time

    proc = _generate_in_background(tmp_path / "d", 400)
    _wait_for_files(tmp_path / "d", 4, proc)
    workers = _children(proc.pid)
    assert workers
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.time() + 10
    while any(
        Path(f"/proc/{w}").exists() and "Z" not in (Path(f"/proc/{w}/stat").read_text().split()[2:3])
        for w in workers
    ):
        assert time.time() < deadline, "worker processes outlived their parent"
        time.sleep(0.2)


def test_manifest_lists_the_devices_and_a_new_one_is_noted(run_cli, tmp_path):
    out = tmp_path / "d"
    args = ("generate", "test-blobs", "--out", out, "--num-images", "4", "--device", "cpu", "--workers", "0")
    code, stdout, err = run_cli(*args)
    assert code == 0, err
    manifest = json.loads((out / "noisevision.json").read_text())
    assert manifest["devices"] == ["cpu"] and "note:" not in stdout
    manifest["devices"] = ["cuda"]  # as if a GPU had rendered the first images
    (out / "noisevision.json").write_text(json.dumps(manifest))
    code, stdout, err = run_cli(*args[:5], "8", *args[6:])
    assert code == 0, err
    assert "images so far were rendered on cuda; these on cpu" in " ".join(stdout.split())
    assert json.loads((out / "noisevision.json").read_text())["devices"] == ["cpu", "cuda"]
