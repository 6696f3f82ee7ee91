"""Shared test fixtures: a cheap test generator, an in-process CLI runner, one torch thread and a
tiny image-folder probe set."""

from __future__ import annotations

import json
import logging
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from noisevision import generators
from noisevision.generators.registry import Generator
from noisevision.rng import Rng


@generators.register(
    "test-blobs", family="test", default_res=32, min_res=8, description="Cheap test pattern (tests only)."
)
class _TestBlobs(Generator):
    """Per-image random colour plus per-pixel noise: cheap, but every byte depends on the key."""

    def render(self, rng, res):
        colour = rng.uniform(3, 1, 1) * 200
        noise = rng.uniform(3, res, res) * 55
        return (colour + noise).to(torch.uint8)


@generators.register(
    "test-classes-4",
    family="test",
    default_res=32,
    min_res=8,
    description="test-classes with 4 categories (tests only).",
    classes=4,
)
@generators.register(
    "test-classes",
    family="test",
    default_res=32,
    min_res=8,
    description="Cheap labelled test pattern: a colour per category plus per-image noise (tests only).",
    classes=5,
)
class _TestClasses(Generator):
    """Category c (= index mod classes) is a flat colour of its own, each image adding its own
    noise: the images of a category are alike, and every byte depends on the key."""

    def __init__(self, spec, classes: int):
        super().__init__(spec, classes=classes)
        self.num_classes = classes

    def render_indices(self, indices, seed, res):
        category = self.labels(indices).to(torch.float32)
        hue = torch.stack([category * 97 % 256, category * 53 % 256, category * 29 % 256], 1)  # [B, 3]
        noise = Rng.for_indices(self.key, seed, indices).uniform(3, res, res) * 40  # [B, 3, res, res]
        return (hue[:, :, None, None] * 0.8 + noise).to(torch.uint8)


# cuBLAS's deterministic mode must be chosen before its first use (train --deterministic in tests).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Cached tensors (cache.py) go to a folder of this test run, also for the processes it starts."""
    os.environ["NOISEVISION_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def check_device() -> torch.device:
    """The device of the `cuda` tests: CUDA, or the device NOISEVISION_CHECK_DEVICE names
    (scripts/gpu-check runs them on the CPU at toy sizes where there is no GPU); skipped otherwise."""
    forced = os.environ.get("NOISEVISION_CHECK_DEVICE")
    if forced:
        return torch.device(forced)
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA (or NOISEVISION_CHECK_DEVICE=cpu)")
    return torch.device("cuda")


@pytest.fixture
def check_report(request):
    """record(**values): one JSON line per call in NOISEVISION_CHECK_REPORT (read by gpu-check)."""
    path = os.environ.get("NOISEVISION_CHECK_REPORT")

    def record(**values) -> None:
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({"test": request.node.name, **values}) + "\n")

    return record


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run `noisevision ARGS…` in-process; returns (exit code, stdout, stderr)."""
    from noisevision import cli

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["noisevision", *map(str, args)])
        code = 0
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _torch_on_one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread():
    """Small tensors: threads only add contention on a busy machine (modules opt in with
    `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    yield from _torch_on_one_thread()


@pytest.fixture(scope="module")
def one_thread_module():
    """one_thread for a whole module, its module-scoped fixtures included (modules opt in with
    `pytestmark = pytest.mark.usefixtures("one_thread_module")`)."""
    yield from _torch_on_one_thread()


@pytest.fixture
def probe_set(tmp_path):
    """make(per_class) writes two classes of flat 20 px images (grey levels near 40 and 200) to
    tmp_path/probe/{train,val}/ and returns the evaluation-set name "imagefolder:DIR"."""

    def make(per_class: int) -> str:
        root = tmp_path / "probe"
        for split in ("train", "val"):
            for c, value in enumerate((40, 200)):
                for i in range(per_class):
                    path = root / split / f"class{c}" / f"{i}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(np.full((20, 20, 3), value + 3 * i, dtype=np.uint8)).save(path)
        return f"imagefolder:{root}"

    return make


@pytest.fixture
def log_lines() -> list[str]:
    """The messages the library logs during the test (the noisevision logger, INFO and above)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger, handler = logging.getLogger("noisevision"), Collect(logging.INFO)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)
