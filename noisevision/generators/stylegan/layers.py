"""StyleGAN2's synthesis layers as tensor code that gives an image the same bytes in any batch:
modulated convolutions, the [1,3,3,1] up-sampling, the tied layers' taps and activations, ToRGB."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

RELU_GAIN = math.sqrt(2.0)
_FIR = (1.0, 3.0, 3.0, 1.0)


def sum_in_order(terms: Iterable[Tensor]) -> Tensor:
    """t0 + t1 + … added left to right (elementwise, so the same bytes on any CPU)."""
    it = iter(terms)
    total = next(it)
    for t in it:
        total = total + t
    return total


# ------------------------------------------------------------------------------------ layers
def per_image_matmul(a: Tensor, m: Tensor) -> Tensor:
    """a [B, …, K] @ m [K, N] -> [B, …, N] as a multiply and a sum over K, for small products.

    BLAS picks kernels and thread splits by the number of rows, so a matmul over the batch gives an
    image values that depend on the batch it is rendered in; an image must be the same bytes in any.
    """
    return (a[..., :, None] * m).sum(dim=-2)


def fir_filter(x: Tensor, pad: tuple[int, int]) -> Tensor:
    """Correlate the last two dims with the separable [1,3,3,1] filter (gain 4 = up², StyleGAN2's
    upfirdn2d) after zero-padding each by `pad`: [..., H, W] -> [..., H + Σpad − 3, W + Σpad − 3].

    Shifted multiply-adds rather than a conv: elementwise ops give every image the same bytes
    whatever the batch and thread count, where a conv library's algorithm choice may not.
    """
    for dim, pads in ((-2, (0, 0, *pad)), (-1, pad)):
        x = F.pad(x, pads)
        n = x.shape[dim] - 3
        out = x.narrow(dim, 0, n) * (_FIR[0] / 4)
        for k in (1, 2, 3):
            out.add_(x.narrow(dim, k, n), alpha=_FIR[k] / 4)
        x = out
    return x


def upsample2d(x: Tensor) -> Tensor:
    """2× up-sampling with the [1,3,3,1] filter: [..., H, W] -> [..., 2H, 2W].

    StyleGAN2's upsample2d (zero insertion, then the filter with padding (2, 1)) in polyphase form:
    per dimension, output 2i = ¼·x[i−1] + ¾·x[i] and output 2i+1 = ¾·x[i] + ¼·x[i+1].
    """
    for dim, pads in ((-2, (0, 0, 1, 1)), (-1, (1, 1))):
        xp = F.pad(x, pads)
        n = x.shape[dim]
        centre = xp.narrow(dim, 1, n) * 0.75
        even = centre.add(xp.narrow(dim, 0, n), alpha=0.25)
        odd = centre.add_(xp.narrow(dim, 2, n), alpha=0.25)
        x = torch.stack((even, odd), dim=dim).flatten(dim - 1, dim)  # interleave: [.., n, 2, ..]
    return x


def conv3x3(x: Tensor, weight: Tensor, up: bool, groups: int = 1) -> Tensor:
    """3×3 convolution, or StyleGAN2's up-sampling one (transposed stride-2 conv, then FIR).

    x [N, groups·I, H, W], weight [groups·O, I, 3, 3] -> [N, groups·O, H', W'].
    """
    if not up:
        return F.conv2d(x, weight, padding=1, groups=groups)
    o, i = weight.shape[0] // groups, weight.shape[1]
    wt = weight.view(groups, o, i, 3, 3).transpose(1, 2).reshape(groups * i, o, 3, 3)
    return fir_filter(F.conv_transpose2d(x, wt, stride=2, groups=groups), (1, 1))  # 2H+1 -> 2H


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, up: bool = False) -> Tensor:
    """StyleGAN2's modulated + demodulated 3×3 convolution.

    x [B, I, H, W], styles [B, I]; weight [O, I, 3, 3] shared by the batch, or [B, O, I, 3, 3] one
    per image. Per image the kernel is W·s (per input channel) times 1/sqrt(Σ(W·s)² + 1e−8) (per
    output channel). A shared weight runs as one batched conv with the styles and demodulation
    applied to the activations (StyleGAN2's non-fused form); per-image weights run as one grouped
    conv with groups = B (its fused form).
    """
    b = x.shape[0]
    if weight.dim() == 4:  # shared: Σ_i (W s_i)² = s² @ ΣW²
        demod = (per_image_matmul(styles.square(), weight.square().sum(dim=(2, 3)).T) + 1e-8).rsqrt()
        y = conv3x3(x * styles[:, :, None, None], weight, up)
        return y * demod[:, :, None, None]
    w = weight * styles[:, None, :, None, None]  # [B, O, I, 3, 3]
    w = w * (w.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).rsqrt()
    y = conv3x3(x.reshape(1, -1, *x.shape[2:]), w.flatten(0, 1), up, groups=b)
    return y.view(b, -1, *y.shape[2:])


def place_taps(taps: Tensor, up: bool) -> Tensor:
    """Sum 9 tap maps at their 3×3 offsets: [B, 9, h, w] -> [B, 1, H, W] (H = 2h if `up`).

    With taps[t] = Σ_i m_i[t]·x_i this equals Σ_i m_i ⋆ x_i, the 3×3 convolution (or StyleGAN2's
    up-sampling transposed convolution + FIR) of C input channels into one output map.
    """
    b, _, h, w = taps.shape
    if up:  # transposed stride-2 conv: tap (kh, kw) of input (p, q) lands on (2p + kh, 2q + kw)
        y = taps.new_zeros(b, 2 * h + 1, 2 * w + 1)
        for t in range(9):
            y[:, t // 3 : t // 3 + 2 * h : 2, t % 3 : t % 3 + 2 * w : 2] += taps[:, t]
        return fir_filter(y, (1, 1))[:, None]  # StyleGAN2's FIR after the transposed conv
    # y(p) = Σ_t taps_t(p + offset_t), zero outside
    y = taps[:, 4].clone()  # centre tap
    for t in (0, 1, 2, 3, 5, 6, 7, 8):
        dy, dx = t // 3 - 1, t % 3 - 1
        dst = y[:, max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)]
        dst += taps[:, t, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)]
    return y[:, None]


def tied_demodulation(m: Tensor) -> Tensor:
    """1/|W s| for W[o, i] = gain_o·f_i: [B] from modulated filters m = f·s [B, I, 3, 3].

    Demodulating gain_o·m by 1/sqrt(gain_o²·Σ|m|² + 1e−8) leaves sign(gain_o)/sqrt(Σ|m|²): the
    gain's magnitude cancels (the paper's note). The 1e−8 is dropped: with Σ|m|² ≳ 100 here it moves
    the result by < 1e−7 (float32 resolution) when |gain| > 0.03, by < 1e−4 when |gain| > 1e−3.
    """
    return m.square().sum(dim=(1, 2, 3)).rsqrt()


@dataclass
class TiedActivation:
    """A tied layer's output x_o = √2·ReLU(sign_o·A·y + noise + bias_o), all channels o, kept as 2 maps.

    u = A·y + noise serves the channels with a positive gain, v = −A·y + noise the others; forming
    the [B, C, H, W] tensor is never needed (`readout`).
    """

    u: Tensor  # [B, HW]
    v: Tensor  # [B, HW]
    positive: Tensor  # [B, C] bool: sign of the gain
    bias: Tensor  # [B, C]

    def readout(self, weights: Tensor) -> Tensor:
        """Σ_o weights[b, j, o]·x_o: [B, J, C] -> [B, J, HW], as `weights @ x` but O(J) per pixel.

        Per image, Σ_o w_o·√2·ReLU(t + bias_o) is piecewise linear in t with kinks at −bias_o:
        sorting channels by kink, its slope and offset between kinks are cumulative sums over
        channels; every pixel looks its piece up (searchsorted) and evaluates slope·t + offset.
        """
        b, j, c = weights.shape
        kinks, order = (-self.bias).sort(dim=1, stable=True)  # [B, C]
        w = weights.gather(2, order[:, None].expand(b, j, c)) * RELU_GAIN  # [B, J, C] in kink order
        positive = self.positive.gather(1, order)[:, None]  # [B, 1, C]
        rows = torch.arange(b, device=w.device)[:, None] * (c + 1)  # first table row per image
        out = None
        for t, mask in ((self.u, positive), (self.v, ~positive)):
            wm = w * mask
            slope = F.pad(wm.cumsum(2), (1, 0))  # [B, J, C+1]: piece k has channels 0..k-1 active
            offset = -F.pad((wm * kinks[:, None]).cumsum(2), (1, 0))
            table = torch.stack((slope, offset), dim=1).permute(0, 3, 1, 2).reshape(b * (c + 1), 2 * j)
            piece = torch.searchsorted(kinks, t) + rows  # [B, HW]: number of kinks below t
            coef = table.index_select(0, piece.view(-1)).view(b, -1, 2, j)  # [B, HW, 2, J]
            part = torch.addcmul(coef[:, :, 1], coef[:, :, 0], t[:, :, None])  # [B, HW, J]
            out = part if out is None else out.add_(part)
        return out.transpose(1, 2)


def to_rgb(x: Tensor, weight: Tensor) -> Tensor:
    """1×1 ToRGB with modulated weights [B, 3, C] (linear, zero bias): [B, C, H, W] -> [B, 3, H, W]."""
    b, c, h, w = x.shape
    return torch.bmm(weight, x.reshape(b, c, h * w)).view(b, 3, h, w)
