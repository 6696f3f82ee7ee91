"""Model folders as the Hub holds them: `export --out FOLDER` (timm's config.json that
`timm.create_model("local-dir:…" / "hf-hub:…")` reads, the card with model-card metadata), and
`--push-to-hub` against a stub of huggingface_hub's upload."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import timm
import torch
import yaml

from noisevision.export import export_encoder
from noisevision.models import build_encoder, save_encoder
from noisevision.presets import get_preset

pytestmark = pytest.mark.usefixtures("one_thread")
README = Path(__file__).parent.parent / "README.md"


def saved(root: Path, arch: str, **kw) -> torch.nn.Module:
    """An encoder with non-default BN statistics in root/run/encoder.pt."""
    enc = build_encoder(arch, **kw).eval()
    gen = torch.Generator().manual_seed(0)
    for name, t in enc.state_dict().items():
        if name.endswith("running_mean"):
            t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
    save_encoder(root / "run" / "encoder.pt", enc, {"data": "dead_leaves-mixed", "method": "moco_v2"})
    return enc


def front_matter(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


@pytest.mark.parametrize(
    "arch,kw,layer",
    [
        ("resnet18", {"input_size": 32}, "pool"),
        ("resnet18-deep", {"input_size": 32, "width": 0.25}, "pool"),  # the demo's: narrow, deep stem
        ("vit-tiny-p4", {}, "cls"),
    ],
)
def test_timm_model_folder_loads_through_timm_with_its_preprocessing(tmp_path, monkeypatch, arch, kw, layer):
    enc = saved(tmp_path, arch, **kw)
    monkeypatch.chdir(tmp_path)  # paths typed relative, as a user does
    done = export_encoder("run", "timm", "hub")
    assert {p.name for p in Path("hub").iterdir()} == {"model.safetensors", "config.json", "README.md"}
    model = timm.create_model("local-dir:hub", pretrained=True).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), enc.features(x, layer))  # the same network, bit for bit
    config = json.loads(done.config.read_text())
    assert config["num_classes"] == 0 and config["num_features"] == enc.feat_dim
    data = timm.data.resolve_data_config({}, model=model)
    assert tuple(data["input_size"]) == (3, 32, 32) and data["interpolation"] == "bilinear"
    resize = timm.data.create_transform(**data).transforms[0]
    assert resize.size == 35  # the probes' test view: shorter side 32 · 70/64, then the central 32 px
    card = done.card.read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "timm" and meta["license"] == "mit"
    assert meta["pipeline_tag"] == "image-feature-extraction" and "timm" in meta["tags"]
    assert str(tmp_path) not in card + done.config.read_text()  # no machine path
    scope: dict = {}
    exec(re.search(r"```python\n(.*?)```", card, re.S)[1], scope)  # the card's first lines, as written
    with torch.no_grad():
        assert torch.equal(scope["model"].eval()(x), enc.features(x, layer))
    assert scope["preprocess"].transforms[0].size == 35


def test_small_stem_and_narrow_resnets_have_no_timm_folder(tmp_path, run_cli):
    saved(tmp_path, "resnet18-s", input_size=32)
    code, _, err = run_cli("export", tmp_path / "run", "--format", "timm", "--out", tmp_path / "hub")
    assert code == 2 and "3×3 stride-1 stem" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "hub").exists()


def test_a_model_folder_with_other_files_is_refused(tmp_path, run_cli):
    saved(tmp_path, "resnet18", input_size=32)
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "notes.txt").write_text("mine")
    code, _, err = run_cli("export", tmp_path / "run", "--format", "timm", "--out", tmp_path / "hub")
    assert code == 2 and "holds other files (notes.txt)" in err
    assert [p.name for p in (tmp_path / "hub").iterdir()] == ["notes.txt"]


class StubHub:
    """huggingface_hub.HfApi as the upload sees it: what was asked, and the files at upload time."""

    calls: list = []
    fail: str | None = None

    def create_repo(self, repo_id, repo_type=None, private=False, exist_ok=False):
        if self.fail:
            raise RuntimeError(self.fail)
        StubHub.calls.append(("create_repo", repo_id, repo_type, private, exist_ok))

    def upload_folder(self, repo_id, folder_path, repo_type=None, commit_message=None):
        files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        StubHub.calls.append(("upload_folder", repo_id, repo_type, files))
        return type("Commit", (), {"commit_url": f"https://hub.example/{repo_id}/commit/1"})()


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub

    StubHub.calls, StubHub.fail = [], None
    monkeypatch.setattr(huggingface_hub, "HfApi", StubHub)
    return StubHub


def test_push_to_hub_uploads_the_model_folder(tmp_path, run_cli, hub):
    saved(tmp_path, "resnet18", input_size=32)
    out = tmp_path / "hub"
    args = ("export", tmp_path / "run", "--format", "timm", "--out", out)
    code, stdout, err = run_cli(
        *args, "--push-to-hub", "me/noise-r18", "--private", "--license", "apache-2.0"
    )
    assert code == 0, err
    assert hub.calls[0] == ("create_repo", "me/noise-r18", "model", True, True)
    (_, repo, kind, files) = hub.calls[1]
    assert (repo, kind) == ("me/noise-r18", "model")
    assert files == {p.name: p.read_bytes() for p in out.iterdir()}  # the whole folder, as written
    card = files["README.md"].decode()
    assert 'timm.create_model("hf-hub:me/noise-r18", pretrained=True)' in card
    assert front_matter(card)["license"] == "apache-2.0"
    assert "https://hub.example/me/noise-r18/commit/1" in stdout


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--push-to-hub", "noslash"), "must name a repository as USER/NAME"),
        (("--private",), "--private is an option of --push-to-hub"),
        (("--push-to-hub", "me/x", "--out-file"), "give --out a folder"),
    ],
)
def test_bad_push_requests_are_one_line_before_any_work(tmp_path, run_cli, hub, extra, message):
    saved(tmp_path, "resnet18", input_size=32)
    out = tmp_path / ("w.safetensors" if "--out-file" in extra else "hub")
    extra = tuple(e for e in extra if e != "--out-file")
    code, _, err = run_cli("export", tmp_path / "run", "--format", "timm", "--out", out, *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and hub.calls == []


def test_a_refused_upload_is_one_line_and_keeps_the_folder(tmp_path, run_cli, hub):
    saved(tmp_path, "resnet18", input_size=32)
    hub.fail = "401 Client Error: Unauthorized"
    code, _, err = run_cli(
        "export", tmp_path / "run", "--format", "timm", "--out", tmp_path / "hub", "--push-to-hub", "me/x"
    )
    assert code == 2 and "401 Client Error" in err and "huggingface-cli login" in err
    assert (tmp_path / "hub" / "config.json").is_file()  # written, ready to push again


def test_the_readmes_export_example_runs_on_the_demo_encoder(tmp_path, run_cli, monkeypatch):
    """README's `noisevision export demo/runs/…` line, as written, on an encoder of the demo's
    recipe (preset tiny): a timm model folder that timm builds and loads strictly."""
    (line,) = [x for x in README.read_text().splitlines() if x.startswith("noisevision export demo/runs/")]
    args = shlex.split(line.split("#")[0])[1:]
    assert args[args.index("--format") + 1] == "timm"
    tiny = get_preset("tiny").values
    monkeypatch.chdir(tmp_path)
    enc = build_encoder(tiny["arch"], **tiny["arch_kwargs"], input_size=tiny["input_size"]).eval()
    save_encoder(Path(args[1]) / "encoder.pt", enc, {"data": "stylegan-oriented", "preset": "tiny"})
    code, _, err = run_cli(*args)
    assert code == 0, err
    out = Path(args[args.index("--out") + 1])
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    x = torch.randn(2, 3, tiny["input_size"], tiny["input_size"])
    with torch.no_grad():
        assert torch.equal(model(x), enc.features(x, "pool"))
