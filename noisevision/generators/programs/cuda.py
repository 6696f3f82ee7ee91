"""The programs' fields computed by fused Triton kernels on a GPU.

As tensor code, a batch of shader programs is tens of thousands of small operations (each operator
group of each slot runs its own chain of kernels, and grouping copies rows to the host): a GPU
spends its time launching them. Here each slot of the program tree is one kernel launch over
all images, where each image branches on its own operators like a fragment shader, and the
standardisation of each slot's field is one more (a row per program, summed in a fixed order, so
that an image's bytes do not depend on its batch). A CPPN is one launch for all its layers, each
pixel's hidden units a column of a [16, pixels] tile.

Images follow the tensor code up to float rounding (the kernels compute the same operations;
fused multiply-adds, the GPU's sin/cos/exp and the order of sums round differently), and an
image's bytes do not depend on its batch: every pixel is computed alone. `available(device)`
says whether the kernels run there (CUDA with Triton, or Triton's interpreter on a CPU for the
tests; NOISEVISION_TRITON=0 switches them off); the first use compares them with the tensor code
on a few programs.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from noisevision.device import triton_kernels_run
from noisevision.generators.programs.fields import (
    canvas_side,
    cppn_inputs,
    cppn_layers,
    cppn_outputs_tensor,
    pixel_centres,
    shader_field_tensor,
)
from noisevision.generators.programs.grammar import (
    CPPN_WIDTH,
    GLOBAL_DOMAIN_SLOTS,
    LEAF_DOMAIN_SLOTS,
    sample_program,
)
from noisevision.generators.programs.operators import COMBINATORS, DOMAIN_OPS, FIELD_OPS, Lattice, Op
from noisevision.logs import get_logger

log = get_logger(__name__)

_BLOCK = 256  # pixels per Triton program
_CPPN_BLOCK = 64  # (its hidden layer is a [16, block] tile)
_ROW_BLOCK = 1024  # values per step of a row's sums
_PAR = {"domain": 4, "field": 8, "combinator": 4}  # parameters per operator, padded


@functools.lru_cache(maxsize=1)
def _kernels():
    """(triton, the kernel module), imported on first use (Triton takes a while to load)."""
    import triton

    from noisevision.generators.programs import _triton

    return triton, _triton


_AVAILABLE: dict[str, bool] = {}


def available(device: torch.device) -> bool:
    """Whether the fused kernels render programs on `device` (see the module's docstring)."""
    return triton_kernels_run(device, "program", self_check, _AVAILABLE)


def self_check(device: torch.device, batch: int = 16, res: int = 32) -> bool:
    """The kernels' shader fields and CPPN outputs of a few programs agree with the tensor code's."""
    from noisevision.rng import Rng

    rng = Rng.for_indices("program-mixed", 0, torch.arange(batch, device=device))
    p = sample_program(rng, "mixed", 4)
    every = torch.arange(batch, device=device)
    shaders = (shader_field(p, every, res, 4) - shader_field_tensor(p, every, res, 4)).abs()
    cppns = (cppn_outputs(p, every, res) - cppn_outputs_tensor(p, every, res)).abs()
    close = bool(shaders.median() < 1e-3 and cppns.median() < 1e-3)
    if not close:
        log.warning("fused program kernels disagree with the tensor code here; using tensor code")
    return close


def _standardise(f: Tensor) -> None:
    """`fields.standardise` of each row of f [n, N] (rows contiguous, any row stride), in place."""
    _, k = _kernels()
    if len(f):
        k.standardise_kernel[(len(f),)](f, f.stride(0), f.shape[1], BLOCK=_ROW_BLOCK)


def _packed(ops: Tensor, u: Tensor, table: tuple[Op, ...], width: int) -> tuple[Tensor, Tensor]:
    """Operator ids (int32) and their parameters [..., width] (float32, in `Op.params` order) of
    every slot, from the slots' ids ops [...] and raw uniforms u [..., U]."""
    flat_ops, flat_u = ops.reshape(-1), u.reshape(-1, u.shape[-1])
    par = torch.zeros(flat_ops.shape[0], width, device=u.device)
    for k, op in enumerate(table):
        named = op.params(flat_u)
        if named:
            values = torch.cat([v.expand(-1, 1) for v in named.values()], 1)
            chosen = (flat_ops == k)[:, None]
            par[:, : values.shape[1]] = torch.where(chosen, values, par[:, : values.shape[1]])
    return flat_ops.to(torch.int32).contiguous(), par.contiguous()


def _slot_kinds(branch: Tensor) -> Tensor:
    """[n, S] int32: 0 for slots an image does not reach, 1 for its fields, 2 for its combinators."""
    n, slots = branch.shape
    reached = torch.zeros(n, slots, dtype=torch.bool, device=branch.device)
    reached[:, 0] = True
    first = 1
    while first < slots:  # level by level: a slot is reached when its parent is and branches
        level = torch.arange(first, min(2 * first + 1, slots), device=branch.device)
        parent = (level - 1) // 2
        reached[:, level] = reached[:, parent] & branch[:, parent]
        first = 2 * first + 1
    return torch.where(reached, torch.where(branch, 2, 1), 0).to(torch.int32).contiguous()


def _post_order(slots: int) -> list[tuple[int, int]]:
    """(slot, where its field goes) for the tree's slots, children before their parents.

    Depth first, a slot at level L (a left child, or the root: side 0; a right child: side 1) keeps
    its field in buffer 2L + side until its parent combines it: the right sibling's subtree only
    writes buffers of deeper levels. Memory: two fields per level, not one per slot.
    """
    order: list[tuple[int, int]] = []

    def visit(slot: int, level: int) -> None:
        if slot < slots:
            visit(2 * slot + 1, level + 1)
            visit(2 * slot + 2, level + 1)
            order.append((slot, 2 * level + (slot > 0 and slot % 2 == 0)))

    visit(0, 0)
    return order


def shader_field(p: dict[str, Tensor], rows: Tensor, res: int, depth: int) -> Tensor:
    """The standardised shader field [n, side²] of images `rows`, as `fields.shader_field_tensor`."""
    triton, k = _kernels()
    dev = rows.device
    side = canvas_side(res)
    npix, n, slots = side * side, len(rows), 2**depth - 1
    coord = pixel_centres(res, dev)
    vals, angs = p["values"][rows].contiguous(), p["angles"][rows].contiguous()
    gcos, gsin = (t.contiguous() for t in Lattice(vals, angs).gradients())
    g_ops, g_par = _packed(p["global_ops"][rows], p["global_u"][rows], DOMAIN_OPS, _PAR["domain"])
    l_ops, l_par = _packed(p["leaf_ops"][rows], p["leaf_u"][rows], DOMAIN_OPS, _PAR["domain"])
    f_ops, f_par = _packed(p["field_ops"][rows], p["field_u"][rows], FIELD_OPS, _PAR["field"])
    c_ops, c_par = _packed(p["comb_ops"][rows], p["comb_u"][rows], COMBINATORS, _PAR["combinator"])
    kind = _slot_kinds(p["branch"][rows])
    grid = (triton.cdiv(npix, _BLOCK), n)
    gx, gy = torch.empty(n, npix, device=dev), torch.empty(n, npix, device=dev)
    k.global_kernel[grid](
        coord, gx, gy, g_ops, g_par, vals, side, npix, SLOTS=GLOBAL_DOMAIN_SLOTS, BLOCK=_BLOCK
    )
    buf = torch.zeros(n, 2 * depth, npix, device=dev)  # two fields per level (see _post_order)
    for slot, reg in _post_order(slots):
        child = 2 * (reg // 2) + 2
        k.node_kernel[grid](
            buf,
            gx,
            gy,
            kind,
            l_ops,
            l_par,
            f_ops,
            f_par,
            c_ops,
            c_par,
            vals,
            angs,
            gcos,
            gsin,
            slot,
            reg,
            child,
            slots,
            2 * depth,
            npix,
            LEAF_SLOTS=LEAF_DOMAIN_SLOTS,
            BLOCK=_BLOCK,
        )
        _standardise(buf[:, reg])
    return buf[:, 0]


def cppn_outputs(p: dict[str, Tensor], rows: Tensor, res: int) -> Tensor:
    """The CPPN's three standardised outputs [n, 3, side²] of images `rows`, as
    `fields.cppn_outputs_tensor`."""
    triton, k = _kernels()
    dev = rows.device
    side = canvas_side(res)
    npix, n, width = side * side, len(rows), CPPN_WIDTH
    coord = pixel_centres(res, dev)
    c = cppn_inputs(p, rows)
    inp = torch.zeros(n, 16, device=dev)
    inp[:, :4] = torch.cat([c["scale"], torch.cos(c["turn"]), torch.sin(c["turn"]), c["k"]], 1)
    inp[:, 4:13] = torch.cat([c["fx"], c["fy"], c["phase"]], 1)[..., 0]
    net = cppn_layers(p, rows)
    out_w = torch.zeros(n, width, width, device=dev)
    out_w[:, :3] = net.out_weights
    out_b = torch.zeros(n, width, device=dev)
    out_b[:, :3] = net.out_biases
    out = torch.empty(n, 3, npix, device=dev)
    grid = (triton.cdiv(npix, _CPPN_BLOCK), n)
    k.cppn_kernel[grid](
        coord,
        out,
        inp,
        net.weights.contiguous(),
        net.biases.contiguous(),
        out_w,
        out_b,
        net.alive.contiguous(),
        net.acts.to(torch.int32).contiguous(),
        side,
        npix,
        LAYERS=net.acts.shape[1],
        WIDTH=width,
        BLOCK=_CPPN_BLOCK,
    )
    _standardise(out.view(n * 3, npix))
    return out
