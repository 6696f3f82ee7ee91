"""Supervised pre-training on generators with categories (formula-driven supervised learning,
FractalDB / RCDB / VisualAtom): a linear classifier on the encoder's features, trained with
soft-target cross-entropy, label smoothing and Mixup or CutMix of the batch, as timm trains DeiT
(Kataoka et al., ACCV 2020; Touvron et al., ICML 2021).

The batch's mixing (Mixup or CutMix, λ ~ Beta(α, α), each image paired with the batch reversed)
is drawn from (seed, step, rank), so that a resumed run mixes as the uninterrupted one did. The
classifier is part of the method, not of the encoder: fine-tuning and probes start from the
encoder's features with a head of their own, as the FDSL papers do.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisevision.errors import NoisevisionError
from noisevision.methods.base import Method
from noisevision.methods.common import world


class Supervised(Method):
    supervised = True

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int = 0,
        smoothing: float = 0.1,
        mixup_alpha: float = 0.8,
        cutmix_alpha: float = 1.0,
        mix_prob: float = 1.0,
        switch_prob: float = 0.5,
        layer: str | None = None,
        seed: int = 0,
        bn_groups: int | None = None,
    ):
        super().__init__(encoder, bn_groups)
        if num_classes < 2:
            raise NoisevisionError(
                "supervised training needs data with 2 or more categories (a generator such as "
                "fractaldb, rcdb or visualatom)"
            )
        if not 0 <= smoothing < 1 or min(mixup_alpha, cutmix_alpha) < 0 or not 0 <= mix_prob <= 1:
            raise NoisevisionError("supervised: smoothing in [0, 1), alphas ≥ 0 and mix_prob in [0, 1]")
        self.num_classes, self.smoothing = num_classes, smoothing
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.mix_prob, self.switch_prob, self.seed = mix_prob, switch_prob, seed
        self.layer = layer or encoder.default_layer
        self.classifier = nn.Linear(self._feature_dim(encoder), num_classes)

    def _feature_dim(self, encoder: nn.Module) -> int:
        """Width of the features the classifier reads (one forward of a blank batch, in eval mode
        so that batch-norm statistics are left as they are)."""
        was_training = encoder.training
        size = int(getattr(encoder, "input_size", 32))
        encoder.eval()
        with torch.no_grad():
            dim = encoder.features(torch.zeros(2, 3, size, size), self.layer).shape[1]
        encoder.train(was_training)
        return int(dim)

    def forward(self, views: Tensor, labels: Tensor, step: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
        """One view per image [b, 3, s, s] and its category [b] -> (loss, logged terms)."""
        x, target, lam = self.mix(views, labels, step)
        logits = self.classifier(self.encoder.features(x, self.layer).flatten(1))  # [b, C]
        loss = torch.sum(-target * F.log_softmax(logits.float(), dim=1), dim=1).mean()
        top1 = (logits.argmax(1) == labels).float().mean()  # against the dominant label
        return loss, {"loss": loss.detach(), "top1": top1.detach(), "mix_lambda": lam.detach()}

    def soft_targets(self, labels: Tensor) -> Tensor:
        """Label-smoothed one-hot targets [b, C]."""
        off = self.smoothing / self.num_classes
        onehot = F.one_hot(labels, self.num_classes).float()
        return onehot * (1.0 - self.smoothing) + off

    def mix(self, x: Tensor, labels: Tensor, step: int) -> tuple[Tensor, Tensor, Tensor]:
        """Mixup or CutMix of the batch with itself reversed (timm's "batch" mode): the mixed
        views, their soft targets and the label weight λ of each image's own category."""
        rank, _ = world()
        rng = np.random.default_rng([self.seed, step, rank])  # the same draws on a resumed run
        target = self.soft_targets(labels)
        lam = 1.0
        use_mix = rng.random() < self.mix_prob and max(self.mixup_alpha, self.cutmix_alpha) > 0
        if use_mix:
            cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha == 0 or rng.random() < self.switch_prob)
            alpha = self.cutmix_alpha if cutmix else self.mixup_alpha
            lam = float(rng.beta(alpha, alpha))
            if cutmix:
                h, w = x.shape[-2:]
                cut = np.sqrt(1.0 - lam)
                ch, cw = int(h * cut), int(w * cut)
                cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
                y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
                x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
                x = x.clone()
                x[..., y0:y1, x0:x1] = x.flip(0)[..., y0:y1, x0:x1]
                lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually pasted
            else:
                x = x * lam + x.flip(0) * (1.0 - lam)
            target = target * lam + target.flip(0) * (1.0 - lam)
        return x, target, torch.tensor(lam, device=x.device)
