"""Repetitions of a reproduction over seeds: their files, resumption, and the statistics of the
report (95 % intervals, paired t-tests, the words for them)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from noisevision import reproduce as rp
from noisevision.errors import NoisevisionError
from noisevision.io import atomic_write_text
from noisevision.models import load_encoder
from noisevision.reproduce import run as rp_run
from noisevision.reproduce import stats

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------------- statistics
# Student t quantiles t_{0.975, df}, from printed tables (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 9: 2.262, 29: 2.045}


@pytest.mark.parametrize("df", sorted(T975))
def test_t_quantile_matches_printed_tables(df: int) -> None:
    assert stats.t_quantile(0.975, df) == pytest.approx(T975[df], abs=5e-4)
    assert stats.t_quantile(0.025, df) == pytest.approx(-T975[df], abs=5e-4)
    assert stats.t_cdf(stats.t_quantile(0.9, df), df) == pytest.approx(0.9, abs=1e-10)


def test_mean_interval_by_hand() -> None:
    ci = stats.mean_interval([1.0, 2.0, 3.0])  # sd 1, n 3: half-width t_{.975,2} / sqrt(3)
    assert (ci.mean, ci.n, ci.sd) == (2.0, 3, 1.0)
    assert ci.half_width == pytest.approx(4.302652729749464 / math.sqrt(3), rel=1e-9)
    assert (ci.low, ci.high) == pytest.approx((2.0 - ci.half_width, 2.0 + ci.half_width))
    one = stats.mean_interval([74.2])
    assert (one.mean, one.low, one.high, one.n, one.sd, one.half_width) == (74.2, 74.2, 74.2, 1, None, None)


def test_paired_test_by_hand_and_against_scipy() -> None:
    a, b = [75.1, 74.0, 76.2, 75.5], [74.0, 73.6, 74.9, 74.1]
    # differences 1.1, 0.4, 1.3, 1.4: mean 1.05, sd sqrt(0.61/3), t = 1.05 / (sd / 2) on 3 df
    test = stats.paired_test(a, b)
    sd = math.sqrt(sum((d - 1.05) ** 2 for d in (1.1, 0.4, 1.3, 1.4)) / 3)
    assert test.diff.mean == pytest.approx(1.05) and test.diff.sd == pytest.approx(sd)
    assert test.diff.half_width == pytest.approx(3.182446305284263 * sd / 2, rel=1e-9)
    assert test.significant is True and test.p_value < 0.05
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 10):
        x, y = rng.normal(70, 1, n), rng.normal(70.5, 1, n)
        ours, theirs = stats.paired_test(list(x), list(y)), scipy_stats.ttest_rel(x, y)
        assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9)
        ci = theirs.confidence_interval(0.95)
        assert (ours.diff.low, ours.diff.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
        mine = stats.mean_interval(list(x))
        low, high = scipy_stats.t.interval(0.95, n - 1, loc=x.mean(), scale=scipy_stats.sem(x))
        assert (mine.low, mine.high) == pytest.approx((low, high), rel=1e-9)


def test_paired_test_edge_cases() -> None:
    assert stats.paired_test([70.0], [69.0]).significant is None  # one pair: no test
    assert stats.paired_test([70.0, 71.0], [69.0, 70.0]).significant is True  # sd 0, difference 1
    assert stats.paired_test([70.0, 71.0], [70.0, 71.0]).significant is False
    with pytest.raises(ValueError, match="unequal length"):
        stats.paired_test([1.0], [1.0, 2.0])


def cell(source: str, probe: str, seed: int, top1: float, kind: str = "generator", label: str = "") -> dict:
    family = "dead leaves" if kind == "generator" else "baseline"
    return {
        "preset": "demo",
        "source": source,
        "kind": kind,
        "family": family,
        "label": label or source,
        "probe": probe,
        "dataset": "fashion-mnist",
        "seed": seed,
        "top1": top1,
        "std": None,
        "paper_top1": None,
        "device": "cpu",
        "stages": {},
    }


def test_report_says_what_is_significant_and_what_is_not(tmp_path: Path) -> None:
    values = {  # 3 seeds: A and B differ by noise only, both clearly above CNN-Random
        "dead_leaves-mixed": [74.0, 75.5, 73.1],
        "stylegan-oriented": [74.6, 74.1, 73.4],
        "cnn-random": [70.1, 70.6, 69.8],
    }
    for source, tops in values.items():
        for seed, top1 in enumerate(tops):
            kind = "baseline" if source == "cnn-random" else "generator"
            c = cell(source, "fast", seed, top1, kind, label="CNN – Random" if kind == "baseline" else "")
            atomic_write_text(rp.cell_path(tmp_path, source, "fast", seed), json.dumps(c))
    atomic_write_text(
        tmp_path / "plan.json",
        json.dumps({"preset": "demo", "probes": ["fast"], "sources": list(values), "seeds": 4}),
    )
    paths = rp.build_report(tmp_path)
    md = paths["markdown"].read_text()
    d = [a - b for a, b in zip(values["dead_leaves-mixed"], values["stylegan-oriented"], strict=True)]
    ci = stats.mean_interval(d)
    assert ci.low < 0 < ci.high
    assert (
        f"- dead_leaves-mixed > stylegan-oriented by {ci.mean:.1f} points (95 % interval "
        f"{ci.low:.1f} to {ci.high:.1f}, paired over 3 seeds, p = "
    ) in md
    assert "stylegan-oriented by 0.2 points" in md and "), not significant" in md
    assert "- stylegan-oriented > CNN – Random by 3.9 points (95 % interval" in md and "), significant" in md
    mean = stats.mean_interval(values["dead_leaves-mixed"])
    row = f"| dead_leaves-mixed | dead leaves | {mean.mean:.1f} ± {mean.half_width:.1f} | 3 |"
    assert f"{row} 74.0, 75.5, 73.1 |" in md
    assert "paired t-test" in md and "Seeds: 3" in md
    assert "3 cell(s) not done yet" in md  # the plan asks for a 4th seed
    data = json.loads(paths["json"].read_text())
    row = next(r for r in data["summary"] if r["source"] == "dead_leaves-mixed")
    assert (row["n"], row["values"], row["seeds"]) == (3, values["dead_leaves-mixed"], [0, 1, 2])
    assert row["ci_low"] == pytest.approx(mean.low) and row["ci_high"] == pytest.approx(mean.high)
    neighbours = [c for c in data["comparisons"] if c["kind"] == "neighbours"]
    assert [(c["a"], c["b"], c["significant"]) for c in neighbours] == [
        ("dead_leaves-mixed", "stylegan-oriented", False),
        ("stylegan-oriented", "cnn-random", True),
    ]
    v = rp.verdict(rp.load_cells(tmp_path), "fast")
    assert (
        "(mean of 3 seeds; paired 95 % interval" in v
        and "2 of 2 generators score above CNN-Random, 2 significantly" in v
    )


def test_zoomed_axis_leaves_far_rows_off() -> None:
    from noisevision.reproduce.chart import zoomed_range

    assert zoomed_range([20.4, 69.9, 71.8, 74.3, 74.5, 75.4, 83.0]) == (69.9, 83.0)
    assert zoomed_range([10.0, 90.0]) == (10.0, 90.0)
    assert zoomed_range([5.0, 8.8, 20.9, 33.4, 38.9, 43.4]) == (5.0, 43.4)


# ---------------------------------------------------------------------------------- repetitions
def test_seed_names_keep_seed_0_as_it_was(tmp_path: Path) -> None:
    assert rp.cell_path(tmp_path, "mix2:a+b", "fast") == tmp_path / "cells" / "mix2_a_b__fast.json"
    assert rp.cell_path(tmp_path, "a", "fast", 2) == tmp_path / "cells" / "a__fast__seed2.json"
    assert rp.run_folder(tmp_path, "a", 0) == tmp_path / "runs" / "a"
    assert rp.run_folder(tmp_path, "a", 1) == tmp_path / "runs" / "a__seed1"
    assert rp.data_folder(tmp_path, "a", 3) == tmp_path / "data" / "a__seed3"
    assert [rp.repetition_seed(7, s) for s in range(3)] == [7, 8, 9]
    for bad in (0, 101, -1, True, 2.5, "3"):
        with pytest.raises(NoisevisionError, match=r"^seeds must be an integer from 1 to 100, got"):
            rp.check_seeds(bad)
    assert rp.check_seeds(100) == 100 and rp.REPRO_PRESETS.get("demo").seeds >= 3


@pytest.fixture
def noisy_probe_set(tmp_path: Path) -> str:
    """Two classes of noise images whose means differ a little: accuracies between chance and 100 %."""
    rng = np.random.default_rng(0)
    root = tmp_path / "noisy"
    for split in ("train", "val"):
        for c in range(2):
            for i in range(12):
                path = root / split / f"class{c}" / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                image = rng.normal(110 + 25 * c, 50, (20, 20, 3)).clip(0, 255).astype(np.uint8)
                Image.fromarray(image).save(path)
    return f"imagefolder:{root}"


def mini_preset(probe: str) -> rp.ReproPreset:
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
    return rp.ReproPreset(
        "mini",
        "test",
        ("dead_leaves-squares",),
        "tiny",
        train,
        eval_dataset=probe,
        baselines=("cnn-random", "mean-colors"),
        materialize="all",
        probe=dict(probes=("fast", "knn"), workers=0, min_steps=20),
    )


def test_seeds_are_independent_repetitions_and_seed_0_is_the_single_run(
    tmp_path: Path, monkeypatch, noisy_probe_set: str
) -> None:
    preset = mini_preset(noisy_probe_set)
    single, multi = tmp_path / "single", tmp_path / "multi"
    rp.reproduce(preset, single)
    rp.reproduce(preset, multi, seeds=2)
    cells = rp.load_cells(multi)
    assert len(cells) == 2 * 3 * 2 and {c["seed"] for c in cells} == {0, 1}
    assert sorted(p.name for p in (multi / "runs").iterdir()) == [
        "dead_leaves-squares",
        "dead_leaves-squares__seed1",
    ]
    assert sorted(p.name for p in (multi / "data").iterdir()) == [
        "dead_leaves-squares",
        "dead_leaves-squares__seed1",
    ]
    # Seed 0 is exactly the single run: the same files, the same numbers.
    for c in rp.load_cells(single):
        twin = rp.read_cell(rp.cell_path(multi, c["source"], c["probe"], 0))
        assert twin["top1"] == c["top1"] and twin["probe_seed"] == c["probe_seed"] == 0
    config = {
        s: yaml.safe_load((rp.run_folder(multi, "dead_leaves-squares", s) / "config.yaml").read_text())
        for s in (0, 1)
    }
    assert (config[0]["seed"], config[1]["seed"]) == (0, 1)
    alone = yaml.safe_load((rp.run_folder(single, "dead_leaves-squares") / "config.yaml").read_text())
    assert config[0] == alone  # the same recipe, and the rendered folder by its path from the run
    # Seed 1 has its own images, weights and probe draws.
    images = [
        Image.open(next((rp.data_folder(multi, "dead_leaves-squares", s) / "train").rglob("*.jpg")))
        for s in (0, 1)
    ]
    assert not np.array_equal(np.asarray(images[0]), np.asarray(images[1]))
    runs = [rp.run_folder(multi, "dead_leaves-squares", s) for s in (0, 1)]
    encoders = [load_encoder(run / "encoder.pt")[0] for run in runs]
    first = [next(iter(e.parameters())).detach() for e in encoders]
    assert not torch.equal(first[0], first[1])
    assert {c["probe_seed"] for c in cells if c["seed"] == 1} == {1}
    by = {(c["source"], c["probe"], c["seed"]): c["top1"] for c in cells}
    assert any(
        by[s, p, 0] != by[s, p, 1] for s in ("dead_leaves-squares", "cnn-random") for p in ("fast", "knn")
    )
    md = (multi / "report.md").read_text()
    assert "Seeds: 2" in md and "paired over 2 seeds" in md

    # A third seed resumes: seeds 0 and 1 are neither trained nor probed again.
    trained, probed = [], []
    real_train, real_eval = rp_run.timed_training, rp_run.evaluate
    monkeypatch.setattr(rp_run, "timed_training", lambda cfg: trained.append(cfg.seed) or real_train(cfg))
    monkeypatch.setattr(
        rp_run,
        "evaluate",
        lambda model, data, settings, *a, **k: (
            probed.append(settings.seed) or real_eval(model, data, settings, *a, **k)
        ),
    )
    rp.reproduce(preset, multi, seeds=3)
    assert trained == [2] and probed == [2, 2, 2]  # one generator and two baselines, seed 2 only
    assert len(rp.load_cells(multi)) == 3 * 3 * 2


def test_reproduce_cli_seeds_flag(tmp_path: Path, monkeypatch, run_cli) -> None:
    asked: dict = {}
    real = rp.reproduce
    monkeypatch.setattr(rp, "reproduce", lambda preset, out, **kwargs: asked.update(kwargs))
    code, _, err = run_cli("reproduce", "--seeds", "5", "--out", tmp_path / "out")
    assert code == 0, err
    assert asked["seeds"] == 5
    run_cli("reproduce", "--out", tmp_path / "out")
    assert asked["seeds"] is None  # the preset's own
    monkeypatch.setattr(rp, "reproduce", real)
    for bad in ("0", "101"):
        code, _, err = run_cli("reproduce", "--seeds", bad, "--out", tmp_path / "x")
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"--seeds must be an integer from 1 to 100, got {bad}" in err
    assert not (tmp_path / "x").exists()


def test_a_folder_of_another_recipe_is_refused(tmp_path: Path, noisy_probe_set: str) -> None:
    """A demo/ of a version whose demo preset trained longer: new seeds must not join its cells."""
    preset = mini_preset(noisy_probe_set)
    atomic_write_text(tmp_path / "plan.json", json.dumps({"train_preset": "tiny", "train_overrides": {}}))
    old = cell("cnn-random", "knn", 0, 70.0)
    atomic_write_text(rp.cell_path(tmp_path, "cnn-random", "knn"), json.dumps(old))
    with pytest.raises(
        NoisevisionError,
        match=r"holds cells pre-trained with tiny \{\}, but preset 'mini'.*"
        r"give another --out, or remove",
    ):
        rp.reproduce(preset, tmp_path)
