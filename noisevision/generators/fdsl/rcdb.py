"""RCDB (Kataoka et al., CVPR 2022): radial contours, polygons grown by Perlin noise, as classes.

A class is (vertex count n, polygon count K, Perlin amplitude λ, radial drift w). n is the floor
of an exponential draw of mean 100 kept in 3..200, K ∈ {1..200}, λ ~ U(0, 4), w ~ U(0, 0.1).
Each polygon moves every vertex of the previous one radially by λ(1 − 2P) + w, P a 1-D Perlin
value drawn separately for x and y. Polygon 0 has radius r0 ∈ {0..100}, the ellipse stretch is
a_x, a_y ~ U(1, 2) and the centre (512 + U{−400..400}) / 2 per axis: instance 0 of a class takes
these from the class, every other instance draws its own. Each polygon is a random grey in
0..255, drawn 1 px wide on white.
"""

from __future__ import annotations

import math

import torch

from noisevision.generators.fdsl.contours import (
    CANVAS,
    OrbitDraws,
    OrbitFamily,
    angle_table,
)
from noisevision.generators.registry import register
from noisevision.rng import Rng

MIN_VERTICES, MAX_VERTICES = 3, 200
MEAN_VERTICES = 100.0
CENTRE_SPREAD = 400  # centre = (512 + U{−400..400}) / 2 per axis
WHITE = 255


def vertex_counts(cls: Rng) -> torch.Tensor:
    """n = ⌊Exp(mean 100)⌋ conditioned on 3 ≤ n ≤ 200: int64 [B].

    Drawn by inverse CDF in one step (the original redraws until n is in range, which gives the
    same distribution): ⌊−100 ln u⌋ is in 3..200 exactly when u ∈ (e^−2.01, e^−0.03]. The count is
    the number of thresholds e^−m/100 (m = 4..200) that u is at most, compared with thresholds
    computed once, so no batch-shaped logarithm can move a boundary case.
    """
    lo, hi = math.exp(-(MAX_VERTICES + 1) / MEAN_VERTICES), math.exp(-MIN_VERTICES / MEAN_VERTICES)
    u = hi - (hi - lo) * cls.uniform(1)[:, 0].double()  # in (lo, hi]
    return MIN_VERTICES + (u[:, None] <= _THRESHOLDS.to(u.device)[None]).sum(1)


_THRESHOLDS = torch.tensor(
    [math.exp(-m / MEAN_VERTICES) for m in range(MIN_VERTICES + 1, MAX_VERTICES + 1)], dtype=torch.float64
)


@register(
    "rcdb",
    family="fdsl",
    label="RCDB",
    default_res=512,
    min_res=32,
    description="Radial contours (RCDB): Perlin-grown grey polygons on white, 1000 classes.",
)
class RCDB(OrbitFamily):
    """Radial contour classes; image i is instance i // classes of class i mod classes."""

    max_batch = 64  # a CPU draws image by image (contours_cpu); the tensor code runs on GPUs
    gpu_batch = 256  # ≈ 5 MB per image (200 × 200 vertex slots), more at high resolutions

    r0_range = (0, 100)

    def draw(self, cls: Rng, img: Rng, instance: torch.Tensor) -> OrbitDraws:
        # class: n, K, λ, w, and the placement instance 0 uses
        vertices = vertex_counts(cls)
        orbits, lam, drift = self.law_draws(cls)
        placements = [self._placement(cls), self._placement(img.child("placement"))]
        first = instance == 0
        r0, stretch, centre = (
            torch.where(first.view(-1, *[1] * (own.dim() - 1)), own, redrawn)
            for own, redrawn in zip(*placements, strict=True)
        )
        # image: one Perlin value per polygon, vertex and axis (drawn from `perlin`); a grey per polygon
        grey = img.child("grey").randint(0, 256, self.law.max_orbits)  # [B, K]
        cos, sin = angle_table(MIN_VERTICES, MAX_VERTICES, cls.device)
        row = vertices - MIN_VERTICES
        return OrbitDraws(
            orbits=orbits,
            vertices=vertices,
            r0=r0,
            cos=cos[row],
            sin=sin[row],
            offset=drift[:, None].expand(-1, MAX_VERTICES),  # step λ(1 − 2P) + w
            centre=centre,
            stretch=stretch,
            grey=grey,
            lam=lam,
            perlin=img.child("perlin"),
            perlin_spread=2.0,
            background=WHITE,
        )

    def _placement(self, r: Rng) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """r0 [B], stretch (a_x, a_y) [B, 2] ~ U(1, 2), centre [B, 2] = (512 + U{−400..400}) / 2."""
        r0 = self.r0_draw(r)
        stretch = r.uniform(2, low=1.0, high=2.0)
        centre = (CANVAS + r.randint(-CENTRE_SPREAD, CENTRE_SPREAD + 1, 2)).to(torch.float32) / 2
        return r0, stretch, centre
