"""RCDB and VisualAtom on a CPU: an image's orbits drawn in one numba loop, the same bytes as the
tensor code of `contours` (`OrbitDraws.orbits_drawn` then `rasterise`).

The tensor code pads every image of a batch to the batch's largest orbit and vertex counts and
makes a dozen passes over [B, 2, K, N] tensors and over every line sample; here each image hashes
only the noise words it uses (counter-based: a word depends on its index, not on which others
are drawn), sums its radii in the same 2^-16 px fixed point and writes its line samples straight
into its canvas. Every float operation is the tensor code's, one IEEE float32 operation at a time
in the same order (numba without fastmath fuses no multiply-add), so the bytes are the same.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from numba import njit
from torch import Tensor

from noisevision.rng.cpu import _GAMMA, _mix


def render(d: Any, res: int, scale: float, fixed: int) -> Tensor:
    """The images of the draws `d` (a contours.OrbitDraws; contours imports this module) at
    `res` px: uint8 [B, 3, res, res]. `scale`: pixels at `res` per pixel of the recipes' canvas;
    `fixed`: fixed-point steps per pixel of the radial sums."""
    b = d.orbits.shape[0]
    states = d.perlin.word_states().numpy().view(np.uint64)
    canvas = np.zeros((b, res, res), np.int32)  # labels (orbit + 1)·256 + grey: far below 2^31
    _draw(
        states,
        d.grey.shape[1],
        d.cos.shape[1],
        *perlin_parts(),
        np.float32(d.perlin_spread),
        d.lam.numpy(),
        np.ascontiguousarray(d.offset.numpy()),
        d.r0.numpy(),
        d.orbits.numpy(),
        d.vertices.numpy(),
        np.ascontiguousarray(d.cos.numpy()),
        np.ascontiguousarray(d.sin.numpy()),
        np.ascontiguousarray(d.centre.numpy()),
        np.ascontiguousarray(d.stretch.numpy()),
        np.ascontiguousarray(d.grey.numpy()),
        np.float32(scale),
        np.float32(fixed),
        canvas,
    )
    out = np.empty((b, 3, res, res), np.uint8)
    _finish(canvas, np.uint8(d.background), out)
    return torch.from_numpy(out)


@njit(cache=True, nogil=True, boundscheck=False)
def _finish(canvas: np.ndarray, background: np.uint8, out: np.ndarray) -> None:
    """out[b, c] = the grey of the last orbit drawn at each pixel, else the background, in every
    channel c (one pass instead of where, a cast and a 3-channel copy)."""
    for b in range(canvas.shape[0]):
        for y in range(canvas.shape[1]):
            for x in range(canvas.shape[2]):
                v = canvas[b, y, x]
                grey = np.uint8(v & 255) if v > 0 else background
                out[b, 0, y, x] = grey
                out[b, 1, y, x] = grey
                out[b, 2, y, x] = grey


@functools.cache
def perlin_parts() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What `perlin_table` is made of, per 8-bit fraction and 6-bit gradient, float32: f, f − 1
    and fade(f) [256], g [64]. Entry (f, g0, g1) of the table is near + fade·(far − near) with
    near = g0·f and far = g1·(f − 1), each a float32 operation: a CPU loop computes it from these
    1.8 KB instead of reading the 4 MB table (the same values, tested for all 2^20)."""
    f = (torch.arange(256, dtype=torch.int64) + 0.5) / 256
    g = torch.arange(64, dtype=torch.int64) * 2 / 64 + 1 / 64 - 1
    fade = f**3 * (f * (f * 6 - 15) + 10)
    return tuple(np.ascontiguousarray(t.to(torch.float32).numpy()) for t in (f, f - 1, fade, g))


@njit(cache=True, nogil=True, inline="always")
def _perlin(word: np.uint64, f: np.ndarray, f1: np.ndarray, fade: np.ndarray, g: np.ndarray) -> np.float32:
    """perlin_table[(word >> 1) & (2^20 − 1)], computed: bits 13-20 the fraction, 7-12 and 1-6
    the two gradients."""
    a = (word >> np.uint64(13)) & np.uint64(255)
    near = g[(word >> np.uint64(7)) & np.uint64(63)] * f[a]
    far = g[(word >> np.uint64(1)) & np.uint64(63)] * f1[a]
    return near + fade[a] * (far - near)


@njit(cache=True, nogil=True, boundscheck=False)
def _draw(
    states: np.ndarray,  # uint64 [B]: the noise draw's word states
    k_slots: int,  # the draw's word shape [2, k_slots, n_slots]
    n_slots: int,
    f: np.ndarray,  # float32 [256], [256], [256], [64]: perlin_parts()
    f1: np.ndarray,
    fade: np.ndarray,
    g: np.ndarray,
    spread: np.float32,
    lam: np.ndarray,  # float32 [B]
    offset: np.ndarray,  # float32 [B, N]
    r0: np.ndarray,  # int64 [B]
    orbits: np.ndarray,  # int64 [B]
    vertices: np.ndarray,  # int64 [B]
    cos: np.ndarray,  # float32 [B, N]
    sin: np.ndarray,
    centre: np.ndarray,  # float32 [B, 2]
    stretch: np.ndarray,  # float32 [B, 2]
    grey: np.ndarray,  # int64 [B, K]
    scale: np.float32,  # res / 512
    fixed: np.float32,  # 2^16
    canvas: np.ndarray,  # int32 [B, res, res], zeros: (orbit + 1)·256 + grey of the last orbit
) -> None:
    res = canvas.shape[1]
    one = np.float32(1.0)
    longest = np.float32(8 * res)
    for b in range(states.shape[0]):
        n, k_count = vertices[b], orbits[b]
        total = np.zeros((2, n), np.int64)  # fixed-point radial sums
        x = np.empty(n, np.float32)
        y = np.empty(n, np.float32)
        sx = stretch[b, 0] * scale
        sy = stretch[b, 1] * scale
        cx = centre[b, 0] * scale
        cy = centre[b, 1] * scale
        start = np.float32(r0[b])
        for k in range(k_count):
            if k > 0:  # step k moves orbit k − 1 to orbit k
                for axis in range(2):
                    base = (axis * k_slots + k) * n_slots
                    for j in range(n):
                        word = _mix(states[b] + np.uint64(base + j + 1) * _GAMMA)
                        noise = _perlin(word, f, f1, fade, g)
                        step = (one - spread * noise) * lam[b]
                        step = step + offset[b, j]
                        total[axis, j] += np.int64(np.rint(step * fixed))
            for j in range(n):
                rx = np.float32(total[0, j]) / fixed + start
                ry = np.float32(total[1, j]) / fixed + start
                x[j] = rx * (cos[b, j] * sx) + cx
                y[j] = ry * (sin[b, j] * sy) + cy
            label = (k + 1) * 256 + grey[b, k]
            for j in range(n):
                e = j + 1 if j + 1 < n else 0
                x0, y0, x1, y1 = x[j], y[j], x[e], y[e]
                if max(x0, x1) < 0 or min(x0, x1) >= res or max(y0, y1) < 0 or min(y0, y1) >= res:
                    continue
                dx, dy = x1 - x0, y1 - y0
                samples = min(max(np.ceil(max(abs(dx), abs(dy))), one), longest)  # ≤ 1 px apart
                for i in range(int(samples)):
                    t = np.float32(i) / samples
                    px = np.floor(dx * t + x0)
                    py = np.floor(dy * t + y0)
                    if 0 <= px < res and 0 <= py < res:
                        row, col = int(py), int(px)
                        if canvas[b, row, col] < label:
                            canvas[b, row, col] = label
