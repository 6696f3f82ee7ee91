"""The probes of a frozen encoder: linear (the paper's), fast, k-NN and low-shot, each a registered name.

- "linear":  the paper's protocol: frozen encoder in eval mode, features of one layer, one
             linear layer trained with augmentation every epoch; LAST epoch's top-1. Two recipes
             (`PROTOCOLS`): "paper" (small scale: Adam 1e-3, betas (0.5, 0.999), batch 128, 100
             epochs, ×0.2 at 60/80, RandomResizedCrop(s, 0.08–1) + flip, test Resize(70/64·s) +
             CenterCrop(s)) and "moco" (ResNet-50: SGD lr 30, batch 256, ×0.1 at 60/80, test
             Resize(256/224·s) + CenterCrop(s)).
- "fast":    features of every image cached once with the test view (no augmentation), then the
             same linear classifier trained on the standardised cache: seconds instead of hours.
- "knn":     weighted k-NN on the cache (cosine similarity, k = 20, votes exp(sim / 0.07), as in
             Wu et al. 2018's instance discrimination paper).
- "lowshot": the fast probe with `shots` labels per class, over several seeds: mean ± std.
- "finetune": not a frozen probe: the whole network plus a new linear head trained on the train
             split with the FDSL small-set recipe (`finetune`); the BEST epoch's top-1 (the FDSL
             papers' convention), the last epoch's beside it.

The linear and the fast probes train their classifier in one loop (`train_head`).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisevision.data.decode import check_decoder
from noisevision.data.eval_datasets import EvalDataset, ImageSet, balanced_subset
from noisevision.errors import FieldError, NoisevisionError, at_least_one
from noisevision.evaluate.finetune import FDSL, finetune
from noisevision.evaluate.views import NORMALIZATIONS, View, iterate_views
from noisevision.logs import get_logger
from noisevision.precision import autocast, check_precision
from noisevision.progress import Progress
from noisevision.registry import Registry
from noisevision.rng import check_seed

log = get_logger(__name__)


# ---------------------------------------------------------------------------------- protocols
#: Largest probe settings accepted (ProbeSettings.check).
LIMITS = {
    "epochs": 10_000,
    "fast_epochs": 10_000,
    "knn_k": 10_000,
    "lowshot_seeds": 1_000,
    "finetune_epochs": 10_000,
}


@dataclass(frozen=True)
class LinearProtocol:
    """One recipe for the augmented linear probe. Milestones are fractions of the epochs."""

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


PROTOCOLS: Registry[LinearProtocol] = Registry("linear protocol")
PROTOCOLS.add(
    "paper",
    LinearProtocol("paper", "adam", 1e-3, betas=(0.5, 0.999), batch_size=128, gamma=0.2),
    "paper's small scale: Adam 1e-3, batch 128, ×0.2 at 60 % and 80 %, paper stats",
)
PROTOCOLS.add(
    "moco",
    LinearProtocol(
        "moco",
        "sgd",
        30.0,
        momentum=0.9,
        batch_size=256,
        gamma=0.1,
        test_resize=256 / 224,
        normalization="imagenet",
    ),
    "MoCo's for ResNet-50s: SGD lr 30, batch 256, ×0.1 at 60 % and 80 %, ImageNet statistics",
)


def protocol_for(meta: dict[str, Any]) -> str:
    """The linear protocol an encoder's training recipe names (encoder files); for models without
    one (baselines), the one their method's registry entry names, else the paper's."""
    from noisevision.methods import METHODS

    recipe = meta.get("recipe")
    if recipe is not None:
        return recipe.protocol
    method = str(meta.get("method", ""))
    return METHODS.get(method).protocol if method in METHODS else "paper"


Stats = tuple[tuple[float, ...], tuple[float, ...]]  # (mean, std) per channel


def input_stats(meta: dict[str, Any], protocol: LinearProtocol) -> Stats:
    """The (mean, std) probe inputs are normalised with: those the encoder trained with (its
    recipe), else the protocol's (baselines: raw pixels, random networks)."""
    recipe = meta.get("recipe")
    if recipe is not None:
        return recipe.stats
    return NORMALIZATIONS[protocol.normalization]


# ---------------------------------------------------------------------------------- settings
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
    finetune_epochs: int = 10  # fine-tuning (the FDSL recipe's 1,000 are days on a CPU)
    finetune_batch_size: int = 64  # fine-tuning (the recipe's 768 is a GPU batch)
    finetune_lr: float = FDSL.lr  # fine-tuning's SGD learning rate
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
            PROBES.entry(p)
        if self.protocol is not None:
            PROTOCOLS.entry(self.protocol)
        check_precision(self.precision)
        check_decoder(self.decoder)
        if self.workers < 0:
            raise FieldError("workers", f"{{field}} must be 0 or more, got {self.workers}")
        counts = (
            "epochs",
            "fast_epochs",
            "knn_k",
            "shots",
            "lowshot_seeds",
            "finetune_epochs",
            "finetune_batch_size",
            "batch_size",
            "subset",
            "test_subset",
        )
        at_least_one(*((name, getattr(self, name)) for name in counts))
        for name, most in LIMITS.items():  # beyond these a probe runs for days on a typo
            if (value := getattr(self, name)) is not None and value > most:
                raise FieldError(name, f"{{field}} must be at most {most:,}, got {value:,}")
        if not (math.isfinite(self.finetune_lr) and self.finetune_lr > 0):
            raise FieldError("finetune_lr", f"{{field}} must be a positive number, got {self.finetune_lr}")
        check_seed(self.seed, "seed")


# ---------------------------------------------------------------------------------- features
def feature_layer(model: nn.Module, layer: str | None) -> str:
    """Validate `layer` for `model`; None -> its default layer."""
    layers = tuple(getattr(model, "feature_layers", ()))
    if layer is None:
        return model.default_layer
    if layer not in layers:
        raise NoisevisionError(f"layer '{layer}' does not exist here: choose from {', '.join(layers)}")
    return layer


def encode(model: nn.Module, x: Tensor, layer: str, device: torch.device, precision: str) -> Tensor:
    """Frozen features of a batch of probe inputs, float32 [B, F] (NHWC on CUDA, under autocast)."""
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, precision):
        return model.features(x, layer).float()


@torch.no_grad()
def extract_features(
    model: nn.Module,
    data: ImageSet,
    view: View,
    layer: str,
    device: torch.device,
    batch_size: int = 256,
    workers: int = 0,
    precision: str = "fp32",
    decoder: str = "pil",
    progress: Progress | None = None,
) -> tuple[Tensor, Tensor]:
    """Frozen features of every image (test view, data order): float32 [N, F] and labels [N], on
    `device` (the probes run there)."""
    model.eval()
    feats, labels = [], []
    for x, y in iterate_views(data, view, batch_size, device, None, workers, decoder):
        feats.append(encode(model, x, layer, device, precision))
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


# ---------------------------------------------------------------------------------- the classifier
def _optimizer(params: Any, protocol: LinearProtocol) -> torch.optim.Optimizer:
    if protocol.optimizer == "adam":
        return torch.optim.Adam(
            params, lr=protocol.lr, betas=protocol.betas, weight_decay=protocol.weight_decay
        )
    return torch.optim.SGD(
        params, lr=protocol.lr, momentum=protocol.momentum, weight_decay=protocol.weight_decay
    )


def _milestones(protocol: LinearProtocol, epochs: int) -> list[int]:
    """Epochs at which the lr drops: 60 and 80 of 100, scaled to `epochs`."""
    return sorted({max(1, round(f * epochs)) for f in protocol.milestones if round(f * epochs) < epochs})


def _new_linear(in_dim: int, num_classes: int, seed: int, device: torch.device) -> nn.Linear:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(in_dim, num_classes).to(device)


def train_head(
    head: nn.Module,
    protocol: LinearProtocol,
    epochs: int,
    batches: Callable[[int], Iterable[tuple[Tensor, Tensor]]],
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[float]:
    """The probes' classifier loop: cross-entropy on `batches(epoch)` ((x, y) pairs) with the
    protocol's optimiser, the lr dropped at its milestones. Returns each epoch's mean loss."""
    opt = _optimizer(head.parameters(), protocol)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, _milestones(protocol, epochs), protocol.gamma)
    losses = []
    for epoch in range(epochs):
        total, count = None, 0
        for x, y in batches(epoch):
            loss = F.cross_entropy(head(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            part = loss.detach().double() * len(y)
            total, count = part if total is None else total + part, count + len(y)
        sched.step()
        losses.append(float(total) / count if count else math.nan)  # (one wait per epoch on a GPU)
        if on_epoch:
            on_epoch(epoch, losses[-1])
    return losses


def fit_linear(
    train_x: Tensor,
    train_y: Tensor,
    num_classes: int,
    epochs: int,
    seed: int = 0,
    protocol: LinearProtocol | None = None,
    device: torch.device | str = "cpu",
    min_steps: int = 1000,
) -> nn.Linear:
    """Multinomial logistic regression on fixed features [N, F] with the protocol's optimiser.

    Minibatches of `protocol.batch_size`, lr drops at the protocol's milestones; at least
    `min_steps` steps so that tiny (low-shot) sets are trained too. Deterministic for a seed.
    """
    protocol = protocol or PROTOCOLS.get("paper")
    device = torch.device(device)
    x, y = train_x.to(device), train_y.to(device)
    n = len(x)
    batch = min(protocol.batch_size, n)
    epochs = max(epochs, math.ceil(min_steps / math.ceil(n / batch)))
    head = _new_linear(x.shape[1], num_classes, seed, device)
    gen = torch.Generator().manual_seed(seed)

    def batches(_epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        for idx in torch.randperm(n, generator=gen).split(batch):
            idx = idx.to(device)
            yield x[idx], y[idx]

    with _few_threads(device, batch * x.shape[1] * num_classes):
        train_head(head, protocol, epochs, batches)
    return head


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


@torch.no_grad()
def top1(head: nn.Module, x: Tensor, y: Tensor, batch: int = 4096) -> float:
    """Top-1 accuracy in percent."""
    device = next(head.parameters()).device
    correct = 0
    for xs, ys in zip(x.split(batch), y.split(batch), strict=True):
        correct += int((head(xs.to(device)).argmax(1) == ys.to(device)).sum())
    return 100.0 * correct / max(1, len(y))


@torch.no_grad()
def knn_top1(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
) -> float:
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


# ---------------------------------------------------------------------------------- the probes
@dataclass(frozen=True)
class Cache:
    """Test-view features of both splits, raw and standardised with the train statistics."""

    train: Tensor
    test: Tensor
    train_y: Tensor
    test_y: Tensor
    num_classes: int

    @functools.cached_property
    def standardized(self) -> tuple[Tensor, Tensor]:
        """Computed once, shared by the fast and low-shot probes."""
        tr, te = standardize(self.train, self.test)
        return tr, te


def _fast(c: Cache, s: ProbeSettings, device: torch.device) -> dict[str, Any]:
    tr, te = c.standardized
    head = fit_linear(
        tr, c.train_y, c.num_classes, s.fast_epochs, s.seed, device=device, min_steps=s.min_steps
    )
    return {"top1": top1(head, te, c.test_y), "epochs": s.fast_epochs}


def _knn(c: Cache, s: ProbeSettings, device: torch.device) -> dict[str, Any]:
    acc = knn_top1(c.train, c.train_y, c.test, c.test_y, c.num_classes, s.knn_k, s.knn_temperature)
    return {"top1": acc, "k": s.knn_k, "temperature": s.knn_temperature}


def _lowshot(c: Cache, s: ProbeSettings, device: torch.device) -> dict[str, Any]:
    tr, te = c.standardized
    accs = []
    for seed in range(s.lowshot_seeds):
        idx = balanced_subset(c.train_y.cpu(), s.shots * c.num_classes, seed=1000 + seed).to(tr.device)
        head = fit_linear(
            tr[idx], c.train_y[idx], c.num_classes, s.fast_epochs, seed, device=device, min_steps=s.min_steps
        )
        accs.append(top1(head, te, c.test_y))
    acc_t = torch.tensor(accs)
    return {
        "top1": float(acc_t.mean()),
        "std": float(acc_t.std()) if len(accs) > 1 else 0.0,
        "per_seed": accs,
        "shots": s.shots,
    }


@dataclass(frozen=True)
class ImageRun:
    """What a probe that reads the images itself (every epoch) is given."""

    model: nn.Module
    data: EvalDataset
    layer: str
    protocol: LinearProtocol
    settings: ProbeSettings
    device: torch.device
    precision: str
    decoder: str
    stats: Stats


@dataclass(frozen=True)
class Probe:
    """A registered probe: `run(cache, settings, device)` for those that run on the cached
    features, else `on_images(ImageRun)` for those that read the images every epoch (the linear
    probe, fine-tuning). `trains_model`: it trains the network itself (needs trainable weights)."""

    run: Callable[[Cache, ProbeSettings, torch.device], dict[str, Any]] | None = None
    on_images: Callable[[ImageRun], dict[str, Any]] | None = None
    trains_model: bool = False


def _linear(r: ImageRun) -> dict[str, Any]:
    s = r.settings
    epochs = s.epochs or r.protocol.epochs
    return linear_probe(
        r.model,
        r.data,
        r.layer,
        r.protocol,
        epochs,
        r.device,
        s.seed,
        s.workers,
        r.precision,
        r.decoder,
        s.progress,
        r.stats,
    )


def _finetune(r: ImageRun) -> dict[str, Any]:
    s = r.settings
    return finetune(
        r.model,
        r.data,
        r.layer,
        r.device,
        r.stats,
        epochs=s.finetune_epochs,
        batch_size=s.finetune_batch_size,
        lr=s.finetune_lr,
        seed=s.seed,
        test_resize=r.protocol.test_resize,
        workers=s.workers,
        precision=r.precision,
        decoder=r.decoder,
        progress=s.progress,
    )


PROBES: Registry[Probe] = Registry("probe")
PROBES.add(
    "linear", Probe(on_images=_linear), "the paper's: a linear layer on frozen features of augmented views"
)
PROBES.add("fast", Probe(_fast), "the same classifier on features cached once (test view): seconds")
PROBES.add("knn", Probe(_knn), f"weighted k-NN on the cached features (cosine, k = {ProbeSettings.knn_k})")
PROBES.add(
    "lowshot",
    Probe(_lowshot),
    f"the fast probe with {ProbeSettings.shots} labels per class over "
    f"{ProbeSettings.lowshot_seeds} seeds (mean ± std)",
)
PROBES.add(
    "finetune",
    Probe(on_images=_finetune, trains_model=True),
    "the whole network + a new head, FDSL small-set recipe (SGD, Mixup/CutMix, RandAugment); best epoch",
)


def cached_probes(cache: Cache, settings: ProbeSettings, device: torch.device) -> dict[str, dict[str, Any]]:
    """The probes of `settings` that run on the cached features, with their seconds."""
    out = {}
    for name in settings.probes:
        probe = PROBES.get(name)
        if probe.run is not None:
            t0 = time.perf_counter()
            out[name] = {**probe.run(cache, settings, device), "seconds": time.perf_counter() - t0}
    return out


def linear_probe(
    model: nn.Module,
    dataset: EvalDataset,
    layer: str,
    protocol: LinearProtocol,
    epochs: int,
    device: torch.device,
    seed: int = 0,
    workers: int = 0,
    precision: str = "fp32",
    decoder: str = "pil",
    progress: bool = False,
    stats: Stats | None = None,
) -> dict[str, Any]:
    """The paper's linear probe: augmented train view every epoch, LAST epoch's top-1 on test.

    Inputs are normalised with `stats` (mean, std; None: the protocol's). The frozen encoder runs
    under `precision`'s autocast; the linear layer trains in fp32.
    """
    mean, std = stats or NORMALIZATIONS[protocol.normalization]
    size = int(model.input_size)
    train_view = View(size, True, protocol.crop_scale, protocol.test_resize, mean, std)
    test_view = replace(train_view, train=False)
    model.eval()

    @torch.no_grad()
    def features(x: Tensor) -> Tensor:
        return encode(model, x, layer, device, precision)

    probe_x, _ = next(iterate_views(dataset.test.take(torch.arange(2)), test_view, 2, device))
    in_dim = features(probe_x).shape[1]
    head = _new_linear(in_dim, dataset.num_classes, seed, device)
    t0 = time.perf_counter()
    bar = Progress("linear probe", epochs * len(dataset.train) + len(dataset.test), enabled=progress)

    def batches(epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        for x, y in iterate_views(
            dataset.train,
            train_view,
            protocol.batch_size,
            device,
            shuffle_seed=seed * 10_007 + epoch,
            workers=workers,
            decoder=decoder,
        ):
            bar.update(len(y), epoch=f"{epoch + 1}/{epochs}")
            yield features(x), y

    def epoch_done(epoch: int, loss: float) -> None:
        bar.update(0, loss=f"{loss:.4f}")
        log.info(f"linear probe epoch {epoch + 1}/{epochs}: loss {loss:.4f}")

    losses = train_head(head, protocol, epochs, batches, epoch_done)
    correct = 0
    with torch.no_grad():
        for x, y in iterate_views(dataset.test, test_view, 256, device, None, workers, decoder):
            correct += int((head(features(x)).argmax(1) == y).sum())
            bar.update(len(y))
    bar.close()
    return {
        "top1": 100.0 * correct / max(1, len(dataset.test)),
        "protocol": protocol.name,
        "epochs": epochs,
        "train_loss": losses,
        "feature_dim": in_dim,
        "seconds": time.perf_counter() - t0,
    }
