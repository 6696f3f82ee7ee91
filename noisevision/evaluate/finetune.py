"""Fine-tuning evaluation: the whole network plus a new linear head trained on the target set.

The formula-driven supervised learning (FDSL) papers judge a pre-trained network by fine-tuning
it, not by a frozen probe. Their small-set recipe (VisualAtom / OFDB / 1p-frac `finetune.sh`):

    SGD lr 0.01, momentum 0.9, weight decay 1e-4; linear warm-up, then cosine down to 1e-5
    random resized crop (0.08–1) + horizontal flip, RandAugment (2 ops, magnitude 9)
    Mixup 0.8 / CutMix 1.0 with label smoothing 0.1 (timm's Mixup, SoftTargetCrossEntropy)
    batch 768, 1,000 epochs, warm-up 10 epochs; the pre-trained projection head is dropped

The test split is scored after every epoch; the result keeps every epoch's top-1, the last and the
best. FDSL papers report the best fine-tuning epoch, so "top1" is the best one ("reported" says
so); the last is beside it. Weight decay skips biases, norms and ViT tokens (1-d tensors and
timm's `no_weight_decay()`), as timm's optimiser factory does. The caller's model is not changed
(a copy is trained). Deterministic for a seed: the order, views, RandAugment draws and Mixup
draws of every batch come from it.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from noisevision.data.eval_datasets import EvalDataset
from noisevision.evaluate.views import View, iterate_views
from noisevision.logs import get_logger
from noisevision.precision import autocast, grad_scaler
from noisevision.progress import Progress

log = get_logger(__name__)


@dataclass(frozen=True)
class FinetuneRecipe:
    """The FDSL small-set fine-tuning recipe; `epochs` and `batch_size` are the papers' (a CPU run
    takes its own: ProbeSettings.finetune_epochs / finetune_batch_size)."""

    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    min_lr: float = 1e-5  # the cosine's floor
    warmup_epochs: int = 10  # of 1,000 ...
    warmup_share: float = 0.1  # ... and at most this share of a shorter run
    smoothing: float = 0.1
    mixup: float = 0.8  # Beta(α, α) for Mixup
    cutmix: float = 1.0  # Beta(α, α) for CutMix (timm switches between them with p 0.5)
    randaugment_ops: int = 2
    randaugment_magnitude: int = 9
    crop_scale: tuple[float, float] = (0.08, 1.0)
    epochs: int = 1000
    batch_size: int = 768


FDSL = FinetuneRecipe()
_UNIT = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # no normalisation: train views in [0, 1]


class Classifier(nn.Module):
    """The encoder's `layer` features [B, F] -> a new linear head -> logits [B, C]."""

    def __init__(self, encoder: nn.Module, layer: str, head: nn.Linear):
        super().__init__()
        self.encoder, self.layer, self.head = encoder, layer, head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder.features(x, self.layer))


def lr_at(step: int, total: int, warmup: int, recipe: FinetuneRecipe, lr: float) -> float:
    """Learning rate of optimisation step `step` (0-based) of `total`: linear warm-up over
    `warmup` steps, then a cosine from `lr` down to the recipe's floor."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup - 1))  # the last step at the floor
    return recipe.min_lr + (lr - recipe.min_lr) * 0.5 * (1 + math.cos(math.pi * t))


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on the weight matrices and kernels only (not biases, norms, ViT tokens)."""
    skip: set[str] = set()
    for name, module in model.named_modules():
        if hasattr(module, "no_weight_decay"):  # timm models name their tokens
            skip |= {f"{name}.{n}" if name else n for n in module.no_weight_decay()}
    decay, rest = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (rest if p.ndim <= 1 or name in skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


@contextmanager
def _seeded(key: int) -> Iterator[None]:
    """torch's CPU generator and numpy's global one (timm's Mixup draws from it) seeded with
    `key` inside the block, both restored after it."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(key)
        np.random.seed(key % 2**32)
        try:
            yield
        finally:
            np.random.set_state(state)


def _randaugment(x: Tensor, ops: Any, mean: Tensor, std: Tensor) -> Tensor:
    """[0, 1] float [B, 3, s, s] -> RandAugment per image (on uint8, as torchvision's ops expect)
    -> normalised float [B, 3, s, s]."""
    images = x.mul(255).round_().clamp_(0, 255).to(torch.uint8)
    images = torch.stack([ops(img) for img in images])
    return (images.float().div_(255) - mean) / std


@torch.no_grad()
def _score(
    classifier: nn.Module, batches: Iterator[tuple[Tensor, Tensor]], precision: str
) -> tuple[int, int]:
    """(correct, seen) of the classifier's argmax over `batches`."""
    classifier.eval()
    correct = seen = 0
    for x, y in batches:
        with autocast(x.device, precision):
            correct += int((classifier(x).argmax(1) == y).sum())
        seen += len(y)
    return correct, seen


def finetune(
    model: nn.Module,
    dataset: EvalDataset,
    layer: str,
    device: torch.device,
    stats: tuple[tuple[float, ...], tuple[float, ...]],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    recipe: FinetuneRecipe = FDSL,
    test_resize: float = 70 / 64,
    workers: int = 0,
    precision: str = "fp32",
    decoder: str = "pil",
    progress: bool = False,
) -> dict[str, Any]:
    """Fine-tune a copy of `model` (all its weights) with a new linear head on `dataset.train`,
    scoring `dataset.test` after every epoch; inputs normalised with `stats` (mean, std).

    Returns {"top1" (the best epoch's), "reported": "best", "best_top1", "best_epoch" (1-based),
    "last_top1", "per_epoch_top1", "train_loss", the settings, "seconds", "seconds_per_epoch"}.
    """
    from timm.data import Mixup
    from timm.loss import SoftTargetCrossEntropy
    from torchvision.transforms import v2

    t0 = time.perf_counter()
    size = int(model.input_size)
    mean, std = (torch.tensor(s, device=device).view(1, 3, 1, 1) for s in stats)
    train_view = View(size, True, recipe.crop_scale, test_resize, *_UNIT)
    test_view = View(size, False, recipe.crop_scale, test_resize, *stats)
    net = copy.deepcopy(model).to(device).eval()
    probe_x, _ = next(iterate_views(dataset.test.take(torch.arange(2)), test_view, 2, device))
    with torch.no_grad():
        feature_dim = net.features(probe_x, layer).shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(feature_dim, dataset.num_classes)
    classifier = Classifier(net, layer, head).to(device)
    opt = torch.optim.SGD(_param_groups(classifier, recipe.weight_decay), lr=lr, momentum=recipe.momentum)
    scaler = grad_scaler(device, precision)
    n_train = len(dataset.train)
    batch = min(batch_size, n_train)
    steps_per_epoch = math.ceil(n_train / batch)
    total = epochs * steps_per_epoch
    warmup = round(min(recipe.warmup_epochs, recipe.warmup_share * epochs) * steps_per_epoch)
    mix = Mixup(
        mixup_alpha=recipe.mixup,
        cutmix_alpha=recipe.cutmix,
        label_smoothing=recipe.smoothing,
        num_classes=dataset.num_classes,
    )
    criterion = SoftTargetCrossEntropy()
    ops = v2.RandAugment(recipe.randaugment_ops, recipe.randaugment_magnitude)
    bar = Progress("fine-tuning", epochs * (n_train + len(dataset.test)), enabled=progress)
    losses: list[float] = []
    accs: list[float] = []
    step = 0
    for epoch in range(epochs):
        classifier.train()
        loss_sum, seen = 0.0, 0
        views = iterate_views(
            dataset.train, train_view, batch, device, seed * 10_007 + epoch, workers, decoder
        )
        for b, (x, y) in enumerate(views):
            bar.update(len(y), epoch=f"{epoch + 1}/{epochs}")
            x, y = x[: len(y) // 2 * 2], y[: len(y) // 2 * 2]  # Mixup pairs the batch with its reverse
            if len(y) < 2:
                continue
            with _seeded(((seed * 1_000_003 + epoch) * 1_000_003 + b) % 2**63):
                x = _randaugment(x, ops, mean, std)
                x, target = mix(x, y)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, warmup, recipe, lr)
            with autocast(device, precision):
                logits = classifier(x)
            loss = criterion(logits.float(), target)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            step += 1
            loss_sum += float(loss.detach()) * len(y)
            seen += len(y)
        losses.append(loss_sum / seen if seen else math.nan)
        tests = iterate_views(dataset.test, test_view, 256, device, None, workers, decoder)
        correct, count = _score(classifier, tests, precision)
        bar.update(count, loss=f"{losses[-1]:.4f}", top1=f"{100.0 * correct / max(1, count):.2f}")
        accs.append(100.0 * correct / max(1, count))
        log.info(f"fine-tuning epoch {epoch + 1}/{epochs}: loss {losses[-1]:.4f}, test top-1 {accs[-1]:.2f}")
    bar.close()
    best = max(range(epochs), key=lambda e: (accs[e], -e))  # the first of equal bests
    seconds = time.perf_counter() - t0
    return {
        "top1": accs[best],
        "reported": "best",
        "best_top1": accs[best],
        "best_epoch": best + 1,
        "last_top1": accs[-1],
        "per_epoch_top1": accs,
        "train_loss": losses,
        "epochs": epochs,
        "batch_size": batch,
        "lr": lr,
        "recipe": {k: v for k, v in asdict(recipe).items() if k not in ("lr", "epochs", "batch_size")},
        "feature_dim": feature_dim,
        "seconds": seconds,
        "seconds_per_epoch": seconds / epochs,
    }
