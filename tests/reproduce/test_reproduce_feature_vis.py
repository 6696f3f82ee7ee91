"""feature_vis-dead_leaves in the reproduction: which ResNet-50 it visualises, trained or given."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from noisevision import reproduce as rp
from noisevision.errors import NoisevisionError
from noisevision.generators import feature_vis as fv
from noisevision.models import build_encoder, load_encoder, save_encoder
from noisevision.reproduce import run as rp_run

FV = "feature_vis-dead_leaves"
# The paper-large recipe (ResNet-50 + MoCo v2) shrunk to one CPU step: 4 images of 32 px.
RESNET50_STEP = dict(
    num_images=4,
    epochs=1,
    batch_size=4,
    input_size=32,
    res=32,
    bn_groups=2,
    workers=0,
    progress=False,
    method_kwargs={"queue_size": 16},
)
# The tiny recipe (as paper-small's SmallAlexNet runs stand for "another recipe than the encoder's").
TINY_STEP = dict(
    num_images=16,
    epochs=1,
    batch_size=8,
    input_size=16,
    res=32,
    workers=0,
    progress=False,
    arch_kwargs={"width": 0.125, "head": "linear", "out_dim": 16},
)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def visualised(monkeypatch) -> list[str]:
    """Feature visualizations cut to 1 optimisation step and a 8-image speed sample; returns the
    encoder files the rendered images came from."""
    seen: list[str] = []
    real_network, real_visualise = fv.FeatureVis.network, fv.visualise
    real_measure = rp_run.measure_generation

    def network(self, seed, device):
        seen.append(self.encoder)
        return real_network(self, seed, device)

    monkeypatch.setattr(fv.FeatureVis, "network", network)
    monkeypatch.setattr(
        fv,
        "visualise",
        lambda model, rng, units, res, steps, *rest: real_visualise(model, rng, units, res, 1, *rest),
    )
    monkeypatch.setattr(
        rp_run, "measure_generation", lambda name, res, seed: real_measure(name, res, seed, 8)
    )
    return seen


@pytest.fixture
def probe_folder(probe_set) -> str:
    return probe_set(3)


def small_preset(generators: tuple[str, ...], probe_set: str, shared: bool = False) -> rp.ReproPreset:
    """paper-small's shape (shared=False: another recipe than the encoder's) or paper-large's (True)."""
    train = ("paper-large", RESNET50_STEP) if shared else ("tiny", TINY_STEP)
    return rp.ReproPreset(
        "mini-fv",
        "test",
        generators,
        *train,
        baselines=(),
        eval_dataset=probe_set,
        probe=dict(probes=("knn",), workers=0),
        feature_vis_train_preset="paper-large",
        feature_vis_train_overrides=RESNET50_STEP,
    )


def no_training(*args, **kwargs):
    raise AssertionError("trained although the encoder was there")


def test_paper_presets_plan_feature_vis_dead_leaves(tmp_path: Path) -> None:
    assert rp.SPEC_DATASETS.index("dead_leaves-mixed") < rp.SPEC_DATASETS.index(FV)
    prerequisites = tmp_path / "prerequisites" / "dead_leaves-mixed-resnet50"
    for name, how in (
        ("paper-large", "the ResNet-50 of the dead_leaves-mixed run"),
        (
            "paper-small",
            "a ResNet-50 trained first on dead_leaves-mixed with the 'paper-large' "
            f"recipe in {prerequisites}",
        ),
    ):
        preset = rp.REPRO_PRESETS.get(name)
        sources, notes = rp.resolve_sources(preset)
        fv_row = next(s for s in sources if s.name == FV)
        assert (fv_row.kind, fv_row.family, fv_row.label) == (
            "generator",
            "feature visualization",
            "Feature vis. – Dead leaves",
        )
        assert not any(FV in n for n in notes)
        kept, notes = rp.plan_prerequisites(sources, preset, tmp_path)
        assert kept == sources and notes == [f"{FV} visualises {how}"]
        assert rp.PAPER_NUMBERS[preset.paper_scale][FV] in (39.2, 49.48)
    # Without dead_leaves-mixed and without an encoder, the chain cannot run: a note, no crash.
    preset = rp.REPRO_PRESETS.get("paper-small")
    alone, _ = rp.resolve_sources(preset, generators=[FV])
    kept, (note,) = rp.plan_prerequisites(alone, preset, tmp_path)
    assert FV not in [s.name for s in kept] and note.startswith(f"skipped {FV}: ")
    assert "--feature-vis-encoder" in note
    # ... unless an earlier run left the encoder there.
    prerequisite = rp.prerequisite_path(rp.DERIVED[FV].needs, preset, tmp_path)
    prerequisite.parent.mkdir(parents=True)
    prerequisite.write_bytes(b"")
    assert rp.plan_prerequisites(alone, preset, tmp_path)[0] == alone
    # The CPU demo trains no ResNet-50, not even when asked for feature_vis-dead_leaves.
    demo = rp.REPRO_PRESETS.get("demo")
    assert FV not in [s.name for s in rp.resolve_sources(demo)[0]]
    asked, _ = rp.resolve_sources(demo, generators=["dead_leaves-mixed", FV])
    kept, (note,) = rp.plan_prerequisites(asked, demo, tmp_path)
    assert [s.name for s in kept] == ["dead_leaves-mixed", "cnn-random", "raw-pixels", "mean-colors"]
    assert note.startswith(f"skipped {FV}: preset 'demo' trains no ResNet-50")


def test_paper_small_trains_a_resnet50_prerequisite_once(
    log_lines, tmp_path: Path, monkeypatch, visualised, probe_folder: str
) -> None:
    preset = small_preset(("dead_leaves-mixed", FV), probe_folder)
    out, logs = tmp_path / "out", log_lines
    rp.reproduce(preset, out)
    prerequisite = (out / "prerequisites" / "dead_leaves-mixed-resnet50" / "encoder.pt").resolve()
    encoder, meta = load_encoder(prerequisite)
    assert (encoder.arch, meta["method"], meta["data"]) == ("resnet50", "moco_v2", "dead_leaves-mixed")
    assert any("prerequisite: training resnet50 + moco_v2" in m for m in logs)
    assert set(visualised) == {str(prerequisite)}  # every rendered image visualises that encoder
    run = yaml.safe_load((rp.run_folder(out, FV) / "config.yaml").read_text())
    assert run["data"] == f"feature_vis-{prerequisite}" and run["arch"] == "resnet18-deep"
    cell = rp.read_cell(rp.cell_path(out, FV, "knn"))
    assert (cell["label"], cell["family"], cell["paper_top1"]) == (
        "Feature vis. – Dead leaves",
        "feature visualization",
        39.2,
    )
    assert cell["stages"]["generation"]["data"] == run["data"]
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["source"] for r in rows] == ["dead_leaves-mixed", FV]
    report = (out / "report.md").read_text()
    assert "| Feature vis. – Dead leaves | feature visualization |" in report
    # The prerequisite's training is part of that row's cost, on a line of its own.
    cost = cell["stages"]["prerequisite"]
    assert cost["seconds"] > 0 and cost["images"] > 0 and not cost["shared"]
    line = f"| ↳ its resnet50 on dead_leaves-mixed (trained first) | cpu | | | {cost['seconds']:.0f} |"
    assert line in report
    # A rerun finds the prerequisite and its cost, and does not train it again.
    monkeypatch.setattr("noisevision.train.train", no_training)
    start = len(log_lines)
    path, reused = rp_run.prerequisite_encoder(rp.DERIVED[FV], preset, out, "cpu", {})
    again = log_lines[start:]
    assert path.resolve() == prerequisite and reused == cost
    assert "reusing the prerequisite encoder" in again[0]


def test_paper_large_visualises_the_dead_leaves_run(tmp_path: Path, monkeypatch, probe_folder: str) -> None:
    preset = small_preset(("dead_leaves-mixed", FV), probe_folder, shared=True)
    out = tmp_path / "out"
    path, cost = rp_run.prerequisite_encoder(rp.DERIVED[FV], preset, out, "cpu", {})
    assert cost["shared"] and cost["source"] == "dead_leaves-mixed"  # counted in that row already
    assert (
        path
        == rp.run_folder(out, "dead_leaves-mixed") / "encoder.pt"
        == rp.prerequisite_path(rp.DERIVED[FV].needs, preset, out)
    )
    assert load_encoder(path)[0].arch == "resnet50" and not (out / "prerequisites").exists()
    # The dead_leaves-mixed source then finds its run done: one training for both rows.
    monkeypatch.setattr("noisevision.train.train", no_training)
    (dead_leaves,) = [s for s in rp.resolve_sources(preset)[0] if s.name == "dead_leaves-mixed"]
    assert rp_run.pretrain(dead_leaves, preset, out, "cpu", {})[0] == path


def test_a_given_encoder_is_used_without_training_one(
    tmp_path: Path, monkeypatch, visualised, probe_folder: str
) -> None:
    given = save_encoder(tmp_path / "mine.pt", build_encoder("resnet50"), {}).resolve()
    preset = small_preset((FV,), probe_folder)
    monkeypatch.setattr(rp_run, "prerequisite_encoder", no_training)
    out = tmp_path / "out"
    rp.reproduce(preset, out, feature_vis_encoder=tmp_path / "mine.pt")
    assert set(visualised) == {str(given)} and not (out / "prerequisites").exists()
    cell = rp.read_cell(rp.cell_path(out, FV, "knn"))
    assert cell["stages"]["generation"]["data"] == f"feature_vis-{given}" and cell["source"] == FV
    plan = json.loads((out / "plan.json").read_text())
    assert plan["sources"] == [FV] and f"{FV} visualises {given} (--feature-vis-encoder)" in plan["notes"]
    _, notes = rp.resolve_sources(rp.REPRO_PRESETS.get("demo"), feature_vis_encoder=given)
    assert notes == [f"--feature-vis-encoder unused: none of {FV} is among the generators"]


def test_bad_feature_vis_encoder_is_one_line(tmp_path: Path, run_cli) -> None:
    small = save_encoder(tmp_path / "r18.pt", build_encoder("resnet18-s", width=0.125), {})
    for path, message in (
        (small, "holds a 'resnet18-s' encoder: feature visualizations need a ResNet-50"),
        (tmp_path / "missing.pt", f"--feature-vis-encoder {tmp_path / 'missing.pt'}: no such file"),
    ):
        code, _, err = run_cli(
            "reproduce",
            "--preset",
            "paper-small",
            "--eval-dataset",
            "fashion-mnist",
            "--out",
            tmp_path / "out",
            "--feature-vis-encoder",
            path,
        )
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "out").exists()
    with pytest.raises(NoisevisionError, match="need a ResNet-50"):
        rp.derived_source(FV, small)


def test_expensive_sources_are_rendered_once_and_cheap_ones_stream(
    log_lines, tmp_path: Path, monkeypatch, visualised, probe_folder: str
) -> None:
    """The paper presets' policy: feature visualizations train from OUT/data/NAME, rendered once."""
    monkeypatch.setattr("noisevision.device.default_workers", lambda device, job: 1)  # in-process: 1 step
    preset = replace(
        small_preset(("dead_leaves-squares", "feature_vis-random"), probe_folder), materialize="expensive"
    )
    out, logs = tmp_path / "out", log_lines
    rp.reproduce(preset, out)
    rendered = out / "data" / "feature_vis-random"
    trained_on = {
        name: yaml.safe_load((rp.run_folder(out, name) / "config.yaml").read_text())["data"]
        for name in ("dead_leaves-squares", "feature_vis-random")
    }
    # the rendered folder by its path from the run folder (io.recorded_path)
    assert trained_on == {
        "dead_leaves-squares": "dead_leaves-squares",
        "feature_vis-random": "../../data/feature_vis-random",
    }
    assert sorted(p.name for p in rendered.rglob("*.jpg")) == [f"{i:08d}.jpg" for i in range(16)]
    assert visualised  # rendered in this process, so with the 1-step patch
    assert [p.name for p in (out / "data").iterdir()] == ["feature_vis-random"]
    assert f"rendered once to {out / 'data'} (the others stream): feature_vis-random" in logs
    stages = {
        name: rp.read_cell(rp.cell_path(out, name, "knn"))["stages"]["generation"] for name in trained_on
    }
    fv_cost, dl_cost = stages["feature_vis-random"], stages["dead_leaves-squares"]
    assert (fv_cost["images"], fv_cost["res"], fv_cost["data"]) == (16, 32, "feature_vis-random")
    assert fv_cost["folder"] == "data/feature_vis-random"  # by its path from OUT
    assert fv_cost["images_per_s"] > 0 and "estimated" not in fv_cost and dl_cost["estimated"]
    assert json.loads((out / "plan.json").read_text())["materialize"] == "expensive"
    # A rerun renders only the missing images and keeps the cost of the run that rendered the others.
    seed = json.loads((rendered / "noisevision.json").read_text())["seed"]
    start = len(log_lines)
    same = rp_run.materialize("feature_vis-random", 32, seed, 16, rendered, "cpu")
    again = [m for m in log_lines[start:] if m.startswith("[feature_vis-random]")]
    assert {**same, "data": "feature_vis-random", "folder": "data/feature_vis-random"} == fv_cost
    assert "generated 0 images" in again[0] and "16 were there already" in again[0]
    (rendered / "train" / "00000" / "00000005.jpg").unlink()
    start = len(log_lines)
    redo = rp_run.materialize("feature_vis-random", 32, seed, 16, rendered, "cpu")
    again = [m for m in log_lines[start:] if m.startswith("[feature_vis-random]")]
    assert "generated 1 images" in again[0] and redo["images"] == 17
    assert redo["seconds"] > fv_cost["seconds"]


def unfinish(out: Path) -> None:
    """Leave feature_vis-dead_leaves trained but neither saved nor probed, as an interruption would."""
    for done in (
        rp.run_folder(out, FV) / "encoder.pt",
        rp.run_folder(out, FV) / "stages.json",
        rp.cell_path(out, FV, "knn"),
    ):
        done.unlink()


def test_a_moved_reproduction_finishes_feature_vis(
    log_lines, tmp_path: Path, monkeypatch, visualised, probe_folder: str
) -> None:
    monkeypatch.setattr("noisevision.device.default_workers", lambda device, job: 1)  # in-process: 1 step
    preset = replace(small_preset(("dead_leaves-mixed", FV), probe_folder), materialize="expensive")
    out = tmp_path / "out"
    rp.reproduce(preset, out)
    # feature_vis-dead_leaves left unfinished (trained, not yet saved nor probed), then OUT moved
    unfinish(out)
    moved = tmp_path / "moved"
    out.rename(moved)
    logs = log_lines
    rp.reproduce(preset, moved)
    data = f"feature_vis-{moved / 'prerequisites' / 'dead_leaves-mixed-resnet50' / 'encoder.pt'}"
    assert json.loads((moved / "data" / FV / "noisevision.json").read_text())["generator"] == data
    run = yaml.safe_load((rp.run_folder(moved, FV) / "config.yaml").read_text())
    assert run["data"] == f"../../data/{FV}"  # the rendered folder, by its path from the run: moved with it
    assert sum("was moved" in m for m in logs) == 1  # the rendered folder's manifest names the encoder
    assert rp.read_cell(rp.cell_path(moved, FV, "knn"))["top1"] >= 0
    # A run that names its data relative to the working directory (as OUT given relative once
    # did) resumes from the same place spelled absolute.
    config = rp.run_folder(moved, FV) / "config.yaml"
    config.write_text(yaml.safe_dump({**run, "data": f"moved/data/{FV}"}, sort_keys=False))
    unfinish(moved)
    monkeypatch.chdir(tmp_path)
    rp.reproduce(preset, "moved")
    assert yaml.safe_load(config.read_text())["data"] == f"../../data/{FV}"
    assert rp.read_cell(rp.cell_path(moved, FV, "knn"))["top1"] >= 0
