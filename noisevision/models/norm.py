"""Batch norm over groups of the batch, in one forward pass of the network.

MoCo's shuffle-BN and multi-GPU recipes normalise each device's share of the batch with its own
statistics (`methods.common`: BN groups). Forwarding the batch group by group does that on one
device, but runs every convolution on small batches, which keeps a GPU waiting on launches. These
batch norms instead take a `groups` setting (`bn_groups`): the network runs once on the whole
batch and only the normalisation goes chunk by chunk, with the same statistics and the same
updates of the running averages (one chunk after another) as separate passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


class _Grouped:
    """Mixin for a batch norm class: in training with `groups` > 1, each of `groups` equal chunks
    of the batch is normalised with its own statistics."""

    groups: int = 1

    def forward(self, x: Tensor) -> Tensor:
        norm = super().forward  # the batch norm class's own
        if self.groups == 1 or not self.training:
            return norm(x)
        return torch.cat([norm(chunk) for chunk in x.chunk(self.groups)])


class GroupBatchNorm1d(_Grouped, nn.BatchNorm1d):
    """nn.BatchNorm1d with BN groups (same parameters, buffers and state-dict keys)."""


class GroupBatchNorm2d(_Grouped, nn.BatchNorm2d):
    """nn.BatchNorm2d with BN groups (same parameters, buffers and state-dict keys)."""


@contextmanager
def bn_groups(model: nn.Module, groups: int) -> Iterator[bool]:
    """Inside the block, `model`'s batch norms normalise `groups` chunks of a batch separately.

    Yields whether they do: False (nothing changed) for groups 1, or when some batch norm of the
    model is another kind (e.g. converted to SyncBatchNorm); the caller then forwards the chunks
    one by one.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if groups == 1 or not all(isinstance(m, _Grouped) for m in norms):
        yield False
        return
    for m in norms:
        m.groups = groups
    try:
        yield True
    finally:
        for m in norms:
            m.groups = 1
