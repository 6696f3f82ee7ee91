"""noisevision export: safetensors for torchvision / timm / noisevision, and the model card."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torchvision
from safetensors import safe_open
from safetensors.torch import load_file

from noisevision.errors import NoisevisionError
from noisevision.export import CARD_MARK, FORMATS, export_encoder, formats_for
from noisevision.models import build_encoder, load_encoder, save_encoder

pytestmark = pytest.mark.usefixtures("one_thread")
FC = {"fc.weight", "fc.bias"}


def trained_like(arch: str, **kw) -> torch.nn.Module:
    """An encoder whose BN statistics are not the defaults, so that a load that skipped them shows."""
    enc = build_encoder(arch, **kw)
    gen = torch.Generator().manual_seed(0)
    for name, t in enc.state_dict().items():
        if name.endswith("running_mean"):
            t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
        elif name.endswith("running_var"):
            t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
    return enc.eval()


def saved(tmp_path, arch: str, meta: dict | None = None, **kw) -> tuple[torch.nn.Module, str]:
    enc = trained_like(arch, **kw)
    run = tmp_path / "run"
    save_encoder(
        run / "encoder.pt",
        enc,
        {"data": "dead_leaves-mixed", "method": "moco_v2", "images_seen": 4096, **(meta or {})},
    )
    return enc, str(run)


def card_code(card: str) -> str:
    """The card's first Python block (the loading lines)."""
    return re.search(r"```python\n(.*?)```", card, re.S)[1]


@pytest.mark.parametrize("arch", ["resnet18", "resnet18-s"])
def test_torchvision_export_loads_strictly_with_the_cards_lines_and_gives_the_same_features(
    tmp_path, monkeypatch, arch
):
    enc, run = saved(tmp_path, arch, input_size=32)
    out = tmp_path / "export" / f"{arch}.safetensors"
    done = export_encoder(run, "torchvision", out)
    assert done.card == out.parent / "README.md"
    assert done.dropped and all(k.startswith("head.") for k in done.dropped)
    card = done.card.read_text()
    monkeypatch.chdir(out.parent)
    scope: dict = {}
    exec(card_code(card), scope)  # the card's lines, as a user runs them beside the file
    model = scope["model"].eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), enc.features(x, "pool"), atol=1e-5)
    # the plain story without the card: a torchvision ResNet whose fc is Identity, strict=True
    tv = torchvision.models.resnet18()
    tv.fc = torch.nn.Identity()
    if arch.endswith("-s"):
        with pytest.raises(RuntimeError, match="conv1.weight"):  # the stem the card says to swap
            tv.load_state_dict(load_file(out))
        assert "small-image stem" in card
    else:
        tv.load_state_dict(load_file(out), strict=True)
        assert "small-image stem" not in card
    assert "fc" in card and "projection head" in card


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_timm_export_has_timms_resnet_key_names(tmp_path, arch):
    """timm's ResNet names its tensors as torchvision's does (timm/models/resnet.py: conv1, bn1,
    layer1..4 with conv/bn/downsample.0/.1 blocks, fc): the export must match that set exactly."""
    _, run = saved(tmp_path, arch, input_size=32)
    out = tmp_path / f"{arch}-timm.safetensors"
    done = export_encoder(run, "timm", out)
    reference = getattr(torchvision.models, arch)().state_dict()
    tensors = load_file(out)
    assert set(tensors) == set(reference) - FC
    assert all(tensors[k].shape == reference[k].shape for k in tensors)
    with safe_open(str(out), framework="pt") as f:
        info = f.metadata()
    assert info["noisevision.export"] == "timm" and info["arch"] == arch
    card = done.card.read_text()
    assert f'timm.create_model("{arch}", num_classes=0)' in card


def test_noisevision_export_round_trips_through_load_encoder(tmp_path):
    enc, run = saved(tmp_path, "resnet18-s", width=0.25, input_size=32)
    out = tmp_path / "enc.safetensors"
    export_encoder(run, "noisevision", out)
    back, meta = load_encoder(out)
    original, original_meta = load_encoder(f"{run}/encoder.pt")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(back.eval()(x), original.eval()(x))  # the head came along
    assert back.arch_kwargs == enc.arch_kwargs and meta["recipe"] == original_meta["recipe"]
    assert meta["images_seen"] == 4096


def test_v1_encoder_files_are_refused_in_one_line(tmp_path):
    enc = trained_like("resnet18", input_size=32)
    v1 = {
        "format": "noisevision-encoder",
        "version": 1,
        "arch": "resnet18",
        "arch_kwargs": {"input_size": 32},
        "state_dict": enc.state_dict(),
        "meta": {"method": "simclr", "data": "stat-spectrum"},
    }
    torch.save(v1, tmp_path / "old.pt")
    with pytest.raises(NoisevisionError, match="format version 1") as info:
        export_encoder(tmp_path / "old.pt", "torchvision", tmp_path / "old.safetensors")
    assert "\n" not in str(info.value) and not (tmp_path / "old.safetensors").exists()


def test_card_never_overwrites_a_readme_that_is_not_ours(tmp_path):
    _, run = saved(tmp_path, "resnet18", input_size=32)
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "README.md").write_text("# my project\n")
    done = export_encoder(run, "timm", folder / "r18.safetensors")
    assert done.card == folder / "r18.README.md" and (folder / "README.md").read_text() == "# my project\n"
    again = export_encoder(run, "timm", folder / "r18.safetensors")  # our own card is rewritten
    assert again.card == done.card
    (folder / "r50.README.md").write_text("notes\n")
    with pytest.raises(NoisevisionError, match="not a model card"):
        export_encoder(run, "timm", folder / "r50.safetensors")
    assert not (folder / "r50.safetensors").exists()
    # a card of another export in README.md is not overwritten either
    other = tmp_path / "other"
    first = export_encoder(run, "torchvision", other / "a.safetensors")
    second = export_encoder(run, "noisevision", other / "b.safetensors")
    assert first.card == other / "README.md" and second.card == other / "b.README.md"
    assert f"{CARD_MARK}a.safetensors -->" in first.card.read_text()


def test_card_lists_probe_results_of_the_run_and_its_reproduction(tmp_path):
    repro = tmp_path / "repro"
    run = repro / "runs" / "dead_leaves-mixed"
    save_encoder(
        run / "encoder.pt",
        trained_like("resnet18", input_size=32),
        {"data": "dead_leaves-mixed", "images_seen": 123456, "epochs": 3, "num_images": 41152},
    )
    (repro / "plan.json").write_text(json.dumps({"sources": ["dead_leaves-mixed"]}))
    (repro / "cells").mkdir()
    cell = {
        "preset": "demo",
        "source": "dead_leaves-mixed",
        "kind": "generator",
        "probe": "knn",
        "dataset": "fashion-mnist",
        "top1": 71.25,
        "std": None,
        "layer": "pool",
        "n_train": 5000,
        "n_test": 2000,
        "encoder": str(run / "encoder.pt"),
    }
    (repro / "cells" / "dead_leaves-mixed__knn.json").write_text(json.dumps(cell))
    other = {**cell, "source": "fractaldb", "top1": 10.0, "encoder": "elsewhere.pt"}
    (repro / "cells" / "fractaldb__knn.json").write_text(json.dumps(other))
    result = {
        "encoder": str(run),
        "meta": {"path": str(run / "encoder.pt")},
        "dataset": "imagefolder:x",
        "layer": "pool",
        "n_train": 10,
        "n_test": 4,
        "probes": {"lowshot": {"top1": 55.5, "std": 1.25, "shots": 10}},
    }
    (run / "eval-imagefolder_x.json").write_text(json.dumps(result))
    card = export_encoder(run, "torchvision", tmp_path / "r.safetensors").card.read_text()
    assert "| eval-imagefolder_x.json | imagefolder:x | lowshot | 55.50 ± 1.25 | pool | 10/4 |" in card
    assert "| reproduction repro (demo) | fashion-mnist | knn | 71.25 | pool | 5000/2000 |" in card
    assert "10.00" not in card  # another source's cell
    assert "images seen: 123,456 (3 epochs of 41,152 images)" in card


def test_formats_each_encoder_supports():
    assert formats_for(build_encoder("smallalexnet")) == ["noisevision"]
    assert formats_for(build_encoder("resnet18-s", width=0.5)) == ["noisevision"]
    assert formats_for(build_encoder("resnet18-deep", width=0.25)) == ["timm", "noisevision"]
    assert formats_for(build_encoder("resnet18", input_size=32)) == list(FORMATS)


@pytest.mark.parametrize(
    "case", ["smallalexnet", "narrow", "format", "not-encoder", "pickle", "folder", "suffix", "missing"]
)
def test_bad_exports_are_one_error_line_and_write_nothing(tmp_path, run_cli, case):
    src = tmp_path / "src"
    src.mkdir()
    fmt = "torchvision"
    if case == "smallalexnet":
        save_encoder(src / "e.pt", build_encoder("smallalexnet"), {})
    elif case == "narrow":
        save_encoder(src / "e.pt", build_encoder("resnet18-s", width=0.5), {})
    elif case == "format":
        save_encoder(src / "e.pt", build_encoder("resnet18", input_size=32), {})
        fmt = "torchvison"
    elif case == "not-encoder":
        (src / "e.pt").write_text("not an encoder")
    elif case == "pickle":
        torch.save({"state_dict": {}}, src / "e.pt")
    elif case == "suffix":
        save_encoder(src / "e.pt", build_encoder("resnet18", input_size=32), {})
    source = {"folder": src, "missing": src / "nothing.pt"}.get(case, src / "e.pt")
    out = tmp_path / "out" / ("model.pt" if case == "suffix" else "model.safetensors")
    code, stdout, err = run_cli("export", source, "--format", fmt, "--out", out)
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()
    if case in ("smallalexnet", "narrow"):
        assert "--format noisevision" in err
    if case == "format":
        assert "did you mean torchvision" in err


def test_library_exports_are_refused_by_load_encoder(tmp_path):
    _, run = saved(tmp_path, "resnet18", input_size=32)
    out = tmp_path / "r.safetensors"
    export_encoder(run, "torchvision", out)
    with pytest.raises(NoisevisionError, match="torchvision weights"):
        load_encoder(out)


def test_cli_export_prints_what_it_wrote(tmp_path, run_cli):
    _, run = saved(tmp_path, "resnet18", input_size=32)
    code, out, err = run_cli("export", run, "--format", "timm", "-o", tmp_path / "m.safetensors")
    assert code == 0, err
    assert "m.safetensors (timm" in out and "left out: head" in out and "README.md" in out


@pytest.mark.parametrize("arch", ["vit-tiny-p4", "vit-tiny"])
def test_timm_export_of_a_vit_loads_strictly_into_timm_and_gives_the_same_features(
    tmp_path, monkeypatch, arch
):
    import timm

    small = {"depth": 2, "input_size": 16} if arch.endswith("-p4") else {"depth": 1}
    enc, run = saved(tmp_path, arch, **small)
    out = tmp_path / "export" / f"{arch}.safetensors"
    done = export_encoder(run, "timm", out)
    assert done.dropped and all(k.startswith("head.") for k in done.dropped)
    with safe_open(str(out), framework="pt") as f:
        info = f.metadata()
    assert info["timm_model"] == "vit_tiny_patch16_224"
    model = timm.create_model(info["timm_model"], num_classes=0, **json.loads(info["timm_kwargs"]))
    model.load_state_dict(load_file(out), strict=True)
    side = enc.input_size
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), enc.features(x, "cls"))
    card = done.card.read_text()
    monkeypatch.chdir(out.parent)
    scope: dict = {}
    exec(card_code(card), scope)  # the card's lines build and load it too
    with torch.no_grad():
        torch.testing.assert_close(scope["model"].eval()(x), enc.features(x, "cls"))
    assert "class token" in card and "layer4" not in card
    assert formats_for(enc) == ["timm", "noisevision"]


def test_a_vit_or_an_alexnet_refused_by_a_format_that_cannot_hold_it_in_one_line(tmp_path, run_cli):
    src = tmp_path / "src"
    save_encoder(src / "v.pt", build_encoder("vit-tiny-p4", depth=1), {})
    save_encoder(src / "a.pt", build_encoder("smallalexnet", width=0.0625), {})
    for name, fmt, hint in (
        ("v", "torchvision", "--format timm or noisevision"),
        ("a", "timm", "ResNet nor a ViT"),
    ):
        code, _, err = run_cli(
            "export", src / f"{name}.pt", "--format", fmt, "--out", tmp_path / "o" / "m.safetensors"
        )
        assert code == 2 and len(err.strip().splitlines()) == 1 and hint in err, err
    assert not (tmp_path / "o").exists()
