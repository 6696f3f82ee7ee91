"""What a source name means: a generator, a folder, or NAME=DIR; and how images are fitted."""

import numpy as np
import pytest
import torch
from PIL import Image

from noisevision.analyze.sources import ImageSource, fit_to, resolve_source
from noisevision.errors import NoisevisionError


def test_names_folders_and_named_folders(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(folder / "a.png")
    assert resolve_source("test-blobs").kind == "generator"
    assert resolve_source("fractaldb:classes=16").kind == "generator"  # "=" inside a generator name
    plain = resolve_source(str(folder))
    assert (plain.label, plain.kind) == ("imgs", "folder")
    named = resolve_source(f"fractaldb:classes=64={folder}")  # as reproduce names its rendered folders
    assert (named.label, named.kind, named.spec) == ("fractaldb:classes=64", "folder", str(folder))
    with pytest.raises(NoisevisionError, match="unknown generator"):
        resolve_source("dead_leaves-mixd")
    with pytest.raises(NoisevisionError, match="no such folder"):
        resolve_source(str(tmp_path / "missing") + "/")


def test_fit_to_resizes_the_short_side_and_crops_the_centre():
    wide = torch.zeros(1, 1, 20, 40, dtype=torch.uint8)
    wide[..., 6:34] = 255  # the centre, with a margin for the antialiasing filter
    out = fit_to(wide, 10)
    assert out.shape == (1, 3, 10, 10) and out.dtype == torch.uint8
    assert int(out.min()) == 255  # only the centre is left


def test_a_folder_gives_a_seeded_choice_of_its_files(tmp_path):
    for i in range(30):
        Image.fromarray(np.full((8, 8, 3), i, dtype=np.uint8)).save(tmp_path / f"{i:02d}.png")
    src = resolve_source(str(tmp_path))
    a = ImageSource(src, 10, 8, 0, torch.device("cpu"))
    b = ImageSource(src, 10, 8, 0, torch.device("cpu"))
    c = ImageSource(src, 10, 8, 1, torch.device("cpu"))
    assert a.count == 10 and torch.equal(a.take(range(10)), b.take(range(10)))
    assert not torch.equal(a.take(range(10)), c.take(range(10)))


def test_a_rendering_worker_gives_the_same_batches(one_thread):
    src = ImageSource(resolve_source("test-blobs"), 300, 16, 0, torch.device("cpu"))
    here = list(src.batches())
    assert [len(b) for b in here] == [128, 128, 44]
    assert all(torch.equal(a, b) for a, b in zip(here, src.batches(workers=1), strict=True))
