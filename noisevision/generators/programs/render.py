"""Programs to RGB images: each image's field (fused kernels on a GPU, else tensor code),
coloured by its palette, finished, softened; and the blank-image test."""

from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import Tensor

from noisevision.generators.programs.fields import (
    batched_matmul,
    canvas_side,
    cppn_outputs_tensor,
    row_mean,
    shader_field_tensor,
)
from noisevision.generators.programs.operators import FINISHES, PALETTES, _fract, _lerp, _loglerp, groups

BLANK_STD = 0.04  # luminance std (0..1) under which an image counts as blank


def _palette(p: dict[str, Tensor], rows: Tensor, t: Tensor) -> Tensor:
    """Colour a standardised field t [n, N] in [0, 1]: cosine palette a + b·cos(2π(c·t + d)) or a
    gradient map through 5 random colours. -> [n, 3, N]."""
    t = 0.5 + 0.5 * torch.tanh(t * p["contrast"][rows])
    out = torch.empty(t.shape[0], 3, t.shape[1], device=t.device)
    for kind, sub in groups(p["palette"][rows]):
        ts = t[sub][:, None]  # [m, 1, N]
        if PALETTES[kind] == "cosine":
            pu = p["palette_u"][rows[sub]]  # [m, 4, 3]
            a, b = _lerp(0.3, 0.7, pu[:, 0]), _lerp(0.2, 0.5, pu[:, 1])
            c, d = _lerp(0.4, 1.6, pu[:, 2]), pu[:, 3]
            wave = torch.cos(2 * math.pi * (c[..., None] * ts + d[..., None]))
            out.index_copy_(0, sub, a[..., None] + b[..., None] * wave)
        else:
            stops = p["stops"][rows[sub]].transpose(1, 2)  # [m, 3, 5] colours at t = 0, ¼, …, 1
            pos = ts[:, 0] * 3.999
            i = pos.long()
            lo = stops.gather(2, i[:, None].expand(-1, 3, -1))
            hi = stops.gather(2, (i + 1)[:, None].expand(-1, 3, -1))
            out.index_copy_(0, sub, torch.lerp(lo, hi, (pos - i)[:, None]))
    return out.clamp(0, 1)


def _finish(p: dict[str, Tensor], rows: Tensor, rgb: Tensor, t: Tensor, side: int, res: int) -> Tensor:
    """Outline, shade or contour rgb [n, 3, N] from the field t [n, N]'s gradient on the canvas."""
    out = rgb.clone()
    f = p["finish_u"][rows]
    for kind, sub in groups(p["finish"][rows]):
        if FINISHES[kind] == "flat":
            continue
        ts = t[sub].view(-1, side, side)
        gx = torch.diff(ts, dim=2, append=ts[:, :, -1:]) * (res / 128)
        gy = torch.diff(ts, dim=1, append=ts[:, -1:, :]) * (res / 128)
        fs = f[sub]
        if FINISHES[kind] == "outline":
            edge = (torch.sqrt(gx * gx + gy * gy) * _loglerp(1, 8, fs[:, :1, None])).clamp(0, 1)
            shade = 1 - edge * _lerp(0.5, 1, fs[:, 1:2, None])
        elif FINISHES[kind] == "shaded":
            height = _loglerp(0.5, 4, fs[:, :1, None])
            angle = fs[:, 1:2, None] * 2 * math.pi
            nx, ny = -gx * height, -gy * height
            lit = (nx * torch.cos(angle) + ny * torch.sin(angle) + 0.7) / torch.sqrt(nx * nx + ny * ny + 1)
            shade = _lerp(0.35, 1.1, lit.clamp(0, 1))
        else:
            level = t[sub].view(-1, side, side) * _lerp(1, 4, fs[:, :1, None])
            line = (_fract(level) - 0.5).abs()
            shade = torch.where(line > 0.42, 0.35, 1.0)
        out.index_copy_(0, sub, rgb.index_select(0, sub) * shade.view(len(sub), 1, -1))
    return out.clamp(0, 1)


def _fused(device: torch.device) -> Any:
    """`cuda` where its fused kernels render (a GPU with Triton, or Triton's interpreter on a CPU
    for the tests), else None."""
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        return None
    from noisevision.generators.programs import cuda

    return cuda if cuda.available(device) else None


def shader_field(p: dict[str, Tensor], rows: Tensor, res: int, depth: int) -> Tensor:
    """The standardised shader field [n, side²] of images `rows`: by fused kernels on a GPU with
    Triton (`cuda`), by tensor code elsewhere."""
    fused = _fused(rows.device)
    return fused.shader_field(p, rows, res, depth) if fused else shader_field_tensor(p, rows, res, depth)


def cppn_outputs(p: dict[str, Tensor], rows: Tensor, res: int) -> Tensor:
    """The CPPN's three standardised outputs [n, 3, side²] of images `rows`: by a fused kernel on a
    GPU with Triton (`cuda`), by tensor code elsewhere."""
    fused = _fused(rows.device)
    return fused.cppn_outputs(p, rows, res) if fused else cppn_outputs_tensor(p, rows, res)


def render_programs(p: dict[str, Tensor], res: int, depth: int) -> Tensor:
    """float32 RGB [B, 3, res, res] in [0, 1] of sampled programs (sample_program)."""
    b, dev = p["grammar"].shape[0], p["grammar"].device
    side = canvas_side(res)
    t = torch.empty(b, side * side, device=dev)
    rgb = torch.empty(b, 3, side * side, device=dev)
    everyone = torch.arange(b, device=dev)
    for grammar, rows in groups(p["grammar"]):
        if grammar == 0:
            out = cppn_outputs(p, rows, res)
            field = out[:, 0]
            m = torch.tanh(batched_matmul(p["colour_matrix"][rows], out)) * 0.5 + 0.5
            colour = torch.lerp(_palette(p, rows, field), m, p["direct"][rows, :, None] * 0.7)
        else:
            field = shader_field(p, rows, res, depth)
            colour = _palette(p, rows, field)
        t.index_copy_(0, rows, field)
        rgb.index_copy_(0, rows, colour)
    rgb = _finish(p, everyone, rgb, t, side, res)
    grey = rgb.mean(1, keepdim=True)
    rgb = torch.lerp(grey, rgb, p["saturation"][:, :, None])  # from nearly grey to the palette's colours
    rgb = soften(rgb.view(b, 3, side, side), p["soften"] * (res / 128))
    return rgb[:, :, :res, :res]


def soften(img: Tensor, w: Tensor) -> Tensor:
    """A per-image blur, like a lens slightly out of focus: the 3-tap filter [w, 1 − 2w, w]
    (w [B, 1] in 0..0.25 at 128 px) twice along each axis, edges repeated. [B, C, H, W]."""
    if img.device.type == "cpu":
        from noisevision.generators.programs import soften_cpu  # numba compiles (or loads) on first use

        img = img.contiguous()
        out = torch.empty_like(img)
        weight = (2 * w.clamp(0, 0.25)).reshape(-1).expand(img.shape[0]).contiguous()
        soften_cpu.soften(img.numpy(), weight.numpy(), out.numpy())
        return out
    return _soften(img, w)


def _soften(img: Tensor, w: Tensor) -> Tensor:
    w = w.clamp(0, 0.25)[:, :, None, None]
    for dim in (2, 3, 2, 3):
        first, last = img.narrow(dim, 0, 1), img.narrow(dim, img.shape[dim] - 1, 1)
        pad = torch.cat([first, img, last], dim)
        n = img.shape[dim]
        img = torch.lerp(img, (pad.narrow(dim, 0, n) + pad.narrow(dim, 2, n)) * 0.5, 2 * w)
    return img


def is_blank(rgb: Tensor) -> Tensor:
    """Images [B, 3, H, W] in [0, 1] whose luminance is nearly flat: [B] bool."""
    lum = rgb.mean(1).flatten(1)
    return row_mean((lum - row_mean(lum)).square())[:, 0].sqrt() < BLANK_STD
