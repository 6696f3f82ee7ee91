"""No file noisevision reads back can run code: checkpoints, encoder files and cache entries load
without unpickling objects, YAML without Python tags or aliases; each planted file is refused (or,
for the cache, built again) in one line, and the planted code never runs."""

import os
from pathlib import Path

import pytest
import torch

from noisevision import cache
from noisevision.errors import NoisevisionError
from noisevision.models import load_encoder
from noisevision.train.checkpoint import read_checkpoint
from noisevision.train.config import read_config_file


class Planted:
    """Unpickling this object runs a command (os.system) that creates a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path: Path, marker: Path, **fields) -> Path:
    torch.save({"format": "noisevision-train-checkpoint", **fields, "payload": Planted(marker)}, path)
    return path


def test_a_planted_checkpoint_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(NoisevisionError, match="checkpoint.pt is unreadable") as exc:
        read_checkpoint(plant(tmp_path / "checkpoint.pt", marker))
    assert not marker.exists() and "\n" not in str(exc.value)


def test_a_planted_encoder_file_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(NoisevisionError) as exc:
        load_encoder(plant(tmp_path / "encoder.pt", marker))
    assert not marker.exists() and "\n" not in str(exc.value)


def test_a_planted_cache_entry_is_built_again_without_running(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISEVISION_CACHE", str(tmp_path))
    marker = tmp_path / "ran"
    name = cache.entry_name("t", 0)
    plant(tmp_path / f"{name}.pt", marker)
    ((_, value),) = cache.shared_tensors([name], lambda i: torch.zeros(2, dtype=torch.uint8))
    assert not marker.exists() and torch.equal(value, torch.zeros(2, dtype=torch.uint8))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('epochs: !!python/object/apply:os.system ["touch RAN"]\n', "could not determine a constructor"),
        ("epochs: [1, 2\n", "not valid YAML at line 2"),
        ("a: &a [1, 1]\nb: &b [*a, *a]\nepochs: [*b, *b]\n", "aliases"),
        ("epochs: 99999999999999999999999\n", "too large a number"),
    ],
)
def test_config_files_are_plain_yaml(tmp_path, monkeypatch, text, match):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(NoisevisionError, match=match) as exc:
        read_config_file(tmp_path / "c.yaml")
    assert "\n" not in str(exc.value) and not (tmp_path / "RAN").exists()


def test_a_huge_config_file_is_refused_before_reading(tmp_path):
    (tmp_path / "c.yaml").write_bytes(b"#" * (2 << 20))
    with pytest.raises(NoisevisionError, match="bytes: a run's config is a few hundred"):
        read_config_file(tmp_path / "c.yaml")
