"""A reproduction measures its generators' data (`analyze`) and says in its report which measure
predicted its ranking."""

import json

import pytest

from noisevision import reproduce as rp
from noisevision.reproduce import run as rp_run

pytestmark = pytest.mark.usefixtures("one_thread")

ACCURACY = {"test-blobs": 40.0, "test-classes": 55.0, "test-classes-4": 70.0}


def test_reproduction_report_has_the_analysis_of_its_generators(tmp_path, probe_set):
    out = tmp_path / "out"
    (out / "cells").mkdir(parents=True)
    for source, top1 in ACCURACY.items():
        cell = {"source": source, "label": source, "probe": "knn", "kind": "generator", "top1": top1}
        cell["dataset"] = "toy"
        (out / "cells" / f"{source}__knn.json").write_text(json.dumps(cell))
    preset = rp.ReproPreset(
        "t",
        "test",
        tuple(ACCURACY),
        "tiny",
        analysis={"num_images": 24, "res": 32, "bootstraps": 3, "progress": False},
    )
    sources, _ = rp.resolve_sources(preset)
    rp_run._analyze(out, preset, sources, probe_set(12), "cpu")
    numbers = json.loads((out / "analysis" / "results.json").read_text())
    assert set(numbers["sources"]) == {"real", *ACCURACY}
    assert {c["probe"] for c in numbers["correlations"]} == {"toy/knn"}
    report = rp.build_report(out)["markdown"].read_text()
    assert "## Which measure predicted this ranking" in report
    assert "analysis/report.md" in report and "not significant" in report


def test_fewer_than_three_generators_are_not_analysed(tmp_path, probe_set):
    preset = rp.ReproPreset("t", "test", ("test-blobs", "test-classes"), "tiny")
    sources, _ = rp.resolve_sources(preset)
    rp_run._analyze(tmp_path, preset, sources, probe_set(12), "cpu")
    assert not (tmp_path / "analysis").exists()


def test_the_demo_analyses_its_data_at_the_size_it_trained_on():
    from noisevision.analyze import AnalyzeSettings
    from noisevision.presets import PRESETS

    demo = rp.REPRO_PRESETS.get("demo")
    settings = AnalyzeSettings(**demo.analysis)
    settings.check()
    assert settings.num_images > 0 and settings.res == PRESETS.get(demo.train_preset).values["res"]
