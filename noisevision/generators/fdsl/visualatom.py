"""VisualAtom (Takashima et al., CVPR 2023): orbits of two sine waves grown by Perlin noise, as classes.

A class is (frequencies n1, n2 ∈ {0..20}, n2 ≠ n1 unless n1 = 0; q ∈ {200..1000} vertices per
orbit; K ∈ {1..200} orbits; Perlin amplitude λ ~ U(0, 4); drift w ~ U(0, 0.1); start radius
r0 ∈ {10..60}; ellipse stretch a_x, a_y ~ U(1, 2)). Orbit k + 1 moves the vertex at angle θ of
orbit k radially by λ(1 − P) + ½[sin(n1 θ) + sin(n2 θ)] + w, P a 1-D Perlin value drawn
separately for x and y. An instance keeps the class and draws its own centre (uniform over the
512² canvas), Perlin values and orbit greys (0..255); orbits are 1 px wide on black.

The defaults are the published "best practice" ranges; the original script's own defaults are
λ ∈ [2, 6], w ≤ 0.01, r0 ∈ {0..50} (lambda_min=2 lambda_max=6 drift=0.01 r0_min=0 r0_max=50).
"""

from __future__ import annotations

import torch

from noisevision.generators.fdsl.contours import (
    CANVAS,
    OrbitDraws,
    OrbitFamily,
    angle_table,
)
from noisevision.generators.registry import register
from noisevision.rng import Rng

MAX_FREQUENCY = 20
MIN_VERTICES, MAX_VERTICES = 200, 1000
SINE_AMPLITUDE = 0.5  # each of the two waves
BLACK = 0


def frequencies(cls: Rng) -> tuple[torch.Tensor, torch.Tensor]:
    """n1 ∈ {0..20}; n2 ∈ {0..20} when n1 = 0, else one of the 20 values other than n1: [B] each."""
    n1 = cls.randint(0, MAX_FREQUENCY + 1, 1)[:, 0]
    any_value = cls.randint(0, MAX_FREQUENCY + 1, 1)[:, 0]
    other = cls.randint(0, MAX_FREQUENCY, 1)[:, 0]
    other = other + (other >= n1).long()  # skips n1
    return n1, torch.where(n1 == 0, any_value, other)


@register(
    "visualatom",
    family="fdsl",
    label="VisualAtom",
    default_res=512,
    min_res=32,
    description="VisualAtom: orbits of two sine waves grown by Perlin noise, grey on black, 1000 classes.",
)
class VisualAtom(OrbitFamily):
    """Visual-atom classes; image i is instance i // classes of class i mod classes."""

    max_batch = 64  # a CPU draws image by image (contours_cpu); the tensor code runs on GPUs
    gpu_batch = 64  # ≈ 25 MB per image, plus its line samples

    r0_range = (10, 60)

    def draw(self, cls: Rng, img: Rng, instance: torch.Tensor) -> OrbitDraws:
        # class: the two waves, q, K, λ, w, r0 and the stretch
        n1, n2 = frequencies(cls)
        vertices = cls.randint(MIN_VERTICES, MAX_VERTICES + 1, 1)[:, 0]
        orbits, lam, drift = self.law_draws(cls)
        r0 = self.r0_draw(cls)
        stretch = cls.uniform(2, low=1.0, high=2.0)
        # image: centre, one Perlin value per orbit, vertex and axis (from `perlin`), a grey per orbit
        centre = img.child("centre").uniform(2, low=0.0, high=float(CANVAS))
        grey = img.child("grey").randint(0, 256, self.law.max_orbits)  # [B, K]
        cos, sin = angle_table(MIN_VERTICES, MAX_VERTICES, cls.device)
        row = (vertices - MIN_VERTICES)[:, None]
        # sin(n θ_j) = sin(2π (n j mod q) / q): a lookup in the same table row
        j = torch.arange(MAX_VERTICES, device=cls.device)[None]
        q = vertices[:, None]
        wave = sin[row, (n1[:, None] * j) % q] + sin[row, (n2[:, None] * j) % q]  # [B, N]
        return OrbitDraws(
            orbits=orbits,
            vertices=vertices,
            r0=r0,
            cos=cos[row[:, 0]],
            sin=sin[row[:, 0]],
            offset=SINE_AMPLITUDE * wave + drift[:, None],  # step λ(1 − P) + waves + w
            centre=centre,
            stretch=stretch,
            grey=grey,
            lam=lam,
            perlin=img.child("perlin"),
            perlin_spread=1.0,
            background=BLACK,
        )
