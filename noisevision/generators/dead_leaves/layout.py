"""Which shape is seen at every pixel, computed directly instead of painting shapes one by one.

The colour seen at a pixel is that of the *last* shape covering it among shapes 0 .. n_stop-1, where
n_stop = min(max_shapes, 1 + max over pixels of the *first* shape covering that pixel): painting
stops at the shape that covers the last black pixel. Both reductions are range updates on rows:

* every shape is convex, so it covers one run of pixels [x0, x1] per image row it touches;
* a run updates a sparse table with two writes (the two power-of-two blocks that cover it), done
  for all runs of a chunk of shapes by `scatter_reduce`: amin for "first cover", amax for "last
  cover" (both exact integer reductions, so the result does not depend on write order);
* pushing the table down (log2(res) max/min passes) gives the per-pixel answer.

The work is O(rows of the shapes) + O(res² log res) instead of O(area of the shapes). Shapes are
drawn in blocks of `BLOCK` from per-block random keys and processed in chunks until every image of
the batch is covered, so shapes beyond n_stop are mostly never drawn.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from noisevision.generators.dead_leaves.shapes import MAX_SHAPES, Leaves, Runs, leaf_runs

#: Shapes drawn per random key: shape j's parameters come from block j // BLOCK of the image's key.
#: Part of the definition of every image: changing it changes the images.
BLOCK = 256
#: Chunk sizes, in blocks, for the successive passes over a batch (then the last size repeats).
#: The first pass covers most images (n_stop is ≈1,300–1,600 at any resolution).
CHUNK_SCHEDULE = (6, 2)


# --------------------------------------------------------------------------------------- sparse table
def _levels(res: int) -> int:
    return res.bit_length()  # block lengths 1, 2, 4, … <= res


def _run_blocks(runs: Runs, image: Tensor, res: int) -> tuple[Tensor, Tensor, Tensor]:
    """Table positions of the two power-of-two blocks covering each run, and which runs are
    non-empty: int64 [R], int64 [R], bool [R]. `image` (float64 [R]) is each run's image.

    Table layout: [A, levels, res, res]; level k at column x stands for columns x .. x + 2^k - 1.
    """
    valid = runs.x0 <= runs.x1
    x0 = runs.x0.clamp(max=res - 1)
    length = (runs.x1 - x0 + 1).clamp_(min=1)
    _, exponent = torch.frexp(length)  # length = m·2^e, m in [0.5, 1): level = e - 1
    level = (exponent - 1).to(torch.float64)
    base = ((image * _levels(res) + level) * res + runs.y) * res + x0
    second = base + (length - torch.exp2(level))
    return base.to(torch.int64), second.to(torch.int64), valid


def _push_down(table: Tensor, reduce: str) -> Tensor:
    """Resolve a sparse table [A, levels, res, res] in place; level 0 then holds each pixel's value.

    Level k at column x covers columns x .. x + 2^k - 1, i.e. level k-1 at x and at x + 2^(k-1).
    """
    op = torch.minimum if reduce == "amin" else torch.maximum
    res = table.shape[-1]
    for level in range(table.shape[1] - 1, 0, -1):
        half = 1 << (level - 1)
        upper, lower = table[:, level], table[:, level - 1]
        op(lower, upper, out=lower)
        tail = lower[..., half:]
        op(tail, upper[..., : res - half], out=tail)
    return table[:, 0]


# --------------------------------------------------------------------------------------- layout
DrawFn = Callable[[Tensor, int, int], Leaves]


def leaf_map(
    draw: DrawFn,
    batch: int,
    res: int,
    max_shapes: int = MAX_SHAPES,
    device: torch.device | str = "cpu",
    slots: int = 3,
    circles: bool | None = None,
    chunks: tuple[int, ...] = CHUNK_SCHEDULE,
) -> tuple[Tensor, Tensor]:
    """Which shape is seen at every pixel, and how many shapes were painted.

    `draw(images, start, count)` returns the `Leaves` [len(images), count] of shapes
    start .. start+count-1 of those images (indices into the batch). Returns
    visible: int64 [B, res, res], the index of the last shape covering each pixel among the first
    n_stop (-1: never covered, only possible when the cap is hit), and n_stop: int64 [B].
    """
    device = torch.device(device)
    # int16 halves the CPU's table traffic; CUDA has native 32-bit atomics for scatter_reduce.
    small = device.type == "cpu" and max_shapes < 2**15 - 1
    dtype = torch.int16 if small else torch.int32
    none = torch.iinfo(dtype).max  # "not covered yet" in the first-cover table
    shape = (batch, _levels(res), res, res)
    first = torch.full(shape, none, dtype=dtype, device=device)  # first cover (amin)
    last = torch.full(shape, -1, dtype=dtype, device=device)  # last cover (amax)
    visible = torch.full((batch, res, res), -1, dtype=torch.int64, device=device)
    n_stop = torch.full((batch,), max_shapes, dtype=torch.int64, device=device)
    active = torch.arange(batch, device=device)
    start, step = 0, 0
    while active.numel() and start < max_shapes:
        count = min(chunks[min(step, len(chunks) - 1)] * BLOCK, max_shapes - start)
        runs = leaf_runs(draw(active, start, count), res, slots, circles)
        image = torch.div(runs.shape, count, rounding_mode="floor")
        index = runs.shape - image * count + start  # [R] shape index in the image
        p0, p1, valid = _run_blocks(runs, image.to(torch.float64), res)
        val = torch.where(valid, index, none).to(dtype)
        for p in (p0, p1):
            first.view(-1).scatter_reduce_(0, p, val, "amin")
        cover = _push_down(first, "amin")  # [A, res, res]
        covered = (cover != none).flatten(1).all(1)
        stop = torch.where(covered, cover.flatten(1).amax(1).to(torch.int64) + 1, max_shapes)
        val = torch.where(valid & (index < stop[image]), index, -1).to(dtype)
        for p in (p0, p1):
            last.view(-1).scatter_reduce_(0, p, val, "amax")
        start += count
        step += 1
        done = covered | (start >= max_shapes)
        if bool(done.any()):
            ids = active[done]
            visible[ids] = _push_down(last[done], "amax").to(torch.int64)
            n_stop[ids] = stop[done]
            active, first, last = active[~done], first[~done], last[~done]
    return visible, n_stop
