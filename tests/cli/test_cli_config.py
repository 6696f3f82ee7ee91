"""Run configs (train --config / --set) and the CLI's shared vocabulary (aliases, --version, eval files)."""

import json

import pytest
import yaml

from noisevision.errors import NoisevisionError
from noisevision.train import TrainConfig, parse_settings, read_config_file

TINY = ("--preset", "tiny", "--arch", "resnet18-s", "--epochs", "1", "--batch-size", "8", "--num-images", "8",
        "--res", "32", "--device", "cpu", "--workers", "0", "--no-progress")  # fmt: skip


@pytest.fixture
def run_dir(run_cli, tmp_path):
    """A finished one-step training run."""
    code, _, err = run_cli("train", "--data", "test-blobs", "--out", tmp_path / "r", *TINY)
    assert code == 0, err
    return tmp_path / "r"


def test_a_runs_config_resumes_the_same_run_and_refuses_a_changed_one(run_cli, run_dir):
    config = run_dir / "config.yaml"
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    code, out, err = run_cli("train", "--config", config, "--device", "cpu", "--no-progress")
    assert code == 0, err
    assert f"encoder written to {run_dir / 'encoder.pt'}" in out  # the run folder is the config's own
    code, _, err = run_cli("train", "--config", config, "--set", "lr=0.5", "--set", "momentum=0.8")
    assert code == 2 and err.count("\n") == 1
    assert "another configuration (lr 0.1 → 0.5, momentum 0.9 → 0.8)" in err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_a_config_file_starts_a_new_run_elsewhere(run_cli, run_dir, tmp_path):
    code, _, err = run_cli(
        "train",
        "--config",
        run_dir / "config.yaml",
        "--out",
        tmp_path / "copy",
        "--set",
        "warmup_epochs=0",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--no-progress",
    )
    assert code == 0, err
    old, new = (yaml.safe_load((d / "config.yaml").read_text()) for d in (run_dir, tmp_path / "copy"))
    assert {k for k in old if old[k] != new[k]} == {"warmup_epochs"} and new["warmup_epochs"] == 0


def test_set_reaches_every_field_with_its_type():
    values = parse_settings(
        [
            "momentum=0.99",
            "weight_decay=5e-4",
            "schedule=multistep",
            "milestones=[2, 3]",
            "gamma=0.5",
            "warmup_epochs=2",
            "log_every=7",
            "augment=small",
            "arch_kwargs={width: 0.5}",
            "res=48",
        ]
    )
    cfg = TrainConfig.from_preset("tiny", data="test-blobs", out="x", **values)
    assert (cfg.momentum, cfg.weight_decay, cfg.milestones, cfg.gamma) == (0.99, 5e-4, (2, 3), 0.5)
    assert (cfg.warmup_epochs, cfg.log_every, cfg.schedule) == (2, 7, "multistep")
    assert cfg.arch_kwargs == {"width": 0.5, "head": "linear", "out_dim": 128} and cfg.res == 48


@pytest.mark.parametrize(
    "item, message",
    [
        ("lerning_rate=0.1", "unknown --set key 'lerning_rate': valid ones are data, preset, arch"),
        ("epochs=two", "epochs must be an integer, not 'two'"),
        ("epochs=1.5", "epochs must be an integer, not 1.5"),
        ("fresh=3", "fresh must be true or false, not 3"),
        ("milestones=[a]", "milestones must be a list of integers, not ['a']"),
        ("input_size=big", "input_size must be an integer or null, not 'big'"),
        ("arch_kwargs=3", "arch_kwargs must be a mapping such as {key: value}, not 3"),
        ("lr", "must look like KEY=VALUE"),
    ],
)
def test_bad_set_items_are_one_line(run_cli, tmp_path, item, message):
    code, _, err = run_cli("train", "--data", "test-blobs", "--out", tmp_path / "r", "--set", item)
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r").exists()


def test_set_and_option_for_the_same_field_is_refused(run_cli, tmp_path):
    code, _, err = run_cli(
        "train", "--data", "test-blobs", "--out", tmp_path / "r", "--lr", "0.2", "--set", "lr=0.3"
    )
    assert code == 2 and "lr is given twice" in err


@pytest.mark.parametrize(
    "text, message",
    [
        ("epochs: 3\nlerning_rate: 0.1\n", "unknown key in bad.yaml 'lerning_rate': valid ones are"),
        ("epochs: three\n", "epochs must be an integer, not 'three'"),
        ("- epochs\n", "must hold KEY: VALUE lines"),
        ("epochs: [\n", "is not valid YAML"),
    ],
)
def test_bad_config_files_are_one_line(run_cli, tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(NoisevisionError, match="bad.yaml|epochs"):
        read_config_file(tmp_path / "bad.yaml")
    code, _, err = run_cli(
        "train", "--config", tmp_path / "bad.yaml", "--out", tmp_path / "r", "--data", "test-blobs"
    )
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "r").exists()


def test_config_with_a_preset_is_refused(run_cli, run_dir):
    code, _, err = run_cli("train", "--config", run_dir / "config.yaml", "--preset", "tiny")
    assert code == 2 and "--preset and --config" in err


def test_version(run_cli):
    from noisevision import __version__

    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"noisevision {__version__}"


def test_the_pre_release_option_names_are_gone(run_cli, tmp_path):
    code, _, err = run_cli("show", "test-blobs", "--num=2", "--out", tmp_path / "g.png", "--device", "cpu")
    assert code == 2 and "No such option: --num" in err
    for command in (("show",), ("generate",), ("bench", "generators")):
        code, out, _ = run_cli(*command, "--help")
        assert code == 0 and "--num " not in out and "--batch " not in out


def test_eval_files_are_named_after_dataset_probes_and_layer(run_cli, run_dir, probe_set):
    data = probe_set(4)
    for probe in ("knn", "fast"):
        code, _, err = run_cli(
            "eval",
            run_dir,
            "--dataset",
            data,
            "--probe",
            probe,
            "--device",
            "cpu",
            "--workers",
            "0",
            "--no-progress",
        )
        assert code == 0, err
    files = sorted(p.name for p in run_dir.glob("eval-*.json"))
    assert len(files) == 2 and all(f.endswith("-pool.json") for f in files), files
    assert any("-knn-" in f for f in files) and any("-fast-" in f for f in files)
    result = json.loads((run_dir / files[0]).read_text())
    assert result["meta"]["recipe"]["input_size"] == 64  # the tiny preset's views


def test_train_options_are_the_config_fields_and_errors_name_the_flag(run_cli, tmp_path):
    from dataclasses import fields

    from noisevision.cli.train import FLAGS, OPTIONS

    names = {f.name for f in fields(TrainConfig)}
    assert set(OPTIONS) - {"config", "settings"} <= names and set(FLAGS) == names
    assert FLAGS["arch_kwargs"] == "--arch-opt" and FLAGS["log_every"] == "log_every"  # --set only
    with pytest.raises(NoisevisionError, match="^workers must be 0 or more"):
        TrainConfig.from_preset("tiny", data="test-blobs", out=str(tmp_path), workers=-1).validate()
    code, _, err = run_cli("train", "--data", "test-blobs", "--out", tmp_path, "--set", "workers=-1")
    assert code == 2 and "--workers must be 0 or more" in err
