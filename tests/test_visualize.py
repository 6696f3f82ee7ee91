"""Sample grids: the file kinds they are saved as, checked before any image is rendered."""

import pytest

from noisevision.errors import NoisevisionError
from noisevision.visualize import sample_grid


def test_a_grid_is_written_whole_as_the_named_kind(tmp_path):
    out = sample_grid(["test-blobs"], tmp_path / "grid.jpg", num=2, res=16)
    assert out.read_bytes()[:2] == b"\xff\xd8"  # JPEG, as the name says
    assert sample_grid(["test-blobs"], tmp_path / "grid.png", num=2, res=16).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("name", "num", "match"),
    [
        ("grid.jpgx", 2, "cannot save a grid as 'grid.jpgx'"),
        ("grid", 2, "name a .png"),
        ("grid.png", 10_000_000, "1 to 256 images per generator"),
    ],
)
def test_bad_grids_fail_before_rendering(tmp_path, monkeypatch, name, num, match):
    from noisevision import generators

    monkeypatch.setattr(generators, "get", lambda *a, **k: pytest.fail("rendered before the check"))
    with pytest.raises(NoisevisionError, match=match):
        sample_grid(["test-blobs"], tmp_path / name, num=num)
    assert not (tmp_path / name).exists()
