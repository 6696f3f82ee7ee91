"""`noisevision analyze` end to end on tiny sets: the obvious cases come out obvious, the same
command gives the same numbers, a rerun resumes from the cache, and bad input is one line."""

import json

import numpy as np
import pytest
from PIL import Image

from noisevision import generators

pytestmark = pytest.mark.usefixtures("one_thread")

N = 48
COMMON = ("--num-images", str(N), "--res", "32", "--bootstraps", "4", "--no-progress", "--device", "cpu")


def save(images, folder, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(folder / f"{start + i:04d}.png")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A real set (imagefolder: train/ and val/, two classes of program-like blobs), a folder of
    copies of one image, and a folder of blank images."""
    root = tmp_path_factory.mktemp("analyze")
    gen = generators.get("test-classes")
    for split, start in (("train", 0), ("val", 1000)):
        for c in range(2):
            images = gen([c + 5 * i for i in range(start, start + N // 2)], res=32)
            save(images, root / "real" / split / f"class{c}", start)
    one = generators.get("test-blobs")([7], res=32)
    save(one.expand(N, -1, -1, -1), root / "copies")
    blank = root / "blank"
    blank.mkdir()
    for i in range(N):
        Image.fromarray(np.full((32, 32, 3), 120, dtype=np.uint8)).save(blank / f"{i}.png")
    return root


def test_analyze_end_to_end(run_cli, folders, tmp_path, log_lines):
    real = f"imagefolder:{folders / 'real'}"
    out = tmp_path / "out"
    args = (
        "analyze",
        "test-blobs",
        str(folders / "copies"),
        str(folders / "real" / "val"),
        str(folders / "blank"),
    )
    code, stdout, stderr = run_cli(*args, "--out", out, "--real", real, *COMMON)
    assert code == 0, stderr
    assert "report:" in stdout
    assert any("blank" in line for line in log_lines)  # the blank folder: a warning, left out
    for name in (
        "report.md",
        "results.json",
        "results.csv",
        "plane.png",
        "spectra.png",
        "samples.png",
        "pca.png",
    ):
        assert (out / name).stat().st_size > 0, name
    numbers = json.loads((out / "results.json").read_text())
    sources = numbers["sources"]
    assert "blank" not in sources
    copies = sources["copies"]["measures"]
    for space in ("random", "stats"):
        assert copies[space]["vendi_q1"]["value"] == pytest.approx(1.0, abs=1e-6)
        assert copies[space]["near_duplicates"]["value"] == 1.0
        assert copies[space]["coverage"]["value"] < 0.1
    # the real images' other split against the real set: as natural and covering as real images get
    val = sources["val"]["measures"]["random"]
    assert val["coverage"]["value"] > 0.8
    assert 0.6 < val["density"]["value"] < 1.5
    assert val["density"]["value"] > sources["test-blobs"]["measures"]["random"]["density"]["value"]
    report = (out / "report.md").read_text()
    assert "## Diversity in the random space" in report and "Naturalism" in report

    # the same command again: everything from the cache, the same numbers
    cached = sorted((out / "cache").iterdir())
    stamps = [p.stat().st_mtime_ns for p in cached]
    code, _, stderr = run_cli(*args, "--out", out, "--real", real, *COMMON)
    assert code == 0, stderr
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    assert json.loads((out / "results.json").read_text()) == numbers
    # one source's cache lost (an interrupted run): only it is computed again, to the same numbers
    blobs = next(p for p in cached if "test-blobs" in p.name)
    blobs.unlink()
    code, _, stderr = run_cli(*args, "--out", out, "--real", real, *COMMON)
    assert code == 0, stderr
    assert blobs.exists()
    assert [p.stat().st_mtime_ns for p in cached if p != blobs] == [
        t for p, t in zip(cached, stamps) if p != blobs
    ]
    assert json.loads((out / "results.json").read_text()) == numbers


def test_analyze_relates_measures_to_probe_results(run_cli, tmp_path):
    results = tmp_path / "evals"
    results.mkdir()
    for source, top1 in (("test-blobs", 40.0), ("test-classes", 55.0), ("test-classes-4", 70.0)):
        blob = {"meta": {"data": source}, "dataset": "toy", "probes": {"knn": {"top1": top1}}}
        (results / f"{source}.json").write_text(json.dumps(blob))
    from noisevision.models import build_encoder, save_encoder

    encoder = save_encoder(tmp_path / "enc.pt", build_encoder("smallalexnet", width=0.125, input_size=32), {})
    out = tmp_path / "out"
    sources = ("test-blobs", "test-classes", "test-classes-4")
    code, _, stderr = run_cli(
        "analyze", *sources, "--out", out, "--results", results, "--encoder", encoder, *COMMON
    )
    assert code == 0, stderr
    numbers = json.loads((out / "results.json").read_text())
    assert numbers["spaces"] == ["random", "encoder", "stats"]
    assert numbers["sources"]["test-blobs"]["measures"]["encoder"]["vendi_q1"]["value"] > 1
    corr = numbers["correlations"]
    assert corr and {c["probe"] for c in corr} == {"toy/knn"}
    assert all(c["n"] == 3 and not c["significant"] for c in corr)  # three sources prove nothing
    assert numbers["sources"]["test-classes"]["accuracy"] == {"toy/knn": 55.0}
    assert "not significant" in (out / "report.md").read_text()
    assert (out / "correlations.png").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("test-blobs", "--num-images", "1"), "--num-images must be at least 20"),
        (("nope-generator",), "unknown generator"),
        (("EMPTY",), "holds no image files"),
        (("test-blobs", "--results", "NORESULTS"), "no probe results"),
        (("test-blobs", "--real", "imagefolder"), "needs a folder"),
        (("test-blobs", "--real", "fashion-mnistt"), "unknown evaluation dataset"),
        (("test-blobs", "test-blobs"), "named twice"),
        (("test-blobs", "--encoder", "missing.pt"), "missing.pt"),
    ],
)
def test_bad_input_is_one_line_before_any_work(run_cli, tmp_path, extra, message):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "NORESULTS").mkdir()
    (tmp_path / "NORESULTS" / "notes.json").write_text("{}")
    args = [str(tmp_path / a) if a in ("EMPTY", "NORESULTS") else a for a in extra]
    code, _, stderr = run_cli("analyze", *args, "--out", tmp_path / "out", "--no-progress")
    assert code == 2
    assert message in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not (tmp_path / "out").exists()
