"""Probes and baselines: they learn what is learnable, are deterministic, and fail in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from noisevision import evaluate as ev
from noisevision.augment import PAPER_MEAN, PAPER_STD
from noisevision.data.eval_datasets import EvalDataset, ImageSet
from noisevision.errors import NoisevisionError
from noisevision.evaluate import probes

pytestmark = pytest.mark.usefixtures("one_thread")


class TinyEncoder(nn.Module):
    """Stand-in encoder with the probe interface: one conv, global pooling."""

    feature_layers = ("conv", "pool")
    default_layer = "pool"
    input_size = 16

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def features(self, x: torch.Tensor, layer: str | None = None) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        return h.mean((2, 3)) if (layer or "pool") == "pool" else h.flatten(1)


def colour_dataset(n_per_class: int = 40, n_test: int = 10, size: int = 20, seed: int = 0) -> EvalDataset:
    """Three classes told apart by colour (red, green, blue) under strong pixel noise."""
    g = torch.Generator().manual_seed(seed)

    def split(n: int) -> ImageSet:
        labels = torch.arange(3).repeat_interleave(n)
        base = torch.full((3 * n, 3, size, size), 60.0)
        base[torch.arange(3 * n), labels] = 170.0
        noise = torch.randint(-50, 50, base.shape, generator=g).float()
        return ImageSet(labels, images=(base + noise).clamp(0, 255).to(torch.uint8))

    return EvalDataset("colours", ["red", "green", "blue"], split(n_per_class), split(n_test))


def test_fit_linear_learns_separable_problem() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(5, 32, generator=g) * 4
    y = torch.arange(5).repeat(60)
    x = centres[y] + torch.randn(len(y), 32, generator=g)
    head = ev.fit_linear(x[:200], y[:200], 5, epochs=20)
    assert ev.top1(head, x[200:], y[200:]) == pytest.approx(100.0)


def test_knn_on_clusters() -> None:
    g = torch.Generator().manual_seed(1)
    centres = torch.nn.functional.normalize(torch.randn(4, 16, generator=g), dim=1) * 5
    y = torch.arange(4).repeat(30)
    x = centres[y] + 0.3 * torch.randn(len(y), 16, generator=g)
    assert ev.knn_top1(x[:80], y[:80], x[80:], y[80:], 4, k=20) == 100.0
    flipped = y[:80].roll(1)  # labels that do not follow the clusters
    assert ev.knn_top1(x[:80], flipped, x[80:], y[80:], 4, k=5) < 50.0


def test_linear_probe_spec_protocol_learns_colours() -> None:
    ds = colour_dataset(n_per_class=100)
    model = ev.RawPixels(input_size=16)  # 768 features: the colour is spread over many of them
    res = ev.evaluate(model, ds, ev.ProbeSettings(probes=("linear",), epochs=30, protocol="paper"))
    r = res.probes["linear"]
    assert r["protocol"] == "paper" and r["epochs"] == 30 and len(r["train_loss"]) == 30
    assert res.feature_dim == 768
    assert r["train_loss"][-1] < r["train_loss"][0]
    assert r["top1"] == pytest.approx(100.0)


def test_cached_probes_learn_colours_and_summary() -> None:
    ds = colour_dataset()
    settings = ev.ProbeSettings(probes=("fast", "knn", "lowshot"), shots=5, lowshot_seeds=3, min_steps=200)
    res = ev.evaluate(ev.RawPixels(16), ds, settings)
    assert list(res.probes) == ["fast", "knn", "lowshot"]
    assert res.probes["fast"]["top1"] == pytest.approx(100.0)
    assert res.probes["knn"]["top1"] > 95.0
    assert len(res.probes["lowshot"]["per_seed"]) == 3 and res.probes["lowshot"]["top1"] > 90.0
    assert res.feature_dim == 768 and res.n_train == 120 and res.n_test == 30
    line = res.summary()
    assert "fast 100.00" in line and "lowshot(5/class)" in line and "\n" not in line
    json.dumps(res.to_dict())  # JSON-serialisable


def test_probes_are_deterministic_for_a_seed() -> None:
    ds = colour_dataset(n_per_class=20, n_test=10)
    torch.manual_seed(0)
    enc = TinyEncoder()
    settings = ev.ProbeSettings(
        probes=("linear", "fast", "knn", "lowshot"),
        epochs=2,
        lowshot_seeds=2,
        shots=3,
        fast_epochs=3,
        min_steps=50,
        seed=7,
    )
    a = ev.evaluate(enc, ds, settings).probes
    torch.manual_seed(123)  # the global RNG must not matter
    b = ev.evaluate(enc, ds, settings).probes
    for name in a:
        assert a[name]["top1"] == b[name]["top1"], name
    assert a["linear"]["train_loss"] == b["linear"]["train_loss"]
    assert a["lowshot"]["per_seed"] == b["lowshot"]["per_seed"]


def test_train_view_is_seeded_per_image_and_in_range() -> None:
    """Train views draw from the counter-based streams of (seed, image index): the same view of an
    image whatever its batch, another with another seed."""
    ds = colour_dataset(n_per_class=4)
    view = ev.View(16, True)
    idx = torch.arange(12)
    x1 = ev.batch_view(ds.train.images, view, ev.view_rng(3, idx))
    x2 = ev.batch_view(ds.train.images[[5, 2]], view, ev.view_rng(3, idx[[5, 2]]))
    x3 = ev.batch_view(ds.train.images, view, ev.view_rng(4, idx))
    assert x1.shape == (12, 3, 16, 16) and torch.equal(x1[[5, 2]], x2) and not torch.equal(x1, x3)
    test = ev.batch_view(ds.train.images, ev.View(16, False))  # Resize(18) + CenterCrop(16)
    assert test.shape == (12, 3, 16, 16)
    lo = (0 - torch.tensor(PAPER_MEAN)) / torch.tensor(PAPER_STD)
    assert (test.amin((0, 2, 3)) >= lo - 1e-5).all()


def test_train_crops_follow_torchvision_ranges() -> None:
    from noisevision.evaluate.views import train_crops

    boxes, flip = train_crops(ev.view_rng(0, torch.arange(4000)), 28, 28, ev.View(16, True))
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 28).all() and (boxes[:, 3] <= 28).all()
    area = w * h / 28**2
    assert area.min() >= 0.05 and area.max() <= 1.0
    assert 0.4 < area.mean() < 0.7  # mostly U(0.08, 1) area (mean 0.54)
    ratio = w / h
    assert ratio.min() >= 0.6 and ratio.max() <= 1.6
    assert 0.45 < flip.float().mean() < 0.55


def test_baselines_features() -> None:
    x = torch.rand(2, 3, 64, 64)
    assert ev.RawPixels(64).features(x).shape == (2, 3 * 32 * 32)
    assert ev.RawPixels(16).features(x[..., :16, :16]).shape == (2, 3 * 16 * 16)
    assert torch.allclose(ev.MeanColors(64).features(x), x.mean((2, 3)))


def test_cnn_random_is_reproducible() -> None:
    a = ev.build_baseline("cnn-random", arch="resnet18-s", arch_kwargs={"width": 0.125}, seed=5)
    b = ev.build_baseline("cnn-random", arch="resnet18-s", arch_kwargs={"width": 0.125}, seed=5)
    c = ev.build_baseline("cnn-random", arch="resnet18-s", arch_kwargs={"width": 0.125}, seed=6)
    wa, wb, wc = (m.conv1.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    model, meta = ev.load_probe_model("cnn-random:resnet18-s", input_size=32)
    assert model.input_size == 32 and meta["baseline"] == "cnn-random" and not model.training


def test_protocols_match_spec() -> None:
    paper, moco = ev.PROTOCOLS.get("paper"), ev.PROTOCOLS.get("moco")
    assert (paper.optimizer, paper.lr, paper.betas, paper.batch_size, paper.epochs) == (
        "adam",
        1e-3,
        (0.5, 0.999),
        128,
        100,
    )
    assert probes._milestones(paper, 100) == [60, 80] and paper.gamma == 0.2
    assert round(paper.test_resize * 64) == 70
    assert (moco.optimizer, moco.lr, moco.weight_decay, moco.batch_size, moco.gamma) == (
        "sgd",
        30.0,
        0.0,
        256,
        0.1,
    )
    assert round(moco.test_resize * 224) == 256
    assert ev.protocol_for({"method": "moco_v2"}) == "moco"
    assert ev.protocol_for({"method": "align_uniform"}) == "paper"


def test_bad_encoder_files_give_one_line(tmp_path: Path) -> None:
    from noisevision.models import build_encoder, save_encoder

    not_encoder = tmp_path / "state.pt"
    torch.save({"weights": torch.zeros(3)}, not_encoder)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    enc = build_encoder("resnet18-s", width=0.125)
    other = tmp_path / "other.pt"
    save_encoder(other, enc, {})
    blob = torch.load(other, weights_only=True)
    blob["arch"] = "smallalexnet"  # a file whose weights are of another architecture
    blob["arch_kwargs"] = {}
    torch.save(blob, other)
    for path, message in (
        (not_encoder, "not a noisevision encoder"),
        (garbage, "not a readable encoder"),
        (other, "does not match architecture 'smallalexnet'"),
        (tmp_path / "missing.pt", "not found"),
        (tmp_path, "has no encoder.pt"),
    ):
        with pytest.raises(NoisevisionError, match=message) as exc:
            ev.load_probe_model(str(path))
        assert "\n" not in str(exc.value)


def test_encoder_file_and_run_folder_load(tmp_path: Path) -> None:
    from noisevision.models import build_encoder, save_encoder

    enc = build_encoder("resnet18-s", width=0.125, input_size=16)
    save_encoder(tmp_path / "encoder.pt", enc, {"method": "moco_v2"})
    model, meta = ev.load_probe_model(str(tmp_path))
    assert meta["arch"] == "resnet18-s" and meta["path"].endswith("encoder.pt")
    assert model.input_size == 16 and not model.training
    rand, meta = ev.load_probe_model(f"cnn-random:{tmp_path}")  # same architecture, random weights
    assert meta["baseline"] == "cnn-random" and rand.arch_kwargs == enc.arch_kwargs
    assert rand.conv1.weight.shape == enc.conv1.weight.shape
    assert not torch.equal(rand.conv1.weight, model.conv1.weight.cpu())


def test_bad_settings_and_layers() -> None:
    with pytest.raises(NoisevisionError, match="unknown probe 'fats'"):
        ev.ProbeSettings(probes=("fats",)).check()
    with pytest.raises(NoisevisionError, match="epochs must be at least 1"):
        ev.ProbeSettings(epochs=0).check()
    with pytest.raises(NoisevisionError, match="layer 'fc9' does not exist here: choose from conv, pool"):
        ev.evaluate(TinyEncoder(), colour_dataset(4, 2), ev.ProbeSettings(layer="fc9"))
    with pytest.raises(NoisevisionError, match="unknown baseline"):
        ev.build_baseline("mean-colours")
