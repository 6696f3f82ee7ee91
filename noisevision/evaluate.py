"""Judging a frozen encoder on real images: linear probes, k-NN, low-shot, and baselines (SPEC §9, §6).

Probes (each a name in `PROBES`):
- "linear":  the paper's protocol (SPEC §9): frozen encoder in eval mode, features of one layer, one
             linear layer trained with augmentation every epoch; LAST epoch's top-1. Two recipes
             (`PROTOCOLS`): "paper" (small scale: Adam 1e-3, betas (0.5, 0.999), batch 128, 100
             epochs, ×0.2 at 60/80, RandomResizedCrop(s, 0.08–1) + flip, test Resize(70/64·s) +
             CenterCrop(s)) and "moco" (ResNet-50: SGD lr 30, batch 256, ×0.1 at 60/80, test
             Resize(256/224·s) + CenterCrop(s)).
- "fast":    features of every image cached once with the test transform (no augmentation), then
             the same linear classifier trained on the standardised cache: seconds instead of hours.
- "knn":     weighted k-NN on the cache (cosine similarity, k = 20, votes exp(sim / 0.07), as in
             Wu et al. 2018's instance discrimination paper).
- "lowshot": the fast probe with `shots` labels per class, over several seeds: mean ± std.

Baselines (SPEC §6) are probe models too: "cnn-random:ARCH" (the architecture with random weights),
"raw-pixels" (the probe input, area-resized to at most 32×32) and "mean-colors" (its mean colour).
A probe model is any module with `features(x, layer) -> [B, F]`, `feature_layers`,
`default_layer` and `input_size` (noisevision.models encoders and the baselines here).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisevision.augment import IMAGENET_MEAN, IMAGENET_STD, PAPER_MEAN, PAPER_STD, crop_boxes, resized_crop
from noisevision.data.decode import DECODERS, Crop, centre_crop, iterate_file_crops, resolve_decoder
from noisevision.data.eval_datasets import EvalDataset, ImageSet, balanced_subset, to_rgb
from noisevision.errors import NoisevisionError, unknown_name
from noisevision.precision import PRECISIONS, autocast, resolve_precision
from noisevision.progress import Progress

# The probes normalise as the encoder's training did: SPEC §7's statistics ("small", also the
# paper's probe, SPEC §9) or ImageNet's (MoCo, SPEC §8).
NORMALIZATIONS = {"small": (PAPER_MEAN, PAPER_STD), "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}

Log = Callable[[str], None]


# ---------------------------------------------------------------------------------- protocols
@dataclass(frozen=True)
class LinearProtocol:
    """One recipe for the augmented linear probe (SPEC §9). Milestones are fractions of the epochs."""

    name: str
    optimizer: str  # "adam" | "sgd"
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 100
    milestones: tuple[float, ...] = (0.6, 0.8)  # epochs 60 and 80 of 100
    gamma: float = 0.2
    crop_scale: tuple[float, float] = (0.08, 1.0)
    test_resize: float = 70 / 64  # Resize(test_resize · s) then CenterCrop(s)
    normalization: str = "small"


PROTOCOLS: dict[str, LinearProtocol] = {
    p.name: p
    for p in (
        LinearProtocol("paper", "adam", 1e-3, betas=(0.5, 0.999), batch_size=128, gamma=0.2),
        LinearProtocol(
            "moco", "sgd", 30.0, momentum=0.9, batch_size=256, gamma=0.1,
            test_resize=256 / 224, normalization="imagenet",
        ),
    )
}  # fmt: skip


def protocol_for(meta: dict[str, Any]) -> str:
    """SPEC §9: MoCo's linear protocol for MoCo-trained (large-scale) encoders, else the paper's."""
    method = str(meta.get("method", "")).lower()
    return "moco" if method.startswith("moco") else "paper"


PROBES = ("linear", "fast", "knn", "lowshot")


@dataclass
class ProbeSettings:
    """Everything a probe run needs besides the model and the data (CLI flags map 1:1)."""

    probes: tuple[str, ...] = ("fast", "knn")
    layer: str | None = None  # None: the model's default layer
    protocol: str | None = None  # None: protocol_for(encoder meta)
    epochs: int | None = None  # linear probe; None: the protocol's (100)
    fast_epochs: int = 30  # fast / low-shot probes on the cache (same optimiser as "paper")
    min_steps: int = 1000  # fast / low-shot: at least this many Adam steps (tiny sets converge too)
    knn_k: int = 20
    knn_temperature: float = 0.07
    shots: int = 10
    lowshot_seeds: int = 5
    subset: int | None = None  # at most this many train images (class-balanced), None: all
    test_subset: int | None = None  # at most this many test images, None: all
    batch_size: int = 256  # feature extraction
    workers: int = 2  # decoding processes for file datasets
    seed: int = 0
    precision: str = "auto"  # the encoder's autocast (noisevision.precision); probes train in fp32
    decoder: str = "auto"  # how files are decoded (noisevision.data.decode)
    progress: bool = False  # progress display of feature extraction and the linear probe

    def check(self) -> None:
        for p in self.probes:
            if p not in PROBES:
                raise unknown_name("probe", p, list(PROBES))
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise unknown_name("linear protocol", self.protocol, list(PROTOCOLS))
        if str(self.precision).lower() not in PRECISIONS:
            raise NoisevisionError(f"unknown precision '{self.precision}': use {', '.join(PRECISIONS)}")
        if self.decoder not in DECODERS:
            raise unknown_name("decoder", self.decoder, list(DECODERS))
        if self.workers < 0:
            raise NoisevisionError(f"--workers must be 0 or more, got {self.workers}")
        for name in ("epochs", "fast_epochs", "knn_k", "shots", "lowshot_seeds", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise NoisevisionError(f"{name.replace('_', '-')} must be at least 1, not {value}")


# ---------------------------------------------------------------------------------- baselines
class RawPixels(nn.Module):
    """Baseline "Raw pixels" (SPEC §6): the probe input itself, area-resized to ≤ `size`² pixels."""

    feature_layers = ("pixels",)
    default_layer = "pixels"

    def __init__(self, input_size: int = 64, size: int = 32):
        super().__init__()
        self.input_size, self.size = input_size, size

    def features(self, x: Tensor, layer: str | None = None) -> Tensor:
        side = min(self.size, x.shape[-1])
        return F.adaptive_avg_pool2d(x, side).flatten(1)  # [B, 3·side²]


class MeanColors(nn.Module):
    """Baseline "Mean colors" (SPEC §6): the image's mean colour, 3 numbers."""

    feature_layers = ("mean",)
    default_layer = "mean"

    def __init__(self, input_size: int = 64):
        super().__init__()
        self.input_size = input_size

    def features(self, x: Tensor, layer: str | None = None) -> Tensor:
        return x.mean(dim=(2, 3))  # [B, 3]


@dataclass(frozen=True)
class Baseline:
    name: str
    label: str  # the paper's row name (SPEC §10)
    description: str


BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("cnn-random", "CNN – Random", "the encoder architecture with random weights"),
        Baseline("raw-pixels", "Raw pixels", "linear probe on the resized pixels"),
        Baseline("mean-colors", "Mean colors", "linear probe on the image's mean colour"),
    )
}


def random_encoder(arch: str, seed: int = 0, **arch_kwargs: Any) -> nn.Module:
    """CNN-Random: `arch` with its initial random weights, drawn from `seed` (global RNG untouched)."""
    from noisevision.models import build_encoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_encoder(arch, **arch_kwargs)


def build_baseline(name: str, input_size: int = 64, arch: str | None = None,
                   arch_kwargs: dict[str, Any] | None = None, seed: int = 0) -> nn.Module:
    """A baseline probe model by name; "cnn-random" needs the architecture to copy."""
    if name == "raw-pixels":
        return RawPixels(input_size)
    if name == "mean-colors":
        return MeanColors(input_size)
    if name == "cnn-random":
        if arch is None:
            raise NoisevisionError("cnn-random needs an architecture: write cnn-random:ARCH")
        return random_encoder(arch, seed, **(arch_kwargs or {}))
    raise unknown_name("baseline", name, list(BASELINES))


def load_probe_model(spec: str, device: torch.device | str = "cpu",
                     input_size: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """An encoder file / run folder, or a baseline: "cnn-random:ARCH" (or "cnn-random:ENCODER",
    the architecture of an encoder file), "raw-pixels", "mean-colors".

    Returns the model (eval mode, on `device`) and its metadata (training info for encoder files).
    """
    from noisevision.models import load_encoder

    name, _, arg = spec.partition(":")
    if name in BASELINES and not Path(spec).exists():
        arch, kwargs = arg or None, {"input_size": input_size} if input_size else {}
        if name == "cnn-random" and arg and (Path(arg).is_file() or Path(arg).is_dir()):
            # cnn-random:ENCODER = that encoder's architecture and options, random weights.
            trained, _ = load_probe_model(arg, "cpu")
            arch, kwargs = trained.arch, {**trained.arch_kwargs, **kwargs}
        size = input_size or 64
        model = build_baseline(name, size, arch=arch, arch_kwargs=kwargs)
        size = getattr(model, "input_size", size)
        meta: dict[str, Any] = {"baseline": name, "arch": arch or name, "input_size": size}
        return model.to(device).eval(), meta
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "encoder.pt").is_file():
            raise NoisevisionError(f"folder {path} has no encoder.pt: pass a training run folder or file")
        path = path / "encoder.pt"
    if not path.exists():
        raise NoisevisionError(
            f"encoder '{spec}' not found: give an encoder file, a run folder, or one of "
            f"{', '.join(n + (':ARCH' if n == 'cnn-random' else '') for n in BASELINES)}"
        )
    model, meta = load_encoder(path, map_location=device)
    meta = {**meta, "arch": getattr(model, "arch", meta.get("arch")), "path": str(path)}
    return model.eval(), meta


# ---------------------------------------------------------------------------------- views
@dataclass(frozen=True)
class View:
    """How images become probe inputs: the train (augmented) or test view of SPEC §9."""

    size: int
    train: bool
    crop_scale: tuple[float, float] = (0.08, 1.0)
    test_resize: float = 70 / 64
    mean: tuple[float, float, float] = PAPER_MEAN
    std: tuple[float, float, float] = PAPER_STD

    @property
    def resize_to(self) -> int:
        return int(round(self.test_resize * self.size))


def random_resized_boxes(n: int, height: int, width: int, scale: tuple[float, float],
                         gen: torch.Generator, ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Tensor:
    """torchvision RandomResizedCrop.get_params for `n` images at once: boxes [n, 4] (x0, y0, x1, y1).

    The uniforms come from `gen` (deterministic probes); the box logic is the training
    augmentation's (`augment.crop_boxes`): ten tries per image, the first valid one kept, else the
    central crop of clamped aspect ratio.
    """
    u_area = torch.rand(n, 10, generator=gen)
    u_ratio = torch.rand(n, 10, generator=gen)
    u_offset = torch.rand(n, 2, generator=gen)  # (top, left)
    return crop_boxes(u_area, u_ratio, u_offset, height, width, scale, ratio)


def batch_view(images: Tensor, view: View, gen: torch.Generator | None = None) -> Tensor:
    """uint8 [B, 1|3, H, W] (one size, any device) -> normalised float [B, 3, s, s].

    Train: random resized crop (bilinear via roi_align, which averages several samples per output
    pixel when shrinking) + horizontal flip, parameters drawn on the CPU from `gen` (deterministic).
    Test: resize the short side to `view.resize_to` (antialiased bilinear) + central crop.
    """
    x = to_rgb(images).float().div_(255)
    b, _, height, width = x.shape
    s = view.size
    if view.train:
        if gen is None:
            raise ValueError("a train view needs a torch.Generator")
        boxes = random_resized_boxes(b, height, width, view.crop_scale, gen)
        flip = torch.rand(b, generator=gen) < 0.5
        x = resized_crop(x, boxes.to(x.device), s)
        x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
    else:
        r = view.resize_to / min(height, width)
        size = (max(s, round(height * r)), max(s, round(width * r)))
        if size != (height, width):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        top, left = (size[0] - s) // 2, (size[1] - s) // 2
        x = x[:, :, top : top + s, left : left + s]
    mean = torch.tensor(view.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(view.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class _FileViews(torch.utils.data.Dataset):
    """The "pil" decoder: full-size decoding + the whole transform per file, in the worker."""

    def __init__(self, data: ImageSet, view: View, seed: int):
        self.data, self.view, self.seed = data, view, seed

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        img = self.data.load(torch.tensor([i]))[0][None]  # uint8 [1, 3, H, W]
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + i) if self.view.train else None
        x = batch_view(img, self.view, gen)[0]
        return x, int(self.data.labels[i])


@dataclass(frozen=True)
class _ViewCrops:
    """The crop of file order[pos] for `view` (picklable, for DataLoader workers): the train view
    draws from the same per-file generator as the "pil" path, so both crop the same boxes."""

    view: View
    seed: int
    order: tuple[int, ...]

    def __call__(self, pos: int, height: int, width: int) -> Crop:
        if not self.view.train:
            return centre_crop(height, width, self.view.size, self.view.resize_to)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.order[pos])
        box = random_resized_boxes(1, height, width, self.view.crop_scale, gen)[0]
        flip = bool(torch.rand(1, generator=gen)[0] < 0.5)
        return Crop(tuple(float(v) for v in box), flip)


def iterate_views(data: ImageSet, view: View, batch_size: int, device: torch.device,
                  shuffle_seed: int | None = None, workers: int = 0,
                  decoder: str = "pil") -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (normalised float [B, 3, s, s] on `device`, labels [B]) over `data`.

    In-memory sets are transformed a whole batch at a time on the device; file sets are read in
    `workers` processes with `decoder` (noisevision.data.decode). `shuffle_seed` (None: data
    order) also seeds the augmentation.
    """
    n = len(data)
    order = torch.arange(n)
    if shuffle_seed is not None:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(shuffle_seed))
    if data.in_memory:
        gen = torch.Generator().manual_seed(shuffle_seed or 0)
        assert data.images is not None
        for idx in order.split(batch_size):
            x = batch_view(data.images[idx].to(device, non_blocking=True), view, gen)
            yield x, data.labels[idx].to(device)
        return
    if decoder != "pil":
        assert data.paths is not None
        crops = _ViewCrops(view, shuffle_seed or 0, tuple(order.tolist()))
        paths = [data.paths[i] for i in crops.order]
        yield from iterate_file_crops(paths, data.labels[order], crops, view.size, batch_size, device,
                                      decoder, workers, pin=device.type == "cuda",
                                      resize_to=None if view.train else view.resize_to,
                                      mean=view.mean, std=view.std)  # fmt: skip
        return
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(_FileViews(data, view, shuffle_seed or 0), order.tolist()),
        batch_size=batch_size, num_workers=workers, pin_memory=device.type == "cuda",
        persistent_workers=False,
    )  # fmt: skip
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device)


# ---------------------------------------------------------------------------------- features
def feature_layer(model: nn.Module, layer: str | None) -> str:
    """Validate `layer` for `model`; None -> its default layer."""
    layers = tuple(getattr(model, "feature_layers", ()))
    if layer is None:
        return model.default_layer
    if layer not in layers:
        raise NoisevisionError(f"layer '{layer}' does not exist here: choose from {', '.join(layers)}")
    return layer


@torch.no_grad()
def extract_features(model: nn.Module, data: ImageSet, view: View, layer: str, device: torch.device,
                     batch_size: int = 256, workers: int = 0, precision: str = "fp32",
                     decoder: str = "pil", progress: Progress | None = None) -> tuple[Tensor, Tensor]:
    """Frozen features of every image (test view, data order): float32 [N, F] and labels [N], on
    `device` (the probes run there)."""
    model.eval()
    channels_last = device.type == "cuda"
    feats, labels = [], []
    for x, y in iterate_views(data, view, batch_size, device, None, workers, decoder):
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            feats.append(model.features(x, layer).float())
        labels.append(y)
        if progress is not None:
            progress.update(len(y))
    return torch.cat(feats), torch.cat(labels)


def standardize(train: Tensor, *others: Tensor) -> list[Tensor]:
    """Zero-mean unit-variance features using the (label-free) train statistics."""
    mean = train.mean(0, keepdim=True)
    std = train.std(0, keepdim=True)
    std = torch.where(std > 1e-6 * std.max().clamp_min(1e-12), std, torch.ones_like(std))
    return [(t - mean) / std for t in (train, *others)]


def _optimizer(params: Any, protocol: LinearProtocol) -> torch.optim.Optimizer:
    if protocol.optimizer == "adam":
        return torch.optim.Adam(params, lr=protocol.lr, betas=protocol.betas,
                                weight_decay=protocol.weight_decay)  # fmt: skip
    return torch.optim.SGD(params, lr=protocol.lr, momentum=protocol.momentum,
                           weight_decay=protocol.weight_decay)  # fmt: skip


def _milestones(protocol: LinearProtocol, epochs: int) -> list[int]:
    """Epochs at which the lr drops: 60 and 80 of 100, scaled to `epochs`."""
    return sorted({max(1, round(f * epochs)) for f in protocol.milestones if round(f * epochs) < epochs})


def _new_linear(in_dim: int, num_classes: int, seed: int, device: torch.device) -> nn.Linear:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(in_dim, num_classes).to(device)


def fit_linear(train_x: Tensor, train_y: Tensor, num_classes: int, epochs: int, seed: int = 0,
               protocol: LinearProtocol = PROTOCOLS["paper"], device: torch.device | str = "cpu",
               min_steps: int = 1000) -> nn.Linear:
    """Multinomial logistic regression on fixed features [N, F] with the protocol's optimiser.

    Minibatches of `protocol.batch_size`, lr drops at the protocol's milestones; at least
    `min_steps` steps so that tiny (low-shot) sets are trained too. Deterministic for a seed.
    """
    device = torch.device(device)
    x, y = train_x.to(device), train_y.to(device)
    n = len(x)
    batch = min(protocol.batch_size, n)
    steps_per_epoch = math.ceil(n / batch)
    epochs = max(epochs, math.ceil(min_steps / steps_per_epoch))
    with _few_threads(device, batch * x.shape[1] * num_classes):
        return _fit(x, y, num_classes, epochs, batch, seed, protocol, device)


@contextmanager
def _few_threads(device: torch.device, work_per_step: int) -> Iterator[None]:
    """One CPU thread for small steps: thread start-up costs more than it saves there, and far
    more when other processes share the cores."""
    before = torch.get_num_threads()
    small = device.type == "cpu" and work_per_step < 1 << 22
    if small:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small:
            torch.set_num_threads(before)


def _fit(x: Tensor, y: Tensor, num_classes: int, epochs: int, batch: int, seed: int,
         protocol: LinearProtocol, device: torch.device) -> nn.Linear:
    n = len(x)
    head = _new_linear(x.shape[1], num_classes, seed, device)
    opt = _optimizer(head.parameters(), protocol)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, _milestones(protocol, epochs), protocol.gamma)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=gen).split(batch):
            idx = idx.to(device)
            loss = F.cross_entropy(head(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    return head


@torch.no_grad()
def top1(head: nn.Module, x: Tensor, y: Tensor, batch: int = 4096) -> float:
    """Top-1 accuracy in percent."""
    device = next(head.parameters()).device
    correct = 0
    for xs, ys in zip(x.split(batch), y.split(batch), strict=True):
        correct += int((head(xs.to(device)).argmax(1) == ys.to(device)).sum())
    return 100.0 * correct / max(1, len(y))


@torch.no_grad()
def knn_top1(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, num_classes: int,
             k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> float:
    """Weighted k-NN top-1 (%): cosine similarity, the k nearest vote with weight exp(sim / T).

    Runs on the device of `train_x` (the features' device: the GPU when they were extracted there).
    """
    device = train_x.device
    train_n = F.normalize(train_x.float(), dim=1)
    train_y = train_y.to(device)
    k = min(k, len(train_n))
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for xs, ys in zip(test_x.split(chunk), test_y.split(chunk), strict=True):
        sim, idx = (F.normalize(xs.to(device).float(), dim=1) @ train_n.T).topk(k, dim=1)  # [b, k]
        votes = torch.zeros(len(xs), num_classes, device=device)
        votes.scatter_add_(1, train_y[idx], torch.exp(sim / temperature))
        correct += (votes.argmax(1) == ys.to(device)).sum()
    return 100.0 * int(correct) / max(1, len(test_y))


# ---------------------------------------------------------------------------------- probes
def cached_probes(train_f: Tensor, train_y: Tensor, test_f: Tensor, test_y: Tensor, num_classes: int,
                  settings: ProbeSettings, device: torch.device) -> dict[str, dict[str, Any]]:
    """The probes that run on cached features ("fast", "knn", "lowshot")."""
    out: dict[str, dict[str, Any]] = {}
    tr, te = standardize(train_f, test_f)
    if "fast" in settings.probes:
        t0 = time.perf_counter()
        head = fit_linear(tr, train_y, num_classes, settings.fast_epochs, settings.seed,
                          device=device, min_steps=settings.min_steps)  # fmt: skip
        out["fast"] = {"top1": top1(head, te, test_y), "epochs": settings.fast_epochs,
                       "seconds": time.perf_counter() - t0}  # fmt: skip
    if "knn" in settings.probes:
        t0 = time.perf_counter()
        acc = knn_top1(train_f, train_y, test_f, test_y, num_classes, settings.knn_k,
                       settings.knn_temperature)  # fmt: skip
        out["knn"] = {"top1": acc, "k": settings.knn_k, "temperature": settings.knn_temperature,
                      "seconds": time.perf_counter() - t0}  # fmt: skip
    if "lowshot" in settings.probes:
        t0 = time.perf_counter()
        accs = []
        for s in range(settings.lowshot_seeds):
            idx = balanced_subset(train_y.cpu(), settings.shots * num_classes, seed=1000 + s).to(tr.device)
            head = fit_linear(tr[idx], train_y[idx], num_classes, settings.fast_epochs, s,
                              device=device, min_steps=settings.min_steps)  # fmt: skip
            accs.append(top1(head, te, test_y))
        acc_t = torch.tensor(accs)
        out["lowshot"] = {
            "top1": float(acc_t.mean()),
            "std": float(acc_t.std()) if len(accs) > 1 else 0.0,
            "per_seed": accs, "shots": settings.shots, "seconds": time.perf_counter() - t0,
        }  # fmt: skip
    return out


def linear_probe(model: nn.Module, dataset: EvalDataset, layer: str, protocol: LinearProtocol,
                 epochs: int, device: torch.device, seed: int = 0, workers: int = 0,
                 log: Log | None = None, precision: str = "fp32", decoder: str = "pil",
                 progress: bool = False) -> dict[str, Any]:
    """SPEC §9's linear probe: augmented train view every epoch, LAST epoch's top-1 on test.

    The frozen encoder runs under `precision`'s autocast; the linear layer trains in fp32.
    """
    mean, std = NORMALIZATIONS[protocol.normalization]
    size = int(model.input_size)
    train_view = View(size, True, protocol.crop_scale, protocol.test_resize, mean, std)
    test_view = replace(train_view, train=False)
    model.eval()

    @torch.no_grad()
    def features(x: Tensor) -> Tensor:
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            return model.features(x, layer).float()

    probe_x, _ = next(iterate_views(dataset.test.take(torch.arange(2)), test_view, 2, device))
    in_dim = features(probe_x).shape[1]
    head = _new_linear(in_dim, dataset.num_classes, seed, device)
    opt = _optimizer(head.parameters(), protocol)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, _milestones(protocol, epochs), protocol.gamma)
    t0, losses = time.perf_counter(), []
    n_train = len(dataset.train)
    bar = Progress("linear probe", epochs * n_train + len(dataset.test), enabled=progress)
    for epoch in range(epochs):
        total = torch.zeros((), dtype=torch.float64, device=device)
        for x, y in iterate_views(dataset.train, train_view, protocol.batch_size, device,
                                  shuffle_seed=seed * 10_007 + epoch, workers=workers,
                                  decoder=decoder):  # fmt: skip
            loss = F.cross_entropy(head(features(x)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().double() * len(y)
            bar.update(len(y), epoch=f"{epoch + 1}/{epochs}")
        sched.step()
        losses.append(float(total) / max(1, n_train))
        bar.update(0, loss=f"{losses[-1]:.4f}")
        if log:
            log(f"linear probe epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f}")
    correct = 0
    with torch.no_grad():
        for x, y in iterate_views(dataset.test, test_view, 256, device, None, workers, decoder):
            correct += int((head(features(x)).argmax(1) == y).sum())
            bar.update(len(y))
    bar.close()
    return {
        "top1": 100.0 * correct / max(1, len(dataset.test)),
        "protocol": protocol.name, "epochs": epochs, "train_loss": losses, "feature_dim": in_dim,
        "seconds": time.perf_counter() - t0,
    }  # fmt: skip


@dataclass
class EvalResult:
    """What `evaluate` measured: one entry per probe plus the shared context."""

    dataset: str
    layer: str
    feature_dim: int
    n_train: int
    n_test: int
    protocol: str
    device: str
    precision: str = "fp32"
    decoder: str = "in memory"
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)
    feature_seconds: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One terminal line: every probe's top-1."""
        parts = []
        for name, r in self.probes.items():
            if name == "lowshot":
                parts.append(f"lowshot({r['shots']}/class) {r['top1']:.2f}±{r['std']:.2f}")
            else:
                parts.append(f"{name} {r['top1']:.2f}")
        return (f"{' · '.join(parts)}  [{self.dataset}, layer {self.layer}, "
                f"{self.n_train}/{self.n_test} images, {self.seconds:.1f} s]")  # fmt: skip


def evaluate(model: nn.Module, dataset: EvalDataset, settings: ProbeSettings | None = None,
             device: torch.device | str = "cpu", meta: dict[str, Any] | None = None,
             log: Log | None = None) -> EvalResult:
    """Run `settings.probes` for a frozen probe model on `dataset` (subset first if asked)."""
    settings = settings or ProbeSettings()
    settings.check()
    device = torch.device(device)
    precision = resolve_precision(settings.precision, device)
    decoder = resolve_decoder(settings.decoder, device)
    t_start = time.perf_counter()
    layer = feature_layer(model, settings.layer)
    protocol = PROTOCOLS[settings.protocol or protocol_for(meta or {})]
    data = dataset.subset(settings.subset, settings.test_subset, settings.seed)
    mean, std = NORMALIZATIONS[protocol.normalization]
    test_view = View(int(model.input_size), False, protocol.crop_scale, protocol.test_resize, mean, std)
    model = model.to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    result = EvalResult(dataset.name, layer, 0, len(data.train), len(data.test), protocol.name, str(device),
                        precision=precision, decoder=decoder if not data.train.in_memory else "in memory")
    if any(p != "linear" for p in settings.probes):
        t0 = time.perf_counter()
        extract = functools.partial(extract_features, model, layer=layer, device=device, view=test_view,
                                    batch_size=settings.batch_size, workers=settings.workers,
                                    precision=precision, decoder=decoder)  # fmt: skip
        with Progress("features", len(data.train) + len(data.test), enabled=settings.progress) as bar:
            train_f, train_y = extract(data=data.train, progress=bar)
            test_f, test_y = extract(data=data.test, progress=bar)
        result.feature_seconds = time.perf_counter() - t0
        result.feature_dim = train_f.shape[1]
        if log:
            n = len(train_f) + len(test_f)
            log(f"features: {n} images, {result.feature_dim}-d, {result.feature_seconds:.1f} s "
                f"({n / max(result.feature_seconds, 1e-9):.0f} images/s)")  # fmt: skip
        result.probes.update(cached_probes(train_f, train_y, test_f, test_y, dataset.num_classes,
                                           settings, device))  # fmt: skip
    if "linear" in settings.probes:
        epochs = settings.epochs or protocol.epochs
        result.probes["linear"] = linear_probe(model, data, layer, protocol, epochs, device,
                                               settings.seed, settings.workers, log, precision, decoder,
                                               settings.progress)  # fmt: skip
        result.feature_dim = result.feature_dim or result.probes["linear"]["feature_dim"]
    # Keep the order the caller asked for.
    result.probes = {p: result.probes[p] for p in settings.probes}
    result.seconds = time.perf_counter() - t_start
    return result
