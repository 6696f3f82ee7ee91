"""Radial orbits (RCDB, VisualAtom): vertex radii grown orbit by orbit, drawn as 1 px closed polylines.

Both families draw K closed orbits around a centre. Orbit 0 has radius r0 at every vertex; orbit
k + 1 moves each vertex of orbit k radially, separately along x and y, by an amount with a 1-D
Perlin noise term. A vertex at angle θ with radii (r_x, r_y) sits at centre + (a_x r_x cos θ,
a_y r_y sin θ) (a: the ellipse stretch). The geometry is defined on the recipes' 512 px canvas
and scaled to the requested resolution; lines stay 1 px wide.

Determinism: radii are summed over orbits in 2^-16 px fixed point (int64 cumsum, exact in any
order); angles and Perlin values come from tables built once (no batch-shaped sin, cos or
polynomial whose last bit could depend on where an element falls in a vectorised loop); and
overlapping orbits are resolved by "the last orbit wins" with an integer amax. An image is the
same bytes in any batch, on any thread count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from noisevision.errors import NoisevisionError
from noisevision.generators.params import Param
from noisevision.generators.registry import Generator, GeneratorSpec
from noisevision.rng import Rng

CANVAS = 512  # the recipes' canvas: every length below is in its pixels
FIXED = 2**16  # fixed-point steps per pixel for the radii's running sums


@dataclass(frozen=True)
class OrbitLaw:
    """The per-class ranges users vary: Perlin amplitude λ ~ U(lambda_min, lambda_max), radial
    drift w ~ U(0, drift), start radius r0 ∈ {r0_min..r0_max} (512 px units), 1 ≤ K ≤ max_orbits."""

    lambda_min: float
    lambda_max: float
    drift: float
    r0_min: int
    r0_max: int
    max_orbits: int = 200

    @classmethod
    def parse(cls, family: str, **values: object) -> OrbitLaw:
        """The law from a family's parameters as given (numbers checked by as_number, one line)."""
        kinds = {"lambda_min": float, "lambda_max": float, "drift": float, "r0_min": int, "r0_max": int}
        return cls(**{k: as_number(family, k, v, kinds.get(k, int)) for k, v in values.items()})

    def check(self, family: str) -> None:
        """NoisevisionError (one line) for a range that is empty or negative."""
        if not 0 <= self.lambda_min <= self.lambda_max:
            raise NoisevisionError(f"{family} needs 0 <= lambda_min <= lambda_max")
        if self.drift < 0:
            raise NoisevisionError(f"{family} needs drift >= 0, got {self.drift}")
        if not 0 <= self.r0_min <= self.r0_max:
            raise NoisevisionError(f"{family} needs 0 <= r0_min <= r0_max")
        if not 1 <= self.max_orbits <= 1000:
            raise NoisevisionError(f"{family} needs max_orbits in 1..1000, got {self.max_orbits}")


@dataclass
class Orbits:
    """A batch of orbit drawings in 512 px units (B images, K orbit slots, N vertex slots).

    radius [B, 2, K, N]: the x and y radii; orbits [B] and vertices [B]: how many slots are used;
    cos, sin [B, N]: the vertex angles' cosines and sines; centre, stretch [B, 2]; grey [B, K]
    (0..255) of each orbit; background: the canvas's grey; lam, offset, perlin_spread: the step law.
    """

    radius: Tensor
    orbits: Tensor
    vertices: Tensor
    cos: Tensor
    sin: Tensor
    centre: Tensor
    stretch: Tensor
    grey: Tensor
    background: int
    # The recipe behind `radius` (for noisevision.reference): step = lam·(1 − perlin_spread·P) +
    # offset, with lam [B] and offset [B, N] (the drift, and VisualAtom's waves).
    lam: Tensor | None = None
    offset: Tensor | None = None
    perlin_spread: float = 1.0


@dataclass
class OrbitDraws:
    """What a batch's orbits are made of, before the noise: everything but the Perlin values.

    orbits, vertices, r0 [B]; cos, sin, offset [B, N] over the family's N vertex slots; centre,
    stretch [B, 2]; grey [B, K] over its K orbit slots; lam [B]. Orbit k + 1 moves vertex j of
    orbit k radially by lam·(1 − perlin_spread·P) + offset[j], P drawn from `perlin` as words of
    shape [2, K, N] (`perlin_at_random`).
    """

    orbits: Tensor
    vertices: Tensor
    r0: Tensor
    cos: Tensor
    sin: Tensor
    offset: Tensor
    centre: Tensor
    stretch: Tensor
    grey: Tensor
    lam: Tensor
    perlin: Rng
    perlin_spread: float
    background: int

    def orbits_drawn(self) -> Orbits:
        """The orbits, as tensor code (any device): the noise drawn for the slots the batch uses,
        the radii summed."""
        k_max, n_max = self.grey.shape[1], self.cos.shape[1]
        used_k, used_n = int(self.orbits.max()), int(self.vertices.max())
        noise = perlin_at_random(self.perlin, k_max, n_max, (used_k, used_n))
        steps = (1 - self.perlin_spread * noise).mul_(self.lam[:, None, None, None])
        steps = steps.add_(self.offset[:, None, None, :used_n])  # [B, 2, K, N]
        return Orbits(
            radius=grown_radii(self.r0, steps),
            orbits=self.orbits,
            vertices=self.vertices,
            cos=self.cos[:, :used_n],
            sin=self.sin[:, :used_n],
            centre=self.centre,
            stretch=self.stretch,
            grey=self.grey[:, :used_k],
            background=self.background,
            lam=self.lam,
            offset=self.offset[:, :used_n],
            perlin_spread=self.perlin_spread,
        )


# ------------------------------------------------------------------------------------ random draws
def perlin_at_random(rng: Rng, orbits: int, vertices: int, used: tuple[int, int]) -> Tensor:
    """1-D Perlin noise, each value at its own random position, per axis, orbit and vertex:
    float32 [B, 2, used orbits, used vertices] in [−½, ½]. The draw always has the full shape
    [2, orbits, vertices] per image (so that its values do not depend on the batch); only the
    slots this batch uses are turned into noise.

    Perlin noise at x blends the lattice gradients g0, g1 (uniform in [−1, 1]) of the two integer
    points around x with the quintic fade of the fraction f; at a uniformly random position, f
    and the two gradients are independent uniforms. So one random word picks f (256 levels) and
    g0, g1 (64 levels each) and the value is read from a table of all 2^20 combinations: one
    lookup instead of twenty tensor passes, and no lattice to store.
    """
    words = rng.bits(2, orbits, vertices)[:, :, : used[0], : used[1]]
    return perlin_table(words.device)[(words >> 1) & ((1 << PERLIN_BITS) - 1)]


PERLIN_BITS = 20  # 8 bits of position, 6 bits per gradient
_PERLIN: dict[str, Tensor] = {}


def perlin_table(device: torch.device) -> Tensor:
    """Perlin values of every (f, g0, g1) the 20-bit index codes: float32 [2^20], built once in
    float64. f = (i + ½)/256 and g = (2i + 1)/64 − 1 (symmetric about 0)."""
    if str(device) not in _PERLIN:
        index = torch.arange(1 << PERLIN_BITS, dtype=torch.int64)
        f = ((index >> 12) + 0.5) / 256
        g0, g1 = ((index >> 6) & 63) * 2 / 64 + 1 / 64 - 1, (index & 63) * 2 / 64 + 1 / 64 - 1
        fade = f**3 * (f * (f * 6 - 15) + 10)
        near, far = g0 * f, g1 * (f - 1)
        _PERLIN[str(device)] = (near + fade * (far - near)).to(torch.float32).to(device)
    return _PERLIN[str(device)]


def grown_radii(r0: Tensor, steps: Tensor) -> Tensor:
    """Radii of every orbit: r0 [B] plus the running sum of the radial steps [B, 2, K, N] over
    orbits (step k moves orbit k−1 to orbit k; step 0 is ignored). Summed in fixed point, so
    the sum is exact whatever order it runs in. -> float32 [B, 2, K, N]."""
    fixed = (steps * FIXED).round_().to(torch.int64)
    fixed[:, :, 0] = 0
    total = fixed.cumsum(2).to(torch.float32).div_(FIXED)  # an exact sum, then one rounding per value
    return total.add_(r0.to(torch.float32)[:, None, None, None])


_TABLES: dict[tuple[int, int, str], tuple[Tensor, Tensor]] = {}


def angle_table(low: int, high: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """cos and sin of 2π j / n for n in low..high (rows n − low) and j < high: float32
    [high − low + 1, high] each (0 beyond j ≥ n). Built once in float64, so that a vertex angle's
    value never depends on the batch it is computed in."""
    key = (low, high, str(device))
    if key not in _TABLES:
        n = torch.arange(low, high + 1, dtype=torch.float64)[:, None]
        j = torch.arange(high, dtype=torch.float64)[None, :]
        angle = 2 * math.pi * j / n
        used = j < n
        _TABLES[key] = tuple((f(angle) * used).to(torch.float32).to(device) for f in (torch.cos, torch.sin))
    return _TABLES[key]


# ------------------------------------------------------------------------------------ drawing
def vertex_positions(o: Orbits, res: int) -> Tensor:
    """Pixel coordinates at `res` of every vertex slot: float32 [B, 2 (x, y), K, N]."""
    trig = torch.stack((o.cos, o.sin), 1)[:, :, None]  # [B, 2, 1, N]
    scale = o.stretch * (res / CANVAS)  # [B, 2]
    return (o.radius * (trig * scale[:, :, None, None])).add_((o.centre * (res / CANVAS))[:, :, None, None])


def rasterise(o: Orbits, res: int) -> Tensor:
    """Draw every orbit of the batch as a closed 1 px polyline: uint8 [B, 3, res, res].

    Each segment (vertex j to vertex j + 1, the last back to the first) is sampled at steps of at
    most 1 px along its longer axis and each sample lights the pixel it falls in. A pixel takes
    the grey of the last orbit that crosses it: samples carry (orbit + 1) · 256 + grey and the
    canvas keeps the maximum, an integer reduction that is exact in any order.
    """
    b, _, k, n = o.radius.shape
    dev = o.radius.device
    start = vertex_positions(o, res)  # [B, 2, K, N]
    end = start.roll(-1, dims=3)  # vertex j + 1; the last used vertex of each image goes back to 0
    last = (o.vertices - 1).view(b, 1, 1, 1).expand(b, 2, k, 1)
    end.scatter_(3, last, start[..., :1])
    (x0, y0), (x1, y1) = start.unbind(1), end.unbind(1)  # [B, K, N] each
    used = (torch.arange(k, device=dev)[None, :, None] < o.orbits[:, None, None]) & (
        torch.arange(n, device=dev)[None, None] < o.vertices[:, None, None]
    )
    visible = used & (torch.maximum(x0, x1) >= 0) & (torch.minimum(x0, x1) < res)  # off-canvas: nothing
    visible &= (torch.maximum(y0, y1) >= 0) & (torch.minimum(y0, y1) < res)
    flat = visible.view(-1).nonzero()[:, 0]  # [S] visible segments, in (image, orbit, vertex) order
    img, orbit = flat // (k * n), flat // n % k
    label = (orbit + 1) * 256 + o.grey[img, orbit]  # what the segment writes
    sx, sy = x0.reshape(-1)[flat], y0.reshape(-1)[flat]
    dx, dy = x1.reshape(-1)[flat] - sx, y1.reshape(-1)[flat] - sy
    count = torch.maximum(dx.abs(), dy.abs()).ceil_().clamp_(1, 8 * res).to(torch.int64)  # samples
    seg = torch.repeat_interleave(count)  # [P]: the segment of each sample
    first = count.cumsum(0).sub_(count)
    t = (torch.arange(len(seg), device=dev) - first[seg]).to(torch.float32).div_(count[seg].to(torch.float32))
    px = (dx[seg].mul_(t)).add_(sx[seg]).floor_()
    py = (dy[seg].mul_(t)).add_(sy[seg]).floor_()
    inside = (px >= 0) & (px < res) & (py >= 0) & (py < res)
    seg = seg[inside]
    pixel = (img[seg] * res + py[inside].to(torch.int64)) * res + px[inside].to(torch.int64)
    canvas = torch.zeros(b * res * res, dtype=torch.int64, device=dev)
    canvas.scatter_reduce_(0, pixel, label[seg], "amax")
    canvas = canvas.view(b, 1, res, res)
    out = torch.where(canvas > 0, canvas & 255, o.background)
    return out.to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


# ------------------------------------------------------------------------------------ the family base
def as_number(family: str, name: str, value: Any, kind: type) -> Any:
    """A user's parameter as int or float; NoisevisionError (one line) if it is not a number."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        kind_words = "an integer" if kind is int else "a number"
        raise NoisevisionError(f"{family}: {name} must be {kind_words}, got {value!r}") from None
    if kind is int and number != value and not isinstance(value, str):
        raise NoisevisionError(f"{family}: {name} must be an integer, got {value!r}")
    if not math.isfinite(number):
        raise NoisevisionError(f"{family}: {name} must be finite, got {value!r}")
    return number


def check_classes(family: str, classes: Any) -> int:
    """The category count as an int >= 1; NoisevisionError (one line) otherwise."""
    count = as_number(family, "classes", classes, int)
    if not 1 <= count <= 2**31 - 1:
        raise NoisevisionError(f"{family} needs classes >= 1, got {classes}")
    return count


class OrbitFamily(Generator):
    """A labelled family of orbit drawings: image i is instance i // C of class i mod C.

    Subclasses draw the class parameters from the class keys (seed, class) and the rest from the
    image keys (`draw_orbits`); this base splits the indices and rasterises.
    """

    #: The family's default range of the first orbit's radius (r0_min, r0_max), 512 px units.
    r0_range: tuple[int, int] = (0, 100)
    search_space = (
        Param("classes", "int", 16, 1000, log=True, help="categories (FDSL's 1k vs 10k)"),
        Param("lambda_max", "float", 1.0, 8.0, help="largest Perlin amplitude of an orbit's growth"),
        Param("drift", "float", 0.01, 0.5, log=True, help="Perlin step between vertices"),
        Param("max_orbits", "int", 10, 400, log=True, help="most orbits a category draws"),
    )

    def __init__(
        self,
        spec: GeneratorSpec,
        classes: int = 1000,
        lambda_min: float = 0.0,
        lambda_max: float = 4.0,
        drift: float = 0.1,
        r0_min: int | None = None,
        r0_max: int | None = None,
        max_orbits: int = 200,
    ):
        law = OrbitLaw.parse(
            spec.name,
            lambda_min=lambda_min,
            lambda_max=lambda_max,
            drift=drift,
            r0_min=self.r0_range[0] if r0_min is None else r0_min,
            r0_max=self.r0_range[1] if r0_max is None else r0_max,
            max_orbits=max_orbits,
        )
        law.check(spec.name)
        classes = check_classes(spec.name, classes)
        super().__init__(spec, classes=classes, **vars(law))
        self.num_classes = classes
        self.law = law

    #: Images per call on a GPU: memory per image hardly depends on the resolution (the vertex
    #: slots), so a fixed count rather than a pixel budget.
    gpu_batch: int = 64

    def batch_limit(self, res: int, device: torch.device) -> int:
        if device.type == "cpu":  # an int64 canvas per image: at most 128 MiB of them at once
            return min(self.max_batch, max(1, (1 << 24) // (res * res)))
        return max(self.max_batch, self.gpu_batch)

    def draw(self, cls: Rng, img: Rng, instance: Tensor) -> OrbitDraws:  # pragma: no cover
        """The batch's class draws (from the class keys `cls`) and image draws (`img`)."""
        raise NotImplementedError

    def draw_orbits(self, cls: Rng, img: Rng, instance: Tensor) -> Orbits:
        """The batch's orbits, radii summed (tensor code)."""
        return self.draw(cls, img, instance).orbits_drawn()

    def render_indices(self, indices: Tensor, seed: int, res: int) -> Tensor:
        category, instance = indices % self.num_classes, indices // self.num_classes
        cls = Rng.for_indices(self.key + "/class", seed, category)
        img = Rng.for_indices(self.key, seed, indices)
        draws = self.draw(cls, img, instance)
        if indices.device.type == "cpu":  # one fused loop per image: the same bytes, far fewer passes
            from noisevision.generators.fdsl import contours_cpu

            return contours_cpu.render(draws, res, res / CANVAS, FIXED)
        return rasterise(draws.orbits_drawn(), res)

    def law_draws(self, cls: Rng) -> tuple[Tensor, Tensor, Tensor]:
        """K ∈ {1..max_orbits}, λ and w of each class: int64 [B], float32 [B], float32 [B]."""
        law = self.law
        orbits = cls.randint(1, law.max_orbits + 1, 1)[:, 0]
        lam = cls.uniform(1, low=law.lambda_min, high=law.lambda_max)[:, 0]
        drift = cls.uniform(1, low=0.0, high=law.drift)[:, 0]
        return orbits, lam, drift

    def r0_draw(self, r: Rng) -> Tensor:
        """r0 ∈ {r0_min..r0_max}: int64 [B]."""
        return r.randint(self.law.r0_min, self.law.r0_max + 1, 1)[:, 0]
