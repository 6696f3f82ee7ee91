"""Plain reference implementations of the two slow recipes of the paper, one image at a time, the
way the original code computes them. `noisevision bench generators --reference` times them beside
the batched generators (the speed-up, measured in one run on one machine), and tests check the
batched code against them.

* Dead leaves: paint shape after shape over the whole image and test full coverage
  after each one. The shapes and colours are the generator's own draws, so the images are the
  generator's, byte for byte.
* Statistical models: per image and channel, NumPy FFTs, pyrtools' spatial steerable
  pyramid (matlabPyrTools' buildSpyr / reconSpyr) and matlabPyrTools' histoMatch written with
  np.histogram and np.interp. The model is the generator's own sample, so the images agree up to
  float rounding (float64 here, float32 there) and the generator's tabulated WMM targets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from noisevision.errors import NoisevisionError
from noisevision.generators import dead_leaves as dl
from noisevision.generators import statistical as st
from noisevision.generators.registry import Generator
from noisevision.generators.statistical import steerable
from noisevision.rng import Rng, as_indices


def has_reference(gen: Generator) -> bool:
    """Whether `render_reference` knows `gen`'s recipe."""
    return _flat_dead_leaves(gen) or isinstance(gen, st.StatisticalModel)


def _flat_dead_leaves(gen: Generator) -> bool:
    return isinstance(gen, dl.DeadLeaves) and not isinstance(gen, dl.DeadLeavesTextures)


def render_reference(gen: Generator, indices: Any, res: int, seed: int = 0) -> torch.Tensor:
    """Images `indices` of `gen` by the plain reference recipe: uint8 [B, 3, res, res] on CPU."""
    res = gen.check_res(res)
    rng = Rng.for_indices(gen.key, seed, as_indices(indices))
    if _flat_dead_leaves(gen):
        return torch.from_numpy(paint_dead_leaves(gen, rng, res)[0])
    if isinstance(gen, st.StatisticalModel):
        params = gen.sample_params(rng, res)
        return torch.stack([_statistical_image(params, b, res, gen.config) for b in range(rng.batch)])
    raise NoisevisionError(f"no reference implementation for '{gen.name}'")


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
