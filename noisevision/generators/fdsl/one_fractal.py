"""1p-frac (Nakamura et al., ECCV 2024): one fractal, its small perturbations as the classes.

The base is one IFS of two contractive maps from the SVD parameterisation (Anderson & Farrell):
A = R(θ)·diag(σ1, σ2)·R(φ)·diag(±1, ±1), σ2 ≤ σ1 < 1, with the σ-factor Σ (σ1 + 2σ2) drawn in
[σ − 0.1, σ + 0.1]. Class c multiplies each of the 6 parameters of each map by its own factor
U(1 − Δ, 1 + Δ). Images are FractalDB patch renderings: 100k chaos-game points on a 512 px canvas,
each stamping a random non-empty 3×3 mask in grey 127 on black, area-resized to the resolution.

Rejection (the original drops a draw lighting < 5 % of the pixels), deterministic here: the base
is the first of candidates 0, 1, 2, … drawn from the seed whose rendering passes; class c's
factors are the first of candidates drawn from (seed, c, try) that pass. Both are cached.
Instances (the original has one image per class) are new renderings of the class's IFS: the
chaos game and the patch masks come from the image's key.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor

from noisevision.device import resolve_device
from noisevision.errors import NoisevisionError
from noisevision.generators.fdsl.contours import as_number, check_classes
from noisevision.generators.fractals.fractaldb import MARGIN, SEARCH_SIZE, grey_image
from noisevision.generators.fractals.ifs import chaos_game, stamp_patches, to_pixels
from noisevision.generators.params import Param
from noisevision.generators.registry import Generator, GeneratorSpec, register
from noisevision.rng import Rng, as_indices

MAPS = 2
MIN_LIT = 0.05  # fraction of the 512 px canvas a rendering must light
TRIES = 256  # candidates per base or class before giving up
ROUND = 4  # candidates tried at once per class after its first (which most classes pass)
SEARCH_CHUNK = 16  # classes searched at once (bounds the canvases in memory)


def svd_pair(rng: Rng, sigma: float) -> Tensor:
    """Two contractive maps with σ-factor α ~ U(σ − 0.1, σ + 0.1), as parameters [B, 2, 6]:
    per map the matrix a, b, c, d (x' = a x + b y + e, y' = c x + d y + f) and the offset e, f.

    u = [α, first share, then per map σ1, θ, φ and two reflection bits].
    α is split in two shares (each ≤ 3, the largest σ1 + 2σ2 of a contraction); per map
    σ1 ~ U(share/3, min(1, share)) and σ2 = (share − σ1)/2, so σ2 ≤ σ1 < 1.
    """
    u = rng.uniform(2 + MAPS * 5)
    alpha = sigma - 0.1 + 0.2 * u[:, 0]
    lo, hi = (alpha - 3).clamp_min(0), alpha.clamp_max(3)
    first = lo + (hi - lo) * u[:, 1]
    shares = torch.stack((first, alpha - first), 1)  # [B, 2]
    per_map = u[:, 2:].view(-1, MAPS, 5)  # σ1, θ, φ, two reflection bits
    s1 = shares / 3 + (shares.clamp_max(1) - shares / 3) * per_map[..., 0]
    s2 = (shares - s1) / 2
    theta, phi = per_map[..., 1] * 2 * math.pi, per_map[..., 2] * 2 * math.pi
    signs = torch.where(per_map[..., 3:5] < 0.5, -1.0, 1.0)
    scales = torch.diag_embed(torch.stack((s1, s2), -1))  # [B, 2, 2, 2]
    maps = _rotation(theta) @ scales @ _rotation(phi) @ torch.diag_embed(signs)
    offsets = rng.uniform(MAPS, 2, low=-1.0, high=1.0)
    return torch.cat((maps.flatten(2), offsets), -1)  # [B, 2, 6]


def _rotation(angle: Tensor) -> Tensor:
    c, s = angle.cos(), angle.sin()
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def patch_render(rng: Rng, params: Tensor, points: int, size: int) -> tuple[Tensor, Tensor]:
    """FractalDB's patch rendering of IFS parameters [B, 2, 6] on a size² canvas (ifs.stamp_patches).

    Returns lit pixels bool [B, size, size] and whether every point was finite [B]. Map k is
    chosen with probability ∝ |det A_k|.
    """
    maps, offsets = params[..., :4].reshape(-1, MAPS, 2, 2), params[..., 4:]
    det = (maps[..., 0, 0] * maps[..., 1, 1] - maps[..., 0, 1] * maps[..., 1, 0]).abs()
    probs = det / det.sum(1, keepdim=True).clamp_min(1e-12)
    pts, _ = chaos_game(rng.child("walk"), maps, offsets, probs, points)
    pixels, valid = to_pixels(pts, size, round(MARGIN * size / SEARCH_SIZE))
    return stamp_patches(rng.child("patch"), pixels, valid, size), valid.all(1)


def passes(rng: Rng, params: Tensor, points: int) -> Tensor:
    """Whether each rendering on the 512 px canvas is finite and lights ≥ 5 % of it: bool [B]."""
    lit, finite = patch_render(rng, params, points, SEARCH_SIZE)
    return finite & (lit.float().mean((1, 2)) >= MIN_LIT)


@register(
    "fractal-1p",
    family="fdsl",
    label="1p-frac",
    default_res=512,
    min_res=32,
    description="1p-frac: one two-map fractal, its ±Δ parameter perturbations as 1000 classes.",
)
class OneFractal(Generator):
    """Perturbation classes of one fractal; image i is instance i // classes of class i mod classes."""

    max_batch = 16
    search_space = (
        Param("classes", "int", 16, 1000, log=True, help="perturbation categories"),
        Param(
            "delta",
            "float",
            0.005,
            0.5,
            log=True,
            help="perturbation scale Δ of the one fractal's parameters",
        ),
        Param("sigma", "float", 2.0, 5.0, help="σ-factor the base fractal is drawn with"),
    )

    def batch_limit(self, res: int, device: torch.device) -> int:
        """On a GPU, 64 images per call: each needs a 512 px canvas and its 100k points whatever
        the resolution asked for (a fixed count, not a pixel budget)."""
        return self.max_batch if device.type == "cpu" else 64

    def __init__(
        self,
        spec: GeneratorSpec,
        classes: int = 1000,
        sigma: float = 3.5,
        delta: float = 0.1,
        points: int = 100_000,
    ):
        name = spec.name
        classes = check_classes(name, classes)
        sigma = as_number(name, "sigma", sigma, float)
        delta = as_number(name, "delta", delta, float)
        points = as_number(name, "points", points, int)
        if not 0 <= delta < 1:
            raise NoisevisionError(f"{name} needs 0 <= delta < 1 (factors in 1 ± delta), got {delta}")
        if not 0.1 < sigma <= 5.9:  # σ-factor in σ ± 0.1, positive and at most 2 · 3 for two contractions
            raise NoisevisionError(f"{name} needs 0.1 < sigma <= 5.9 (two maps), got {sigma}")
        if not 1000 <= points <= 10_000_000:
            raise NoisevisionError(f"{name} needs points in 1000..10000000, got {points}")
        super().__init__(spec, classes=classes, sigma=sigma, delta=delta, points=points)
        self.num_classes, self.sigma, self.delta, self.points = classes, sigma, delta, points
        self._bases: dict[int, Tensor] = {}
        self._classes: OrderedDict[tuple[int, int], Tensor] = OrderedDict()

    # ------------------------------------------------------------------ class parameters
    def base(self, seed: int, device: torch.device) -> Tensor:
        """The seed's base IFS, float32 [2, 6]: the first candidate whose rendering passes."""
        if seed not in self._bases:
            for start in range(0, TRIES, ROUND):
                tries = torch.arange(start, start + ROUND, device=device)
                rng = Rng.for_indices(self.key + "/base", seed, tries)
                params = svd_pair(rng.child("maps"), self.sigma)
                ok = passes(rng.child("test"), params, self.points)
                if ok.any():
                    self._bases[seed] = params[int(ok.float().argmax())].cpu()
                    break
            else:
                raise NoisevisionError(f"no two-map fractal with sigma {self.sigma} lights 5% of the canvas")
        return self._bases[seed].to(device)

    def class_params(self, seed: int, categories: Tensor) -> Tensor:
        """IFS parameters of each category: float32 [B, 2, 6] (searched once, then cached)."""
        dev = categories.device
        todo = [c for c in categories.unique().tolist() if (seed, c) not in self._classes]
        for i in range(0, len(todo), SEARCH_CHUNK):
            self._search(seed, torch.tensor(todo[i : i + SEARCH_CHUNK], device=dev))
        for c in categories.unique().tolist():
            self._classes.move_to_end((seed, c))
        while len(self._classes) > 4 * self.num_classes + 4096:
            self._classes.popitem(last=False)
        return torch.stack([self._classes[(seed, c)] for c in categories.tolist()]).to(dev)

    def _search(self, seed: int, todo: Tensor) -> None:
        """Per category, candidates 0, 1, 2, … (the first alone, then ROUND at once): keep the
        first that passes (the same whatever the round sizes: candidates are keyed by number)."""
        base = self.base(seed, todo.device)
        start = 0
        while len(todo):
            if start >= TRIES:
                raise NoisevisionError(f"no perturbation of the base fractal by delta {self.delta} lights 5%")
            size = 1 if start == 0 else ROUND
            cats = todo.repeat_interleave(size)
            tries = torch.arange(start, start + size, device=todo.device).repeat(len(todo))
            rng = Rng.for_indices(self.key + "/class", seed, cats).child("try", tries)
            factors = rng.child("factors").uniform(MAPS, 6, low=1 - self.delta, high=1 + self.delta)
            params = base * factors  # [R, 2, 6]
            ok = passes(rng.child("test"), params, self.points).view(len(todo), size)
            found, first = ok.any(1), ok.float().argmax(1)
            params = params.view(len(todo), size, MAPS, 6)
            for i in found.nonzero()[:, 0].tolist():
                self._classes[(seed, int(todo[i]))] = params[i, first[i]].cpu()
            todo = todo[~found]
            start += size

    def prepare_classes(self, indices: Any, seed: int = 0, device: str | torch.device = "cpu") -> None:
        self.class_params(seed, as_indices(indices, resolve_device(device)) % self.num_classes)

    # ------------------------------------------------------------------ rendering
    def render_indices(self, indices: Tensor, seed: int, res: int) -> Tensor:
        params = self.class_params(seed, indices % self.num_classes)
        size = max(res, SEARCH_SIZE)
        lit, _ = patch_render(Rng.for_indices(self.key, seed, indices), params, self.points, size)
        return grey_image(lit, res).expand(-1, 3, -1, -1).contiguous()
