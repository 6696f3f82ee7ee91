"""Training runs: data plan, sources, end-to-end, exact resume, errors, DDP."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

import noisevision.train as train_mod
import noisevision.train.loop as train_loop
import noisevision.train.run as train_run
from noisevision.bench import bench_train
from noisevision.data.stream import IndexPlan, open_source
from noisevision.errors import NoisevisionError, UnknownNameError
from noisevision.models import load_encoder
from noisevision.train import TrainConfig, lr_at, parse_options, train

REPO = Path(__file__).resolve().parents[2]


def tiny_cfg(out, **kw):
    """A run of a few steps: 1/16-width SmallAlexNet at 32 px on the test generator."""
    values = dict(
        data="test-blobs",
        out=str(out),
        arch="smallalexnet",
        arch_kwargs={"width": 0.0625},
        input_size=32,
        res=32,
        num_images=16,
        batch_size=8,
        epochs=2,
        device="cpu",
        workers=0,
        progress=False,
        log_every=1,
    )
    values.update(kw)
    return TrainConfig.from_preset("tiny", **values)


def state(path):
    enc, meta = load_encoder(path)
    return enc.state_dict(), meta


def write_images(root: Path, n: int, size: int = 32) -> None:
    root.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    for i in range(n):
        img = torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(img).save(root / f"{i:03d}.png")


# ---------------------------------------------------------------------------------------- plan / sources
def test_index_plan_permutes_each_epoch_and_splits_over_ranks():
    plan = IndexPlan(num_images=20, batch_size=8, seed=3)
    assert plan.steps_per_epoch == 2  # the last partial batch is dropped
    e0, e1 = plan.epoch_order(0), plan.epoch_order(1)
    assert len(set(e0.tolist())) == 16 and set(e0.tolist()) <= set(range(20))
    assert not torch.equal(e0, e1)
    assert torch.equal(e0, IndexPlan(20, 8, seed=3).epoch_order(0))  # deterministic
    whole = plan.batch(1, 1)
    shares = [plan.batch(1, 1, rank, 4) for rank in range(4)]
    assert torch.equal(torch.cat(shares), whole)
    fresh = IndexPlan(20, 8, seed=3, fresh=True)
    assert fresh.epoch_order(2).min() >= 40 and fresh.epoch_order(2).max() < 60
    with pytest.raises(NoisevisionError, match="larger than the dataset"):
        IndexPlan(4, 8)


def test_folder_source(tmp_path):
    write_images(tmp_path / "imgs" / "sub", 5, size=40)
    src = open_source(str(tmp_path / "imgs"), res=32)
    assert src.size == 5
    out = src.render(torch.tensor([4, 0]))
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.uint8
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoisevisionError, match="no .jpg or .png"):
        open_source(str(tmp_path / "empty"))


def test_lr_schedules():
    paper = TrainConfig.from_preset("paper-small")
    assert lr_at(paper, 0, 0, 136) == 0.36
    assert abs(lr_at(paper, 155, 0, 136) - 0.036) < 1e-12 and abs(lr_at(paper, 199, 5, 136) - 0.00036) < 1e-12
    large = TrainConfig.from_preset("paper-large")
    assert lr_at(large, 0, 0, 10) == 0.015 and lr_at(large, 100, 0, 10) == pytest.approx(0.0075)
    warm = TrainConfig.from_preset("paper-small", warmup_epochs=2)
    assert lr_at(warm, 0, 0, 10) == pytest.approx(0.36 / 20) and lr_at(warm, 1, 9, 10) == pytest.approx(0.36)


def test_presets_follow_the_spec():
    small = TrainConfig.from_preset("paper-small")
    assert (small.arch, small.method, small.batch_size, small.lr, small.epochs) == (
        "smallalexnet",
        "align_uniform",
        768,
        0.36,
        200,
    )
    assert small.milestones == (155, 170, 185) and small.num_images == 105_000 and small.input_size == 64
    large = TrainConfig.from_preset("paper-large")
    assert large.method_kwargs == {"queue_size": 65536, "momentum": 0.999, "temperature": 0.2}
    assert (large.arch, large.batch_size, large.lr, large.schedule, large.res) == (
        "resnet50",
        256,
        0.015,
        "cosine",
        256,
    )
    # another architecture does not inherit the preset's architecture options
    assert TrainConfig.from_preset("tiny", arch="smallalexnet").arch_kwargs == {}
    with pytest.raises(UnknownNameError):
        TrainConfig.from_preset("paper-medium")
    with pytest.raises(NoisevisionError, match="unknown training option"):
        TrainConfig.from_preset("tiny", learning_rate=1.0)


# ---------------------------------------------------------------------------------------- runs
def test_end_to_end_run(tmp_path):
    out = train(tiny_cfg(tmp_path / "run"))
    names = {p.name for p in out.iterdir()}
    assert {"config.yaml", "checkpoint.pt", "encoder.pt", "metrics.jsonl", "tb"} <= names
    sd, meta = state(out / "encoder.pt")
    assert meta["data"] == "test-blobs" and meta["preset"] == "tiny" and meta["epochs"] == 2
    assert meta["input_size"] == 32 and meta["images_seen"] == 32
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"loss", "align", "uniform", "lr", "images_per_s"} <= set(records[0])
    assert yaml.safe_load((out / "config.yaml").read_text())["batch_size"] == 8
    assert list((out / "tb").iterdir())
    # running the finished run again does nothing and keeps the encoder
    before = (out / "encoder.pt").read_bytes()
    train(tiny_cfg(tmp_path / "run"))
    assert (out / "encoder.pt").read_bytes() == before


def _interrupt_at(monkeypatch, epoch_to_stop):
    real = train_mod.train_step

    def step(model, optimizer, aug, images, indices, seed, epoch, step, *rest):
        if epoch == epoch_to_stop:
            raise KeyboardInterrupt
        return real(model, optimizer, aug, images, indices, seed, epoch, step, *rest)

    monkeypatch.setattr(train_loop, "train_step", step)


@pytest.mark.parametrize(
    "method,kw", [("align_uniform", {}), ("moco_v2", {"queue_size": 16, "momentum": 0.9})]
)
def test_resume_continues_exactly(tmp_path, monkeypatch, method, kw):
    cfg = dict(epochs=3, method=method, method_kwargs=kw)
    whole, _ = state(train(tiny_cfg(tmp_path / "whole", **cfg)) / "encoder.pt")
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(tmp_path / "cut", **cfg))
    assert not (tmp_path / "cut" / "encoder.pt").exists()
    ckpt = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)  # as resume reads it
    assert ckpt["epoch"] == 2  # the last complete epoch survived the interruption
    monkeypatch.undo()
    resumed, _ = state(train(tiny_cfg(tmp_path / "cut", **cfg, workers=1)) / "encoder.pt")
    assert resumed.keys() == whole.keys()
    for k in whole:
        assert torch.equal(resumed[k], whole[k]), k
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]


def test_resume_inside_an_epoch_continues_exactly(tmp_path, monkeypatch):
    # 4 steps per epoch; with checkpoint_minutes=0 every step is checkpointed
    cfg = dict(epochs=3, num_images=32, method="moco_v2", method_kwargs={"queue_size": 16, "momentum": 0.9})
    whole_dir = train(tiny_cfg(tmp_path / "whole", **cfg))
    whole, _ = state(whole_dir / "encoder.pt")
    real = train_mod.train_step

    def stop_at_step_6(model, optimizer, aug, images, indices, seed, epoch, step, *rest):
        if step == 6:  # epoch 1, its third step
            raise KeyboardInterrupt
        return real(model, optimizer, aug, images, indices, seed, epoch, step, *rest)

    monkeypatch.setattr(train_loop, "train_step", stop_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(tmp_path / "cut", checkpoint_minutes=0, **cfg))
    ckpt = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)  # as resume reads it
    assert (ckpt["epoch"], ckpt["step"], ckpt["images_seen"]) == (1, 2, 48) and ckpt["epoch_sums"]
    monkeypatch.undo()
    resumed, meta = state(train(tiny_cfg(tmp_path / "cut", **cfg)) / "encoder.pt")
    assert meta["images_seen"] == 96
    for k in whole:
        assert torch.equal(resumed[k], whole[k]), k
    read = lambda d: [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    cut, ref = read(tmp_path / "cut"), read(whole_dir)
    assert [r["epoch"] for r in cut] == [1, 2, 3]
    # epoch 2's mean loss spans both attempts
    assert [r["loss"] for r in cut] == pytest.approx([r["loss"] for r in ref])


def test_resume_with_another_config_is_refused(tmp_path):
    train(tiny_cfg(tmp_path / "run", epochs=1))
    ckpt = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(NoisevisionError, match="another configuration .*lr") as info:
        train(tiny_cfg(tmp_path / "run", epochs=1, lr=0.05))
    assert "\n" not in str(info.value)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == ckpt
    # runtime options are not part of the configuration
    train(tiny_cfg(tmp_path / "run", epochs=1, workers=1, log_every=5))


def test_folder_training_and_fresh(tmp_path):
    write_images(tmp_path / "imgs", 16)
    out = train(tiny_cfg(tmp_path / "run", data=str(tmp_path / "imgs"), res=None, epochs=1))
    assert state(out / "encoder.pt")[1]["source"]["kind"] == "folder"
    with pytest.raises(NoisevisionError, match="fresh needs a generator"):
        train(tiny_cfg(tmp_path / "run2", data=str(tmp_path / "imgs"), fresh=True))
    with pytest.raises(NoisevisionError, match="holds only 16"):
        train(tiny_cfg(tmp_path / "run3", data=str(tmp_path / "imgs"), num_images=100))
    out = train(tiny_cfg(tmp_path / "fresh", fresh=True, epochs=1, method="simclr"))
    assert state(out / "encoder.pt")[1]["fresh"] is True


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"data": "no-such-generator"}, "unknown generator"),
        ({"arch": "alexnet"}, "unknown architecture"),
        ({"method": "byol"}, "unknown method"),
        ({"batch_size": 32}, "larger than the dataset"),
        ({"method": "moco_v2", "method_kwargs": {"queue_size": 12}}, "multiple of the batch size"),
        ({"bn_groups": 3}, "does not split into 3 BN groups"),
    ],
)
def test_bad_input_fails_before_writing(tmp_path, kw, match):
    with pytest.raises(NoisevisionError, match=match):
        train(tiny_cfg(tmp_path / "run", **kw))
    assert not (tmp_path / "run").exists()


def test_cli_errors_are_one_line(run_cli, tmp_path):
    code, _, err = run_cli("train", "--data", "test-blobs", "--out", tmp_path / "r", "--preset", "huge")
    assert code == 2 and "unknown preset 'huge'" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli("train", "--data", tmp_path / "empty", "--out", tmp_path / "r2", "--device", "cpu")
    assert code == 2 and "no .jpg or .png images" in err


def test_cli_train(run_cli, tmp_path):
    code, out, err = run_cli(
        "train",
        "--data",
        "test-blobs",
        "--out",
        tmp_path / "r",
        "--preset",
        "tiny",
        "--arch",
        "resnet18-s",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--num-images",
        "8",
        "--res",
        "32",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--no-progress",
    )
    assert code == 0, err
    enc, meta = load_encoder(tmp_path / "r" / "encoder.pt")
    assert enc.arch == "resnet18-s" and meta["num_images"] == 8


# ---------------------------------------------------------------------------------------- DDP
def test_ddp_matches_one_process(tmp_path, one_thread):
    """torchrun with 2 CPU processes (gloo) = one process on the same global batch.

    BN is where the two could differ: each rank normalises its own half of the batch. With
    bn_groups=2 the single process also normalises each half separately (methods.common), the
    align/uniform loss is computed over the gathered global batch on every rank, and the gather's
    backward hands each rank the gradient of its own half: the parameters then follow the same
    arithmetic. BN running statistics do not (rank 0 only sees its half), so they are excluded.
    Training itself checks after every epoch that the ranks' parameters are identical.
    What remains is float summation order (gloo), amplified by training: a small lr keeps that
    near 1e-5 here. The single process runs on one thread, as each rank does: two threads sum in
    another order, and 4 steps of this tiny net amplify that 1e-6 into 5e-3.
    """
    write_images(tmp_path / "imgs", 16)
    args = [
        "train",
        "--data",
        str(tmp_path / "imgs"),
        "--preset",
        "tiny",
        "--arch",
        "smallalexnet",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--num-images",
        "16",
        "--input-size",
        "32",
        "--res",
        "32",
        "--lr",
        "0.02",
        "--arch-opt",
        "width=0.0625",
        "--bn-groups",
        "2",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--no-progress",
    ]
    same = dict(data=str(tmp_path / "imgs"), res=32, lr=0.02)
    one = tiny_cfg(tmp_path / "one", bn_groups=2, **same)
    ddp_cfg = [*args, "--out", str(tmp_path / "ddp"), "--logger", "tensorboard,mlflow"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "noisevision.cli",
            *ddp_cfg,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # only rank 0 logs: one TensorBoard writer, one MLflow run, each step once
    assert len(list((tmp_path / "ddp" / "tb").glob("events.out.tfevents.*"))) == 1
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'ddp' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("noisevision").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch/loss")] == [2, 4]
    single, _ = state(train(one) / "encoder.pt")
    multi, _ = state(tmp_path / "ddp" / "encoder.pt")
    params = [k for k in single if "running" not in k and "num_batches" not in k]
    for k in params:
        torch.testing.assert_close(multi[k], single[k], rtol=1e-3, atol=2e-4, msg=k)
    # not a vacuous tolerance: BN over the whole batch (one group) ends up measurably elsewhere
    whole, _ = state(train(tiny_cfg(tmp_path / "whole", **same)) / "encoder.pt")
    assert max((whole[k] - multi[k]).abs().max().item() for k in params) > 1e-2


def test_parse_options():
    opts = parse_options(["width=0.5", "head=mlp", "out_dim=64"])
    assert opts == {"width": 0.5, "head": "mlp", "out_dim": 64}
    assert parse_options(None) is None
    with pytest.raises(NoisevisionError, match="KEY=VALUE"):
        parse_options(["width"])


def test_bench_train_measures_three_pipelines():
    cfg = tiny_cfg("unused", batch_size=4)
    results = bench_train(cfg, torch.device("cpu"), steps=1, workers=1, rounds=2)
    assert [r.name for r in results] == ["in-memory", "streamed", "cached", "folder"]
    assert all(r.images_per_s == max(r.rounds) > 0 and len(r.rounds) == 2 for r in results)


def test_out_of_gpu_memory_is_a_hint(tmp_path, monkeypatch):
    def oom(cfg, device, epoch_end=None):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train_run, "_train", oom)
    with pytest.raises(NoisevisionError, match="lower batch_size"):
        train(tiny_cfg(tmp_path / "run"))


def test_cached_images_give_the_same_run_and_render_once(tmp_path, monkeypatch):
    """--cache-images on: epoch 1 renders every image once, later epochs read them back, and
    the weights are those of a run that renders every epoch."""
    from noisevision.data import stream

    calls = []
    real = stream.GeneratorSource.render

    def counting(self, indices, device="cpu"):
        calls.append(len(indices))
        return real(self, indices, device)

    monkeypatch.setattr(stream.GeneratorSource, "render", counting)
    cached, _ = state(train(tiny_cfg(tmp_path / "cached", epochs=3, cache_images="on")) / "encoder.pt")
    assert calls[0] == 16 and sum(calls[1:]) == 16  # the sample grid, then 16 images over 3 epochs
    calls.clear()
    plain, _ = state(train(tiny_cfg(tmp_path / "plain", epochs=3, cache_images="off")) / "encoder.pt")
    assert calls[0] == 16 and sum(calls[1:]) == 48
    for k in plain:
        assert torch.equal(cached[k], plain[k]), k
    with pytest.raises(NoisevisionError, match="cache_images must be auto, on or off"):
        train(tiny_cfg(tmp_path / "bad", cache_images="yes"))


@pytest.mark.parametrize(
    "options",
    [
        {"precision": "bf16", "channels_last": True},
        {"precision": "bf16", "channels_last": True, "compile": True},
    ],
    ids=["bf16-channels_last", "bf16-channels_last-compiled"],
)
def test_mixed_precision_layout_and_compile_resume_exactly(tmp_path, monkeypatch, options):
    """bf16 autocast, NHWC and torch.compile on the CPU: finite losses, and a run interrupted after
    its first epoch resumes to the uninterrupted run's weights."""
    cfg = dict(epochs=2, method="moco_v2", method_kwargs={"queue_size": 16, "momentum": 0.9}, **options)
    whole_dir = train(tiny_cfg(tmp_path / "whole", **cfg))
    whole, meta = state(whole_dir / "encoder.pt")
    assert meta["precision"] == "bf16"
    losses = [json.loads(x)["loss"] for x in (whole_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    _interrupt_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(tmp_path / "cut", **cfg))
    monkeypatch.undo()
    resumed, _ = state(train(tiny_cfg(tmp_path / "cut", **cfg)) / "encoder.pt")
    for k in whole:
        assert torch.equal(resumed[k], whole[k]), k


def test_sigterm_checkpoints_mid_epoch_and_resumes_exactly(tmp_path, monkeypatch):
    """A cluster's SIGTERM: a checkpoint at the next step, StopRequested (the CLI exits with 143),
    and the resumed run ends with the uninterrupted run's weights."""
    import signal

    from noisevision.errors import StopRequested

    cfg = dict(epochs=2, num_images=32)
    whole, _ = state(train(tiny_cfg(tmp_path / "whole", **cfg)) / "encoder.pt")
    real = train_mod.train_step

    def signal_at_step_2(*args):
        if args[7] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args)

    monkeypatch.setattr(train_loop, "train_step", signal_at_step_2)
    with pytest.raises(StopRequested, match="SIGTERM: checkpoint written at epoch 1, step 3/4; run the same"):
        train(tiny_cfg(tmp_path / "cut", **cfg))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone again
    monkeypatch.undo()
    resumed, _ = state(train(tiny_cfg(tmp_path / "cut", **cfg)) / "encoder.pt")
    for k in whole:
        assert torch.equal(resumed[k], whole[k]), k


def test_cli_stops_on_sigterm_with_one_line(run_cli, tmp_path, monkeypatch):
    import signal

    real = train_mod.train_step

    def signal_now(*args):
        os.kill(os.getpid(), signal.SIGUSR1)
        return real(*args)

    monkeypatch.setattr(train_loop, "train_step", signal_now)
    code, _, err = run_cli(
        "train",
        "--data",
        "test-blobs",
        "--out",
        tmp_path / "r",
        "--preset",
        "tiny",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--num-images",
        "16",
        "--res",
        "32",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--no-progress",
    )
    assert code == 128 + signal.SIGUSR1
    assert err.strip().splitlines() == [
        "stopped by SIGUSR1: checkpoint written at epoch 1, step 1/2; run the same command again to resume"
    ]


def test_plain_progress_lines_without_a_terminal(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("NOISEVISION_PROGRESS_SECONDS", "0")
    code, out, _ = run_cli(
        "train",
        "--data",
        "test-blobs",
        "--out",
        tmp_path / "r",
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--num-images",
        "16",
        "--res",
        "32",
        "--device",
        "cpu",
        "--workers",
        "0",
    )
    assert code == 0
    lines = [x for x in out.splitlines() if x.startswith("train: ")]
    assert lines and "2/2 (100.0%)" in lines[-1] and "img/s" in lines[-1] and "epoch 1/1" in lines[-1]
    assert "\r" not in out and "\x1b[" not in out  # no live display, no colour codes


# ---------------------------------------------------------------------------------------- encoder recipe
@pytest.mark.parametrize(
    "preset, method, kwargs, stats",
    [
        ("paper-large", "simclr", {}, "imagenet"),  # ImageNet statistics in training: probed with them
        (
            "paper-small",
            "moco_v2",
            {"queue_size": 32},
            "small",
        ),  # the paper's statistics, whatever the method
    ],
)
def test_probes_normalise_as_the_encoder_trained(tmp_path, monkeypatch, preset, method, kwargs, stats):
    import noisevision.evaluate as ev
    from tests.evaluate.test_evaluate import colour_dataset

    cfg = TrainConfig.from_preset(
        preset,
        data="test-blobs",
        out=str(tmp_path / "run"),
        method=method,
        method_kwargs=kwargs,
        arch="smallalexnet",
        arch_kwargs={"width": 0.0625},
        input_size=32,
        res=32,
        num_images=16,
        batch_size=16,
        bn_groups=2,
        epochs=1,
        device="cpu",
        workers=0,
        progress=False,
    )
    train(cfg)
    model, meta = load_encoder(tmp_path / "run" / "encoder.pt")
    recipe = meta["recipe"]
    assert (recipe.method, recipe.augment, recipe.input_size, recipe.res) == (method, cfg.augment, 32, 32)
    assert (recipe.mean, recipe.std) == ev.NORMALIZATIONS[stats]
    seen = []
    real_view = ev.View
    monkeypatch.setattr(ev, "View", lambda *a, **k: seen.append(real_view(*a, **k)) or seen[-1])
    ev.evaluate(model, colour_dataset(8, 4), ev.ProbeSettings(probes=("knn",)), "cpu", meta)
    assert seen and all((v.mean, v.std) == ev.NORMALIZATIONS[stats] for v in seen)


def test_a_damaged_checkpoint_is_refused_before_resuming(tmp_path):
    from noisevision.models import tensors_checksum

    cfg = tiny_cfg(tmp_path / "r", epochs=1)
    train(cfg)
    ckpt_file = tmp_path / "r" / "checkpoint.pt"
    ckpt = torch.load(ckpt_file, weights_only=True)
    name = next(k for k, v in ckpt["method"].items() if v.is_floating_point())
    ckpt["method"][name].view(-1)[0] += 1.0  # changed behind its checksum
    torch.save(ckpt, ckpt_file)
    with pytest.raises(NoisevisionError, match="checkpoint.pt: its tensors do not match their checksum") as e:
        train(cfg)
    assert "\n" not in str(e.value)
    ckpt["method"][name].view(-1)[0] = float("inf")
    ckpt["checksum"] = tensors_checksum(train_mod.checkpoint_tensors(ckpt))
    torch.save(ckpt, ckpt_file)
    with pytest.raises(NoisevisionError, match=f"weights 'method.{name}' hold NaN or Inf"):
        train(cfg)
    data = bytearray(ckpt_file.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = bytes(range(256)) * 16
    ckpt_file.write_bytes(bytes(data))
    with pytest.raises(NoisevisionError, match="checkpoint.pt"):
        train(cfg)


def test_a_torn_metrics_line_does_not_block_resume(tmp_path, monkeypatch):
    """A crash mid-write leaves half a line in metrics.jsonl: resume drops it (and any line that is
    not a record) and writes every epoch's record again once."""
    cfg = dict(epochs=3)
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(tmp_path / "cut", **cfg))
    monkeypatch.undo()
    metrics = tmp_path / "cut" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"epoch": 3, "lo')
    train(tiny_cfg(tmp_path / "cut", **cfg))
    assert [json.loads(x)["epoch"] for x in metrics.read_text().splitlines()] == [1, 2, 3]


def test_epoch_end_sees_each_epoch_and_can_stop_the_run(tmp_path):
    """The hook a search prunes by: called after each epoch's checkpoint with the encoder; putting
    the encoder in eval mode there does not change the run; raising stops it, resumably."""
    whole, whole_meta = state(train(tiny_cfg(tmp_path / "whole", epochs=3)) / "encoder.pt")
    seen = []

    def look(epoch, encoder, meta):
        seen.append((epoch, encoder.training))
        assert meta["recipe"].input_size == 32 and meta["seed"] == whole_meta["seed"]
        encoder.eval()  # as a probe does

    watched, _ = state(train(tiny_cfg(tmp_path / "watched", epochs=3), epoch_end=look) / "encoder.pt")
    assert seen == [(1, True), (2, True), (3, True)]
    for k in whole:
        assert torch.equal(watched[k], whole[k]), k

    class Pruned(Exception):
        pass

    def stop_after_first(epoch, encoder, meta):
        raise Pruned

    with pytest.raises(Pruned):
        train(tiny_cfg(tmp_path / "cut", epochs=3), epoch_end=stop_after_first)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    resumed, _ = state(train(tiny_cfg(tmp_path / "cut", epochs=3)) / "encoder.pt")
    for k in whole:
        assert torch.equal(resumed[k], whole[k]), k
