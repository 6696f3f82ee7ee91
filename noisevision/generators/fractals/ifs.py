"""The chaos game of an iterated function system, batched, and its points drawn on a canvas.

The chaos game runs batched on the device: WALKERS chains per image advance together (BURN_IN
steps, then the recorded ones), each step one gather of the chosen maps. Points are drawn into
the canvas with integer additions, which are exact and order-free on every device. FractalDB's
patch drawing stamps a random non-empty 3×3 mask at every point (`stamp_patches`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from noisevision.generators.registry import order_free
from noisevision.rng import Rng

WALKERS = 1000
BURN_IN = 20  # steps before a walker is on the attractor (maps contract at least ~0.9 per step)


def chaos_game(rng: Rng, maps: Tensor, offsets: Tensor, probs: Tensor, points: int) -> tuple[Tensor, Tensor]:
    """Sample the attractor of an IFS per image.

    maps [B, N, 2, 2], offsets [B, N, 2], probs [B, N] (rows sum to 1; unused maps 0).
    Returns points [B, P, 2] and the map index [B, P] that produced each point. WALKERS chains
    per image run in parallel from the origin; the first BURN_IN steps are dropped.
    """
    b, n = probs.shape
    steps = -(-points // WALKERS)
    cdf = probs.cumsum(1)
    u = rng.uniform(WALKERS * (BURN_IN + steps)) * cdf[:, -1:]  # scaled: rounding-safe
    pick = torch.searchsorted(cdf, u).clamp_max(n - 1).view(b, BURN_IN + steps, WALKERS)
    a, bb, c, d = maps.flatten(2).unbind(-1)  # each [B, N]: x' = a·x + b·y + e, y' = c·x + d·y + f
    e, f = offsets.unbind(-1)
    x = y = torch.zeros(b, WALKERS, device=maps.device)
    out = []
    for s in range(BURN_IN + steps):
        k = pick[:, s]  # [B, W]: the map each walker applies
        x, y = (
            torch.addcmul(torch.addcmul(e.gather(1, k), a.gather(1, k), x), bb.gather(1, k), y),
            torch.addcmul(torch.addcmul(f.gather(1, k), c.gather(1, k), x), d.gather(1, k), y),
        )
        if s >= BURN_IN:
            out.append(torch.stack((x, y), dim=-1))
    return torch.cat(out, 1)[:, :points], pick[:, BURN_IN:].reshape(b, -1)[:, :points]


def to_pixels(pts: Tensor, size: int, margin: int) -> tuple[Tensor, Tensor]:
    """Fit each image's points into [margin, size − margin] per axis (FractalDB's min–max).

    pts [B, P, 2] -> flat pixel indices [B, P] (int64) and a validity mask [B, P] (finite points
    within ±1e6; a diverging code's others are left out, as FractalDB drops its NaNs).
    """
    valid = (pts.abs() < 1e6).all(-1)  # false for NaN and inf too
    inf = float("inf")
    lo = pts.masked_fill(~valid[..., None], inf).amin(1, keepdim=True)  # [B, 1, 2]
    hi = pts.masked_fill(~valid[..., None], -inf).amax(1, keepdim=True)
    scale = (size - 2 * margin) / (hi - lo).clamp_min(1e-12)
    xy = ((pts - lo) * scale + margin).nan_to_num_(0.0).clamp_(0, size - 1).long()  # floor (≥ 0)
    return xy[..., 1] * size + xy[..., 0], valid


def hit_counts(pixels: Tensor, valid: Tensor, size: int) -> Tensor:
    """Points per pixel, int32 [B, size, size] (integer adds: exact and order-free)."""
    counts = torch.zeros(pixels.shape[0], size * size, dtype=torch.int32, device=pixels.device)
    with order_free():
        counts.scatter_add_(1, pixels, valid.to(torch.int32))
    return counts.view(-1, size, size)


def fill_rate(counts: Tensor) -> Tensor:
    """Fraction of pixels hit by at least one point: [B]."""
    return (counts > 0).float().mean(dim=(1, 2))


def stamp_patches(rng: Rng, pixels: Tensor, valid: Tensor, size: int) -> Tensor:
    """FractalDB's patch drawing: point after point pastes a random non-empty 3×3 binary mask
    centred on it, so a pixel shows the cell of the LAST point whose patch covers it (the
    original pastes the whole patch: its empty cells black out what earlier points lit).
    pixels, valid [B, P] (from `to_pixels`) -> lit bool [B, size, size].

    Mask bit k (of 1..511, uniform) is the cell at offset (k div 3 − 1, k mod 3 − 1). Order-free
    and exact: each pixel keeps the largest (point number, cell) key of the patches over it (an
    integer max, one scatter per cell), then reads that point's mask bit. A one-pixel frame
    absorbs the cells past the edge.
    """
    b, p = pixels.shape
    masks = rng.randint(1, 512, p).to(torch.int32)  # [B, P]
    wide = size + 2  # the framed canvas's side
    centre = pixels + 2 * (pixels.to(torch.int32) // size).long() + (wide + 1)  # [B, P] framed
    order = torch.arange(1, p + 1, dtype=torch.int32, device=pixels.device).mul_(16)  # point j: (j+1)·16
    last = torch.zeros(b, wide * wide, dtype=torch.int32, device=pixels.device)
    with order_free():  # an integer max: the same in any order
        for k in range(9):
            dy, dx = divmod(k, 3)
            key = torch.where(valid, order + k, 0)  # invalid points paste nothing
            last.scatter_reduce_(1, centre + ((dy - 1) * wide + dx - 1), key, "amax")
    point = (last >> 4).sub_(1).clamp_(min=0).long()  # the last point over each pixel
    lit = (last > 0) & ((masks.gather(1, point) >> (last & 15)) & 1).bool()
    return lit.view(b, wide, wide)[:, 1:-1, 1:-1]
