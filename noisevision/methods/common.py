"""Pieces every method shares: distributed gathers, BN groups, the align/uniform measures.

Batch-norm groups. A BN layer normalises with the statistics of the samples it sees in one call.
`bn_groups` fixes how the *global* batch is split into such groups: under DDP with W ranks each
rank normalises bn_groups / W groups of its share, on one device bn_groups chunks of the batch (in
one pass where the encoder's batch norms take groups, models.norm; else one pass per chunk). The
arithmetic is then the same for any number of processes, which is what lets a
one-device run reproduce a multi-GPU recipe (and MoCo's shuffle-BN, as the paper's large scale) and what makes
DDP runs testable against single-process ones. `None` means one group per rank (plain DDP).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from noisevision.models.norm import bn_groups


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


def embed(encoder: nn.Module, x: Tensor, groups: int) -> Tensor:
    """encoder(x) with BN statistics computed separately in `groups` equal chunks: [B, D].

    On a GPU, one pass over the whole batch where the encoder's batch norms take groups
    (models.norm); else one pass per chunk."""
    if groups == 1:
        return encoder(x)
    if x.shape[0] % groups:
        raise ValueError(f"batch of {x.shape[0]} does not split into {groups} BN groups")
    with bn_groups(encoder, groups if one_pass_wins(x) else 1) as one_pass:
        if one_pass:
            return encoder(x)
    return torch.cat([encoder(chunk) for chunk in x.chunk(groups)])


def one_pass_wins(x: Tensor) -> bool:
    """Whether BN groups run in one pass over batch x: on a GPU, where small batches leave it
    waiting on kernel launches. On a CPU one pass per group measured faster (docs: benchmarks,
    BN groups on a CPU)."""
    return x.device.type == "cuda"


def embed_pair(encoder: nn.Module, v1: Tensor, v2: Tensor, groups: int) -> tuple[Tensor, Tensor]:
    """Both views, with BN statistics shared by the two views of a group (as in the align/uniform
    reference code that forwards cat(x, y)): ([B, D], [B, D])."""
    if groups > 1 and len(v1) == len(v2) and len(v1) % groups == 0 and one_pass_wins(v1):
        with bn_groups(encoder, groups) as one_pass:
            if one_pass:  # [a_1, b_1, a_2, b_2, …] in one pass, each a_g, b_g a BN group
                pairs = [torch.cat(pair) for pair in zip(v1.chunk(groups), v2.chunk(groups))]
                z = encoder(torch.cat(pairs)).view(groups, 2, len(v1) // groups, -1)
                return z[:, 0].flatten(0, 1), z[:, 1].flatten(0, 1)
    z1, z2 = [], []
    for a, b in zip(v1.chunk(groups), v2.chunk(groups)):
        za, zb = encoder(torch.cat([a, b])).split([len(a), len(b)])
        z1.append(za)
        z2.append(zb)
    return torch.cat(z1), torch.cat(z2)


def align_loss(x: Tensor, y: Tensor, alpha: float = 2.0) -> Tensor:
    """Wang & Isola alignment: mean ‖x_i − y_i‖^α over positive pairs."""
    return (x - y).norm(p=2, dim=1).pow(alpha).mean()


def uniform_loss(x: Tensor, t: float = 2.0) -> Tensor:
    """Wang & Isola uniformity: log mean_{i≠j} exp(−t‖x_i − x_j‖²)."""
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()


@torch.no_grad()
def align_uniform_metrics(z1: Tensor, z2: Tensor) -> dict[str, Tensor]:
    """The two representation-quality measures logged for every method (lower is better)."""
    z1, z2 = nn.functional.normalize(z1.float(), dim=1), nn.functional.normalize(z2.float(), dim=1)
    return {"align": align_loss(z1, z2), "uniform": (uniform_loss(z1) + uniform_loss(z2)) / 2}
