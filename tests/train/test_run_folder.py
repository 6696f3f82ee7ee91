"""A run folder: owned by one run at a time, naming its data by a path that moves with it, and
checked for unreadable training images before it is written."""

import json
import multiprocessing
import os
import shutil

import pytest
import yaml

from noisevision.errors import NoisevisionError
from noisevision.locks import folder_lock
from noisevision.models import load_encoder
from noisevision.train import TrainConfig, train
from tests.train.test_train import _interrupt_at, tiny_cfg, write_images


def _hold(folder: str, ready, release) -> None:
    with folder_lock(folder, "training run"):
        ready.set()
        release.wait(30)


@pytest.fixture
def held(tmp_path):
    """A folder whose lock another process holds until the test ends."""
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    folder = tmp_path / "run"
    proc = ctx.Process(target=_hold, args=(str(folder), ready, release))
    proc.start()
    assert ready.wait(60)
    yield folder, proc.pid
    release.set()
    proc.join(30)


def test_a_live_run_folder_refuses_a_second_run(held, tmp_path):
    folder, pid = held
    with pytest.raises(
        NoisevisionError,
        match=rf"in use by a training run, process {pid} on .*: wait for it to end, or give another --out",
    ):
        train(tiny_cfg(folder, epochs=1))
    assert [p.name for p in folder.iterdir()] == [".lock"]  # nothing trained nor written


def test_the_lock_goes_with_its_process(tmp_path):
    with folder_lock(tmp_path / "run", "training run"):
        pass
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path / "run"), ready, release))
    proc.start()
    assert ready.wait(60)
    proc.kill()  # SIGKILL: no clean-up ran
    proc.join(30)
    out = train(tiny_cfg(tmp_path / "run", epochs=1))  # the folder holds only the stale .lock file
    assert (out / "encoder.pt").is_file()


def test_a_reproduction_in_use_is_refused(held, probe_set):
    from noisevision import reproduce as rp

    folder, _ = held
    preset = rp.ReproPreset(
        "base", "test", (), "tiny", eval_dataset=probe_set(1), probe=dict(probes=("knn",))
    )
    with pytest.raises(NoisevisionError, match="in use by a training run, process"):
        rp.reproduce(preset, folder)


def test_a_run_names_its_image_folder_from_the_run_folder(tmp_path, monkeypatch):
    """config.yaml, the encoder's metadata and its recipe name the folder by its path from the
    run folder: the two move together, and the run resumes from any working directory."""
    write_images(tmp_path / "tree" / "imgs", 16)
    monkeypatch.chdir(tmp_path)
    _interrupt_at(monkeypatch, 1)  # stopped in the second of 2 epochs: the first is checkpointed
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg("tree/run", data="tree/imgs", res=None))
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "tree" / "run"
    assert yaml.safe_load((run / "config.yaml").read_text())["data"] == "../imgs"
    # moved elsewhere and resumed from another directory, through its config
    shutil.move(tmp_path / "tree", tmp_path / "moved")
    monkeypatch.chdir(tmp_path / "moved" / "imgs")
    cfg = TrainConfig.from_file("../run/config.yaml", out="../run", workers=0, progress=False)
    assert cfg.data == os.path.join("../run", "../imgs")
    run = train(cfg)
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"] == "../imgs"
    _, meta = load_encoder(run / "encoder.pt")
    assert meta["data"] == "../imgs" and meta["source"]["root"] == "../imgs"
    assert meta["recipe"].data["root"] == "../imgs"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]  # epoch 1 kept, epoch 2 resumed
    text = (run / "config.yaml").read_text() + json.dumps(meta, default=str)
    assert str(tmp_path) not in text


def test_a_user_absolute_path_is_kept_as_given(tmp_path):
    write_images(tmp_path / "imgs", 16)
    run = train(tiny_cfg(tmp_path / "elsewhere" / "run", data=str(tmp_path / "imgs"), res=None, epochs=1))
    assert yaml.safe_load((run / "config.yaml").read_text())["data"] == str(tmp_path / "imgs")


@pytest.mark.parametrize(
    "content,match", [(b"<html>not found</html>", "is not a JPEG or PNG image"), (b"", "is empty")]
)
def test_a_non_image_in_the_training_folder_fails_before_the_run_folder(tmp_path, content, match):
    write_images(tmp_path / "imgs", 16)
    (tmp_path / "imgs" / "009.png").write_bytes(content)
    with pytest.raises(NoisevisionError, match=f"009.png {match}: remove it from") as info:
        train(tiny_cfg(tmp_path / "run", data=str(tmp_path / "imgs"), res=None, epochs=1))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()


def test_a_run_made_before_a_setting_existed_resumes_with_its_default(tmp_path):
    """config.yaml of an older version has no `optimizer`: it was SGD, the default, not another run."""
    run = train(tiny_cfg(tmp_path / "run", epochs=1))
    config = yaml.safe_load((run / "config.yaml").read_text())
    del config["optimizer"]
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    train(tiny_cfg(tmp_path / "run", epochs=1))  # finished: no "another configuration"
    with pytest.raises(NoisevisionError, match="optimizer 'sgd' → 'adamw'"):
        train(tiny_cfg(tmp_path / "run", epochs=1, optimizer="adamw"))


@pytest.mark.parametrize(("capability", "width"), [("AVX512", 512), ("AVX2", 256), ("DEFAULT", 1)])
def test_compiled_cpu_code_uses_the_vector_width_aten_runs_at(monkeypatch, capability, width):
    """Inductor's own choice (from the CPU) beside AVX2 ATen kernels gave NaN in bf16 (seen under
    ATEN_CPU_CAPABILITY=avx2 on an AVX-512 CPU); a width the user set is kept."""
    import torch
    import torch._inductor.config as inductor

    from noisevision.train.components import match_inductor_to_aten

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    with inductor.patch({"cpp.simdlen": None}):
        match_inductor_to_aten()
        assert inductor.cpp.simdlen == width
    with inductor.patch({"cpp.simdlen": 128}):
        match_inductor_to_aten()
        assert inductor.cpp.simdlen == 128
