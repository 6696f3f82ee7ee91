"""SimCLR's NT-Xent loss (Chen et al., ICML 2020, https://arxiv.org/abs/2002.05709).

Over the global batch of 2N normalised embeddings, each view's positive is the other view of the
same image and its negatives the 2N − 2 other embeddings; cross-entropy of cosine similarities / T.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisevision.methods.base import Method
from noisevision.methods.common import align_uniform_metrics, embed_pair, gather_with_grad
from noisevision.precision import full_precision


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """z1, z2: unit-norm [N, D] -> mean NT-Xent loss over the 2N anchors."""
    n = z1.shape[0]
    z = torch.cat([z1, z2])  # [2N, D]
    sim = z @ z.T / temperature  # [2N, 2N]
    sim.fill_diagonal_(float("-inf"))  # an embedding is not its own negative
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


class SimCLR(Method):
    def __init__(self, encoder: nn.Module, temperature: float = 0.5, bn_groups: int | None = None):
        super().__init__(encoder, bn_groups)
        self.temperature = temperature

    def forward(self, v1: Tensor, v2: Tensor, step: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
        x, y = embed_pair(self.encoder, v1, v2, self.groups)
        with full_precision(x):  # similarities / T in fp32 under a bf16/fp16 autocast
            x = gather_with_grad(F.normalize(x.float(), dim=1))  # [B, D]
            y = gather_with_grad(F.normalize(y.float(), dim=1))
            loss = nt_xent(x, y, self.temperature)
        return loss, {"loss": loss.detach(), **align_uniform_metrics(x, y)}
