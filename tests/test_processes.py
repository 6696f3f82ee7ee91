"""Process hygiene: workers end with their parent, a dead worker ends its parent in one line within
seconds (generate and train), and honest state after a resume (progress rate, thread count)."""

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console

import noisevision.train as train_mod
import noisevision.train.loop as train_loop
from noisevision.progress import Progress
from noisevision.train import TrainConfig, train
from tests.cli.test_cli_generate import _children  # the processes a parent started (Linux /proc)

linux = pytest.mark.skipif(sys.platform != "linux", reason="signals, prlimit and /proc as on Linux")
ENV = {**os.environ, "NOISEVISION_PROGRESS_SECONDS": "3600"}
_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _end_what_a_test_started():
    """A failing test leaves no command (and with it no worker) running."""
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _start(args: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "noisevision.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    _STARTED.append(proc)
    return proc


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(condition, proc, timeout: float, what: str):
    start = time.time()
    while not (found := condition()):
        assert proc.poll() is None, proc.communicate()
        assert time.time() - start < timeout, what
        time.sleep(0.1)
    return found


def _generate(out: Path) -> subprocess.Popen:
    return _start(
        [
            "generate",
            "stat-spectrum_color_wmm",
            "--out",
            str(out),
            "--num-images",
            "2000",
            "--res",
            "64",
            "--workers",
            "2",
            "--batch-size",
            "4",
            "--format",
            "png",
            "--device",
            "cpu",
        ]
    )


def _workers(pid: int) -> list[int]:
    return [c for c in _children(pid) if "spawn_main" in _cmdline(c)]


@linux
def test_a_dead_generate_worker_ends_the_run_in_one_line(tmp_path):
    proc = _generate(tmp_path / "d")
    _wait_for(lambda: len(list((tmp_path / "d" / "train").rglob("*.png"))) >= 4, proc, 120, "no images")
    workers = _workers(proc.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    t0 = time.time()
    _, err = proc.communicate(timeout=60)
    assert time.time() - t0 < 10, "the parent outlived its dead worker"
    assert proc.returncode == 2
    assert err.strip().splitlines() == [err.strip()] and "a worker process died (killed by SIGKILL)" in err
    time.sleep(0.5)
    assert not any(_alive(w) for w in workers)


@linux
def test_a_generate_killed_while_its_workers_start_leaves_none(tmp_path):
    """Killed before its workers could ask the kernel to end them with it: they notice on their own."""
    proc = _generate(tmp_path / "d")
    workers = _wait_for(lambda: _workers(proc.pid), proc, 120, "no worker started")
    children = _children(proc.pid)
    proc.kill()
    proc.wait()
    deadline = time.time() + 15
    while any(_alive(c) for c in children):
        assert time.time() < deadline, f"left running: {[_cmdline(c) for c in children if _alive(c)]}"
        time.sleep(0.2)
    assert workers


def _train(out: Path) -> subprocess.Popen:
    return _start(
        [
            "train",
            "--data",
            "stat-spectrum",
            "--out",
            str(out),
            "--preset",
            "tiny",
            "--arch",
            "smallalexnet",
            "--arch-opt",
            "width=0.0625",
            "--input-size",
            "32",
            "--res",
            "32",
            "--num-images",
            "64",
            "--batch-size",
            "8",
            "--epochs",
            "100",
            "--device",
            "cpu",
            "--workers",
            "1",
            "--threads",
            "1",
        ]
    )


def _running_worker(proc: subprocess.Popen, out: Path) -> int:
    """The training run's rendering worker, once training is under way."""
    _wait_for(lambda: (out / "metrics.jsonl").is_file(), proc, 180, "training did not start")
    (worker,) = _children(proc.pid)
    return worker


@linux
def test_a_dead_render_worker_ends_training_in_one_line(tmp_path):
    proc = _train(tmp_path / "run")
    worker = _running_worker(proc, tmp_path / "run")
    os.kill(worker, signal.SIGKILL)
    t0 = time.time()
    _, err = proc.communicate(timeout=60)
    assert time.time() - t0 < 15, "training waited on a dead worker"
    assert proc.returncode == 2 and len(err.strip().splitlines()) == 1, err
    assert "a rendering worker process died" in err


@linux
def test_a_render_worker_over_its_file_size_limit_ends_training_in_one_line(tmp_path):
    """A worker that cannot hand its batch over (here: a file-size limit on its shared memory) used
    to lose the batch in its queue thread, and training waited for it forever."""
    import resource

    proc = _train(tmp_path / "run")
    worker = _running_worker(proc, tmp_path / "run")
    resource.prlimit(worker, resource.RLIMIT_FSIZE, (1024, 1024))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and len(err.strip().splitlines()) == 1, err
    assert "a rendering worker failed" in err


def test_a_resume_with_another_thread_count_says_the_result_will_differ(tmp_path, monkeypatch, capsys):
    cfg = dict(
        data="test-blobs",
        out=str(tmp_path / "run"),
        arch="smallalexnet",
        arch_kwargs={"width": 0.0625},
        input_size=32,
        res=32,
        num_images=16,
        batch_size=8,
        epochs=2,
        device="cpu",
        workers=0,
        progress=False,
        log_every=1,
    )
    real = train_mod.train_step

    def stop_in_epoch_2(model, optimizer, aug, images, indices, seed, epoch, step, *rest):
        if epoch == 1:
            raise KeyboardInterrupt
        return real(model, optimizer, aug, images, indices, seed, epoch, step, *rest)

    threads = torch.get_num_threads()
    try:
        monkeypatch.setattr(train_loop, "train_step", stop_in_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            train(TrainConfig.from_preset("tiny", **cfg, threads=1))
        monkeypatch.undo()
        capsys.readouterr()
        train(TrainConfig.from_preset("tiny", **cfg, threads=2))
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "resuming with threads 1 → 2: the result will differ from an uninterrupted run" in out


def test_the_progress_rate_after_a_resume_counts_only_this_runs_work(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with Progress("generate", 1000, console=console, live=True) as progress:
        progress.bar.get_time = lambda: clock[0]
        progress.already_done(900)  # found on disk
        for _ in range(2):
            clock[0] += 10.0
            progress.update(10)  # this run: 10 images per 10 s
        assert progress.rate() == pytest.approx(1.0)
        assert progress.bar.tasks[0].speed == pytest.approx(1.0)  # the live bar's rate and ETA
    plain = Progress("generate", 1000, 900, console=Console(file=io.StringIO()), live=False)
    clock[0] += 5.0
    plain.update(20)
    assert plain.line() == "generate: 920/1,000 (92.0%) | 4 img/s | ETA 0:20"


def test_a_script_without_a_main_guard_fails_fast_with_the_fix(tmp_path):
    """Spawned workers import the script again; unguarded, each would call write_dataset and wait
    for the images its parent claimed (a deadlock): they refuse at once and the parent says why."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from pathlib import Path\nimport torch\n"
        "from noisevision.data.folder import DatasetSpec, write_dataset\n"
        f"write_dataset(Path({str(tmp_path / 'd')!r}), DatasetSpec('dead_leaves-squares', {{}}, 0, 32, 4), "
        "range(4), torch.device('cpu'), 2, 2)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=ENV)
    assert done.returncode != 0
    assert 'must run it under `if __name__ == "__main__":`' in done.stderr
