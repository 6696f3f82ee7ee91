"""The formula-supervised reproduction: per-source recipes, fine-tuning cells only where a network
can be trained, the published fine-tuning numbers beside the right probe, and the comparison of
the two kinds of pre-training."""

from __future__ import annotations

import json
from pathlib import Path

from noisevision import reproduce as rp
from noisevision.io import atomic_write_text
from noisevision.models.archs import ARCHS
from noisevision.presets import PRESETS
from noisevision.reproduce import plan as rp_plan
from noisevision.reproduce import stats


def test_the_preset_trains_each_source_with_its_recipe() -> None:
    preset = rp.REPRO_PRESETS.get("fdsl-tiny")
    sources, notes = rp_plan.resolve_sources(preset)
    names = [s.name for s in sources]
    assert not notes and "cnn-random" in names and "raw-pixels" in names
    supervised = [s.name for s in sources if s.kind == "generator" and preset.recipe(s.name) == "fdsl-tiny"]
    assert [n.partition(":")[0] for n in supervised] == [
        "fractaldb",
        "rcdb",
        "visualatom",
        "fractal-1p",
        "program-shader",
    ]
    assert PRESETS.get(preset.recipe("stylegan-oriented")).values["method"] != "supervised"
    # both recipes train the same network on the same crops
    arch = {
        PRESETS.get(preset.recipe(n)).values["arch"] for n in names if n not in ("raw-pixels", "mean-colors")
    }
    assert arch == {"resnet18-deep"}
    own = ARCHS.entry("resnet18-deep").defaults["input_size"]  # fdsl-tiny: the architecture's own
    assert {PRESETS.get(r).values["input_size"] or own for r in ("tiny", "fdsl-tiny")} == {64}


def test_fine_tuning_skips_baselines_without_weights() -> None:
    assert rp_plan.runs_probe("cnn-random", "finetune") and rp_plan.runs_probe("rcdb:classes=64", "finetune")
    assert not rp_plan.runs_probe("raw-pixels", "finetune") and not rp_plan.runs_probe(
        "mean-colors", "finetune"
    )
    assert rp_plan.runs_probe("raw-pixels", "fast")


def test_published_numbers_sit_beside_fine_tuning_only() -> None:
    ref = rp_plan.REFERENCES["fdsl"]
    assert ref.number("fractal-1p:classes=64", "finetune") == 84.2
    assert ref.number("fractal-1p:classes=64", "fast") is None
    assert ref.number("program-shader:classes=64", "finetune") is None
    assert rp_plan.REFERENCES["small"].number("stylegan-oriented", "knn") == 43.4


def _cell(source: str, probe: str, seed: int, top1: float, recipe: str | None, paper: float | None) -> dict:
    kind = "baseline" if recipe is None else "generator"
    return {
        "preset": "fdsl-tiny",
        "source": source,
        "kind": kind,
        "family": "baseline" if kind == "baseline" else "fdsl",
        "label": source,
        "recipe": recipe,
        "probe": probe,
        "dataset": "fashion-mnist",
        "seed": seed,
        "top1": top1,
        "paper_top1": paper,
        "paper_scale": "fdsl",
    }


def test_report_compares_the_two_kinds_of_pre_training(tmp_path: Path) -> None:
    values = {
        ("rcdb", "fdsl-tiny"): {"finetune": [60.0, 61.0, 59.5], "fast": [70.0, 71.0, 70.5]},
        ("fractaldb", "fdsl-tiny"): {"finetune": [55.0, 56.5, 54.0], "fast": [68.0, 67.0, 69.0]},
        ("stylegan-oriented", "tiny"): {"finetune": [52.0, 53.0, 51.0], "fast": [73.0, 74.0, 72.5]},
        ("cnn-random", None): {"finetune": [50.0, 50.5, 49.0], "fast": [66.0, 67.0, 66.5]},
        ("raw-pixels", None): {"fast": [80.0, 80.5, 79.5]},
    }
    published = {"rcdb": 82.2, "fractaldb": 81.6, "cnn-random": 64.2}
    for (source, recipe), probes in values.items():
        for probe, tops in probes.items():
            for seed, top1 in enumerate(tops):
                paper = published.get(source) if probe == "finetune" else None
                c = _cell(source, probe, seed, top1, recipe, paper)
                atomic_write_text(rp.cell_path(tmp_path, source, probe, seed), json.dumps(c))
    plan = {
        "preset": "fdsl-tiny",
        "probes": ["finetune", "fast"],
        "sources": [s for s, _ in values],
        "seeds": 3,
        "paper_scale": "fdsl",
    }
    atomic_write_text(tmp_path / "plan.json", json.dumps(plan))
    md = rp.build_report(tmp_path)["markdown"].read_text()
    assert "ViT-Tiny fine-tuning accuracies on CIFAR-100" in md and "ImageNet-100" not in md
    finetune, fast = md.split("## Probe `finetune`")[1].split("## Probe `fast`")
    assert "published, ViT-Tiny → CIFAR-100 |" in finetune and "| 82.2 |" in finetune
    assert "no published number" in finetune  # stylegan-oriented
    assert "published" not in fast.split("\n\n")[1]  # no reference column beside the frozen probe
    assert "trained from scratch" in finetune
    assert "not done yet" not in md  # raw pixels have no fine-tuning cell to wait for
    # fine-tuning: the best formula-supervised (RCDB) against self-supervised StyleGAN, paired
    d = stats.mean_interval([a - b for a, b in zip([60.0, 61.0, 59.5], [52.0, 53.0, 51.0], strict=True)])
    assert f"- rcdb > stylegan-oriented by {d.mean:.1f} points (95 % interval {d.low:.1f}" in finetune
    # the frozen probe reverses it: StyleGAN against the best formula-supervised
    assert (
        "Formula-supervised against self-supervised" in fast and "- stylegan-oriented > rcdb by 2.7" in fast
    )
