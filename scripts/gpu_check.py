"""The checks and measurements of noisevision on a GPU that `scripts/gpu-check` runs, and their targets.

Sections, each with its own share of the time budget, whatever happens in the others:
1. `pytest -m cuda`: device images independent of batch and order and agreeing with CPU images,
   bf16 training with exact resume for every method, `generate` and the probes on the device;
2. images/s of every generator at 128 and 256 px (batch 256, or the generator's own larger batch
   on the device, halved until it fits);
3. training images/s of every preset with a `timing` (noisevision.presets: paper-small, paper-large),
   on its generator, in its precisions, in memory and fed its other ways; the projected wall time
   of each preset's full run;
4. ResNet-50 feature extraction images/s: in memory, and from a folder of JPEG photos per decoder.

Writes gpu-check.json, gpu-check.md (the tables), pytest.log and, with --profile, profile.txt
(the top CUDA kernels of the main generators and training steps). Exit status 1 when a test or a
section failed. Without CUDA (or with --device cpu) it runs the same code on the CPU at toy sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from noisevision.io import atomic_write_text
from noisevision.presets import PRESETS, Preset

ROOT = Path(__file__).resolve().parents[1]  # the checkout
# Targets on one H100/H200-class GPU (benchmarks, not pass/fail).
GENERATOR_TARGETS = {"dead leaves": (128, 10_000), "statistical": (128, 10_000)}
PROGRAM_TARGET = ("program-mixed", 128, 10_000)
STYLEGAN_TARGET = ("stylegan-oriented", 256, 2_000)
# Training, per preset, for each feed other than in memory: images/s at least `img_s`, at least
# `vs_in_memory` × the in-memory rate, the projected full run in at most `full_run_hours`.
TRAINING_TARGETS: dict[str, dict[str, float]] = {
    "paper-small": {"vs_in_memory": 0.95, "full_run_hours": 1.0},
    "paper-large": {"img_s": 2_500},
}


@dataclass
class Check:
    """Everything measured, as written to gpu-check.json."""

    device: str
    toy: bool
    environment: dict[str, Any] = field(default_factory=dict)
    tests: dict[str, Any] = field(default_factory=dict)
    generators: list[dict[str, Any]] = field(default_factory=list)
    training: list[dict[str, Any]] = field(default_factory=list)
    features: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class Budget:
    """Seconds left for a section; work that would start after its deadline is skipped."""

    def __init__(self, seconds: float):
        self.deadline = time.perf_counter() + seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()


def say(line: str) -> None:
    print(line, flush=True)


# ---------------------------------------------------------------------------------------- sections
def environment(device: torch.device) -> dict[str, Any]:
    import numba
    import torchvision

    env = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numba": numba.__version__,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            gpu=props.name,
            gpu_memory_gb=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            bf16=torch.cuda.is_bf16_supported(),
        )
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            env["driver"] = smi.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return env


def _cpu_name() -> str:
    from noisevision.bench import _cpu_name

    return _cpu_name()


def run_tests(check: Check, out: Path, device: torch.device, seconds: float) -> None:
    """`pytest -m cuda` in a subprocess (its own CUDA context), log and JUnit XML into `out`."""
    report = out / "cuda-tests.jsonl"
    report.unlink(missing_ok=True)
    xml = Path(tempfile.mkdtemp()) / "pytest.xml"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "NOISEVISION_CHECK_REPORT": str(report),
        "PYTHONUNBUFFERED": "1",
    }
    if device.type != "cuda":
        env["NOISEVISION_CHECK_DEVICE"] = str(device)
    # -v: a line per test in the log, so that a run stopped at its time limit still says how far it got
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "cuda",
        "-v",
        "-rfE",
        "--durations=15",
        "-p",
        "no:cacheprovider",
        f"--junitxml={xml}",
        "tests",
    ]
    start = time.perf_counter()
    with open(out / "pytest.log", "w") as log:
        try:
            code = subprocess.run(
                cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=seconds
            ).returncode
        except subprocess.TimeoutExpired:
            code = None
    tests: dict[str, Any] = {"seconds": round(time.perf_counter() - start, 1), "exit": code}
    if xml.is_file():
        tests.update(_junit(xml))
    if report.is_file():
        tests["measured"] = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
        report.unlink()
    check.tests = tests
    if code is None:
        check.failures.append(f"pytest -m cuda ran past its {seconds:.0f} s")
    elif code != 0:
        names = ", ".join(tests.get("failed_names", [])[:8]) or f"exit status {code}"
        check.failures.append(f"pytest -m cuda: {tests.get('failed', '?')} failed ({names})")
    say(
        f"tests: {tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed, "
        f"{tests.get('skipped', 0)} skipped in {tests['seconds']} s (exit {code})"
    )


def _junit(path: Path) -> dict[str, Any]:
    root = ET.parse(path).getroot()
    cases = root.iter("testcase")
    passed = failed = skipped = 0
    failed_names, messages = [], {}
    for case in cases:
        bad = case.find("failure") if case.find("failure") is not None else case.find("error")
        if bad is not None:
            failed += 1
            name = case.get("name", "?")
            failed_names.append(name)
            messages[name] = (bad.get("message") or "").splitlines()[0][:300] if bad.get("message") else ""
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return {
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "failed_names": failed_names,
        "messages": messages,
    }


def bench_generators(check: Check, device: torch.device, toy: bool, budget: Budget) -> None:
    from noisevision import generators
    from noisevision.bench import bench_generator

    resolutions = (64,) if toy else (128, 256)
    for res in resolutions:
        for spec in generators.specs():
            if spec.family == "test":
                continue
            name = spec.name
            if budget.left() <= 0:
                check.skipped.append(f"generator {name} at {res} px (time budget)")
                continue
            params = {"steps": 2} if toy and spec.family == "feature visualization" else {}
            r = res if not spec.resolutions or res in spec.resolutions else min(spec.resolutions)
            if toy and r != res and any(g["name"] == name for g in check.generators):
                continue
            # at least 256, or as many as the generator renders in one go there (Generator.gpu_pixels)
            batch = 4 if toy else max(256, generators.get(name, **params).batch_limit(r, device))
            row: dict[str, Any] = {"name": name, "family": spec.family, "res": r}
            while True:
                try:
                    median, rates, used, setup = bench_generator(
                        name,
                        r,
                        batch,
                        device,
                        repeats=1 if toy else 3,
                        min_time=0.05 if toy else 0.25,
                        params=params,
                    )
                    row.update(
                        img_s=round(median, 1),
                        rates=[round(x, 1) for x in rates],
                        batch=used,
                        setup_s=round(setup, 2),
                    )
                    break
                except torch.cuda.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    if batch == 1:
                        row["error"] = "out of memory at batch 1"
                        break
                    batch //= 2
                except Exception as exc:  # a broken generator is a finding, not the end of the check
                    row["error"] = f"{type(exc).__name__}: {exc}"
                    check.failures.append(f"generator {name} at {r} px: {row['error'][:200]}")
                    traceback.print_exc()
                    break
            check.generators.append(row)
            shown = f"{row['img_s']:,.1f} img/s (batch {row['batch']})" if "img_s" in row else row["error"]
            say(f"generator {name:26s} {r:4d} px  {shown}")
            if device.type == "cuda":
                torch.cuda.empty_cache()


def bench_training(check: Check, device: torch.device, toy: bool, budget: Budget) -> None:
    from noisevision import generators
    from noisevision.bench import bench_train
    from noisevision.train import TrainConfig

    folder_workers = 2 if toy else min(16, os.cpu_count() or 1)
    cases = [
        (p, p.timing.data, precision, ("in-memory", *p.timing.feeds))
        for p in timed_presets()
        for precision in p.timing.precisions
    ]
    for p, data, precision, modes in cases:
        preset = p.name
        if budget.left() <= 0:
            check.skipped.append(f"training {preset} {precision} (time budget)")
            continue
        cfg = TrainConfig.from_preset(
            preset,
            data=data,
            out="unused",
            device=str(device),
            precision=precision,
            **(toy_sizes(p) if toy else {}),
        )
        steps, warmup = (1, 1) if toy else (p.timing.steps, 3)
        try:
            results = bench_train(
                cfg, device, steps, warmup=warmup, rounds=1, modes=modes, folder_workers=folder_workers
            )
        except Exception as exc:
            check.failures.append(f"training {preset} {precision}: {type(exc).__name__}: {str(exc)[:200]}")
            traceback.print_exc()
            continue
        rates = {r.name: r.images_per_s for r in results}
        res = cfg.res or generators.spec(data).default_res
        for mode, rate in rates.items():
            row = {
                "preset": preset,
                "arch": cfg.arch,
                "method": cfg.method,
                "data": data,
                "res": res,
                "input_size": cfg.input_size,
                "batch": cfg.batch_size,
                "precision": precision,
                "mode": mode,
                "img_s": round(rate, 1),
                "full_run_hours": round(full_run_hours(cfg, mode, rates), 2),
            }
            if mode != "in-memory":
                row["vs_in_memory"] = round(rate / rates["in-memory"], 3)
            check.training.append(row)
            say(
                f"training {preset:11s} {precision} {mode:9s} {rate:10,.1f} img/s "
                f"(full run {row['full_run_hours']:.2f} h)"
            )
        if device.type == "cuda":
            torch.cuda.empty_cache()


def timed_presets() -> list[Preset]:
    """The training presets whose speed is measured (those with a `timing`), in registry order."""
    return [p for p in (PRESETS.get(name) for name in PRESETS) if p.timing is not None]


def toy_sizes(preset: Preset) -> dict[str, Any]:
    """A preset's changes for the CPU mode: batches of 8 crops of 64 px from 128 px images, and a
    queue of 64 embeddings where its method keeps one (MoCo)."""
    small: dict[str, Any] = {"batch_size": 8, "res": 128, "input_size": 64}
    method_kwargs = preset.values["method_kwargs"]
    if "queue_size" in method_kwargs:
        small["method_kwargs"] = {**method_kwargs, "queue_size": 64}
    return small


def full_run_hours(cfg, mode: str, rates: dict[str, float]) -> float:
    """Hours of the preset's whole run (num_images × epochs) fed this way; "cached" renders the
    first epoch (at the streamed rate) and reads the others back."""
    n, epochs = cfg.num_images, cfg.epochs
    if mode == "cached":
        return (n / rates["streamed"] + n * (epochs - 1) / rates["cached"]) / 3600
    return n * epochs / rates[mode] / 3600


def bench_features(check: Check, device: torch.device, toy: bool, budget: Budget) -> None:
    from noisevision.bench import bench_eval_input, throughput, write_photo_folder
    from noisevision.data.eval_datasets import load_image_folder
    from noisevision.evaluate import View, batch_view
    from noisevision.models import build_encoder
    from noisevision.precision import autocast, resolve_precision

    precision = resolve_precision("auto", device)
    size = 64 if toy else 224
    model = build_encoder("resnet50", input_size=size).to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    view = View(size, False, test_resize=256 / 224)
    batch = 16 if toy else 256
    images = torch.randint(0, 256, (batch, 3, 256, 256), dtype=torch.uint8, device=device)

    @torch.no_grad()
    def step(_k: int) -> None:
        x = batch_view(images, view)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            model.features(x, "pool")

    rate, _ = throughput(step, batch, device, repeats=1 if toy else 3, min_time=0.05 if toy else 0.5)
    check.features.append(
        {
            "source": "in memory (uint8 256 px on the device)",
            "arch": "resnet50",
            "input_size": size,
            "precision": precision,
            "img_s": round(rate, 1),
        }
    )
    say(f"features resnet50 in memory {rate:10,.1f} img/s")
    if budget.left() <= 0:
        check.skipped.append("feature extraction from files (time budget)")
        return
    workers = 2 if toy else min(16, os.cpu_count() or 1)
    decoders = ["pil", "draft"] + (["device"] if device.type == "cuda" else [])
    with tempfile.TemporaryDirectory(prefix="noisevision-gpu-check-") as tmp:
        per_class = 8 if toy else 128
        write_photo_folder(tmp, classes=8, per_class=per_class, threads=workers)
        data = load_image_folder(tmp).train
        for decoder in decoders:
            if budget.left() <= 0:
                check.skipped.append(f"feature extraction with {decoder} (time budget)")
                continue
            rate = bench_eval_input(data, model, view, device, decoder, batch, workers, precision)
            source = f"{len(data)} JPEG photos (500×375 and the like), {workers} workers"
            check.features.append(
                {
                    "source": source,
                    "decoder": decoder,
                    "arch": "resnet50",
                    "input_size": size,
                    "precision": precision,
                    "img_s": round(rate, 1),
                }
            )
            say(f"features resnet50 from files, {decoder:6s} {rate:10,.1f} img/s")


def profile(out: Path, device: torch.device, toy: bool) -> None:
    """Top kernels (by device time) of the main generators and of one training step of each preset."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from noisevision import generators
    from noisevision.train import TrainConfig, build_components, train_step

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    sorts = ("device_time_total", "self_device_time_total") if device.type == "cuda" else ("cpu_time_total",)
    batch = 8 if toy else 256
    jobs: list[tuple[str, Callable[[], object]]] = []
    for name, res in (
        ("dead_leaves-mixed", 128),
        ("stat-spectrum_color_wmm", 128),
        ("stylegan-oriented", 256),
    ):
        gen = generators.get(name)
        jobs.append(
            (f"{name} {res} px × {batch}", lambda g=gen, r=res: g(range(batch), res=r, device=device))
        )
    for p in timed_presets():
        preset = p.name
        cfg = TrainConfig.from_preset(
            preset, data=p.timing.data, out="unused", device=str(device), **(toy_sizes(p) if toy else {})
        )
        parts = build_components(cfg, device)
        images = parts.source.render(torch.arange(cfg.batch_size), device)
        idx = torch.arange(cfg.batch_size, device=device)

        def step(p=parts, x=images, i=idx) -> None:
            train_step(p.method, p.optimizer, p.aug, x, i, 0, 0, 0, p.numerics)

        what = f"train step {preset} ({cfg.arch}, batch {cfg.batch_size}, {parts.numerics.precision})"
        jobs.append((what, step))
    with open(out / "profile.txt", "w") as f:
        for title, job in jobs:
            job()  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            with torch_profile(activities=activities) as prof:
                job()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
            for sort in sorts:
                table = prof.key_averages().table(sort_by=sort, row_limit=25)
                f.write(f"==== {title}, by {sort}\n{table}\n\n")
            say(f"profiled {title}")


# ---------------------------------------------------------------------------------------- report
def markdown(check: Check) -> str:
    env = check.environment
    hw = env.get("gpu", env.get("cpu", "?"))
    lines = [f"# noisevision gpu-check: {hw}, {env.get('date', '')}", ""]
    lines.append(
        f"torch {env.get('torch')} (CUDA {env.get('cuda', '-')}, driver {env.get('driver', '-')}), "
        f"Python {env.get('python')}, {env.get('cpu_count')} CPU cores"
        + (" — CPU mode at toy sizes" if check.toy else "")
    )
    t = check.tests
    lines += [
        "",
        f"**pytest -m cuda**: {t.get('passed', 0)} passed, {t.get('failed', 0)} failed, "
        f"{t.get('skipped', 0)} skipped ({t.get('seconds', '?')} s)",
        "",
    ]
    per_generator: dict[str, dict] = {}
    for m in t.get("measured", []):
        if "generator" in m:
            per_generator.setdefault(m["generator"], {}).update(m)
    if per_generator:
        lines += [
            "| generator | mean abs. difference device − CPU (grey levels) | identical pixels | "
            "largest statistic gap (spreads) | other order / batch sizes on the device |",
            "|---|---|---|---|---|",
        ]
        for name, m in per_generator.items():
            cells = ["", "", ""]
            if "mad" in m:
                key = max(m["statistic_gaps"], key=m["statistic_gaps"].get)
                cells = [
                    f"{m['mad']:.3f}",
                    f"{100 * m['identical']:.1f} %",
                    f"{m['statistic_gaps'][key]:.3f} ({key})",
                ]
            batch = ""
            if "batch_gaps" in m:
                g = m["batch_gaps"]
                batch = " / ".join(_gap(g[k]) for k in ("backwards", "in pieces"))
                if g["again"]["max"]:
                    batch += f"; **differs from run to run** (±{g['again']['max']})"
            lines.append(f"| {name} | " + " | ".join([*cells, batch]) + " |")
    if check.generators:
        by_name: dict[str, dict[int, dict]] = {}
        for g in check.generators:
            by_name.setdefault(g["name"], {})[g["res"]] = g
        res_list = sorted({g["res"] for g in check.generators})
        lines += [
            "",
            "| generator | " + " | ".join(f"img/s at {r} px" for r in res_list) + " |",
            "|---|" + "---|" * len(res_list),
        ]
        for name, rows in by_name.items():
            cells = []
            for r in res_list:
                g = rows.get(r)
                if g is None:
                    cells.append("")
                    continue
                cell = f"{g['img_s']:,.0f}" if "img_s" in g else "error"
                odd = g.get("batch") not in (None, 256, 4)
                cells.append(cell + (f" (batch {g['batch']})" if odd else ""))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if check.training:
        lines += [
            "",
            "| training | data | precision | feed | img/s | vs in memory | full run |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in check.training:
            what = f"{r['preset']} ({r['arch']}, {r['method']}, {r['input_size']} px, batch {r['batch']})"
            ratio = f"{r['vs_in_memory']:.2f}×" if "vs_in_memory" in r else ""
            lines.append(
                f"| {what} | {r['data']} at {r['res']} px | {r['precision']} | {r['mode']} | "
                f"{r['img_s']:,.0f} | {ratio} | {r['full_run_hours']:.2f} h |"
            )
    if check.features:
        lines += [
            "",
            "| feature extraction | source | decoder | precision | img/s |",
            "|---|---|---|---|---|",
        ]
        for r in check.features:
            lines.append(
                f"| {r['arch']} at {r['input_size']} px | {r['source']} | {r.get('decoder', '-')} | "
                f"{r['precision']} | {r['img_s']:,.0f} |"
            )
    if not check.toy:
        lines += ["", "Targets:", *[f"- {t}" for t in targets(check)]]
    if check.failures:
        lines += ["", "**Failures**:", *[f"- {f}" for f in check.failures]]
    if check.skipped:
        lines += ["", "Skipped for time: " + "; ".join(check.skipped)]
    return "\n".join(lines) + "\n"


def _gap(g: dict) -> str:
    return "same bytes" if g["max"] == 0 else f"±{g['max']} on {100 * g['pixels']:.2f} % of pixels"


def targets(check: Check) -> list[str]:
    """Each target with its measured value and ✓ / ✗."""
    out = []
    for g in check.generators:
        goal = GENERATOR_TARGETS.get(g["family"])
        if goal and g["res"] == goal[0] and "img_s" in g:
            out.append(
                f"{'✓' if g['img_s'] >= goal[1] else '✗'} {g['name']} ≥ {goal[1]:,} img/s at "
                f"{goal[0]} px: {g['img_s']:,.0f}"
            )
        if (g["name"], g["res"]) == PROGRAM_TARGET[:2] and "img_s" in g:
            ok = g["img_s"] >= PROGRAM_TARGET[2]
            out.append(
                f"{'✓' if ok else '✗'} program-mixed ≥ {PROGRAM_TARGET[2]:,} img/s at 128 px: "
                f"{g['img_s']:,.0f}"
            )
        if (g["name"], g["res"]) == STYLEGAN_TARGET[:2] and "img_s" in g:
            ok = g["img_s"] >= STYLEGAN_TARGET[2]
            out.append(
                f"{'✓' if ok else '✗'} stylegan-oriented ≥ {STYLEGAN_TARGET[2]:,} img/s at 256 px: "
                f"{g['img_s']:,.0f}"
            )
    for r in check.training:
        goals = TRAINING_TARGETS.get(r["preset"], {})
        if r["mode"] == "in-memory":
            continue
        what = f"{r['preset']} {r['precision']} {r['mode']}"
        if "vs_in_memory" in goals:
            ok = r["vs_in_memory"] >= goals["vs_in_memory"]
            out.append(
                f"{'✓' if ok else '✗'} {what} ≥ {goals['vs_in_memory']}× in memory: {r['vs_in_memory']:.2f}×"
            )
        if "full_run_hours" in goals:
            ok = r["full_run_hours"] <= goals["full_run_hours"]
            out.append(
                f"{'✓' if ok else '✗'} {what} full run ≤ {goals['full_run_hours']:g} h: "
                f"{r['full_run_hours']:.2f} h"
            )
        if "img_s" in goals:
            ok = r["img_s"] >= goals["img_s"]
            out.append(f"{'✓' if ok else '✗'} {what} ≥ {goals['img_s']:,.0f} img/s: {r['img_s']:,.0f}")
    return out


# ---------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    what = "Check and measure noisevision on a GPU in one command (CPU mode at toy sizes without one)."
    parser = argparse.ArgumentParser(prog="gpu-check", description=what)
    parser.add_argument("--out", type=Path, default=Path("gpu-check"), help="output folder (gpu-check/)")
    parser.add_argument("--device", default="auto", help="cuda, cuda:N, cpu or auto (default)")
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds in all (default: 380 on a GPU, 360 on the CPU)"
    )
    parser.add_argument("--profile", action="store_true", help="also write profile.txt (top kernels)")
    parser.add_argument("--skip", default="", help="leave out: tests,generators,training,features")
    args = parser.parse_args(argv)

    from noisevision.device import resolve_device
    from noisevision.errors import NoisevisionError
    from noisevision.memory import keep_freed_memory

    try:
        device = resolve_device(args.device)
    except NoisevisionError as exc:
        print(f"gpu-check: {exc}", file=sys.stderr)
        return 2
    keep_freed_memory()
    toy = device.type != "cuda"
    total = args.budget or (360.0 if toy else 380.0)  # toy: a busy 2-core CI machine
    # shares of the budget: tests, generators, training, features (profile: what is left)
    shares = {"tests": 0.4, "generators": 0.28, "training": 0.15, "features": 0.12}
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(str(device), toy)
    check.environment = environment(device)
    say(
        f"gpu-check on {check.environment.get('gpu', check.environment['cpu'])} ({device}), "
        f"torch {torch.__version__}, budget {total:.0f} s" + (", toy sizes" if toy else "")
    )
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    sections: list[tuple[str, Callable[[Budget], None]]] = [
        ("tests", lambda b: run_tests(check, args.out, device, max(30.0, b.left()))),
        ("generators", lambda b: bench_generators(check, device, toy, b)),
        ("training", lambda b: bench_training(check, device, toy, b)),
        ("features", lambda b: bench_features(check, device, toy, b)),
    ]
    for name, run in sections:
        if name in skip:
            continue
        start = time.perf_counter()
        try:
            run(Budget(shares[name] * total))
        except Exception as exc:
            check.failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
            traceback.print_exc()
        check.seconds[name] = round(time.perf_counter() - start, 1)
        _write(check, args.out)
    if args.profile:
        try:
            profile(args.out, device, toy)
        except Exception as exc:
            check.failures.append(f"profile: {type(exc).__name__}: {str(exc)[:300]}")
            traceback.print_exc()
    _write(check, args.out)
    say(markdown(check))
    say(f"wrote {args.out / 'gpu-check.json'} and {args.out / 'gpu-check.md'}")
    return 1 if check.failures else 0


def _write(check: Check, out: Path) -> None:
    atomic_write_text(out / "gpu-check.json", json.dumps(check.__dict__, indent=1, default=str) + "\n")
    atomic_write_text(out / "gpu-check.md", markdown(check))
