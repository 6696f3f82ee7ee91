"""Reproduction presets, resumable cells and the report (tables, CSV/JSON, bar charts)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from noisevision import reproduce as rp
from noisevision.data import folder
from noisevision.data.eval_datasets import EvalDataset, ImageSet
from noisevision.errors import NoisevisionError
from noisevision.io import atomic_write_text
from noisevision.reproduce import run as rp_run

pytestmark = pytest.mark.usefixtures("one_thread")


def fake_cell(
    source: str,
    probe: str,
    top1: float,
    kind: str = "generator",
    family: str = "dead leaves",
    label: str | None = None,
    paper: float | None = None,
    std: float | None = None,
) -> dict:
    return {
        "preset": "demo",
        "source": source,
        "kind": kind,
        "family": family,
        "label": label or source,
        "probe": probe,
        "dataset": "fashion-mnist",
        "top1": top1,
        "std": std,
        "paper_top1": paper,
        "paper_scale": "small",
        "layer": "pool",
        "feature_dim": 256,
        "n_train": 500,
        "n_test": 200,
        "arch": "resnet18-s",
        "device": "cpu",
        "stages": {
            "generation": {"images_per_s": 100.0, "seconds": 5.0},
            "pretrain": {"seconds": 60.0, "images_per_s": 40.0},
            "probe": {"seconds": 3.0, "feature_images_per_s": 300.0},
        },
    }


def write_cells(out: Path, cells: list[dict]) -> None:
    for c in cells:
        atomic_write_text(rp.cell_path(out, c["source"], c["probe"]), json.dumps(c))


def sample_cells() -> list[dict]:
    cells = []
    for probe, shift in (("fast", 0.0), ("knn", -3.0)):
        cells += [
            fake_cell("dead_leaves-mixed", probe, 74.0 + shift, label="Dead leaves – Shapes", paper=38.9),
            fake_cell(
                "stylegan-oriented",
                probe,
                77.5 + shift,
                family="random StyleGAN",
                label="StyleGAN – Oriented",
                paper=43.4,
            ),
            fake_cell("my-photos", probe, 79.0 + shift, kind="folder", family="image folder"),
            fake_cell(
                "cnn-random",
                probe,
                75.0 + shift,
                kind="baseline",
                family="baseline",
                label="CNN – Random",
                paper=20.9,
            ),
            fake_cell(
                "mean-colors",
                probe,
                20.0 + shift,
                kind="baseline",
                family="baseline",
                label="Mean colors",
                paper=5.0,
                std=1.5,
            ),
        ]
    return cells


def test_report_from_results_files(tmp_path: Path) -> None:
    write_cells(tmp_path, sample_cells())
    atomic_write_text(
        tmp_path / "plan.json",
        json.dumps(
            {
                "preset": "demo",
                "dataset": "fashion-mnist",
                "probes": ["fast", "knn"],
                "sources": [
                    "dead_leaves-mixed",
                    "stylegan-oriented",
                    "my-photos",
                    "cnn-random",
                    "mean-colors",
                    "stat-wmm",
                ],
                "notes": ["skipped fractaldb: not registered in this installation"],
                "paper_scale": "small",
            }
        ),
    )
    (tmp_path / "chart-knn.png").write_bytes(b"an older version's chart")
    paths = rp.build_report(tmp_path)
    chart = Image.open(paths["chart"])
    assert chart.format == "PNG" and chart.size[0] > 1000 and chart.size[1] > 300  # 2 probes + paper
    pixels = np.asarray(chart.convert("RGB"))
    assert paths["chart"].stat().st_size > 10_000 and pixels.std() > 20  # a drawing, not a blank
    assert not (tmp_path / "chart-knn.png").exists()  # one chart, a panel per probe
    md = paths["markdown"].read_text()
    assert "| StyleGAN – Oriented | random StyleGAN | 77.5 (1 seed, no interval) | 1 | 77.5 | 43.4 |" in md
    assert "| my-photos | image folder | 79.0 (1 seed, no interval) | 1 | 79.0 | – |" in md
    assert "With 1 seed there is no interval and no test" in md
    assert "- my-photos > StyleGAN – Oriented by 1.5 points (1 seed: no test)" in md
    # Honest verdict: the best noise encoder against CNN-Random, with the margin.
    assert "StyleGAN – Oriented, 77.5) beats CNN-Random (75.0) by +2.5 points; 1 of 2" in md
    assert "different dataset" in md and "skipped fractaldb" in md
    assert "2 cell(s) not done yet" in md  # stat-wmm listed in the plan but without results
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == 10 and {r["probe"] for r in rows} == {"fast", "knn"}
    assert float(rows[0]["pretrain_seconds"]) == 60.0 and rows[0]["device"] == "cpu"
    assert (rows[0]["seed"], rows[0]["n"], rows[0]["half_width"]) == ("0", "1", "")
    assert float(rows[0]["mean"]) == float(rows[0]["top1"]) == float(rows[0]["ci_low"])
    data = json.loads(paths["json"].read_text())
    assert len(data["cells"]) == 10 and data["plan"]["preset"] == "demo"
    assert len(data["summary"]) == 10 and data["summary"][0]["n"] == 1


def test_verdict_says_when_noise_loses() -> None:
    cells = [
        fake_cell("dead_leaves-mixed", "fast", 60.0, label="DL"),
        fake_cell("cnn-random", "fast", 62.5, kind="baseline", family="baseline"),
    ]
    assert "(DL, 60.0) does NOT beat CNN-Random (62.5) by -2.5 points; 0 of 1" in rp.verdict(cells, "fast")


def test_report_without_results_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(NoisevisionError, match="no results in"):
        rp.build_report(tmp_path)


def _toy_dataset() -> EvalDataset:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat(20)
    images = torch.randint(0, 255, (40, 1, 12, 12), generator=g, dtype=torch.uint8)
    images[labels == 1] //= 4  # class 1 is darker
    return EvalDataset("toy", ["a", "b"], ImageSet(labels, images=images), ImageSet(labels, images=images))


def test_resume_skips_finished_cells(log_lines, tmp_path: Path, monkeypatch) -> None:
    preset = rp.ReproPreset("t", "test", (), "tiny", probe=dict(probes=("fast", "knn"), min_steps=20))
    source = rp.Source("mean-colors", "baseline", "baseline", "Mean colors")
    settings = preset.probe_settings()
    cells = rp_run.run_source(source, preset, tmp_path, "toy", _toy_dataset(), settings, "cpu", {})
    assert [c["probe"] for c in cells] == ["fast", "knn"]
    written = rp.read_cell(rp.cell_path(tmp_path, "mean-colors", "fast"))
    assert written["top1"] == cells[0]["top1"] and written["kind"] == "baseline"
    assert written["paper_top1"] == 5.0 and written["stages"]["probe"]["seconds"] >= 0

    def fail(*args, **kwargs):
        raise AssertionError("a finished cell was run again")

    monkeypatch.setattr(rp_run, "evaluate", fail)
    start = len(log_lines)
    assert rp_run.run_source(source, preset, tmp_path, "toy", _toy_dataset(), settings, "cpu", {}) == []
    assert "skipped" in log_lines[start]
    # A missing cell (e.g. a killed run) is the only one redone.
    rp.cell_path(tmp_path, "mean-colors", "knn").unlink()
    monkeypatch.undo()
    redo = rp_run.run_source(source, preset, tmp_path, "toy", _toy_dataset(), settings, "cpu", {})
    assert [c["probe"] for c in redo] == ["knn"]


def test_presets_and_sources() -> None:
    for name in ("demo", "paper-small", "paper-large"):
        preset = rp.get_repro_preset(name)
        preset.probe_settings().check()
    assert set(rp.SPEC_DATASETS) <= {g.split("|")[0] for g in rp.REPRO_PRESETS.get("paper-small").generators}
    with pytest.raises(NoisevisionError, match="unknown reproduction preset"):
        rp.get_repro_preset("huge")
    preset = rp.ReproPreset("t", "test", ("no-such-gen|dead_leaves-mixed", "nothing-here"), "tiny")
    sources, notes = rp.resolve_sources(preset, extra_data={"photos": "."})
    assert [s.name for s in sources] == [
        "dead_leaves-mixed",
        "photos",
        "cnn-random",
        "raw-pixels",
        "mean-colors",
    ]
    assert sources[0].family == "dead leaves" and sources[1].kind == "folder"
    assert notes == ["skipped nothing-here: not registered in this installation"]
    with pytest.raises(NoisevisionError, match="unknown generator"):
        rp.resolve_sources(preset, generators=["nothing-here"])
    mixed, _ = rp.resolve_sources(preset, generators=["mix2:dead_leaves-mixed+dead_leaves-squares"])
    assert mixed[0].family == "mixing" and mixed[0].data == "mix2:dead_leaves-mixed+dead_leaves-squares"


def test_demo_preset_spans_families() -> None:
    sources, _ = rp.resolve_sources(rp.REPRO_PRESETS.get("demo"))
    trained = [s for s in sources if s.kind == "generator"]
    assert len(trained) >= 4 and len({s.family for s in trained}) >= 4
    assert [s.name for s in sources[-3:]] == ["cnn-random", "raw-pixels", "mean-colors"]


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(NoisevisionError, match="write NAME=DIR"):
        rp.parse_extra_data(["photos"])
    assert rp.parse_extra_data(["a=/x", "b=y=z"]) == {"a": "/x", "b": "y=z"}
    with pytest.raises(NoisevisionError, match="no such folder"):
        rp.resolve_sources(rp.REPRO_PRESETS.get("demo"), extra_data={"a": str(tmp_path / "missing")})
    with pytest.raises(NoisevisionError, match="--eval-dataset imagenet100:/path/to/folder"):
        rp.reproduce("paper-small", tmp_path)


def test_generation_res_picks_a_resolution_the_generator_makes() -> None:
    assert rp.generation_res("dead_leaves-mixed", 64) == 64
    assert rp.generation_res("stylegan-oriented", 64) == 128
    assert rp.generation_res("stylegan-oriented", None) is None


@pytest.mark.parametrize("materialize", ["none", pytest.param("all", marks=pytest.mark.slow)])
def test_end_to_end_tiny_reproduction(tmp_path: Path, monkeypatch, materialize: str, probe_set) -> None:
    """Two generators (streamed, or rendered to folders first) + baselines, a few training steps."""
    probe = probe_set(4)
    train = dict(
        num_images=32,
        epochs=1,
        batch_size=16,
        input_size=16,
        res=32,
        workers=0,
        progress=False,
        arch_kwargs={"width": 0.125, "head": "linear", "out_dim": 16},
    )
    preset = rp.ReproPreset(
        "mini",
        "test",
        ("dead_leaves-squares", "dead_leaves-mixed"),
        "tiny",
        train,
        materialize=materialize,
        eval_dataset=probe,
        probe=dict(probes=("fast", "knn"), workers=0, min_steps=20),
    )
    out = tmp_path / "out"
    rp.reproduce(preset, out)
    cells = rp.load_cells(out)
    assert len(cells) == 10 and (out / "chart.png").stat().st_size > 5000
    gen = next(c for c in cells if c["source"] == "dead_leaves-mixed")
    assert gen["stages"]["pretrain"]["seconds"] > 0 and gen["stages"]["generation"]["images_per_s"] > 0
    assert gen["encoder"] == "runs/dead_leaves-mixed/encoder.pt" and (out / gen["encoder"]).is_file()
    assert (out / "data").is_dir() == (materialize == "all")
    # every file of the folder names the others by their path from it, never the machine's (the
    # evaluation set is named as the user typed it)
    written = "".join(
        p.read_text(errors="replace") for p in out.rglob("*") if p.suffix in (".json", ".yaml", ".md")
    )
    assert str(tmp_path) not in written.replace(probe, "")


def test_a_failing_source_is_noted_and_the_rest_runs(tmp_path: Path, monkeypatch, probe_set) -> None:
    preset = rp.ReproPreset(
        "base", "test", (), "tiny", eval_dataset=probe_set(1), probe=dict(probes=("knn",), workers=0)
    )
    real = rp_run.run_source

    def flaky(source, *args, **kwargs):
        if source.name == "raw-pixels":
            raise NoisevisionError("disk full")
        return real(source, *args, **kwargs)

    monkeypatch.setattr(rp_run, "run_source", flaky)
    with pytest.raises(rp.ReproductionFailed, match=r"1 of 3 sources failed.*: raw-pixels \(knn\);") as info:
        rp.reproduce(preset, tmp_path / "out")
    assert "\n" not in str(info.value)
    assert [c["source"] for c in rp.load_cells(tmp_path / "out")] == ["cnn-random", "mean-colors"]
    assert "raw-pixels failed: disk full" in (tmp_path / "out" / "report.md").read_text()


def test_sources_that_would_share_files_are_refused(tmp_path: Path) -> None:
    preset = rp.REPRO_PRESETS.get("demo")
    with pytest.raises(
        NoisevisionError, match="sources 'my photos' and 'my_photos' would share their result"
    ):
        rp.resolve_sources(
            preset, ["dead_leaves-mixed"], {"my photos": str(tmp_path), "my_photos": str(tmp_path)}
        )
    with pytest.raises(NoisevisionError, match="'dead_leaves-mixed' and 'Dead_leaves-mixed'"):
        rp.resolve_sources(preset, ["dead_leaves-mixed"], {"Dead_leaves-mixed": str(tmp_path)})


@pytest.mark.parametrize(
    "damage",
    [
        lambda c: "not json {",
        lambda c: json.dumps([c]),
        lambda c: json.dumps({**c, "top1": "high"}),
        lambda c: json.dumps({**c, "top1": 1e308}),
        lambda c: json.dumps({**c, "source": None}),
        lambda c: json.dumps({**c, "seed": -1}),
        lambda c: json.dumps({**c, "stages": []}),
    ],
)
def test_report_only_leaves_out_a_damaged_cell_with_a_warning(log_lines, tmp_path: Path, damage) -> None:
    cells = sample_cells()
    write_cells(tmp_path, cells)
    bad = rp.cell_path(tmp_path, "stylegan-oriented", "fast")
    bad.write_text(damage(cells[1]))
    atomic_write_text(tmp_path / "plan.json", json.dumps({"preset": 3, "sources": "x", "seeds": "many"}))
    md = rp.build_report(tmp_path)["markdown"].read_text()
    assert "| Dead leaves – Shapes |" in md and len(rp.load_cells(tmp_path)) == 9
    assert any(f"{bad} left out of the report" in m for m in log_lines)
    # a rerun redoes the damaged cell instead of counting it done
    assert not rp_run._done(bad) and rp_run._done(rp.cell_path(tmp_path, "dead_leaves-mixed", "fast"))


def test_materialize_policy_picks_the_sources_rendered_once() -> None:
    sources, _ = rp.resolve_sources(rp.REPRO_PRESETS.get("paper-small"), extra_data={"photos": "."})
    generators = [s.name for s in sources if s.kind == "generator"]

    def once(policy: str) -> list[str]:
        return [s.name for s in sources if rp.renders_once(rp.materialize_selectors(policy), s)]

    assert once("expensive") == ["feature_vis-random", "feature_vis-dead_leaves"]
    assert once("expensive, stylegan-random") == [
        "stylegan-random",
        "feature_vis-random",
        "feature_vis-dead_leaves",
    ]
    assert once("random StyleGAN") == [n for n in generators if n.startswith("stylegan-")]
    assert once("all") == generators and "photos" not in generators  # folders and baselines never
    assert once("none") == []
    assert {e.name: e.value.materialize for e in rp.REPRO_PRESETS.entries()} == {
        "demo": "all",
        "fdsl-tiny": "all",
        "paper-small": "expensive",
        "paper-large": "expensive",
    }
    for bad, why in (
        ("sometimes", "'sometimes' is no generator or family"),
        ("", "'' is no generator"),
        ("all,expensive", "all stands alone"),
        ("expensive,stylegan-rand", "'stylegan-rand'"),
    ):
        with pytest.raises(NoisevisionError, match=f"bad materialize '{bad}': {why}.*; use all, none"):
            rp.materialize_selectors(bad)


def test_materialize_renders_this_ranks_share_then_waits_for_the_others(
    log_lines, tmp_path: Path, monkeypatch
) -> None:
    """Under torchrun each rank renders its share of the folder; training starts once all are there."""
    root = tmp_path / "data"
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    spec = folder.DatasetSpec("test-blobs", {}, seed=3, res=32, num=10)

    def other_rank_finishes(seconds: float) -> None:  # rank 0 writes its share while rank 1 waits
        folder.write_dataset(root, spec, range(0, 5), torch.device("cpu"), 1, 64)

    real_wait = folder.wait_until_complete
    monkeypatch.setattr(
        folder, "wait_until_complete", lambda *a, **k: real_wait(*a, **k, sleep=other_rank_finishes)
    )
    monkeypatch.setattr("noisevision.device.default_workers", lambda device, job: 1)
    record = rp_run.materialize("test-blobs", 32, 3, 10, root, "cpu")
    logs = [m for m in log_lines if m.startswith("[test-blobs]")]  # the reproduction's own lines
    assert logs[0].startswith("[test-blobs] generated 5 images at 32 px") and "(share 2/2: 5..9)" in logs[0]
    assert logs[1] == "[test-blobs] waiting for 5 images from the other ranks"
    assert (record["shard"], record["images"], record["num"]) == ("2/2", 5, 10)
    assert record["wait_seconds"] >= 0 and record["images_per_s"] > 0
    assert sorted(p.name for p in (root / "train").rglob("*.jpg")) == [f"{i:08d}.jpg" for i in range(10)]
    assert json.loads((root / "generation-2of2.json").read_text())["images"] == 5


def test_reproduce_cli_materialize_flag(tmp_path: Path, monkeypatch, run_cli) -> None:
    asked: dict = {}
    real = rp.reproduce
    monkeypatch.setattr(rp, "reproduce", lambda preset, out, **kwargs: asked.update(kwargs, preset=preset))
    code, _, err = run_cli(
        "reproduce",
        "--preset",
        "paper-small",
        "--materialize",
        "expensive,stylegan-random",
        "--out",
        tmp_path / "out",
    )
    assert code == 0, err
    assert (asked["preset"], asked["materialize"]) == ("paper-small", "expensive,stylegan-random")
    run_cli("reproduce", "--out", tmp_path / "out")
    assert asked["materialize"] is None  # the preset's own
    monkeypatch.setattr(rp, "reproduce", real)
    code, _, err = run_cli("reproduce", "--materialize", "sometimes", "--out", tmp_path / "x")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "bad --materialize 'sometimes': 'sometimes' is no generator or family; use all, none" in err
    assert not (tmp_path / "x").exists()
