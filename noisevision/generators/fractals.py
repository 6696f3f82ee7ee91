"""Fractals: FractalDB's iterated function systems and the SVD-sampled improvement.

fractaldb (Kataoka et al., ACCV 2020). A category is an IFS code: N ∈ {2..7} affine maps
x' = [[a, b], [c, d]] x + (e, f), parameters U(−1, 1), map k chosen with probability ∝ |ad − bc|.
Random codes are kept when their 100k-point rendering on a 512² canvas (6 px margin) lights at
least 20% of the pixels. Category c is the first accepted candidate of a deterministic sequence
(candidate t of category c is drawn from the key (seed, c, t)), so it is a pure function of
(seed, c). Instance j of a category multiplies one parameter of every map by 0.8, 0.9, 1.1 or 1.2
(24 variations plus the code itself, as FractalDB's weight table), then flips it (4 ways); the
chaos game's randomness comes from the image key. Points are drawn grey (127) on black at
512 px and area-resized to the requested resolution.

fractal-svd (Anderson & Farrell, WACV 2022). Every image is a fresh IFS of N ∈ {2, 3, 4} maps
A = R(θ)·diag(σ1, σ2)·R(φ)·diag(±1, ±1), σ2 ≤ σ1 < 1 (contractive), with the σ-factor
Σ_k (σ1 + 2σ2) drawn in [(5+N)/2, (6+N)/2], which keeps attractors neither dust nor blobs.
Points take colour from the maps they went through (each map a random hue, averaged along the
path) and are drawn with a log-density alpha over a random two-colour gradient background.

The chaos game runs batched on the device: 1000 walkers per image advance together (20 burn-in
steps, then 100 recorded), each step one gather of the chosen maps; points are scattered into
the canvas with integer additions, which are exact and order-free on every device.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor

from noisevision.errors import NoisevisionError
from noisevision.generators.registry import Generator, GeneratorSpec, order_free, register
from noisevision.rng import Rng

WALKERS = 1000
BURN_IN = 20  # steps before a walker is on the attractor (maps contract at least ~0.9 per step)
SEARCH_SIZE = 512  # FractalDB's canvas for the filling-rate test and its rendering
MARGIN = 6  # pixels left free on each side of the 512 px canvas
FILL_RATE = 0.2
MAX_MAPS = 7
CANDIDATES_PER_ROUND = 32  # codes tried at once per category while searching
PILOT_SIZE = 162  # ≈ 512 / √10: the pilot's canvas (a tenth of the points)
PILOT_FILL_RATE = 0.15
MAX_TRIES = 20_000
WEIGHT_FACTORS = (0.8, 0.9, 1.1, 1.2)
VARIATIONS = 1 + 6 * len(WEIGHT_FACTORS)  # the code itself + one parameter scaled
GREY = 127


# ------------------------------------------------------------------------------------ chaos game
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


# ------------------------------------------------------------------------------------ FractalDB codes
def _code_tensors(params: Tensor, used: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Parameters a..f [B, 7, 6] and used slots [B, 7] -> maps, offsets, probabilities ∝ |det|."""
    maps = params[..., :4].reshape(*params.shape[:-1], 2, 2)
    det = (maps[..., 0, 0] * maps[..., 1, 1] - maps[..., 0, 1] * maps[..., 1, 0]).abs() * used
    probs = det / det.sum(1, keepdim=True).clamp_min(1e-12)
    return maps, params[..., 4:], probs


def random_codes(rng: Rng) -> Tensor:
    """FractalDB's random IFS codes, float32 [B, 7, 7]: per map slot a..f ~ U(−1, 1) and a 'used'
    flag; N ~ U{2..7} slots are used (map k is later chosen with probability ∝ |det A_k|)."""
    n = rng.randint(2, MAX_MAPS + 1, 1)
    params = rng.uniform(MAX_MAPS, 6, low=-1.0, high=1.0)
    used = (torch.arange(MAX_MAPS, device=n.device)[None] < n).float()
    return torch.cat([params, used[..., None]], dim=-1)


class CodeSearch:
    """Accepted FractalDB codes per (seed, category), searched deterministically and cached."""

    def __init__(self, key: str, points: int, cache_size: int = 4096):
        self.key, self.points = key, points
        self.cache: OrderedDict[tuple[int, int], Tensor] = OrderedDict()  # -> params [7, 6] + used
        self.cache_size = cache_size

    def candidates(self, seed: int, categories: Tensor, tries: Tensor) -> Rng:
        """Keys of candidate `tries[i]` of category `categories[i]`."""
        return Rng.for_indices(self.key + "/code", seed, categories).child("try", tries)

    def codes(self, seed: int, categories: Tensor) -> Tensor:
        """Accepted code of each category: float32 [B, 7, 7] (a..f and a 0/1 'used' column)."""
        missing = [c for c in categories.unique().tolist() if (seed, c) not in self.cache]
        if missing:
            self._search(seed, torch.tensor(missing, device=categories.device))
        for c in categories.unique().tolist():
            self.cache.move_to_end((seed, c))
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return torch.stack([self.cache[(seed, c)] for c in categories.tolist()]).to(categories.device)

    def _search(self, seed: int, todo: Tensor) -> None:
        """Try candidates 0, 1, 2, … of each category (32 at once); keep the first whose
        rendering has only finite points and fills ≥ 20% of the canvas.

        A pilot with a tenth of the points on a canvas √10 times smaller (same points per pixel)
        first discards the codes far below the rate (pilot fill < 15%; accepted codes measure
        ≥ 21% there), so the full rendering only runs for the few plausible ones.
        """
        start = 0
        while len(todo):
            if start >= MAX_TRIES:  # ~2% of random codes pass: not reached in practice
                raise NoisevisionError(f"no FractalDB code found in {MAX_TRIES} tries for a category")
            cats = todo.repeat_interleave(CANDIDATES_PER_ROUND)
            tries = torch.arange(start, start + CANDIDATES_PER_ROUND, device=todo.device).repeat(len(todo))
            rng = self.candidates(seed, cats, tries)
            code = random_codes(rng)
            ok = _fill(rng.child("pilot"), code, self.points // 10, PILOT_SIZE) >= PILOT_FILL_RATE
            plausible = ok.nonzero()[:, 0]
            if len(plausible):
                full = Rng(rng.child("points").keys[plausible])
                ok[plausible] = _fill(full, code[plausible], self.points, SEARCH_SIZE) >= FILL_RATE
            ok = ok.view(len(todo), CANDIDATES_PER_ROUND)
            found = ok.any(1)
            first = ok.float().argmax(1)  # first accepted try in this round
            code = code.view(len(todo), CANDIDATES_PER_ROUND, 7, 7)
            for i in found.nonzero()[:, 0].tolist():
                self.cache[(seed, int(todo[i]))] = code[i, first[i]].cpu()
            todo = todo[~found]
            start += CANDIDATES_PER_ROUND


def _fill(rng: Rng, code: Tensor, points: int, size: int) -> Tensor:
    """Filling rate of codes [B, 7, 7] drawn with `points` points on a size² canvas (margin
    scaled from FractalDB's 6 px at 512); 0 where any point diverges. [B]."""
    maps, offsets, probs = _code_tensors(code[..., :6], code[..., 6] > 0)
    pts, _ = chaos_game(rng, maps, offsets, probs, points)
    pixels, valid = to_pixels(pts, size, round(MARGIN * size / SEARCH_SIZE))
    return fill_rate(hit_counts(pixels, valid, size)) * valid.all(1)


def instance_code(code: Tensor, instance: Tensor) -> Tensor:
    """FractalDB's intra-category variation: scale one parameter (a..f) of every map.

    code [B, 7, 7], instance [B] -> [B, 7, 7]. Variation v = instance mod 25: 0 keeps the code,
    v ≥ 1 scales parameter (v−1) // 4 by 0.8, 0.9, 1.1 or 1.2.
    """
    v = instance % VARIATIONS
    factor = torch.tensor((1.0, *WEIGHT_FACTORS), device=code.device)[torch.where(v > 0, (v - 1) % 4 + 1, 0)]
    which = torch.where(v > 0, (v - 1) // 4, 0)  # [B]
    scale = torch.ones(code.shape[0], 7, device=code.device)
    scale[torch.arange(code.shape[0], device=code.device), which] = factor
    scale[:, 6] = 1.0
    return code * scale[:, None, :]


def flip(images: Tensor, mode: Tensor) -> Tensor:
    """Flip image b vertically if mode & 1, horizontally if mode & 2 (FractalDB's 4 flips)."""
    m = mode[:, None, None, None]
    images = torch.where(m % 2 == 1, images.flip(-2), images)
    return torch.where(m // 2 == 1, images.flip(-1), images)


@register(
    "fractaldb",
    family="fractals",
    label="FractalDB",
    default_res=128,
    min_res=32,
    description="FractalDB IFS codes (fill ≥ 20%), 100 instances each: scaled parameter × flip.",
)
class FractalDB(Generator):
    """Image i: category i // instances_per_category, instance i % instances_per_category."""

    max_batch = 64

    def __init__(self, spec: GeneratorSpec, points: int = 100_000, instances_per_category: int = 100):
        super().__init__(spec, points=points, instances_per_category=instances_per_category)
        if points < FILL_RATE * SEARCH_SIZE**2:  # no code could light 20% of the canvas
            raise NoisevisionError(f"fractaldb needs points >= {math.ceil(FILL_RATE * SEARCH_SIZE**2)}")
        if instances_per_category < 1:
            raise NoisevisionError("fractaldb needs instances_per_category >= 1")
        self.points = int(points)
        self.instances = int(instances_per_category)
        self.search = CodeSearch(self.key, self.points)

    def render_indices(self, indices: Tensor, seed: int, res: int) -> Tensor:
        category, instance = indices // self.instances, indices % self.instances
        code = instance_code(self.search.codes(seed, category), instance)
        maps, offsets, probs = _code_tensors(code[..., :6], code[..., 6] > 0)
        rng = Rng.for_indices(self.key, seed, indices)
        pts, _ = chaos_game(rng, maps, offsets, probs, self.points)
        size = max(res, SEARCH_SIZE)
        pixels, valid = to_pixels(pts, size, round(MARGIN * size / SEARCH_SIZE))
        lit = (hit_counts(pixels, valid, size) > 0).float()[:, None] * GREY  # [B, 1, size, size]
        if size != res:
            lit = F.interpolate(lit, size=(res, res), mode="area")
        img = flip(lit.round().to(torch.uint8), (instance // VARIATIONS) % 4)
        return img.expand(-1, 3, -1, -1).contiguous()


# ------------------------------------------------------------------------------------ SVD fractals
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
