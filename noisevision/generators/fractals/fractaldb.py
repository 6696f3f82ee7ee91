"""fractaldb (Kataoka et al., ACCV 2020): IFS codes as categories, their instances, the renderer.

A category is an IFS code: N ∈ {2..7} affine maps x' = [[a, b], [c, d]] x + (e, f), parameters
U(−1, 1), map k chosen with probability p_k ∝ |ad − bc| (kept with the code, as FractalDB stores
it). Random codes are kept when their 100k-point rendering on a 512² canvas (6 px margin) lights
at least 20% of the pixels. Category c is the first accepted candidate of a deterministic sequence
(candidate t of category c is drawn from the key (seed, c, t)), so it is a pure function of
(seed, c); or categories are FractalDB's published codes, read from CSV (`codes`).

Image i is instance j = i div C of category i mod C (C categories). Its weight variation
j mod 25 multiplies one parameter (a..f) of every map by 1 − 2k, 1 − k, 1 + k or 1 + 2k (k the
`interval`; 24 variations plus the code itself, as FractalDB's weight table), its flip is
(j div 25) mod 4, and with patch drawing j div 100 numbers FractalDB's ten renderings with new
3×3 masks. Every random number (the chaos game, the masks) comes from the image's own key.
Drawn grey (127) on black on a `canvas`-px canvas (or the resolution, if larger), then
area-resized to the requested resolution.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from noisevision.device import resolve_device
from noisevision.errors import NoisevisionError
from noisevision.generators import registry
from noisevision.generators.fractals.codes import MAX_MAPS, read_codes
from noisevision.generators.fractals.ifs import chaos_game, fill_rate, hit_counts, stamp_patches, to_pixels
from noisevision.generators.params import Param
from noisevision.generators.registry import Generator, GeneratorSpec, register
from noisevision.rng import Rng, as_indices

SEARCH_SIZE = 512  # FractalDB's canvas for the filling-rate test and its rendering
MARGIN = 6  # pixels left free on each side of the 512 px canvas
FILL_RATE = 0.2
CANDIDATES_PER_ROUND = 32  # codes tried at once per category while searching
PILOT_SIZE = 162  # ≈ 512 / √10: the pilot's canvas (a tenth of the points)
PILOT_FILL_RATE = 0.15
MAX_TRIES = 20_000
INTERVAL = 0.1  # FractalDB renderer's default weight interval (its exe.sh recommends 0.4)
VARIATIONS = 25  # the code itself + one of 6 parameters scaled by one of 4 factors
FLIPS = 4
PATCH_RENDERINGS = 10  # FractalDB's patch renderings per weight variation and flip
INSTANCES = VARIATIONS * PATCH_RENDERINGS * FLIPS  # FractalDB's 1,000 images per category
RENDERS = ("patch", "points")
GREY = 127


def weight_factors(interval: float) -> tuple[float, float, float, float]:
    """FractalDB's four parameter scales for a weight interval k: 1 − 2k, 1 − k, 1 + k, 1 + 2k."""
    return (1 - 2 * interval, 1 - interval, 1 + interval, 1 + 2 * interval)


WEIGHT_FACTORS = weight_factors(INTERVAL)  # 0.8, 0.9, 1.1, 1.2


# ------------------------------------------------------------------------------------ codes
def _code_tensors(code: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Codes [B, 7, 7] (a..f, p) -> maps [B, 7, 2, 2], offsets [B, 7, 2], probabilities [B, 7]."""
    maps = code[..., :4].reshape(*code.shape[:-1], 2, 2)
    probs = code[..., 6]
    return maps, code[..., 4:6], probs / probs.sum(1, keepdim=True).clamp_min(1e-12)


def random_codes(rng: Rng) -> Tensor:
    """FractalDB's random IFS codes, float32 [B, 7, 7]: per map slot a..f ~ U(−1, 1) and its
    probability p ∝ |det A_k| over the N ~ U{2..7} slots used (all 0 for the others)."""
    n = rng.randint(2, MAX_MAPS + 1, 1)
    used = (torch.arange(MAX_MAPS, device=n.device)[None] < n).float()
    params = rng.uniform(MAX_MAPS, 6, low=-1.0, high=1.0) * used[..., None]  # unused slots 0
    det = (params[..., 0] * params[..., 3] - params[..., 1] * params[..., 2]).abs() * used
    return torch.cat([params, (det / det.sum(1, keepdim=True).clamp_min(1e-12))[..., None]], dim=-1)


class CodeSearch:
    """Accepted FractalDB codes per (seed, category), searched deterministically and cached."""

    def __init__(self, key: str, points: int, cache_size: int = 4096):
        self.key, self.points = key, points
        self.cache: OrderedDict[tuple[int, int], Tensor] = OrderedDict()  # -> code [7, 7]
        self.cache_size = cache_size

    def candidates(self, seed: int, categories: Tensor, tries: Tensor) -> Rng:
        """Keys of candidate `tries[i]` of category `categories[i]`."""
        return Rng.for_indices(self.key + "/code", seed, categories).child("try", tries)

    def codes(self, seed: int, categories: Tensor) -> Tensor:
        """Accepted code of each category: float32 [B, 7, 7] (a..f and p, 0 for unused slots)."""
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


class CodeTable:
    """Fixed categories (e.g. FractalDB's published codes): the same for every seed."""

    def __init__(self, codes: Tensor):
        self.table = codes  # [C, 7, 7]

    def codes(self, seed: int, categories: Tensor) -> Tensor:
        return self.table.to(categories.device)[categories]


def _fill(rng: Rng, code: Tensor, points: int, size: int) -> Tensor:
    """Filling rate of codes [B, 7, 7] drawn with `points` points on a size² canvas (margin
    scaled from FractalDB's 6 px at 512); 0 where any point diverges. [B]."""
    pts, _ = chaos_game(rng, *_code_tensors(code), points)
    pixels, valid = to_pixels(pts, size, round(MARGIN * size / SEARCH_SIZE))
    return fill_rate(hit_counts(pixels, valid, size)) * valid.all(1)


def instance_code(code: Tensor, instance: Tensor, interval: float = INTERVAL) -> Tensor:
    """FractalDB's intra-category variation: scale one parameter (a..f) of every map.

    code [B, 7, 7], instance [B] -> [B, 7, 7]. Variation v = instance mod 25: 0 keeps the code,
    v ≥ 1 scales parameter (v−1) div 4 by 1 − 2k, 1 − k, 1 + k or 1 + 2k (k = interval). The
    probabilities p stay those of the code (FractalDB does not recompute them).
    """
    v = instance % VARIATIONS
    factors = torch.tensor((1.0, *weight_factors(interval)), device=code.device)
    factor = factors[torch.where(v > 0, (v - 1) % 4 + 1, 0)]
    which = torch.where(v > 0, (v - 1) // 4, 0)  # [B]
    scale = torch.ones(code.shape[0], 7, device=code.device)
    scale[torch.arange(code.shape[0], device=code.device), which] = factor
    scale[:, 6] = 1.0
    return code * scale[:, None, :]


def grey_image(lit: Tensor, res: int) -> Tensor:
    """Lit pixels bool [B, size, size] drawn grey 127 on black and area-resized to res: uint8
    [B, 1, res, res]."""
    grey = lit.float()[:, None] * GREY
    if lit.shape[-1] != res:
        grey = F.interpolate(grey, size=(res, res), mode="area")
    return grey.round().to(torch.uint8)


def flip(images: Tensor, mode: Tensor) -> Tensor:
    """Flip image b vertically if mode & 1, horizontally if mode & 2 (FractalDB's 4 flips)."""
    m = mode[:, None, None, None]
    images = torch.where(m % 2 == 1, images.flip(-2), images)
    return torch.where(m // 2 == 1, images.flip(-1), images)


# ------------------------------------------------------------------------------------ generator
@register(
    "fractaldb",
    family="fractals",
    label="FractalDB",
    default_res=128,
    min_res=32,
    description="FractalDB: 1,000 IFS-code categories (fill ≥ 20%), 3×3 patches, scaled parameter × flip.",
)
class FractalDB(Generator):
    """Image i: instance i div C of category i mod C (C = `classes`)."""

    max_batch = 64
    search_space = (
        Param("classes", "int", 16, 1000, log=True, help="categories (IFS codes)"),
        Param("interval", "float", 0.05, 0.45, help="step of the ±parameter variations within a category"),
    )

    def __init__(
        self,
        spec: GeneratorSpec,
        classes: int | None = None,
        points: int = 100_000,
        interval: float = INTERVAL,
        render: str = "patch",
        canvas: int = SEARCH_SIZE,
        codes: str | None = None,
    ):
        given = {"classes": classes, "codes": codes}
        params = {k: v for k, v in given.items() if v is not None}
        super().__init__(spec, **params, points=points, interval=interval, render=render, canvas=canvas)
        name = spec.name
        if render not in RENDERS:
            raise NoisevisionError(f"{name}: render must be one of {', '.join(RENDERS)}, not {render!r}")
        if isinstance(points, bool) or not isinstance(points, int) or points < FILL_RATE * SEARCH_SIZE**2:
            # fewer points than pixels a code must light on the search canvas: no code could pass
            least = math.ceil(FILL_RATE * SEARCH_SIZE**2)
            raise NoisevisionError(f"{name}: points must be an integer >= {least}, not {points!r}")
        if not isinstance(interval, (int, float)) or not 0 < interval < 0.5:
            raise NoisevisionError(f"{name}: interval must be in (0, 0.5) (scale 1±k, 1±2k): {interval!r}")
        if isinstance(canvas, bool) or not isinstance(canvas, int) or not 64 <= canvas <= 4096:
            raise NoisevisionError(f"{name}: canvas must be an integer in 64..4096 (pixels), not {canvas!r}")
        if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int) or classes < 1):
            raise NoisevisionError(f"{name}: classes must be an integer >= 1, not {classes!r}")
        self.points, self.interval, self.render_mode, self.canvas = points, float(interval), render, canvas
        if codes is not None:
            table = read_codes(codes)
            if classes is not None and classes > len(table):
                raise NoisevisionError(f"{name}: classes={classes} but {codes} holds {len(table)} categories")
            self.search: CodeSearch | CodeTable = CodeTable(table[: classes or len(table)])
            self.num_classes = classes or len(table)
        else:
            self.num_classes = 1000 if classes is None else classes
            # every category stays cached: a pass over interleaved indices visits all of them
            self.search = CodeSearch(self.key, self.points, cache_size=max(4096, self.num_classes))

    @property
    def key(self) -> str:
        """Keys come from 'fractaldb' whatever the parameters in the name: `fractaldb:interval=0.4`
        has the same categories and chaos games as `fractaldb`."""
        return "fractaldb"

    def prepare_classes(self, indices: Any, seed: int = 0, device: str | torch.device = "cpu") -> None:
        self.search.codes(seed, as_indices(indices, resolve_device(device)) % self.num_classes)

    def render_indices(self, indices: Tensor, seed: int, res: int) -> Tensor:
        category, instance = indices % self.num_classes, indices // self.num_classes
        code = instance_code(self.search.codes(seed, category), instance, self.interval)
        rng = Rng.for_indices(self.key, seed, indices)
        pts, _ = chaos_game(rng, *_code_tensors(code), self.points)
        size = max(res, self.canvas)
        pixels, valid = to_pixels(pts, size, round(MARGIN * size / SEARCH_SIZE))
        if self.render_mode == "patch":
            lit = stamp_patches(rng.child("patch"), pixels, valid, size)
        else:
            lit = hit_counts(pixels, valid, size) > 0
        img = flip(grey_image(lit, res), (instance // VARIATIONS) % FLIPS)
        return img.expand(-1, 3, -1, -1).contiguous()


NAME_PARAMS = {"classes": int, "points": int, "interval": float, "render": str, "canvas": int, "codes": str}


def resolve_fractaldb(name: str, params: dict[str, Any]) -> Generator | None:
    """Registry resolver for `fractaldb:key=value,…` (classes, points, interval, render, canvas,
    codes), e.g. `fractaldb:interval=0.4,points=200000` or `fractaldb:codes=codes.csv`."""
    base, sep, args = name.partition(":")
    if base != "fractaldb" or not sep:
        return None
    given: dict[str, Any] = {}
    for item in args.split(","):
        key, eq, value = item.partition("=")
        if key not in NAME_PARAMS or not eq or not value:
            keys = ", ".join(NAME_PARAMS)
            raise NoisevisionError(f"'{name}': write fractaldb:key=value,… with keys {keys}")
        if key in given:
            raise NoisevisionError(f"'{name}': {key} is given twice")
        try:
            given[key] = NAME_PARAMS[key](value)
        except ValueError:
            kind = "an integer" if NAME_PARAMS[key] is int else "a number"
            raise NoisevisionError(f"'{name}': {key} must be {kind}, not '{value}'") from None
    return registry.build_named(base, name, given, params)


registry.register_resolver(
    resolve_fractaldb,
    "fractaldb:key=value,… — FractalDB with classes=C (1000), points=P (100000), interval=K (0.1; "
    "0.4 is FractalDB's recommended), render=patch|points, canvas=PX (512), codes=FILE.csv|FOLDER "
    "(published category codes)",
)
