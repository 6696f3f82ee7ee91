"""Generators on other CPUs' code paths, emulated on this one: MKL's instruction-set and
conditional-reproducibility switches and ATen's CPU capability make this CPU run the code that an
AVX2-only CPU, an older CPU or an Intel CPU runs. On each path every image must be the same alone
and in its batch; families marked `portable` must give the same bytes on every path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from noisevision import generators

PROBE = Path(__file__).with_name("cpu_path_probe.py")
PATHS = {
    "mkl-avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},  # no vector instructions at all
}
# Seconds each on one core: their own slow test. The rest runs on every `make test`.
SLOW = {"dead_leaves-textures", "stylegan-random", "feature_vis-random"}
FAST = [n for n in generators.names() if n not in SLOW and generators.spec(n).family != "test"]


def run_probe(names: list[str], env: dict[str, str], cache: Path) -> dict:
    # A cache of its own per path: a texture bank rendered on one path must not serve another.
    full = {**os.environ, **env, "NOISEVISION_CACHE": str(cache), "OMP_NUM_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, str(PROBE), *names], env=full, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def check_paths(names: list[str], tmp_path: Path) -> None:
    here = run_probe(names, {}, tmp_path / "here")
    for path, env in PATHS.items():
        there = run_probe(names, env, tmp_path / path)
        for name in names:
            assert there[name]["invariant"], f"{name}: image 9 changed with its batch on {path}"
            if here[name]["portable"]:
                assert there[name]["sha256"] == here[name]["sha256"], f"{name}: other bytes on {path}"


def test_every_path_batch_invariant_portable_families_identical(tmp_path):
    check_paths(FAST, tmp_path)


@pytest.mark.slow
def test_every_path_slow_families(tmp_path):
    check_paths(sorted(SLOW), tmp_path)
