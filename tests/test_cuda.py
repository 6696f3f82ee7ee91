"""Checks on a GPU (`pytest -m cuda`; scripts/gpu-check runs them).

Skipped without CUDA. NOISEVISION_CHECK_DEVICE=cpu runs them on the CPU at toy sizes instead (the
device-against-CPU comparisons are then trivially equal, but the code paths run): gpu-check's CPU
mode, which CI runs, so that these tests cannot rot while no GPU is around.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image

import noisevision.train as train_mod
import noisevision.train.loop as train_loop
from noisevision import generators
from noisevision.data import folder
from noisevision.errors import StopRequested
from noisevision.models import load_encoder

pytestmark = pytest.mark.cuda

NAMES = [n for n in generators.names() if generators.spec(n).family != "test"]  # not the tests' own
#: Largest mean absolute difference (grey levels) between a family's CUDA and CPU images. Dead
#: leaves are integer geometry in float64 (the same bytes are expected); the statistical models
#: histogram-match FFT outputs (the CPU reference agrees with the batched code to 0-1.5); StyleGAN
#: and fractals standardise sums of products; feature visualisation is a 128-step gradient ascent
#: whose end point drifts with every rounding difference (here 8 steps, for its statistics).
#: Procedural programs evaluate sin, exp, atan2 and thresholds (select, fract) that a last bit can
#: flip on a few pixels (on a GPU, fused kernels with their own rounding): a guess until measured.
#: The formula-driven families draw orbits from tables and fixed-point sums (the same bytes are
#: expected) and 1p-frac runs the fractals' chaos game.
MAD_TOLERANCE = {
    "dead leaves": 0.5, "statistical": 2.0, "random StyleGAN": 5.0, "fractals": 1.0,
    "feature visualization": 25.0, "dead_leaves-textures": 2.0,  # its textures are statistical images
    "procedural programs": 3.0, "fdsl": 1.0,
}  # fmt: skip
#: Families whose GPU bytes may depend on the other images of the batch (`batch_invariant`): an
#: image must still be the same from run to run, and `generate` renders fixed blocks of indices, so
#: its folders do not depend on the batch size, worker count, shard or restart. StyleGAN renders
#: each network's images together, and the kernels chosen for a group round by its size: a grey
#: level at most. The statistical models' ten rounds of matching carry last-bit differences of
#: cuFFT and the reductions into visible ones: the images must stay statistically the same.
BATCH_SHAPED_ON_GPU = {"random StyleGAN": 1, "statistical": None}  # largest allowed difference


def toy(device: torch.device) -> bool:
    return device.type == "cpu"


def setting(name: str, device: torch.device) -> tuple[dict, int, list[int]]:
    """(parameters, resolution, indices) for checking `name`: small, and crossing the blocks of
    indices that share a network (StyleGAN: 400, feature visualisation: 8)."""
    spec = generators.spec(name)
    res = 128 if spec.resolutions else 64
    if spec.family == "feature visualization":
        steps, last = (2, 12) if toy(device) else (8, 20)
        return {"steps": steps, "precision": "fp32"}, res, list(range(4, last))
    if spec.family == "random StyleGAN":
        return {}, res, list(range(396, 402 if toy(device) else 406))
    return {}, res, list(range(3, 9 if toy(device) else 19))


def image_statistics(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image statistics of uint8 images [B, 3, H, W] that the generator tests check: colour
    means and spreads, spectrum slope, distinct colours (≈ visible shapes of dead leaves), edges."""
    x = images.double()
    grey = x.mean(1)
    n = grey.shape[-1]
    amp = torch.fft.fft2(grey - grey.mean((-2, -1), keepdim=True)).abs()
    f = torch.fft.fftfreq(n, dtype=torch.float64) * n
    radius = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    edges = torch.logspace(math.log10(2), math.log10(n / 2.5), 7, dtype=torch.float64)
    mids = [(a, b) for a, b in zip(edges[:-1], edges[1:])]
    logf = torch.stack([torch.log(torch.sqrt(a * b)) for a, b in mids])
    loga = torch.stack([torch.log(amp[:, (radius >= a) & (radius < b)].mean(-1) + 1e-9) for a, b in mids], -1)
    xc = logf - logf.mean()
    slope = ((loga - loga.mean(-1, keepdim=True)) * xc).sum(-1) / (xc * xc).sum()
    packed = (images.long()[:, 0] * 65536 + images.long()[:, 1] * 256 + images.long()[:, 2]).flatten(1)
    colours = torch.tensor([float(row.unique().numel()) for row in packed], dtype=torch.float64)
    gradient = (grey[:, 1:] - grey[:, :-1]).abs().mean((-2, -1))
    return {
        "mean": x.mean((1, 2, 3)),
        "std": x.std((2, 3)).mean(1),
        "slope": slope,
        "red-blue": (x[:, 0] - x[:, 2]).mean((-2, -1)),
        "colours": colours.log(),
        "gradient": gradient,
    }


# ---------------------------------------------------------------------------------------- generators
def test_device_random_numbers_are_the_cpu_ones(check_device):
    """The device's draws (fused Triton kernels on CUDA) are the CPU's (numba), bit for bit; normal
    numbers to the last bits of log and cos."""
    from noisevision.rng import Rng

    def draws(device: torch.device) -> list[torch.Tensor]:
        r = Rng.for_indices("check", 5, torch.arange(37, device=device))
        sub = r.child("sub", torch.arange(3, device=device).expand(37, 3))
        return [r.keys, r.bits(3, 5), r.uniform(1001), r.randint(-4, 250, 6), sub.uniform(2), r.normal(64)]

    on_cpu, on_dev = draws(torch.device("cpu")), draws(check_device)
    assert all(t.device.type == check_device.type for t in on_dev)
    for a, b in zip(on_cpu[:-1], on_dev[:-1]):
        assert torch.equal(a, b.cpu()), "the device drew other numbers"
    torch.testing.assert_close(on_cpu[-1], on_dev[-1].cpu(), atol=1e-5, rtol=1e-5)


def test_program_kernels_compile_and_run_on_the_device(check_device):
    """On CUDA, shader programs render through the fused kernels, not the tensor-code fallback:
    they compile there and agree with the tensor code on a few programs."""
    if check_device.type != "cuda":
        pytest.skip("the fused kernels run on CUDA (tests/generators/test_programs.py checks them on a CPU)")
    from noisevision.generators.programs import cuda as programs_cuda

    assert programs_cuda.self_check(check_device), "the fused kernels disagree with the tensor code"
    assert programs_cuda.available(check_device)


@pytest.mark.parametrize("name", NAMES)
def test_device_images_do_not_depend_on_batch_or_order(name, check_device, check_report):
    params, res, idx = setting(name, check_device)
    gen = generators.get(name, **params)
    whole = gen(idx, res=res, seed=1, device=check_device)
    assert whole.device.type == check_device.type and whole.dtype == torch.uint8
    again = gen(idx, res=res, seed=1, device=check_device)
    backwards = gen(idx[::-1], res=res, seed=1, device=check_device).flip(0)
    pieces = [gen(idx[i : i + 5], res=res, seed=1, device=check_device) for i in range(0, len(idx), 5)]
    pieces = torch.cat(pieces)
    gaps = {}
    for what, other in (("again", again), ("backwards", backwards), ("in pieces", pieces)):
        diff = (other.int() - whole.int()).abs()
        gaps[what] = {"max": int(diff.max()), "pixels": float((diff > 0).float().mean())}
    check_report(generator=name, batch_gaps=gaps)
    assert torch.equal(whole, again), f"{name}: the same request gave other bytes ({gaps['again']})"
    family = generators.spec(name).family
    shaped = check_device.type == "cuda" and family in BATCH_SHAPED_ON_GPU
    assert gen.batch_invariant(check_device) == (not shaped)
    if shaped:
        bound = BATCH_SHAPED_ON_GPU[family]
        for what, other in (("backwards", backwards), ("in pieces", pieces)):
            if bound is not None:
                assert gaps[what]["max"] <= bound and gaps[what]["pixels"] <= 0.02, (name, what, gaps[what])
            a, b = image_statistics(whole.cpu()), image_statistics(other.cpu())
            for key in a:
                gap = float((a[key].mean() - b[key].mean()).abs() / (a[key].std() + 1e-9))
                assert gap <= 0.1, f"{name} {what}: statistic {key} moved by {gap:.2f} spreads"
    else:
        assert torch.equal(whole, backwards), f"another order gave other bytes ({gaps['backwards']})"
        assert torch.equal(whole, pieces), f"other batch sizes gave other bytes ({gaps['in pieces']})"


@pytest.mark.parametrize("name", NAMES)
def test_device_images_agree_with_cpu_images(name, check_device, check_report):
    params, res, idx = setting(name, check_device)
    gen = generators.get(name, **params)
    cpu = gen(idx, res=res, seed=1, device="cpu")
    dev = gen(idx, res=res, seed=1, device=check_device).cpu()
    diff = (dev.float() - cpu.float()).abs()
    mad, same = float(diff.mean()), float((diff == 0).float().mean())
    stats_cpu, stats_dev = image_statistics(cpu), image_statistics(dev)
    gaps = {}
    for key, a in stats_cpu.items():
        b = stats_dev[key]
        # the device's images drawn from the same distribution: means within a third of the spread
        gaps[key] = float((b.mean() - a.mean()).abs() / (a.std() + 1e-3 * a.abs().mean() + 1e-9))
    family = generators.spec(name).family
    check_report(
        generator=name, family=family, res=res, images=len(idx), mad=mad, identical=same, statistic_gaps=gaps
    )
    tolerance = MAD_TOLERANCE.get(name, MAD_TOLERANCE[family])
    assert mad <= tolerance, f"{name}: mean |CUDA − CPU| = {mad:.3f} grey levels"
    worst = max(gaps, key=gaps.get)
    assert gaps[worst] <= 1 / 3, f"{name}: statistic '{worst}' differs by {gaps[worst]:.2f} spreads"


# ---------------------------------------------------------------------------------------- training
def run_cfg(out, method: str, device: torch.device, **kw):
    method_kwargs = {"queue_size": 32, "momentum": 0.9} if method == "moco_v2" else {}
    values = dict(
        data="dead_leaves-mixed",
        out=str(out),
        arch="resnet18-s",
        arch_kwargs={"width": 0.125},
        method=method,
        method_kwargs=method_kwargs,
        input_size=32,
        res=64,
        num_images=32,
        batch_size=8,
        epochs=5,
        device=str(device),
        workers=0,
        progress=False,
        log_every=1,
        precision="bf16",
        deterministic=True,
        checkpoint_minutes=1e9,
    )
    values.update(kw)
    return train_mod.TrainConfig.from_preset("tiny", **values)


def weights(run_dir):
    enc, meta = load_encoder(run_dir / "encoder.pt")
    return enc.state_dict(), meta


def test_bn_groups_run_in_one_pass_on_the_device(check_device):
    """On a GPU, BN groups (shuffle-BN) forward the batch once, normalising chunk by chunk: the
    embeddings and running statistics of one pass per group, up to the convolutions' rounding."""
    from noisevision.methods.common import embed, embed_pair
    from noisevision.models import build_encoder

    torch.manual_seed(0)
    enc = build_encoder("resnet18-s", width=0.25, input_size=32).to(check_device)
    ref = copy.deepcopy(enc)
    x, y = torch.randn(2, 16, 3, 32, 32, device=check_device)
    torch.testing.assert_close(embed(enc, x, 4), torch.cat([ref(c) for c in x.chunk(4)]), atol=5e-3, rtol=0)
    for a, b in zip(enc.buffers(), ref.buffers()):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-2)
    za, zb = embed_pair(enc, x, y, 4)
    pairs = [ref(torch.cat([a, b])) for a, b in zip(x.chunk(4), y.chunk(4))]
    torch.testing.assert_close(za, torch.cat([z[:4] for z in pairs]), atol=5e-3, rtol=0)
    torch.testing.assert_close(zb, torch.cat([z[4:] for z in pairs]), atol=5e-3, rtol=0)


@pytest.mark.parametrize("method", ["align_uniform", "moco_v2", "simclr"])
def test_methods_train_in_bf16_and_resume_exactly_after_sigterm(method, check_device, tmp_path, monkeypatch):
    """20 steps (5 epochs of 4) in bf16 on the device; a SIGTERM at step 10 checkpoints mid-epoch,
    and the resumed run ends with the uninterrupted run's weights, bit for bit."""
    whole_dir = train_mod.train(run_cfg(tmp_path / "whole", method, check_device))
    whole, meta = weights(whole_dir)
    assert meta["precision"] == "bf16" and meta["images_seen"] == 160
    losses = [json.loads(x)["loss"] for x in (whole_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 5 and all(math.isfinite(v) for v in losses)

    real = train_mod.train_step

    def signal_at_step_10(*args):
        if args[7] == 10:  # global step
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args)

    monkeypatch.setattr(train_loop, "train_step", signal_at_step_10)
    with pytest.raises(StopRequested, match="SIGTERM: checkpoint written at epoch 3, step 3/4"):
        train_mod.train(run_cfg(tmp_path / "cut", method, check_device))
    monkeypatch.undo()
    ckpt = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["step"]) == (2, 3)
    resumed, _ = weights(train_mod.train(run_cfg(tmp_path / "cut", method, check_device)))
    for k in whole:
        assert torch.equal(resumed[k], whole[k]), f"{method}: {k} differs after the resume"


def test_streamed_training_renders_on_the_training_device(check_device, tmp_path, monkeypatch):
    seen = []
    real = train_mod.train_step

    def spy(*args):
        seen.append(args[3].device.type)
        return real(*args)

    monkeypatch.setattr(train_loop, "train_step", spy)
    train_mod.train(run_cfg(tmp_path / "run", "align_uniform", check_device, epochs=1, precision="auto"))
    assert set(seen) == {check_device.type}


# ---------------------------------------------------------------------------------------- generate / eval
def test_generate_on_the_device_writes_the_cpu_folder(run_cli, check_device, tmp_path):
    n = 24 if toy(check_device) else 300
    args = ["generate", "dead_leaves-mixed", "--num-images", str(n), "--res", "64", "--batch-size", "32"]
    assert run_cli(*args, "--out", tmp_path / "cpu", "--device", "cpu", "--workers", "1")[0] == 0
    code, out, err = run_cli(*args, "--out", tmp_path / "dev", "--device", str(check_device))
    assert code == 0, err
    files = {d: sorted((tmp_path / d / "train").rglob("*.jpg")) for d in ("cpu", "dev")}
    assert len(files["cpu"]) == len(files["dev"]) == n
    manifests = [json.loads((tmp_path / d / folder.MANIFEST).read_text()) for d in ("cpu", "dev")]
    # the same manifest, but for the device each folder records it was rendered on
    assert [m.pop("devices") for m in manifests] == [["cpu"], [check_device.type]]
    assert manifests[0] == manifests[1]
    read = lambda path: np.asarray(Image.open(path), dtype=np.float64)  # noqa: E731
    assert [a.name for a in files["cpu"]] == [b.name for b in files["dev"]]
    mad = np.mean([np.abs(read(a) - read(b)).mean() for a, b in zip(files["cpu"][:50], files["dev"][:50])])
    assert mad <= MAD_TOLERANCE["dead leaves"]


@pytest.mark.parametrize("name", ["stat-spectrum_color", "stylegan-oriented"])
def test_generate_on_the_device_resumes_to_the_same_bytes(name, run_cli, check_device, tmp_path):
    """Files deleted from a folder written on the device come back with the same bytes, whatever
    the batch size of the run that rewrites them (the device renders fixed blocks of indices)."""
    n = 12 if toy(check_device) else 150
    res = "128" if generators.spec(name).resolutions else "64"
    args = [
        "generate",
        name,
        "--num-images",
        str(n),
        "--res",
        res,
        "--format",
        "png",
        "--out",
        tmp_path / "d",
        "--device",
        str(check_device),
    ]
    assert run_cli(*args, "--batch-size", "64")[0] == 0
    files = sorted((tmp_path / "d" / "train").rglob("*.png"))
    before = {f.name: f.read_bytes() for f in files}
    for f in files[1::7]:
        f.unlink()
    code, out, err = run_cli(*args, "--batch-size", "5")
    assert code == 0, err
    after = {f.name: f.read_bytes() for f in sorted((tmp_path / "d" / "train").rglob("*.png"))}
    assert after == before


def test_probes_on_the_device_agree_with_the_cpu(check_device, probe_set, check_report):
    from noisevision.data.eval_datasets import load_eval_dataset
    from noisevision.evaluate import ProbeSettings, evaluate, random_encoder

    data = load_eval_dataset(probe_set(12))
    settings = ProbeSettings(probes=("fast", "knn"), workers=0, precision="fp32")
    model = random_encoder("resnet18-s", seed=0, width=0.25, input_size=32)
    on_cpu = evaluate(model, data, settings, "cpu")
    on_dev = evaluate(model, data, settings, check_device)
    assert on_dev.device == str(check_device) and on_dev.decoder in ("draft", "device")
    bf16 = evaluate(model, data, ProbeSettings(probes=("knn",), workers=0, precision="bf16"), check_device)
    check_report(
        cpu=on_cpu.probes["knn"]["top1"],
        device=on_dev.probes["knn"]["top1"],
        device_bf16=bf16.probes["knn"]["top1"],
    )
    assert on_dev.probes["knn"]["top1"] == on_cpu.probes["knn"]["top1"] == 100.0
    assert on_dev.probes["fast"]["top1"] == 100.0 and bf16.probes["knn"]["top1"] == 100.0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_finetuning_a_vit_on_the_device_learns(check_device, probe_set, check_report, precision):
    from noisevision.data.eval_datasets import load_eval_dataset
    from noisevision.evaluate import ProbeSettings, evaluate, random_encoder

    data = load_eval_dataset(probe_set(8))
    settings = ProbeSettings(
        probes=("finetune",), finetune_epochs=3, finetune_batch_size=8, workers=0, precision=precision
    )
    model = random_encoder("vit-tiny-p4", seed=0, depth=2, input_size=16)
    r = evaluate(model, data, settings, check_device).probes["finetune"]
    check_report(per_epoch_top1=r["per_epoch_top1"], seconds=r["seconds"])
    assert r["best_top1"] >= 75 and len(r["per_epoch_top1"]) == 3
