"""Evaluation input: images/s of reading image files into probe inputs, and of feature
extraction, per decoder (`noisevision bench eval`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from noisevision.bench.timing import machine_line, synchronize

#: Frame sizes of ImageNet's most common photos (landscape, portrait, 3:2), width × height.
PHOTO_SIZES = ((500, 375), (375, 500), (500, 333))


def write_photo_folder(
    root,
    classes: int = 4,
    per_class: int = 32,
    seed: int = 0,
    generator: str = "stat-spectrum_color",
    threads: int = 1,
) -> None:
    """An ImageNet-style folder of JPEGs (quality 90) at the usual photo sizes, for benchmarks:
    ROOT/{train,val}/class<k>/<i>.jpg, the pictures resized from a generator's images (PIL resizes
    and encodes outside the GIL, so `threads` share the work)."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    from PIL import Image

    from noisevision import generators

    gen = generators.get(generator)
    root = Path(root)
    total = classes * per_class
    images = gen(range(2 * total), res=128, seed=seed).permute(0, 2, 3, 1).numpy()
    for split in ("train", "val"):
        for c in range(classes):
            (root / split / f"class{c}").mkdir(parents=True, exist_ok=True)

    def save(k: int) -> None:
        split, i = ("train", k) if k < total else ("val", k - total)
        w, h = PHOTO_SIZES[k % len(PHOTO_SIZES)]
        pic = Image.fromarray(images[k]).resize((w, h), Image.BICUBIC)
        pic.save(root / split / f"class{i % classes}" / f"{i}.jpg", quality=90)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        list(pool.map(save, range(2 * total)))


def bench_eval_input(
    data,
    model,
    view,
    device: torch.device,
    decoder: str,
    batch_size: int,
    workers: int,
    precision: str = "fp32",
    features: bool = True,
) -> float:
    """Images/s of reading `data` (an ImageSet of files) into probe inputs on `device` with
    `decoder`, and, with `features`, through `model.features` (autocast `precision`) too."""
    from noisevision.evaluate import extract_features, iterate_views

    def run(images) -> None:
        if features:
            extract_features(
                model, images, view, model.default_layer, device, batch_size, workers, precision, decoder
            )
        else:
            for _ in iterate_views(images, view, batch_size, device, None, workers, decoder):
                pass
        synchronize(device)

    run(data.take(torch.arange(min(len(data), batch_size))))  # imports, kernels, cuDNN's choice
    start = time.perf_counter()
    run(data)
    return len(data) / (time.perf_counter() - start)


def report_eval_input(
    folder: Path | None,
    images: int,
    arch: str,
    input_size: int | None,
    batch_size: int,
    workers: int,
    decoders: list[str],
    device: torch.device,
    precision: str,
    *,
    say: Callable[[str], None],
) -> None:
    """`bench eval`: a machine line, then per decoder the images/s of reading `images` files of
    `folder` (default: a temporary folder of JPEG photos, written first) into probe inputs, and of
    feature extraction by `arch` too; each the best of two rounds in alternating order."""
    import functools
    import tempfile

    from noisevision.data.decode import resolve_decoder
    from noisevision.data.eval_datasets import balanced_subset, load_image_folder
    from noisevision.evaluate import View
    from noisevision.models import build_encoder

    for name in decoders:
        resolve_decoder(name, device)
    model = build_encoder(arch, **({"input_size": input_size} if input_size else {})).to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    view = View(int(model.input_size), False)
    with tempfile.TemporaryDirectory(prefix="noisevision-bench-") as tmp:
        if folder is None:
            folder = Path(tmp)
            say(f"writing {images} JPEG photos to a temporary folder …")
            write_photo_folder(folder, classes=8, per_class=-(-images // 8))
        data = load_image_folder(folder).train
        data = data.take(balanced_subset(data.labels, images))
        say(
            f"# {machine_line(device)} | {arch} at {view.size} px, {precision} | {len(data)} files of "
            f"{folder} | batch {batch_size} | {workers} workers"
        )
        run = functools.partial(
            bench_eval_input,
            data,
            model,
            view,
            device,
            batch_size=batch_size,
            workers=workers,
            precision=precision,
        )
        # Two rounds in alternating order, the best of each kept: what runs right after the
        # encoder's matrix products would otherwise share the cores with their spinning threads.
        best: dict[tuple[str, bool], float] = {}
        for features in (False, True):
            for order in (decoders, decoders[::-1]):
                for name in order:
                    rate = run(decoder=name, features=features)
                    best[name, features] = max(best.get((name, features), 0.0), rate)
        for name in decoders:
            inp, feat = best[name, False], best[name, True]
            say(f"{name:8s} input {inp:10,.1f} img/s   features {feat:10,.1f} img/s")
