"""Shared test fixtures: a cheap test generator, an in-process CLI runner, one torch thread."""

from __future__ import annotations

import sys

import pytest
import torch

from noisevision import generators
from noisevision.generators.registry import Generator


@generators.register(
    "test-blobs", family="test", default_res=32, min_res=8, description="Cheap test pattern (tests only)."
)
class _TestBlobs(Generator):
    """Per-image random colour plus per-pixel noise: cheap, but every byte depends on the key."""

    def render(self, rng, res):
        colour = rng.uniform(3, 1, 1) * 200
        noise = rng.uniform(3, res, res) * 55
        return (colour + noise).to(torch.uint8)


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


@pytest.fixture
def one_thread():
    """Small tensors: threads only add contention on a busy machine (modules opt in with
    `pytestmark = pytest.mark.usefixtures("one_thread")`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
