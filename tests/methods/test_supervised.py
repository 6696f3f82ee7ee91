"""Supervised pre-training on a generator with categories: the loss, Mixup/CutMix, RandAugment and
random erasing of the FDSL recipe, and runs that learn the categories and resume exactly."""

import json

import numpy as np
import pytest
import torch
import yaml

import noisevision.train.loop as train_loop
from noisevision import augment, randaugment
from noisevision.errors import NoisevisionError
from noisevision.generators import Generator, register
from noisevision.methods import build_method
from noisevision.models import build_encoder, load_encoder
from noisevision.rng import Rng
from noisevision.train import TrainConfig, train

CLASSES = 4


@register("test-categories", family="test", default_res=32, description="4 flat colours, noisy")
class _Categories(Generator):
    """Category c: a flat colour of its own (c·60 + 20 in one channel) plus per-instance noise."""

    num_classes = CLASSES

    def render_indices(self, indices, seed, res):
        rng = Rng.for_indices(self.key, seed, indices)
        noise = (rng.uniform(3 * res * res) * 40).view(-1, 3, res, res)
        category = indices % CLASSES
        base = torch.zeros(len(indices), 3, 1, 1)
        base[torch.arange(len(indices)), category % 3, 0, 0] = (category * 60 + 20).float()
        return (base + noise).clamp(0, 255).to(torch.uint8)


def run_cfg(out, **kw):
    values = dict(
        data="test-categories",
        out=str(out),
        arch="smallalexnet",
        arch_kwargs={"width": 0.0625},
        input_size=32,
        res=32,
        num_images=64,
        batch_size=16,
        epochs=3,
        lr=3e-3,
        device="cpu",
        workers=0,
        progress=False,
        log_every=1,
    )
    values.update(kw)
    return TrainConfig.from_preset("fdsl-tiny", **values)


def test_a_run_learns_the_categories_and_resumes_exactly(tmp_path, monkeypatch, one_thread):
    whole = train(run_cfg(tmp_path / "whole"))
    lines = [json.loads(x) for x in (whole / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3]
    assert lines[-1]["loss"] < lines[0]["loss"]  # it learns (soft-target cross-entropy)
    assert yaml.safe_load((whole / "config.yaml").read_text())["optimizer"] == "adamw"
    real = train_loop.train_step

    def stop_in_epoch_2(*args, **kwargs):
        if args[6] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_loop, "train_step", stop_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(run_cfg(tmp_path / "cut"))
    monkeypatch.undo()
    cut = train(run_cfg(tmp_path / "cut"))
    a, b = (
        load_encoder(whole / "encoder.pt")[0].state_dict(),
        load_encoder(cut / "encoder.pt")[0].state_dict(),
    )
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_data_without_categories_is_one_line_before_the_run_folder(tmp_path):
    with pytest.raises(NoisevisionError, match="method supervised needs data with categories") as info:
        train(run_cfg(tmp_path / "run", data="test-blobs"))
    assert "\n" not in str(info.value) and not (tmp_path / "run").exists()


def test_mixing_is_keyed_by_step_and_targets_stay_distributions():
    method = build_method(
        "supervised", build_encoder("smallalexnet", width=0.0625, input_size=32), num_classes=5
    )
    x, labels = torch.rand(8, 3, 32, 32), torch.arange(8) % 5
    lams = set()
    for step in range(12):
        mixed, target, lam = method.mix(x, labels, step)
        again, target2, _ = method.mix(x, labels, step)
        assert torch.equal(mixed, again) and torch.equal(target, target2)  # a resumed run mixes alike
        torch.testing.assert_close(target.sum(1), torch.ones(8))
        own = target[torch.arange(8), labels]
        assert torch.all(own >= float(lam) * 0.9 - 1e-6)  # λ of its own label, smoothed by 0.1
        lams.add(round(float(lam), 4))
    assert len(lams) > 6  # λ ~ Beta(α, α): drawn anew every step
    smooth = method.soft_targets(labels)
    assert smooth.max() == pytest.approx(0.9 + 0.1 / 5) and smooth.min() == pytest.approx(0.1 / 5)
    with pytest.raises(NoisevisionError, match="2 or more categories"):
        build_method("supervised", build_encoder("smallalexnet", width=0.0625), num_classes=1)


@pytest.mark.parametrize("op", randaugment.OPS)
def test_each_randaugment_operation_changes_images_within_range(op):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 24, 24, generator=g) * 0.6 + 0.2
    level = torch.tensor([0.9, -0.9, 0.5, -0.5])
    y = randaugment._OPERATIONS[op](x, level).clamp(0, 1)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert (y - x).abs().mean() > 1e-3, op


def test_the_fdsl_view_is_a_function_of_the_image_index():
    """RandAugment and erasing are drawn per image: a view does not depend on its batch."""
    cfg = augment.get_augment("fdsl", 32)
    images = torch.randint(
        0, 256, (12, 3, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    idx = torch.arange(100, 112)
    (whole,) = augment.views(cfg, images, idx, seed=3, epoch=1, count=1)
    (part,) = augment.views(cfg, images[5:9], idx[5:9], seed=3, epoch=1, count=1)
    torch.testing.assert_close(whole[5:9], part, rtol=0, atol=0)
    params = augment.sample_params(cfg, augment.view_rng(torch.arange(4000), 0, 0, 0), 48, 48)
    assert abs(float(params["erase_on"].float().mean()) - 0.25) < 0.03  # erasing p 0.25
    assert abs(float(params["ra_on"].float().mean()) - 0.5) < 0.03  # each operation p 0.5
    counts = np.bincount(params["ra_op"].flatten().numpy(), minlength=len(randaugment.OPS))
    assert counts.min() > 0.7 * counts.mean()  # operations drawn uniformly
    level = params["ra_level"]
    assert abs(float(level.mean()) - 0.9) < 0.01 and float(level.max()) <= 1.0  # m9 ± 0.5, clipped
