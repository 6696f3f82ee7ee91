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

import numpy as np
import torch
from numba import njit
from torch import Tensor

from noisevision.generators.fdsl.contours import CANVAS, FIXED, OrbitDraws, perlin_parts
from noisevision.rng.cpu import _GAMMA, _mix


def render(d: OrbitDraws, res: int) -> Tensor:
    """The images of the draws `d` at `res` px: uint8 [B, 3, res, res]."""
    b = d.orbits.shape[0]
    states = d.perlin.word_states().numpy().view(np.uint64)
    canvas = np.zeros((b, res, res), np.int64)
    _draw(
        states,
        d.grey.shape[1],
        d.cos.shape[1],
        *_perlin_parts(),
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
        np.float32(res / CANVAS),
        canvas,
    )
    out = np.where(canvas > 0, canvas & 255, d.background).astype(np.uint8)
    return torch.from_numpy(out)[:, None].expand(-1, 3, -1, -1).contiguous()


_PARTS: list[tuple[np.ndarray, ...]] = []


def _perlin_parts() -> tuple[np.ndarray, ...]:
    if not _PARTS:
        _PARTS.append(perlin_parts())
    return _PARTS[0]


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
    f: np.ndarray,  # float32 [256], [256], [256], [64]: contours.perlin_parts
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
    canvas: np.ndarray,  # int64 [B, res, res], zeros: (orbit + 1)·256 + grey of the last orbit
) -> None:
    res = canvas.shape[1]
    one, fixed = np.float32(1.0), np.float32(FIXED)
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
