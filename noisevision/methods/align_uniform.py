"""Alignment + uniformity (Wang & Isola, ICML 2020): the small-scale method (arXiv 2005.10242).

loss = align_w · align(x, y) + unif_w · (uniform(x) + uniform(y)) / 2 on the L2-normalised
embeddings x, y of the two views. Both terms are computed over the global batch (gathered from all
ranks with gradient), so a DDP run optimises the same objective as one process.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from noisevision.methods.base import Method
from noisevision.methods.common import align_loss, embed_pair, gather_with_grad, uniform_loss
from noisevision.precision import full_precision


class AlignUniform(Method):
    def __init__(
        self,
        encoder: nn.Module,
        align_alpha: float = 2.0,
        unif_t: float = 2.0,
        align_w: float = 1.0,
        unif_w: float = 1.0,
        bn_groups: int | None = None,
    ):
        super().__init__(encoder, bn_groups)
        self.align_alpha, self.unif_t = align_alpha, unif_t
        self.align_w, self.unif_w = align_w, unif_w

    def forward(self, v1: Tensor, v2: Tensor, step: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = embed_pair(self.encoder, v1, v2, self.groups)  # [b, D] each, this rank's share
        with full_precision(x):  # exp(−t‖x_i − x_j‖²) needs fp32 under a bf16/fp16 autocast
            x = gather_with_grad(F.normalize(x.float(), dim=1))  # [B, D], the global batch
            y = gather_with_grad(F.normalize(y.float(), dim=1))
            align = align_loss(x, y, self.align_alpha)
            unif = (uniform_loss(x, self.unif_t) + uniform_loss(y, self.unif_t)) / 2
            loss = self.align_w * align + self.unif_w * unif
        return loss, {"loss": loss.detach(), "align": align.detach(), "uniform": unif.detach()}
