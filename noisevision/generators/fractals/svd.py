"""fractal-svd (Anderson & Farrell, WACV 2022): a fresh contractive IFS per image, coloured.

Every image is a fresh IFS of N ∈ {2, 3, 4} maps A = R(θ)·diag(σ1, σ2)·R(φ)·diag(±1, ±1),
σ2 ≤ σ1 < 1 (contractive), with the σ-factor Σ_k (σ1 + 2σ2) drawn in [(5+N)/2, (6+N)/2], which
keeps attractors neither dust nor blobs. Points take colour from the maps they went through (each
map a random hue, averaged along the path) and are drawn with a log-density alpha over a random
two-colour gradient background.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from noisevision.generators.fractals.ifs import WALKERS, chaos_game, hit_counts, to_pixels
from noisevision.generators.registry import Generator, GeneratorSpec, order_free, register
from noisevision.rng import Rng


def svd_maps(rng: Rng) -> tuple[Tensor, Tensor, Tensor]:
    """Anderson & Farrell's contractive maps: maps [B, 4, 2, 2], offsets [B, 4, 2], probs [B, 4].

    N ~ U{2, 3, 4}; σ-factor α ~ U((5+N)/2, (6+N)/2) split over the maps (each share ≤ 3, the
    largest possible σ1 + 2σ2); per map σ1 ~ U(share/3, min(1, share)), σ2 = (share − σ1)/2, so
    σ2 ≤ σ1 < 1. A = R(θ) diag(σ1, σ2) R(φ) diag(±1, ±1); offsets U(−1, 1); p ∝ |det| = σ1σ2.
    """
    dev = rng.device
    n = rng.randint(2, 5, 1)[:, 0]  # [B]
    alpha = (5 + n + rng.uniform(1)[:, 0]) / 2  # [B]
    u = rng.uniform(4, 6)  # per map: share, σ1, θ, φ, two reflection bits
    sigma1, sigma2, left = [], [], alpha
    for k in range(4):
        rest = (n - k - 1).clamp_min(0).float()  # maps still to place after this one
        lo = (left - 3 * rest).clamp_min(0)
        hi = torch.minimum(left, torch.full_like(left, 3.0))
        share = torch.where(rest > 0, lo + (hi - lo) * u[:, k, 0], left)
        share = torch.where(k < n, share, torch.zeros_like(share))
        s1 = share / 3 + (torch.minimum(share, torch.ones_like(share)) - share / 3) * u[:, k, 1]
        sigma1.append(s1)
        sigma2.append((share - s1) / 2)
        left = left - share
    s = torch.stack([torch.stack(sigma1, 1), torch.stack(sigma2, 1)], -1)  # [B, 4, 2]
    theta, phi = u[..., 2] * 2 * math.pi, u[..., 3] * 2 * math.pi
    signs = torch.where(u[..., 4:] < 0.5, -1.0, 1.0)  # [B, 4, 2]
    maps = _rotation(theta) @ torch.diag_embed(s) @ _rotation(phi) @ torch.diag_embed(signs)
    offsets = rng.uniform(4, 2, low=-1.0, high=1.0)
    used = torch.arange(4, device=dev)[None] < n[:, None]
    det = s[..., 0] * s[..., 1] * used
    return maps, offsets, det / det.sum(1, keepdim=True)


def _rotation(angle: Tensor) -> Tensor:
    c, s = angle.cos(), angle.sin()
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _hue_to_rgb(hue: Tensor) -> Tensor:
    """Fully saturated colours for hues in [0, 1): [...] -> [..., 3] in [0, 1]."""
    k = (torch.tensor([5.0, 3.0, 1.0], device=hue.device) + hue[..., None] * 6) % 6
    return 1 - (torch.minimum(k, 4 - k).clamp(0, 1))


@register(
    "fractal-svd",
    family="fractals",
    default_res=128,
    min_res=32,
    description="Contractive IFS from an SVD parameterisation, coloured, on a random background.",
)
class SVDFractal(Generator):
    """Anderson & Farrell's improved fractals: a new random IFS per image."""

    max_batch = 64

    def __init__(self, spec: GeneratorSpec, points: int = 100_000):
        super().__init__(spec, points=points)
        self.points = int(points)

    def render(self, rng: Rng, res: int) -> Tensor:
        b, dev = rng.batch, rng.device
        maps, offsets, probs = svd_maps(rng.child("maps"))
        pts, src = chaos_game(rng.child("points"), maps, offsets, probs, self.points)
        pixels, valid = to_pixels(pts, res, max(1, res // 64))
        # colour: each map a hue; a point's colour is the hue of the map that made it, mixed
        # with the previous point of its walker (the chain's colour drifts along the path)
        look = rng.child("look")
        hues = look.uniform(4)  # [B, 4]
        colour = _hue_to_rgb(hues.gather(1, src))  # [B, P, 3]
        colour = 0.5 * colour + 0.5 * colour.roll(WALKERS, dims=1)
        # integer accumulation of counts and colours (1/256 steps): exact on every device
        counts = hit_counts(pixels, valid, res).view(b, -1)
        col = torch.zeros(b, res * res, 3, dtype=torch.int64, device=dev)
        with order_free():
            col.scatter_add_(1, pixels[..., None].expand(-1, -1, 3), (colour * 256).long() * valid[..., None])
        mean = col.float() / (256 * counts.clamp_min(1)[..., None])  # [B, HW, 3]
        density = torch.log1p(counts.float())
        alpha = (density / density.amax(1, keepdim=True).clamp_min(1e-6)).sqrt()[..., None]
        # random background: a linear gradient between two random colours
        c0, c1 = look.uniform(3), look.uniform(3)  # [B, 3]
        angle = look.uniform(1)[:, 0] * 2 * math.pi
        coord = torch.linspace(-1, 1, res, device=dev)
        sin, cos = angle.sin()[:, None, None], angle.cos()[:, None, None]
        ramp = coord[None, :, None] * sin + coord[None, None, :] * cos  # [B, H, W]
        ramp = (ramp * 0.5 + 0.5).clamp(0, 1).view(b, -1, 1)  # [B, HW, 1]
        background = c0[:, None] * (1 - ramp) + c1[:, None] * ramp
        img = (background * (1 - alpha) + mean * alpha) * 255  # [B, HW, 3]
        img = img.round().clamp(0, 255).to(torch.uint8)
        return img.view(b, res, res, 3).permute(0, 3, 1, 2).contiguous()
