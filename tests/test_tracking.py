"""Experiment trackers, offline: TensorBoard's event files, MLflow's local store (and a store named
by MLFLOW_TRACKING_URI), W&B in offline mode read back from its run file; resumed runs continue
their tracked run, `eval` logs into the run of its encoder, missing packages are one line."""

from __future__ import annotations

import glob
import json
import struct
import sys
from pathlib import Path

import pytest

from noisevision import tracking
from noisevision.errors import FieldError, UnknownNameError
from noisevision.tracking import parse_loggers

sys.path.insert(0, str(Path(__file__).parent / "train"))
from test_train import _interrupt_at, tiny_cfg  # noqa: E402

pytest.importorskip("mlflow")
pytest.importorskip("wandb")
pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(autouse=True, scope="module")
def _offline():
    """W&B offline and quiet, MLflow on its default local store, whatever the machine says."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        for name in ("WANDB_PROJECT", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
            mp.delenv(name, raising=False)
        yield


def mlflow_runs(db: Path) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("noisevision")
    return client, client.search_runs([experiment.experiment_id])


def wandb_records(folder: Path) -> list:
    """Every record of the W&B offline run files under `folder` (the LevelDB-style log W&B writes:
    a 7-byte header, then 32 KiB blocks of records, each split into chunks with a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2 as pb

    records = []
    for path in sorted(glob.glob(f"{folder}/wandb/offline-run-*/run-*.wandb")):
        data, pos, block, chunk = Path(path).read_bytes(), 7, 32768, b""
        assert data[:4] == b":W&B"
        while pos + 7 <= len(data):
            if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
                pos += block - pos % block
                continue
            _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
            if (length, kind) == (0, 0):
                break
            chunk += data[pos + 7 : pos + 7 + length]
            pos += 7 + length
            if kind in (1, 4):  # a whole record, or its last chunk
                record = pb.Record()
                record.ParseFromString(chunk)
                records.append(record)
                chunk = b""
    return records


def wandb_history(folder: Path) -> list[dict]:
    rows = []
    for r in wandb_records(folder):
        if r.WhichOneof("record_type") == "history":
            rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
    return rows


# ---------------------------------------------------------------------------------------- names
def test_logger_names_parse_with_one_line_errors(monkeypatch):
    assert parse_loggers("tensorboard") == ("tensorboard",)
    assert parse_loggers(" mlflow, wandb,mlflow ") == ("mlflow", "wandb")
    assert parse_loggers("none") == () == parse_loggers(())
    with pytest.raises(UnknownNameError, match="unknown logger 'tensorbord': did you mean tensorboard"):
        parse_loggers("tensorbord")
    with pytest.raises(FieldError, match="names no logger"):
        parse_loggers(",")
    real = tracking.importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda m: None if m == "wandb" else real(m))
    with pytest.raises(FieldError) as err:
        parse_loggers("tensorboard,wandb")
    assert err.value.naming("--logger") == (
        "--logger wandb needs the wandb package: pip install 'noisevision[wandb]'"
    )


def test_a_missing_tracker_package_stops_train_before_any_work(run_cli, tmp_path, monkeypatch):
    real = tracking.importlib.util.find_spec
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda m: None if m == "mlflow" else real(m))
    code, _, err = run_cli("train", "--data", "test-blobs", "--out", tmp_path / "r", "--logger", "mlflow")
    assert code == 2 and "pip install 'noisevision[mlflow]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------------- a run
@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """A finished run logged to all three trackers (2 epochs of 2 steps, a log line every step)."""
    from noisevision.train import train

    return train(tiny_cfg(tmp_path_factory.mktemp("tracked") / "run", logger="tensorboard,wandb,mlflow"))


def test_mlflow_local_store_holds_config_metrics_grid_and_encoder(tracked_run):
    client, runs = mlflow_runs(tracked_run / "mlflow.db")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["batch_size"] == "8" and run.data.params["arch_kwargs.width"] == "0.0625"
    loss = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in loss] == [1, 2, 3, 4]  # every step's log line, at its global step
    epochs = client.get_metric_history(run.info.run_id, "epoch/loss")
    lines = [json.loads(x) for x in (tracked_run / "metrics.jsonl").read_text().splitlines()]
    assert [(m.step, m.value) for m in epochs] == [(2, lines[0]["loss"]), (4, lines[1]["loss"])]
    stored = tracked_run / "mlartifacts" / run.info.run_id / "artifacts"
    assert (stored / "encoder" / "encoder.pt").read_bytes() == (tracked_run / "encoder.pt").read_bytes()
    assert (stored / "samples" / "samples.png").read_bytes() == (tracked_run / "samples.png").read_bytes()
    record = json.loads((tracked_run / "trackers.json").read_text())
    assert record["mlflow"] == {"id": run.info.run_id, "store": "mlflow.db"}  # relative: moves with it


def test_wandb_offline_run_holds_config_metrics_grid_and_encoder(tracked_run):
    records = wandb_records(tracked_run)
    kinds = [r.WhichOneof("record_type") for r in records]
    assert "exit" in kinds and records[kinds.index("exit")].exit.exit_code == 0
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.run_id == json.loads((tracked_run / "trackers.json").read_text())["wandb"]["id"]
    config = {
        u.key: json.loads(u.value_json)
        for r in records
        if r.WhichOneof("record_type") == "config"
        for u in r.config.update
    }
    assert config["batch_size"] == 8 and config["arch"] == "smallalexnet"
    history = wandb_history(tracked_run)
    assert [h["global_step"] for h in history if "train/loss" in h] == [1, 2, 3, 4]
    assert [h["epoch"] for h in history if "epoch/loss" in h] == [1, 2]
    (grid,) = [h for h in history if h.get("samples/_type") == "image-file"]
    assert (grid["samples/width"], grid["samples/height"], grid["global_step"]) == (274, 70, 0)
    (artifact,) = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert artifact.type == "model" and [e.path for e in artifact.manifest.contents] == ["encoder.pt"]


def test_tensorboard_events_hold_steps_epochs_and_grid(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tracked_run / "tb"), size_guidance={"images": 0})
    events.Reload()
    tags = events.Tags()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.step for e in events.Scalars("epoch/loss")] == [2, 4]
    assert tags["images"] == ["samples"]
    (image,) = events.Images("samples")
    from PIL import Image

    with Image.open(tracked_run / "samples.png") as grid:
        assert (image.width, image.height) == grid.size == (8 * 34 + 2, 2 * 34 + 2)  # 16 images of 32 px


def test_eval_logs_into_the_tracked_run_of_its_encoder(tracked_run, run_cli, probe_set):
    code, out, err = run_cli(
        "eval", tracked_run, "--dataset", probe_set(4), "--probe", "knn", "--logger", "mlflow,tensorboard"
    )
    assert code == 0, err
    client, runs = mlflow_runs(tracked_run / "mlflow.db")
    assert len(runs) == 1  # the training run, continued
    (metric,) = [k for k in runs[0].data.metrics if k.startswith("eval/")]
    assert metric.endswith("/knn/top1")
    result = json.loads(next(tracked_run.glob("eval-*.json")).read_text())
    (logged,) = client.get_metric_history(runs[0].info.run_id, metric)
    assert logged.value == pytest.approx(result["probes"]["knn"]["top1"]) and logged.step == 4


# ---------------------------------------------------------------------------------------- resume
def test_a_resumed_run_continues_its_tracked_runs(tmp_path, monkeypatch):
    from noisevision.train import train

    cfg = dict(epochs=3, logger="wandb,mlflow")
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(tmp_path / "cut", **cfg))
    first = json.loads((tmp_path / "cut" / "trackers.json").read_text())
    _, (run,) = mlflow_runs(tmp_path / "cut" / "mlflow.db")
    assert run.info.status == "KILLED"  # stopped, resumable
    monkeypatch.undo()
    monkeypatch.setenv("WANDB_MODE", "offline")
    train(tiny_cfg(tmp_path / "cut", **cfg))
    assert json.loads((tmp_path / "cut" / "trackers.json").read_text()) == first
    client, (run,) = mlflow_runs(tmp_path / "cut" / "mlflow.db")
    assert run.info.run_id == first["mlflow"]["id"] and run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch/loss")] == [2, 4, 6]
    ids = {r.run.run_id for r in wandb_records(tmp_path / "cut") if r.WhichOneof("record_type") == "run"}
    assert ids == {first["wandb"]["id"]}  # two attempts, one W&B run
    assert [h["epoch"] for h in wandb_history(tmp_path / "cut") if "epoch" in h] == [1, 2, 3]


def test_mlflow_tracking_uri_points_elsewhere(tmp_path, monkeypatch):
    from noisevision.train import train

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'server.db'}")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "noisevision")
    monkeypatch.chdir(tmp_path)  # that store keeps artifacts at MLflow's default root, ./mlruns
    out = train(tiny_cfg(tmp_path / "run", logger="mlflow", epochs=1))
    assert not (out / "mlflow.db").exists() and not (out / "mlartifacts").exists()
    _, (run,) = mlflow_runs(tmp_path / "server.db")
    assert json.loads((out / "trackers.json").read_text())["mlflow"]["tracking_uri"].endswith("server.db")
    assert run.data.metrics["epoch/loss"] == json.loads((out / "metrics.jsonl").read_text())["loss"]


def test_no_logger_writes_only_the_run_files(tmp_path):
    from noisevision.train import train

    out = train(tiny_cfg(tmp_path / "run", logger="none", epochs=1))
    assert {p.name for p in out.iterdir()} == {
        ".lock",
        "config.yaml",
        "checkpoint.pt",
        "encoder.pt",
        "metrics.jsonl",
    }


def test_a_reproduction_tracks_its_runs_and_cells_in_one_store(tmp_path, probe_set):
    import noisevision.reproduce as rp

    train = dict(num_images=16, epochs=1, batch_size=16, input_size=16, res=16, workers=0, progress=False)
    train["arch_kwargs"] = {"width": 0.125, "head": "linear", "out_dim": 16}
    preset = rp.ReproPreset(
        "mini",
        "test",
        ("test-blobs",),
        "tiny",
        train,
        eval_dataset=probe_set(2),
        probe=dict(probes=("knn",), workers=0),
        baselines=("raw-pixels",),
    )
    out = tmp_path / "out"
    rp.reproduce(preset, out, logger="mlflow")
    assert not (out / "runs" / "test-blobs" / "mlflow.db").exists()  # every run in OUT's store
    client, runs = mlflow_runs(out / "mlflow.db")
    by_kind = {r.data.tags["noisevision.kind"]: r for r in runs}
    assert sorted(by_kind) == ["reproduce", "train"] and len(runs) == 2
    assert by_kind["train"].data.metrics["epoch/loss"] < 0  # align/uniform's loss
    cells = {f"cells/{c['source']}/{c['probe']}/top1": c["top1"] for c in rp.load_cells(out)}
    assert by_kind["reproduce"].data.metrics == pytest.approx(cells) and len(cells) == 2
    stored = out / "mlartifacts" / by_kind["reproduce"].info.run_id / "artifacts" / "report"
    assert (stored / "report.md").read_text() == (out / "report.md").read_text()


def test_bench_logging_prints_each_set_against_none(run_cli):
    code, out, err = run_cli(
        "bench", "logging", "--data", "test-blobs", "--num-images", "128", "--epochs", "1", "--rounds", "1",
        "--loggers", "none", "--loggers", "tensorboard,mlflow", "--workers", "0", "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ")]
    assert [r[0].strip() for r in rows[1:]] == ["none", "tensorboard,mlflow"]
    assert rows[1][2].strip() == "+0.0 %" and float(rows[1][3]) == 0.0  # no logger: no time in calls
    assert float(rows[2][3]) > 0 and float(rows[2][7]) > 0  # time in the calls; MLflow's store at start
    code, _, err = run_cli("bench", "logging", "--loggers", "tensorboard")
    assert code == 2 and "--loggers must include none" in err
