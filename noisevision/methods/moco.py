"""MoCo v2 (He et al. CVPR 2020; Chen et al. 2020): the large-scale method (arXiv 2003.04297).

A query encoder (trained) and a key encoder (exponential moving average of it), a queue of the
last K keys as negatives, InfoNCE with temperature T. The MLP head of v2 is part of the encoder
(build ResNets with head="mlp").

Shuffle-BN: keys are computed on a shuffled batch so that a query and its key never share BN
statistics (which would leak the positive pair). The original shuffles across GPUs; here the same
thing is written once for any number of processes: gather the global key batch, permute it with a
permutation every rank derives from (seed, step), forward this rank's slice of it in its BN groups,
gather and un-permute. On one device with bn_groups = G this is exactly a G-GPU MoCo.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from noisevision.errors import NoisevisionError
from noisevision.methods.base import Method
from noisevision.methods.common import align_uniform_metrics, embed, gather, world
from noisevision.precision import full_precision
from noisevision.rng import mix64_int


class MoCo(Method):
    def __init__(
        self,
        encoder: nn.Module,
        queue_size: int = 65536,
        momentum: float = 0.999,
        temperature: float = 0.2,
        bn_groups: int | None = None,
        seed: int = 0,
    ):
        super().__init__(encoder, bn_groups)
        self.queue_size, self.momentum, self.temperature = queue_size, momentum, temperature
        self.seed = seed
        self.key_encoder = copy.deepcopy(encoder)
        for p in self.key_encoder.parameters():
            p.requires_grad_(False)
        dim = encoder.out_dim
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size), dim=0))  # [D, K]
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def check_batch(self, batch_size: int) -> None:
        super().check_batch(batch_size)
        if self.queue_size % batch_size:  # each step replaces a whole batch of keys
            raise NoisevisionError(
                f"MoCo's queue ({self.queue_size}) must be a multiple of the batch size ({batch_size})"
            )

    @torch.no_grad()
    def _momentum_update_key_encoder(self) -> None:
        for q, k in zip(self.encoder.parameters(), self.key_encoder.parameters()):
            k.mul_(self.momentum).add_(q.detach(), alpha=1.0 - self.momentum)

    @torch.no_grad()
    def _shuffled_keys(self, v2: Tensor, step: int) -> Tensor:
        """Keys [b, D] for this rank's views v2 [b, ...], computed on a globally shuffled batch."""
        rank, _ = world()
        b = v2.shape[0]
        all_v2 = gather(v2)  # [B, ...]
        gen = torch.Generator().manual_seed(mix64_int(self.seed * 1_000_003 + step) & 0x7FFFFFFF)
        perm = torch.randperm(all_v2.shape[0], generator=gen).to(v2.device)  # same on every rank
        mine = all_v2[perm[rank * b : (rank + 1) * b]]
        k = F.normalize(embed(self.key_encoder, mine, self.groups).float(), dim=1)
        k_shuffled = gather(k)  # [B, D] in permuted order
        k_all = torch.empty_like(k_shuffled)
        k_all[perm] = k_shuffled  # undo the shuffle
        return k_all

    @torch.no_grad()
    def _dequeue_and_enqueue(self, keys: Tensor) -> None:
        """keys [B, D] (global batch) replace the oldest B columns of the queue."""
        n, ptr = keys.shape[0], int(self.queue_ptr)
        if self.queue_size % n:
            raise ValueError(f"MoCo queue size {self.queue_size} must be a multiple of the batch size {n}")
        self.queue[:, ptr : ptr + n] = keys.T
        self.queue_ptr.fill_((ptr + n) % self.queue_size)

    def forward(self, v1: Tensor, v2: Tensor, step: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
        rank, _ = world()
        b = v1.shape[0]
        q = embed(self.encoder, v1, self.groups)  # queries: [b, D]
        self._momentum_update_key_encoder()
        k_all = self._shuffled_keys(v2, step)  # [B, D]
        k = k_all[rank * b : (rank + 1) * b]  # this rank's keys: [b, D]
        with full_precision(q):  # logits / T against 65k negatives in fp32 under bf16/fp16 autocast
            q = F.normalize(q.float(), dim=1)
            l_pos = (q * k).sum(dim=1, keepdim=True)  # [b, 1]
            l_neg = q @ self.queue.clone().detach()  # [b, K]
            logits = torch.cat([l_pos, l_neg], dim=1) / self.temperature
            labels = torch.zeros(b, dtype=torch.long, device=q.device)  # the positive is column 0
            loss = F.cross_entropy(logits, labels)
        self._dequeue_and_enqueue(k_all)
        return loss, {"loss": loss.detach(), **align_uniform_metrics(q, k)}
