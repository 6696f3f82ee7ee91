"""Dataset folders record the CPU code paths that rendered them, and keep generators that are not
portable to one path unless told otherwise."""

import json
import os

import pytest
import torch

from noisevision.data import folder
from noisevision.errors import NoisevisionError


def _spec(name):
    return folder.DatasetSpec(name, {}, 0, 32, 4)


def test_a_folder_of_another_cpu_path_is_refused_before_any_work(tmp_path, monkeypatch):
    root = tmp_path / "d"
    folder.write_dataset(root, _spec("fractaldb"), range(2), torch.device("cpu"), 1, 2)
    here = json.loads((root / folder.MANIFEST).read_text())["cpu_paths"]
    assert len(here) == 1 and "ATen" in here[0]
    monkeypatch.setattr(folder, "cpu_code_path", lambda: "x86_64 GenuineIntel, ATen AVX512, MKL auto")
    with pytest.raises(NoisevisionError, match="another code path .* --allow-other-cpu") as exc:
        folder.write_dataset(root, _spec("fractaldb"), range(4), torch.device("cpu"), 1, 2)
    assert "\n" not in str(exc.value)
    assert sorted(p.name for p in (root / "train").rglob("*.jpg")) == [
        "00000000.jpg",
        "00000001.jpg",
    ]
    folder.write_dataset(root, _spec("fractaldb"), range(4), torch.device("cpu"), 1, 2, allow_other_cpu=True)
    paths = json.loads((root / folder.MANIFEST).read_text())["cpu_paths"]
    assert paths == [here[0], "x86_64 GenuineIntel, ATen AVX512, MKL auto"]


def test_portable_generators_take_any_cpu_path(tmp_path, monkeypatch):
    root = tmp_path / "d"
    folder.write_dataset(root, _spec("dead_leaves-squares"), range(2), torch.device("cpu"), 1, 2)
    monkeypatch.setattr(folder, "cpu_code_path", lambda: "another path")
    folder.write_dataset(root, _spec("dead_leaves-squares"), range(4), torch.device("cpu"), 1, 2)
    assert json.loads((root / folder.MANIFEST).read_text())["cpu_paths"][-1] == "another path"


def test_generate_refuses_another_cpu_path_in_one_line_unless_allowed(run_cli, tmp_path, monkeypatch):
    out = tmp_path / "d"
    args = ("generate", "fractaldb", "--out", out, "--num-images", "2", "--res", "32", "--device", "cpu")
    assert run_cli(*args)[0] == 0
    # this CPU now takes another MKL path (the suite itself may run under MKL_CBWR=COMPATIBLE)
    monkeypatch.setenv("MKL_CBWR", "AVX2" if os.environ.get("MKL_CBWR") == "COMPATIBLE" else "COMPATIBLE")
    code, _, err = run_cli(*args[:5], "4", *args[6:])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--allow-other-cpu" in err
    assert run_cli(*args[:5], "4", *args[6:], "--allow-other-cpu")[0] == 0
    assert len(json.loads((out / folder.MANIFEST).read_text())["cpu_paths"]) == 2
