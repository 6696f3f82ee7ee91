"""Every command, fed bad input as a careful user would: one `error:` line on stderr, exit code 2,
no traceback, and nothing written or changed, before any work starts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

CUDA = torch.cuda.is_available()
NO_CUDA = "cuda" if not CUDA else None  # a device that is absent here (skipped on GPU machines)
BIG_SEED = str(2**64)


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A finished tiny run, an evaluation image folder, a plain file and an empty folder (places
    nobody can write to, root included, are under /proc)."""
    from noisevision.train import TrainConfig, train

    root = tmp_path_factory.mktemp("bad-inputs")
    cfg = TrainConfig.from_preset(
        "tiny",
        data="test-blobs",
        out=str(root / "run"),
        arch="resnet18-s",
        arch_kwargs={"width": 0.125},
        input_size=16,
        res=16,
        num_images=8,
        batch_size=8,
        epochs=1,
        device="cpu",
        workers=0,
        progress=False,
    )
    train(cfg)
    for split in ("train", "val"):
        for c, value in enumerate((40, 200)):
            for i in range(3):
                path = root / "probe" / split / f"class{c}" / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((20, 20, 3), value + 3 * i, dtype=np.uint8)).save(path)
    (root / "file.txt").write_text("not a folder, not an encoder\n")
    (root / "adir").mkdir()
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root, with size and modification time for files."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (0, 0)
        for p in root.rglob("*")
    }


GEN = ("generate", "test-blobs", "--out", "{root}/d", "-n", "3")
TRAIN = ("train", "--data", "test-blobs", "--out", "{root}/r")
EVAL = ("eval", "{root}/run", "--dataset", "imagefolder:{root}/probe")

# (arguments with {root} for the fixture folder, text the error line must hold)
CASES = [
    # list
    (("list", "nope"), "unknown list 'nope'"),
    (("list", "--bogus"), "No such option: --bogus"),
    # show
    (("show", "nope-generator", "--out", "{root}/g.png"), "unknown generator 'nope-generator'"),
    (("show", "test-blobs", "--num-images", "0", "--out", "{root}/g.png"), "--num-images must be at least 1"),
    (("show", "test-blobs", "--res", "2", "--out", "{root}/g.png"), "too small"),
    (("show", "test-blobs", "--out", "{root}/file.txt/g.png"), "file.txt is a file, not a folder"),
    (("show", "test-blobs", "--out", "{root}/adir"), "is a folder"),
    (("show", "test-blobs", "--out", "/proc/noisevision-test/g.png"), "cannot write"),
    (("show", "test-blobs", "--seed", "-1", "--out", "{root}/g.png"), "seed"),
    (("show", "test-blobs", "--seed", BIG_SEED, "--out", "{root}/g.png"), "seed"),
    (("show", "test-blobs", "--start", "-5", "--out", "{root}/g.png"), "--start must be 0 or more"),
    (("show", "test-blobs", "--num-images", "many"), "Invalid value for '--num-images'"),
    # generate
    (("generate", "nope-generator", "--out", "{root}/d", "-n", "3"), "unknown generator"),
    (("generate", "test-blobs", "--out", "{root}/d", "-n", "0"), "--num-images must be a positive"),
    (("generate", "test-blobs", "--out", "{root}/d", "-n", "-4"), "--num-images must be a positive"),
    ((*GEN, "--res", "4"), "too small"),
    ((*GEN, "--format", "gif"), "jpg or png"),
    ((*GEN, "--shard", "3/2"), "--shard"),
    ((*GEN, "--quality", "0"), "--quality must be in 1..100"),
    ((*GEN, "--batch-size", "0"), "--batch-size must be at least 1"),
    ((*GEN, "--workers", "-1"), "--workers must be 0 or more"),
    (("generate", "test-blobs", "--out", "{root}/file.txt", "-n", "3"), "file.txt"),
    (("generate", "test-blobs", "--out", "/proc/noisevision-test/d", "-n", "3"), "cannot write"),
    ((*GEN, "--seed", BIG_SEED), "seed"),
    ((*GEN, "--precision", "fp8"), "--precision"),
    (("generate", "test-blobs", "--out", "{root}/run", "-n", "3"), "not a noisevision dataset"),
    (("eval", "{root}/enc.pt", "--seeds", "5000000"), "--seeds must be at most 1,000"),
    # train
    ((*TRAIN, "--preset", "huge"), "unknown preset 'huge'"),
    ((*TRAIN, "--arch", "resnet9"), "unknown architecture"),
    ((*TRAIN, "--method", "byol"), "unknown method"),
    ((*TRAIN, "--augment", "heavy"), "unknown augmentation"),
    ((*TRAIN, "--schedule", "linear"), "unknown schedule"),
    ((*TRAIN, "--epochs", "0"), "--epochs must be at least 1"),
    ((*TRAIN, "--batch-size", "0"), "--batch-size must be at least 1"),
    ((*TRAIN, "--lr", "-1"), "--lr must be a positive finite number"),
    ((*TRAIN, "--lr", "inf"), "--lr must be a positive finite number, got inf"),
    ((*TRAIN, "--set", "momentum=.nan"), "momentum must be a finite number ≥ 0, got nan"),
    ((*TRAIN, "--set", "weight_decay=.inf"), "weight_decay must be a finite number ≥ 0"),
    ((*TRAIN, "--set", "epochs=[1"), "is not valid YAML"),
    ((*TRAIN, "--set", "epochs=99999999999999999999"), "epochs is too large a number"),
    ((*TRAIN, "--input-size", "0"), "--input-size must be at least 1"),
    ((*TRAIN, "--input-size", "4"), "input_size must be at least 8, not 4"),
    ((*TRAIN, "--res", "0"), "--res must be at least"),
    ((*TRAIN, "--num-images", "0"), "--num-images must be at least 1"),
    ((*TRAIN, "--arch-opt", "width=-1"), "width must be positive"),
    ((*TRAIN, "--arch-opt", "width"), "must look like KEY=VALUE"),
    ((*TRAIN, "--arch-opt", "depth=3"), "bad options"),
    (("train", "--data", "test-blobs", "--out", "{root}/file.txt"), "file.txt is a file"),
    (("train", "--data", "test-blobs", "--out", "/proc/noisevision-test/r"), "cannot write"),
    (("train", "--data", "{root}/missing-folder", "--out", "{root}/r"), "missing-folder"),
    ((*TRAIN, "--workers", "-1"), "--workers must be 0 or more"),
    ((*TRAIN, "--threads", "0"), "--threads must be at least 1"),
    ((*TRAIN, "--checkpoint-minutes", "-1"), "--checkpoint-minutes"),
    ((*TRAIN, "--precision", "fp8"), "precision"),
    ((*TRAIN, "--cache-images", "maybe"), "--cache-images"),
    ((*TRAIN, "--seed", BIG_SEED), "seed"),
    ((*TRAIN, "--bn-groups", "0"), "bn"),
    (("train", "--config", "{root}/missing.yaml", "--out", "{root}/r"), "missing.yaml does not exist"),
    ((*TRAIN, "--set", "lerning_rate=1"), "unknown --set key"),
    (("train", "--out", "{root}/r"), "no training data"),
    ((*TRAIN, "--logger", "tensorboard,wandbb"), "unknown logger 'wandbb': did you mean wandb?"),
    ((*TRAIN, "--logger", " , "), "--logger ' , ' names no logger"),
    # eval
    (("eval", "{root}/missing.pt", "--dataset", "imagefolder:{root}/probe"), "not found"),
    (("eval", "{root}/file.txt", "--dataset", "imagefolder:{root}/probe"), "file.txt"),
    (("eval", "{root}/run", "--dataset", "nope"), "unknown evaluation dataset"),
    (("eval", "{root}/run", "--dataset", "imagefolder:{root}/missing"), "missing"),
    (("eval", "{root}/run", "--dataset", "imagenet100"), "needs a folder"),
    ((*EVAL, "--probe", "nope"), "unknown probe 'nope'"),
    ((*EVAL, "--layer", "fc9"), "layer 'fc9'"),
    ((*EVAL, "--protocol", "x"), "unknown linear protocol"),
    ((*EVAL, "--epochs", "0"), "epochs must be at least 1"),
    ((*EVAL, "--probe", "lowshot", "--shots", "100000"), "--shots 100000"),
    ((*EVAL, "--workers", "-3"), "--workers must be 0"),
    ((*EVAL, "--subset", "0"), "--subset must be at least 1"),
    ((*EVAL, "--test-subset", "-2"), "--test-subset"),
    ((*EVAL, "--out", "{root}/adir"), "is a folder"),
    ((*EVAL, "--decoder", "gpu"), "decoder"),
    ((*EVAL, "--precision", "fp8"), "precision"),
    (("eval", "raw-pixels", "--dataset", "imagefolder:{root}/probe", "--input-size", "0"), "input"),
    ((*EVAL, "--seed", BIG_SEED), "seed"),
    ((*EVAL, "--logger", "neptune"), "unknown logger 'neptune'"),
    # export
    (("export", "{root}/run", "--format", "onnx", "--out", "{root}/w.safetensors"), "onnx"),
    (("export", "{root}/file.txt", "--format", "torchvision", "--out", "{root}/w.safetensors"), "file.txt"),
    (("export", "{root}/adir", "--format", "torchvision", "--out", "{root}/w.safetensors"), "encoder.pt"),
    (("export", "{root}/run", "--format", "noisevision", "--out", "{root}/file.txt/w.st"), "file.txt"),
    # reproduce
    (("reproduce", "--preset", "nope", "--out", "{root}/rep"), "unknown reproduction preset"),
    (("reproduce", "--generators", ",", "--out", "{root}/rep"), "--generators"),
    (("reproduce", "--generators", "nope-generator", "--out", "{root}/rep"), "nope-generator"),
    (("reproduce", "--subset", "0", "--out", "{root}/rep"), "--subset must be at least 1"),
    (("reproduce", "--eval-dataset", "nope", "--out", "{root}/rep"), "unknown evaluation dataset"),
    (("reproduce", "--extra-data", "noequals", "--out", "{root}/rep"), "NAME=DIR"),
    (("reproduce", "--materialize", "sometimes", "--out", "{root}/rep"), "materialize"),
    (("reproduce", "--out", "{root}/file.txt"), "file.txt is a file"),
    (
        ("reproduce", "--logger", "mlfow", "--out", "{root}/rep"),
        "unknown logger 'mlfow': did you mean mlflow?",
    ),
    # bench
    (("bench", "generators", "test-blobs", "--batch-size", "0"), "--batch-size must be at least 1"),
    (("bench", "generators", "nope-generator"), "unknown generator"),
    (("bench", "generators", "test-blobs", "--repeats", "0"), "--repeats must be at least 1"),
    (("bench", "generators", "test-blobs", "--sizes", "64,x"), "--sizes takes resolutions from 8 px"),
    (("bench", "generators", "test-blobs", "--sizes", "64", "--profile"), "leave out --reference"),
    (("bench", "generators", "test-blobs", "--min-time", "-1"), "--min-time"),
    (("bench", "generators", "test-blobs", "--min-time", "inf"), "--min-time must be 0 to 600"),
    (("bench", "generators", "test-blobs", "--res", "0"), "resolution 0 too small for 'test-blobs'"),
    (("bench", "generators", "--res", "0"), "no generator renders 0 px"),
    (("show", "test-blobs", "--out", "grid.jpgx"), "cannot save a grid as 'grid.jpgx'"),
    (("bench", "generators", "test-blobs", "--threads", "-2"), "--threads"),
    (("bench", "train", "--steps", "0"), "--steps must be at least 1"),
    (("bench", "train", "--modes", "nope"), "unknown mode 'nope'"),
    (("bench", "train", "--batch-size", "0"), "--batch-size must be at least 1"),
    (("bench", "train", "--rounds", "0"), "--rounds must be at least 1"),
    (("bench", "eval", "--images", "0"), "--images must be at least 1"),
    (("bench", "eval", "--decoders", "nope"), "decoder"),
    (("bench", "eval", "--folder", "{root}/missing"), "missing"),
] + (
    [
        (("show", "test-blobs", "--device", NO_CUDA, "--out", "{root}/g.png"), "CUDA"),
        ((*GEN, "--device", NO_CUDA), "CUDA"),
        ((*TRAIN, "--device", NO_CUDA), "CUDA"),
        ((*EVAL, "--device", NO_CUDA), "CUDA"),
        (("reproduce", "--device", NO_CUDA, "--out", "{root}/rep"), "CUDA"),
    ]
    if NO_CUDA
    else []
)


def _id(value: object) -> str | None:
    return " ".join(value)[:70] if isinstance(value, tuple) else None


@pytest.mark.parametrize("args, message", CASES, ids=_id)
def test_bad_input_is_one_line_before_any_work(run_cli, place, args, message):
    before = snapshot(place)
    code, out, err = run_cli(*(a.replace("{root}", str(place)) for a in args))
    assert code == 2, (code, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err + out
    assert message in err.replace(str(place), "{root}") or message in err, err
    assert snapshot(place) == before  # nothing written or changed


def test_at_least_sixty_bad_inputs_over_every_command():
    commands = {args[0] if args[0] != "bench" else " ".join(args[:2]) for args, _ in CASES}
    assert len(CASES) >= 60
    assert commands >= {
        "list",
        "show",
        "generate",
        "train",
        "eval",
        "export",
        "reproduce",
        "bench generators",
        "bench train",
        "bench eval",
    }


def test_a_bug_still_shows_its_traceback(run_cli, monkeypatch):
    from noisevision.cli import lists

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(lists, "listing", broken)
    with pytest.raises(ZeroDivisionError):
        run_cli("list")


def test_a_worker_wrapped_error_is_its_own_line():
    from noisevision.cli import user_error_line
    from noisevision.errors import NoisevisionError

    wrapped = NoisevisionError(
        "Caught NoisevisionError in DataLoader worker process 0.\n"
        "Original Traceback (most recent call last):\n"
        '  File "x.py", line 3, in f\n    raise NoisevisionError("bad.jpg: not an image")\n'
        "noisevision.errors.NoisevisionError: bad.jpg: not an image\n"
    )
    assert user_error_line(wrapped) == "bad.jpg: not an image"
    pil = OSError(
        "Caught UnidentifiedImageError in DataLoader worker process 1.\n"
        "Original Traceback (most recent call last):\n  ...\n"
        "PIL.UnidentifiedImageError: cannot identify image file 'x.png'\n"
    )
    assert user_error_line(pil) == "cannot identify image file 'x.png'"
    died = RuntimeError("DataLoader worker (pid(s) 1234) exited unexpectedly")
    assert user_error_line(died).startswith("DataLoader worker (pid(s) 1234) exited unexpectedly: the work")
    bug = ValueError("Caught ValueError in DataLoader worker\nOriginal Traceback ...")
    assert user_error_line(bug) is None
    assert user_error_line(PermissionError(13, "Permission denied", "/x/y")) == "Permission denied: /x/y"
    assert user_error_line(ValueError("a bug")) is None


@pytest.mark.parametrize(("variable", "value"), [("WORLD_SIZE", "two"), ("RANK", "-1"), ("WORLD_SIZE", "0")])
def test_a_malformed_torchrun_environment_is_one_line(run_cli, place, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    before = snapshot(place)
    code, _, err = run_cli("generate", "test-blobs", "--out", str(place / "d"), "--num-images", "2")
    assert code == 2 and err.count("\n") == 1 and f"{variable}=" in err and "environment" in err, err
    assert snapshot(place) == before
