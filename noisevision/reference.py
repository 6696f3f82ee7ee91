"""Plain reference implementations of the slow recipes, one image at a time, the way the original
code computes them. `noisevision bench generators --reference` times them beside the batched
generators (the speed-up, measured in one run on one machine), and tests check the batched code
against them.

* Dead leaves: paint shape after shape over the whole image and test full coverage
  after each one. The shapes and colours are the generator's own draws, so the images are the
  generator's, byte for byte.
* Statistical models: per image and channel, NumPy FFTs, pyrtools' spatial steerable
  pyramid (matlabPyrTools' buildSpyr / reconSpyr) and matlabPyrTools' histoMatch written with
  np.histogram and np.interp. The model is the generator's own sample, so the images agree up to
  float rounding (float64 here, float32 there) and the generator's tabulated WMM targets.
* FractalDB and 1p-frac: the chaos game as a Python loop over the points (the maps picked by one
  NumPy draw up front), then FractalDB's drawing: a random 3×3 patch stamped point by point with
  NumPy slices (or the points alone), the canvas resized with PIL's box filter. The codes are the
  generator's (its category search is set-up, done before timing), the random streams NumPy's.
* RCDB and VisualAtom: the generator's orbits (radii, greys, placement), each orbit's vertices
  placed in a Python loop with math.cos / math.sin and drawn as one 1 px PIL polyline, as the
  original renderers do with their per-vertex loops and PIL lines. The rasterisation is PIL's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from noisevision.errors import NoisevisionError
from noisevision.generators import dead_leaves as dl
from noisevision.generators import statistical as st
from noisevision.generators.fdsl import contours, one_fractal
from noisevision.generators.fractals import fractaldb as fdb
from noisevision.generators.registry import Generator
from noisevision.generators.statistical import steerable
from noisevision.rng import Rng, as_indices


def has_reference(gen: Generator) -> bool:
    """Whether `render_reference` knows `gen`'s recipe."""
    return _recipe(gen) is not None


def _flat_dead_leaves(gen: Generator) -> bool:
    return isinstance(gen, dl.DeadLeaves) and not isinstance(gen, dl.DeadLeavesTextures)


def _recipe(gen: Generator) -> Callable[[Generator, Rng, torch.Tensor, int, int], torch.Tensor] | None:
    """The reference of `gen`: (generator, image keys, indices, res, seed) -> uint8 [B, 3, res, res]."""
    if _flat_dead_leaves(gen):
        return lambda g, rng, idx, res, seed: torch.from_numpy(paint_dead_leaves(g, rng, res)[0])
    for kind, recipe in REFERENCES.items():
        if isinstance(gen, kind):
            return recipe
    return None


def render_reference(gen: Generator, indices: Any, res: int, seed: int = 0) -> torch.Tensor:
    """Images `indices` of `gen` by the plain reference recipe: uint8 [B, 3, res, res] on CPU."""
    res = gen.check_res(res)
    recipe = _recipe(gen)
    if recipe is None:
        raise NoisevisionError(f"no reference implementation for '{gen.name}'")
    idx = as_indices(indices)
    return recipe(gen, Rng.for_indices(gen.key, seed, idx), idx, res, seed)


def _statistical(gen: st.StatisticalModel, rng: Rng, idx: torch.Tensor, res: int, seed: int) -> torch.Tensor:
    params = gen.sample_params(rng, res)
    return torch.stack([_statistical_image(params, b, res, gen.config) for b in range(rng.batch)])


# ------------------------------------------------------------------------------------ dead leaves
def paint_dead_leaves(gen: dl.DeadLeaves, rng: Rng, res: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The painter's algorithm: images uint8 [B, 3, res, res], the visible shape of each pixel
    [B, res, res] (-1: none) and n_stop [B] (shapes painted).

    Shapes and colours are drawn a block at a time as painting needs them; a pixel (centre at
    integer x, y) is inside a polygon when it lies on the inner side of every edge (to 1e-9 px),
    inside a circle when its distance to the centre is at most the radius.
    """
    y, x = np.mgrid[0:res, 0:res].astype(np.float64)
    images = np.zeros((rng.batch, 3, res, res), np.uint8)
    visible = np.full((rng.batch, res, res), -1, np.int64)
    n_stop = np.full(rng.batch, gen.max_shapes, np.int64)
    for b in range(rng.batch):
        image = Rng(rng.keys[b : b + 1])
        for s in range(gen.max_shapes):
            k = s % dl.BLOCK
            if k == 0:
                block = gen.leaves(image, res, s, min(dl.BLOCK, gen.max_shapes - s))
                kind, rho, cx, cy = (t[0].numpy() for t in (block.kind, block.rho, block.cx, block.cy))
                phi = block.phi[0].numpy()
                paint = gen.draw_paint(image.child("paint", torch.tensor([s // dl.BLOCK])), res)[0].numpy()
            px, py = x - cx[k], y - cy[k]
            if kind[k] == dl.CIRCLE:
                inside = px * px + py * py <= float(rho[k]) ** 2
            else:
                vx, vy = rho[k] * np.cos(phi[k]), rho[k] * np.sin(phi[k])
                inside = np.ones((res, res), bool)
                for v in range(4):
                    ex, ey = vx[(v + 1) % 4] - vx[v], vy[(v + 1) % 4] - vy[v]
                    length = np.hypot(ex, ey)
                    if length > 0:
                        inside &= ex * (py - vy[v]) - ey * (px - vx[v]) >= -1e-9 * length
            images[b][:, inside] = paint[k][:, None]
            visible[b][inside] = s
            if (visible[b] >= 0).all():  # the original's stopping rule: full coverage
                n_stop[b] = s + 1
                break
    return images, visible, n_stop


# ------------------------------------------------------------------------------ statistical models
def histo_match(x: np.ndarray, counts: np.ndarray, first_edge: float, step: float) -> np.ndarray:
    """matlabPyrTools' histoMatch: x's values mapped so that their histogram is `counts` (bins of
    width `step` from `first_edge`), through the two CDFs at the edges of x's own histogram."""
    c = counts.astype(np.float64)
    c = c + c.mean() * 1e-8  # (histoMatch: no empty bins)
    target_cdf = np.concatenate(([0.0], np.cumsum(c))) / c.sum()
    target_edges = first_edge + step * np.arange(len(c) + 1)
    hist, edges = np.histogram(x, bins=len(c), range=(x.min(), x.max()))
    source_cdf = np.concatenate(([0.0], np.cumsum(hist))) / x.size
    return np.interp(x, edges, np.interp(source_cdf, target_cdf, target_edges))


def _statistical_image(
    params: dict[str, torch.Tensor], b: int, res: int, config: st.ModelConfig
) -> torch.Tensor:
    """One image of the sampled model `params[...][b]`, channel by channel."""
    import pyrtools  # (dev extra: the reference only)

    p = {k: v[b].double().numpy() if v.is_floating_point() else v[b].numpy() for k, v in params.items()}
    levels = steerable.pyramid_levels(res)
    fy = np.abs(np.fft.fftfreq(res))[:, None]
    amplitude = 1.0 / (1e-16 + np.abs(np.fft.fftfreq(res))[None, :] ** p["alpha_x"] + fy ** p["alpha_y"])
    amplitude[0, 0] = 0.0
    lo, hi, step = st.WMM_GRID
    grid = np.arange(lo, hi + step / 2, step)
    scales = st.wmm_band_scales(res)
    chans = p["init"].copy()  # [3, N, N]
    for _ in range(config.n_iter):
        for c in range(3):
            x = chans[c]
            if config.spectrum:  # keep phase, mean and std; amplitude A
                spec = np.fft.fft2(x)
                mean, std = x.mean(), x.std()
                x = np.fft.ifft2(amplitude * np.exp(1j * np.angle(spec))).real
                x = (x - x.mean()) / x.std() * std + mean
            if config.wmm:
                pyr = pyrtools.pyramids.SteerablePyramidSpace(x, height=levels, order=3, edge_type="circular")
                keys = ["residual_highpass"] + [(lev, o) for lev in range(levels) for o in range(4)]
                for i, key in enumerate(keys):
                    band = pyr.pyr_coeffs[key]
                    density = np.exp(-(np.abs(grid / scales[i]) ** p["wmm_shape"][c, i]))
                    band = histo_match(band, density, lo - step / 2, step)
                    d = density / density.sum()  # standardised to the target's mean and std
                    t_mean = (d * grid).sum()
                    t_std = np.sqrt((d * (grid - t_mean) ** 2).sum())
                    pyr.pyr_coeffs[key] = (band - band.mean()) / band.std() * t_std + t_mean
                x = pyr.recon_pyr()
            if config.color:
                x = histo_match(x, p["hist_counts"][c], p["hist_lo"][c], p["hist_step"][c])
            chans[c] = x
    rgb = np.einsum("ij,jyx->iyx", p["pc"], chans) + p["mean"][:, None, None]
    rgb = rgb - rgb.min()
    rgb = rgb * (255.0 / max(rgb.max(), 1e-12))
    return torch.from_numpy(np.clip(np.floor(rgb + 0.5), 0, 255).astype(np.uint8))


# ------------------------------------------------------------------------------ formula-driven (FDSL)
def chaos_points(maps: np.ndarray, probs: np.ndarray, points: int, rng: np.random.Generator) -> np.ndarray:
    """The chaos game of one IFS, point by point as FractalDB's renderer: one uniform draw per
    point picks the first map whose cumulative probability reaches it. maps [N, 6] (a..f),
    probs [N] -> points [P, 2]."""
    cumulative = np.cumsum(probs / probs.sum()).tolist()
    rows = maps.tolist()
    x = y = 0.0
    xs, ys = [], []
    last = len(cumulative) - 1
    for u in rng.random(points).tolist():
        k = 0
        while k < last and u > cumulative[k]:
            k += 1
        a, b, c, d, e, f = rows[k]
        x, y = a * x + b * y + e, c * x + d * y + f
        xs.append(x)
        ys.append(y)
    return np.stack([xs, ys], 1)


def draw_ifs(pts: np.ndarray, size: int, res: int, patch: bool, seed: int) -> np.ndarray:
    """FractalDB's drawing of points [P, 2] on a size² canvas (6 px margin at 512), grey 127 on
    black, point by point: a pixel each, or a 3×3 patch of a random non-empty mask built cell by
    cell and pasted with PIL (which, as in the original, also blacks out the mask's empty cells).
    Resized to res with a box filter: uint8 [res, res]."""
    import random

    pts = pts[np.isfinite(pts).all(1) & (np.abs(pts) < 1e6).all(1)]
    margin = max(2, round(fdb.MARGIN * size / fdb.SEARCH_SIZE))
    lo, hi = pts.min(0), pts.max(0)
    xy = ((pts - lo) * ((size - 2 * margin) / np.maximum(hi - lo, 1e-12)) + margin).astype(np.int64)
    if patch:
        draw = random.Random(seed)
        image = Image.new("L", (size, size))
        for x, y in xy.tolist():
            mask = f"{draw.randrange(1, 512):09b}"
            cells = np.zeros((3, 3), np.uint8)
            for i in range(3):
                for j in range(3):
                    cells[i, j] = fdb.GREY * int(mask[3 * i + j])
            image.paste(Image.fromarray(cells), (x - 1, y - 1))
    else:
        canvas = np.zeros((size, size), np.uint8)
        for x, y in xy.tolist():
            canvas[y, x] = fdb.GREY
        image = Image.fromarray(canvas)
    return np.asarray(image.resize((res, res), Image.BOX) if size != res else image)


def _ifs_images(
    codes: list[tuple[np.ndarray, np.ndarray]],
    points: int,
    size: int,
    res: int,
    patch: bool,
    seeds: list[int],
) -> torch.Tensor:
    out = []
    for (maps, probs), s in zip(codes, seeds, strict=True):
        grey = draw_ifs(chaos_points(maps, probs, points, np.random.default_rng(s)), size, res, patch, s)
        out.append(np.repeat(grey[None], 3, 0))
    return torch.from_numpy(np.stack(out))


def _fractaldb(gen: fdb.FractalDB, rng: Rng, idx: torch.Tensor, res: int, seed: int) -> torch.Tensor:
    category, instance = idx % gen.num_classes, idx // gen.num_classes
    code = fdb.instance_code(gen.search.codes(seed, category), instance, gen.interval).double().numpy()
    codes = [(c[:, :6], c[:, 6]) for c in code]
    images = _ifs_images(
        codes, gen.points, max(res, gen.canvas), res, gen.render_mode == "patch", idx.tolist()
    )
    return fdb.flip(images, (instance // fdb.VARIATIONS) % fdb.FLIPS)


def _one_fractal(
    gen: one_fractal.OneFractal, rng: Rng, idx: torch.Tensor, res: int, seed: int
) -> torch.Tensor:
    params = gen.class_params(seed, idx % gen.num_classes).double().numpy()  # [B, 2, 6]
    codes = []
    for p in params:
        det = np.abs(p[:, 0] * p[:, 3] - p[:, 1] * p[:, 2])
        codes.append((p, det / max(det.sum(), 1e-12)))
    return _ifs_images(codes, gen.points, max(res, fdb.SEARCH_SIZE), res, True, idx.tolist())


def _orbits(gen: contours.OrbitFamily, rng: Rng, idx: torch.Tensor, res: int, seed: int) -> torch.Tensor:
    import noise  # the Perlin noise of the original renderers (dev extra: the reference only)

    out = []
    for i in idx.tolist():
        one = torch.tensor([i])
        cls = Rng.for_indices(gen.key + "/class", seed, one % gen.num_classes)
        o = gen.draw_orbits(cls, Rng.for_indices(gen.key, seed, one), one // gen.num_classes)
        out.append(_orbit_image(o, res, noise.pnoise1, i))
    return torch.stack(out)


def _orbit_image(o: contours.Orbits, res: int, pnoise1: Callable[[float], float], seed: int) -> torch.Tensor:
    """One image of the recipe of orbits `o` (a batch of one: its class and placement), as the
    original renderers draw it: per orbit, two Perlin values per vertex at positions from Python's
    random, each vertex moved radially, then every segment drawn with its own 1 px PIL line."""
    import random

    draw_random = random.Random(seed)
    scale = res / contours.CANVAS
    cx, cy = (o.centre[0] * scale).tolist()
    ax, ay = (o.stretch[0] * scale).tolist()
    n, greys = int(o.vertices[0]), o.grey[0].tolist()
    lam, spread = float(o.lam[0]), o.perlin_spread
    offset = o.offset[0].tolist()  # the per-vertex term besides the noise (drift, waves)
    r0 = float(o.radius[0, 0, 0, 0])
    angle = 2 * math.pi / n
    rx, ry = [r0] * n, [r0] * n
    canvas = Image.new("L", (res, res), o.background)
    draw = ImageDraw.Draw(canvas)
    for k in range(int(o.orbits[0])):
        if k:
            nx = [pnoise1(draw_random.uniform(0, 10000)) for _ in range(n)]
            ny = [pnoise1(draw_random.uniform(0, 10000)) for _ in range(n)]
            for j in range(n):
                rx[j] += lam * (1 - spread * nx[j]) + offset[j]
                ry[j] += lam * (1 - spread * ny[j]) + offset[j]
        xs = [cx + ax * rx[j] * math.cos(angle * j) for j in range(n)]
        ys = [cy + ay * ry[j] * math.sin(angle * j) for j in range(n)]
        xs.append(xs[0])
        ys.append(ys[0])
        for j in range(n):
            draw.line((xs[j], ys[j], xs[j + 1], ys[j + 1]), fill=greys[k], width=1)
    return torch.from_numpy(np.array(canvas)).expand(3, -1, -1)


REFERENCES: dict[type, Callable[..., torch.Tensor]] = {
    st.StatisticalModel: _statistical,
    fdb.FractalDB: _fractaldb,
    one_fractal.OneFractal: _one_fractal,
    contours.OrbitFamily: _orbits,
}
