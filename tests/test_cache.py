"""The on-disk cache of shared tensors: same bytes as no cache, work split between processes that
start together, and entries of other code or damaged files never read."""

from __future__ import annotations

import fcntl
import os
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from noisevision import cache, generators
from noisevision.generators.dead_leaves import textures
from noisevision.generators.registry import Generator
from noisevision.generators.statistical import StatisticalModel
from noisevision.io import atomic_save

pytestmark = pytest.mark.usefixtures("one_thread")


def builder(calls: list[int]):
    def build(i: int) -> torch.Tensor:
        calls.append(i)
        return torch.full((2, 3), i, dtype=torch.uint8)

    return build


def test_entries_are_built_once_then_read(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISEVISION_CACHE", str(tmp_path))
    names = [cache.entry_name("t", i) for i in range(5)]
    calls: list[int] = []
    first = dict(cache.shared_tensors(names, builder(calls)))
    assert sorted(calls) == list(range(5)) and sorted(first) == list(range(5))
    calls.clear()
    again = dict(cache.shared_tensors(names, builder(calls)))
    assert calls == [] and all(torch.equal(first[i], again[i]) for i in range(5))
    assert len(list(tmp_path.glob("t.*.pt"))) == 5


def test_an_entry_locked_by_another_process_is_waited_for_not_built(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISEVISION_CACHE", str(tmp_path))
    names = [cache.entry_name("t", i) for i in range(4)]
    theirs = torch.full((2, 3), 77, dtype=torch.uint8)  # what the other process builds for entry 2
    fd = os.open(tmp_path / f"{names[2]}.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the other process holds entry 2
    calls: list[int] = []
    got: dict[int, torch.Tensor] = {}
    worker = threading.Thread(target=lambda: got.update(cache.shared_tensors(names, builder(calls))))
    worker.start()
    deadline = time.monotonic() + 30
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(calls) == [0, 1, 3]  # the others are built meanwhile …
    assert worker.is_alive()  # … then it waits for entry 2
    atomic_save({"tensor": theirs, "blake2b": cache.checksum(theirs)}, tmp_path / f"{names[2]}.pt")
    os.close(fd)
    worker.join(30)
    assert sorted(calls) == [0, 1, 3] and torch.equal(got[2], theirs)


def test_other_code_or_damaged_files_are_not_read(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISEVISION_CACHE", str(tmp_path))
    name = cache.entry_name("t", 0)
    (tmp_path / f"{name}.pt").write_bytes(b"not a tensor file")
    calls: list[int] = []
    ((_, value),) = cache.shared_tensors([name], builder(calls))
    assert calls == [0] and torch.equal(value, torch.zeros(2, 3, dtype=torch.uint8))
    assert torch.equal(torch.load(tmp_path / f"{name}.pt", weights_only=True)["tensor"], value)  # repaired
    # The name depends on the request and on the code that renders it.
    assert cache.entry_name("t", 1) != name
    monkeypatch.setattr(cache, "code_fingerprint", lambda: "other code")
    assert cache.entry_name("t", 0) != name


def test_an_entry_whose_bytes_changed_on_disk_is_built_again(tmp_path, monkeypatch):
    """A flipped byte in a stored tensor must not become other images: its checksum disagrees."""
    monkeypatch.setenv("NOISEVISION_CACHE", str(tmp_path))
    name = cache.entry_name("t", 3)
    dict(cache.shared_tensors([name], builder([])))
    path = tmp_path / f"{name}.pt"
    entry = torch.load(path, weights_only=True)
    entry["tensor"][0, 1] ^= 1  # one bit of the data, the checksum kept
    atomic_save(entry, path)
    calls: list[int] = []
    ((_, value),) = cache.shared_tensors([name], builder(calls))
    assert calls == [0] and torch.equal(value, torch.zeros(2, 3, dtype=torch.uint8))
    assert torch.equal(torch.load(path, weights_only=True)["tensor"], value)


def test_the_fingerprint_hashes_every_loaded_module_of_the_generators_and_the_streams():
    """A module moved into a subpackage (or renamed) stays part of every entry's name."""
    hashed = {path.resolve() for path in cache.code_files()}
    ours = ("noisevision.generators", "noisevision.rng")
    loaded = [m for name, m in sys.modules.items() if name.startswith(ours) and getattr(m, "__file__", None)]
    assert len(loaded) > 10 and {Path(m.__file__).resolve() for m in loaded} <= hashed


@pytest.mark.parametrize("setting", ["off", "file"])
def test_without_a_usable_folder_everything_is_built_here(tmp_path, monkeypatch, setting):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NOISEVISION_CACHE", "off" if setting == "off" else str(blocker / "cache"))
    calls: list[int] = []
    assert len(dict(cache.shared_tensors(["a", "b"], builder(calls)))) == 2 and sorted(calls) == [0, 1]
    assert cache.cache_dir() is None if setting == "off" else not (blocker / "cache").exists()


def test_texture_bank_from_the_cache_has_the_same_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(textures, "BANK_SHARD", 3)
    params = dict(texture="stat-spectrum", bank_size=8)

    def images():
        return generators.get("dead_leaves-textures", **params)(range(3), res=32, seed=4)

    monkeypatch.setenv("NOISEVISION_CACHE", "off")
    plain = images()
    monkeypatch.setenv("NOISEVISION_CACHE", str(tmp_path))
    cold = images()
    assert len(list(tmp_path.glob("stat-spectrum-32px-cpu-*.pt"))) == 3  # 8 entries in shards of 3

    def no_rendering(self, *args, **kwargs):
        raise AssertionError("textures rendered although the bank is in the cache")

    monkeypatch.setattr(StatisticalModel, "render_indices", no_rendering)
    warm = images()
    assert torch.equal(plain, cold) and torch.equal(plain, warm)


def test_setup_note_only_while_the_bank_is_still_to_render(tmp_path, monkeypatch):
    monkeypatch.setattr(textures, "BANK_SHARD", 4)
    monkeypatch.setenv("NOISEVISION_CACHE", str(tmp_path))

    def fresh():
        return generators.get("dead_leaves-textures", texture="stat-spectrum", bank_size=8)

    g = fresh()
    assert "texture bank: 8 stat-spectrum images at 32 px" in g.setup_note(32)
    g.prepare(32)
    assert g.setup_note(32) is None and fresh().setup_note(32) is None  # built here, then on disk
    assert fresh().setup_note(48) is not None  # another resolution, another bank
    assert generators.get("dead_leaves-mixed").setup_note(32) is None


def test_a_texture_generator_from_outside_the_package_is_part_of_the_name(tmp_path):
    g = generators.get("dead_leaves-textures", texture="stat-spectrum")
    own = g._shard_name(0, 64, 32, torch.device("cpu"))
    assert own == g._shard_name(0, 64, 32, torch.device("cpu"))
    g._texture_gen = NoiseLike(g._texture().spec)  # same name, code from another file
    assert g._shard_name(0, 64, 32, torch.device("cpu")) != own


class NoiseLike(Generator):
    def render(self, rng, res):
        return rng.randint(0, 256, 3, res, res).to(torch.uint8)
