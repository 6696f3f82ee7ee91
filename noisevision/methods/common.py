"""Pieces every method shares: distributed gathers, BN groups, the align/uniform measures.

Batch-norm groups. A BN layer normalises with the statistics of the samples it sees in one call.
`bn_groups` fixes how the *global* batch is split into such groups: under DDP with W ranks each
rank forwards bn_groups / W groups of its share, on one device the batch is forwarded in bn_groups
chunks. The arithmetic is then the same for any number of processes, which is what lets a
one-device run reproduce a multi-GPU recipe (and MoCo's shuffle-BN, SPEC §8) and what makes
DDP runs testable against single-process ones. `None` means one group per rank (plain DDP).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import Tensor, nn


def world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_groups(bn_groups: int | None) -> int:
    """How many BN groups this rank splits its share of the batch into."""
    _, size = world()
    if bn_groups is None:
        return 1
    if bn_groups < size or bn_groups % size:
        raise ValueError(f"bn_groups={bn_groups} must be a multiple of the number of processes ({size})")
    return bn_groups // size


@torch.no_grad()
def gather(x: Tensor) -> Tensor:
    """Concatenate every rank's x along dim 0, in rank order (no gradient)."""
    _, size = world()
    if size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward hands each rank the summed gradient of its own slice.

    When every rank computes the same loss L on the gathered batch, rank r's slice receives
    Σ_ranks ∂L/∂x_r = W·∂L/∂x_r; DDP's gradient averaging divides by W again, so the parameters
    get exactly ∂L/∂θ of the single-process computation on the whole batch.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.rank, ctx.size, ctx.n = *world(), x.shape[0]
        return gather(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate every rank's x (dim 0, rank order), differentiable; identity on one process."""
    return x if world()[1] == 1 else _GatherWithGrad.apply(x)


#: Default of `fused` for GPU batches (see `embed`).
FUSED_ON_GPU = True


def embed(encoder: nn.Module, x: Tensor, groups: int, fused: bool | None = None) -> Tensor:
    """encoder(x) with BN statistics computed separately in `groups` equal chunks: [B, D].

    `fused` (default: on a GPU) runs the whole batch through the encoder once, every BN layer
    normalising each group with its own statistics (`grouped_batch_norm`); otherwise the encoder
    runs once per chunk. The arithmetic is the same up to rounding; fused, a ResNet-50 with
    MoCo's 8 groups launches 8 times fewer kernels.
    """
    if groups == 1:
        return encoder(x)
    if x.shape[0] % groups:
        raise ValueError(f"batch of {x.shape[0]} does not split into {groups} BN groups")
    if (x.is_cuda and FUSED_ON_GPU) if fused is None else fused:
        with batch_norm_groups(encoder, groups):
            return encoder(x)
    return torch.cat([encoder(chunk) for chunk in x.chunk(groups)])


def embed_pair(encoder: nn.Module, v1: Tensor, v2: Tensor, groups: int,
               fused: bool | None = None) -> tuple[Tensor, Tensor]:
    """Both views through one encoder call per group (views of a group share BN statistics, as in
    the align/uniform reference code that forwards cat(x, y)): ([B, D], [B, D]).

    `fused` as in `embed`: one call, group g being (v1's chunk g, v2's chunk g).
    """
    if groups > 1 and ((v1.is_cuda and FUSED_ON_GPU) if fused is None else fused):
        pairs = torch.stack([v1.unflatten(0, (groups, -1)), v2.unflatten(0, (groups, -1))], 1)
        z = embed(encoder, pairs.flatten(0, 2), groups, fused=True)  # [G·2·b, D]
        z = z.unflatten(0, (groups, 2, -1))
        return z[:, 0].flatten(0, 1), z[:, 1].flatten(0, 1)
    z1, z2 = [], []
    for a, b in zip(v1.chunk(groups), v2.chunk(groups)):
        za, zb = encoder(torch.cat([a, b])).split([len(a), len(b)])
        z1.append(za)
        z2.append(zb)
    return torch.cat(z1), torch.cat(z2)


def grouped_batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: Tensor, groups: int) -> Tensor:
    """`bn` in training mode on x [G·n, C, …] as if called once per consecutive group of n:
    each group normalised with its own (biased) variance and mean, and the running statistics
    updated as by G calls in a row. Statistics in fp32 whatever the input's dtype."""
    if not bn.training or groups == 1:
        return type(bn).forward(bn, x)
    c = x.shape[1]
    xg = x.unflatten(0, (groups, -1)).float()  # [G, n, C, …]
    dims = (1, *range(3, xg.dim()))
    var, mean = torch.var_mean(xg, dim=dims, correction=0, keepdim=True)  # [G, 1, C, 1…]
    shape = (1, 1, c) + (1,) * (x.dim() - 2)
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.view(shape)
    shift = -mean * scale if bn.bias is None else bn.bias.view(shape) - mean * scale
    y = torch.addcmul(shift, xg, scale).to(x.dtype).flatten(0, 1)
    if bn.training and bn.track_running_stats and bn.running_mean is not None:
        with torch.no_grad():
            count = xg[0].numel() // c
            _update_running(bn, mean.view(groups, c), var.view(groups, c) * (count / max(count - 1, 1)))
    return y


def _update_running(bn: nn.modules.batchnorm._BatchNorm, means: Tensor, variances: Tensor) -> None:
    """G updates in a row, r ← (1 − m)·r + m·s_g, in closed form:
    r_G = (1 − m)^G·r + Σ_g m·(1 − m)^(G−1−g)·s_g."""
    g = means.shape[0]
    bn.num_batches_tracked.add_(g)
    m = bn.momentum
    if m is None:  # cumulative average: one group at a time
        for k in range(g):
            n = float(bn.num_batches_tracked - g + k + 1)
            bn.running_mean.mul_(1 - 1 / n).add_(means[k] / n)
            bn.running_var.mul_(1 - 1 / n).add_(variances[k] / n)
        return
    w = m * (1 - m) ** torch.arange(g - 1, -1, -1, device=means.device, dtype=means.dtype)
    bn.running_mean.mul_((1 - m) ** g).add_((w[:, None] * means).sum(0).to(bn.running_mean.dtype))
    bn.running_var.mul_((1 - m) ** g).add_((w[:, None] * variances).sum(0).to(bn.running_var.dtype))


@contextmanager
def batch_norm_groups(encoder: nn.Module, groups: int) -> Iterator[None]:
    """Inside the block, every BN layer of `encoder` normalises `groups` groups of its batch
    separately (`grouped_batch_norm`)."""
    layers = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in layers:
        bn.forward = functools.partial(grouped_batch_norm, bn, groups=groups)
    try:
        yield
    finally:
        for bn in layers:
            del bn.forward


def align_loss(x: Tensor, y: Tensor, alpha: float = 2.0) -> Tensor:
    """Wang & Isola alignment: mean ‖x_i − y_i‖^α over positive pairs (SPEC §7)."""
    return (x - y).norm(p=2, dim=1).pow(alpha).mean()


def uniform_loss(x: Tensor, t: float = 2.0) -> Tensor:
    """Wang & Isola uniformity: log mean_{i≠j} exp(−t‖x_i − x_j‖²) (SPEC §7)."""
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()


@torch.no_grad()
def align_uniform_metrics(z1: Tensor, z2: Tensor) -> dict[str, Tensor]:
    """The two representation-quality measures logged for every method (lower is better)."""
    z1, z2 = nn.functional.normalize(z1.float(), dim=1), nn.functional.normalize(z2.float(), dim=1)
    return {"align": align_loss(z1, z2), "uniform": (uniform_loss(z1) + uniform_loss(z2)) / 2}
