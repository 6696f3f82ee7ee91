"""Per-source work, cached: images -> per-image statistics, radial spectra and features in every
space, plus the features of two training-augmented views of the first AUG_IMAGES images.

Each source's results go to OUT/cache/KEY.pt (written atomically once the source is done), and a
trained encoder's to OUT/cache/KEY.encoder-ID.pt, so that an interrupted run resumes with the
sources still missing, and adding --encoder later computes only the encoder's features.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from noisevision.analyze.features import RANDOM_NAMES, FeatureNet, embed_all, to_uint8, view_pairs
from noisevision.analyze.sources import BATCH, ImageSource
from noisevision.analyze.statistics import STATISTICS, image_statistics, statistics_matrix
from noisevision.io import atomic_save
from noisevision.logs import get_logger
from noisevision.progress import Progress

log = get_logger(__name__)

AUG_IMAGES = 256  # images whose two augmented views measure the augmentation gap
SAMPLES = 16  # images kept for the sample grids
PAIRS = 4  # closest pairs of images kept per source
FORMAT = 3  # bump when the cached content changes
BLANK_STD = 0.5 / 255  # luminance standard deviation below which an image is one flat colour
RENDER_WORKERS = 1  # processes rendering (or reading) the next batches on a CPU while one measures


def encoder_id(spec: str) -> str:
    """A short id of an encoder file's bytes (its size and modification time, and its path)."""
    from noisevision.models import encoder_path

    path = encoder_path(spec)
    st = path.stat()
    return hashlib.blake2b(
        f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode(), digest_size=6
    ).hexdigest()


def _load(path: Path) -> dict[str, Any] | None:
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError):
        return None
    return blob if isinstance(blob, dict) and blob.get("format") == FORMAT else None


def _pass(src: ImageSource, nets: list[FeatureNet], progress: Progress, with_stats: bool) -> dict[str, Any]:
    """One pass over the source's images: statistics (if asked) and every net's features of the
    images and of the views of the first AUG_IMAGES."""
    stats: dict[str, list[Tensor]] = {s: [] for s in STATISTICS}
    curves, samples = [], []
    feats: list[list[Tensor]] = [[] for _ in nets]
    views: list[list[list[Tensor]]] = [[[], []] for _ in nets]
    view_stats: list[list[Tensor]] = [[], []]
    blank, t_start, t_images = 0, time.perf_counter(), 0.0
    batches = src.batches(workers=RENDER_WORKERS)
    for lo in range(0, src.count, BATCH):
        t = time.perf_counter()
        images = next(batches)
        t_images += time.perf_counter() - t
        if with_stats:
            s, curve = image_statistics(images)
            for k in STATISTICS:
                stats[k].append(s[k].cpu())
            curves.append(curve.cpu())
            blank += int((s["luminance_std"] < BLANK_STD).sum())
            if lo < SAMPLES:
                samples.append(images[: SAMPLES - lo].cpu())
        for i, f in enumerate(embed_all(nets, images.float() / 255.0)):
            feats[i].append(f)
        if lo < AUG_IMAGES:
            part = images[: AUG_IMAGES - lo]
            pair = view_pairs(part, torch.arange(lo, lo + len(part)), seed=src.seed)
            for v in (0, 1):
                for i, f in enumerate(embed_all(nets, pair[v])):
                    views[i][v].append(f)
                if with_stats:
                    view_stats[v].append(statistics_matrix(image_statistics(to_uint8(pair[v]))[0]).cpu())
        progress.update(len(images))
    out: dict[str, Any] = {
        "seconds": {"images": t_images, "measuring": time.perf_counter() - t_start - t_images},
        "features": {n.name: torch.cat(f) for n, f in zip(nets, feats, strict=True)},
        "view_features": {
            n.name: torch.stack([torch.cat(v[0]), torch.cat(v[1])]) for n, v in zip(nets, views, strict=True)
        },
    }
    if with_stats:
        out.update(
            stats={k: torch.cat(v) for k, v in stats.items()},
            curve=torch.cat(curves),
            samples=torch.cat(samples),
            view_stats=torch.stack([torch.cat(view_stats[0]), torch.cat(view_stats[1])]),
            blank=blank,
        )
    return out


def closest_pairs(features: Tensor, count: int) -> list[tuple[int, int]]:
    """The `count` pairs of distinct images (i < j) nearest each other in feature space."""
    d = torch.cdist(features.double(), features.double())
    d = d.masked_fill(torch.ones_like(d, dtype=torch.bool).tril(), torch.inf)  # each pair once
    flat = d.flatten().topk(min(count, len(d) * (len(d) - 1) // 2), largest=False).indices
    return [(int(k) // len(d), int(k) % len(d)) for k in flat]


def extract(
    src: ImageSource,
    cache: Path,
    random: Callable[[], list[FeatureNet]],
    encoder: FeatureNet | None,
    enc_id: str | None,
    progress_on: bool = True,
) -> dict[str, Any]:
    """The cached per-source results (computed now if missing): stats, curve, samples,
    view_stats, blank, features / view_features by space name ("random/seedS", "encoder").
    `random()` gives the random networks (built only when a source needs them)."""
    key = src.source.key(src.num, src.res, src.seed)
    base_path = cache / f"{key}.pt"
    base = _load(base_path)
    enc_path = cache / f"{key}.encoder-{enc_id}.pt" if encoder is not None else None
    enc = _load(enc_path) if enc_path is not None else None
    nets = ([] if base is not None else random()) + ([encoder] if encoder is not None and enc is None else [])
    if nets or base is None:
        what = "statistics and features" if base is None else "encoder features"
        with Progress(f"{src.source.label}: {what}", src.count, enabled=progress_on) as progress:
            fresh = _pass(src, nets, progress, with_stats=base is None)
        if base is None:
            pairs = closest_pairs(fresh["features"][RANDOM_NAMES[0]], PAIRS)
            base = {
                "pairs": src.take([i for pair in pairs for i in pair]).cpu(),  # [2·PAIRS, 3, res, res]
                "format": FORMAT,
                "label": src.source.label,
                "kind": src.source.kind,
                "spec": src.source.spec,
                "count": src.count,
                **{k: v for k, v in fresh.items() if k not in ("features", "view_features", "seconds")},
                "features": {n: fresh["features"][n] for n in RANDOM_NAMES},
                "view_features": {n: fresh["view_features"][n] for n in RANDOM_NAMES},
            }
            atomic_save(base, base_path)
        if encoder is not None and enc is None:
            assert enc_path is not None
            enc = {
                "format": FORMAT,
                "features": fresh["features"]["encoder"],
                "view_features": fresh["view_features"]["encoder"],
            }
            atomic_save(enc, enc_path)
    result = {**base, "seconds": fresh["seconds"] if nets else None}
    if enc is not None:
        result["features"] = {**base["features"], "encoder": enc["features"]}
        result["view_features"] = {**base["view_features"], "encoder": enc["view_features"]}
    return result
