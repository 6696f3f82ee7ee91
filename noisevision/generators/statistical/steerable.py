"""Batched steerable pyramids (4 orientations, order 3) in the frequency domain, for the WMM.

Two pyramids share one layout and one API (`steerable_pyramid(res, device, kind)`, then
`build_from_spectrum` / `build` / `reconstruct`):

- "spatial": MATLAB's pyramid, the one that made the paper's WMM data (matlabPyrTools
  `buildSpyr` / `reconSpyr` with `sp3Filters` and circular edges). Circular correlation with a
  filter is a product with the conjugate of its DFT and keeping every second sample is a fold of
  the spectrum, so the very same transform runs as per-level FFT masks (its coefficient units
  and broad filters decide the look of the WMM images). Like the original it is not exactly
  invertible (sp3 filters: about 1 % error).
- "frequency": the pyramid of pyrtools' `SteerablePyramidFreq` (raised-cosine radial
  transitions one octave wide, cos³ angular lobes), exactly invertible. Its levels are rescaled
  by the spatial pyramid's coefficient gains (`FREQUENCY_GAINS`), which brings its stat-wmm
  images close to the spatial ones but not the full Spectrum + Color + WMM model.

Two real bands per complex FFT. Every band is real, so its mask M is Hermitian
(M(-f) = conj M(f)) and ifft2(X·(M_u + i·M_v)) = band_u + i·band_v: one c2c transform gives two
bands (far cheaper than two irfft2 calls on CPU), and synthesis runs the same way backwards:
Re ifft2(fft2(u + i·v)·(S_u - i·S_v)) is the sum of both bands' contributions. The 4
orientations of a level are stored as 2 complex pairs [..., 2, n, n]; the high-pass residual is
a plain real band (rfft2 grid). Spectra use norm="forward" (a crop is then an amplitude-
preserving down-sampling), and all masks are cached per (resolution, device).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from noisevision.generators.statistical.sp3_taps import (
    BAND0_QUADRANT,
    BAND1_UPPER,
    HI0_QUADRANT,
    LO0_QUADRANT,
    LO_QUADRANT,
)

N_ORIENTATIONS = 4  # order 3: cos³ lobes, the sp3Filters family MATLAB used
KINDS = ("spatial", "frequency")

# Coefficient gains of the spatial pyramid relative to the amplitude-preserving frequency
# pyramid (high-pass residual, then oriented levels 0, 1, 2, …), fitted so that stat-wmm images
# made with the frequency pyramid match those made with pyrtools' SteerablePyramidSpace (same
# parameters, radially averaged spectra); on 1/f noise the band std ratios are 1.12, 1.01, 2.0,
# 3.97, 7.9. Deeper levels continue doubling, like lofilt's DC gain of 2.
FREQUENCY_GAINS = (1.25, 1.0, 1.95, 3.47, 6.6)


def pyramid_levels(res: int) -> int:
    """Number of oriented levels: 3 at 128 px, 4 at 256 px, one more per octave."""
    return max(1, int(math.floor(math.log2(res))) - 4)


@dataclass
class Pyramid:
    """Pyramid coefficients of a batch of images [...].

    highpass: float32 [..., N, N], the high-pass residual.
    levels[l]: complex64 [..., 2, n, n] (n = N / 2^l), orientation 2p in the real part of pair p
        and orientation 2p+1 in its imaginary part.
    low: complex64 [..., n_L, n_L], the spectrum (norm="forward") of the low-pass residual.
    """

    highpass: Tensor
    levels: list[Tensor]
    low: Tensor

    def orientations(self, level: int) -> Tensor:
        """The 4 oriented bands of a level as float32 [..., 4, n, n] (a copy, for inspection)."""
        z = torch.view_as_real(self.levels[level])  # [..., 2, n, n, 2]
        return z.movedim(-1, -3).flatten(-4, -3).contiguous()


def _freq_grid(n: int, device: torch.device | None = None) -> Tensor:
    """Frequencies 0 … n/2-1, -n/2 … -1 (cycles per n samples), float64 [n]."""
    return torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64, device=device)


def _col_weight(res: int) -> Tensor:
    """Weights that turn an rfft2 half-spectrum into a full one for Re ifft2 (columns 1 … N/2-1
    stand for two columns)."""
    w = torch.full((res // 2 + 1,), 2.0, dtype=torch.float64)
    w[0] = 1.0
    if res % 2 == 0:
        w[-1] = 1.0
    return w


def _synthesise_pairs(z: Tensor, s: Tensor, into: Tensor | None = None) -> Tensor:
    """Σ_p fft2(z_p)·s_p over the 2 pairs of a level: [..., 2, n, n] -> [..., n, n], or added
    in place to `into` [..., n, n]."""
    w = torch.fft.fft2(z, norm="forward")
    if into is None:
        into = w[..., 0, :, :] * s[0]
    else:
        into.addcmul_(w[..., 0, :, :], s[0])
    return into.addcmul_(w[..., 1, :, :], s[1])  # a strided .sum(-3) is slow


def _pairs(masks: Tensor) -> tuple[Tensor, Tensor]:
    """Analysis pair masks M_2p + i·M_2p+1 and synthesis pairs S_2p - i·S_2p+1 (S = conj M),
    from Hermitian masks [4, n, n]."""
    syn = masks.conj()
    analysis = (masks[0::2] + 1j * masks[1::2]).to(torch.complex64)
    return analysis, (syn[0::2] - 1j * syn[1::2]).to(torch.complex64)


class SteerablePyramid:
    """Common interface; see the module docstring. Subclasses set the masks in __init__."""

    kind: str

    def __init__(self, res: int, device: torch.device):
        levels = pyramid_levels(res)
        if res % (2 ** (levels + 1)):
            raise ValueError(f"a steerable pyramid at {res} px needs res divisible by {2 ** (levels + 1)}")
        self.res, self.levels, self.device = res, levels, device

    @property
    def sizes(self) -> list[int]:
        """Band side at each level, then the low-pass residual's."""
        return [self.res >> lev for lev in range(self.levels + 1)]

    def build(self, images: Tensor) -> Pyramid:
        """Pyramid of real images [..., N, N]."""
        return self.build_from_spectrum(torch.fft.fft2(images, norm="forward"))

    def build_from_spectrum(self, spec: Tensor) -> Pyramid:  # pragma: no cover - abstract
        raise NotImplementedError

    def reconstruct(self, pyr: Pyramid) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _highpass(self, spec: Tensor) -> Tensor:
        half = spec[..., : self.res // 2 + 1]
        return torch.fft.irfft2(half * self.highpass_mask, s=(self.res, self.res), norm="forward")

    def _add_highpass(self, out: Tensor, highpass: Tensor) -> Tensor:
        """out (a full-grid spectrum whose Re ifft2 is the image) += the high-pass band."""
        half = torch.fft.rfft2(highpass, norm="forward")
        out[..., : self.res // 2 + 1].addcmul_(half, self.highpass_synthesis)
        return out


# ================================================================================== frequency
def _high(log_r: Tensor, top: float) -> Tensor:
    """High-pass raised cosine in log2 radius: 0 below top - 1, 1 above top (pyrtools rcosFn)."""
    return torch.cos(0.5 * math.pi * (log_r - top).clamp(-1.0, 0.0))


def _low(log_r: Tensor, top: float) -> Tensor:
    """The complementary low-pass, sqrt(1 - high²)."""
    return -torch.sin(0.5 * math.pi * (log_r - top).clamp(-1.0, 0.0))


def _polar(res: int, n: int) -> tuple[Tensor, Tensor]:
    """log2 radius (full-image Nyquist = 0) and angle on the n×n FFT grid of a level, in cycles
    per full image at every level. Returns float64 [n, n] each."""
    f = _freq_grid(n)
    fy, fx = f[:, None].expand(n, n), f[None, :].expand(n, n)
    rad = torch.sqrt(fx**2 + fy**2) / (res / 2)
    rad[0, 0] = 1.0 / (res / 2)  # DC: pyrtools uses the neighbour's radius (log of 0 undefined)
    return torch.log2(rad), torch.atan2(fy, fx)


def _crop_index(res: int, n: int) -> Tensor:
    """Rows (and columns) of the res-grid that form the n×n grid of the lowest frequencies."""
    h = n // 2
    return torch.cat((torch.arange(h), torch.arange(res - h, res)))


def _crop(spec: Tensor, index: Tensor) -> Tensor:
    return spec.index_select(-2, index).index_select(-1, index)


def _add_cropped(dst: Tensor, part: Tensor) -> None:
    """dst [..., N, N] += part [..., n, n] zero-padded back to the full grid (crop's adjoint)."""
    n, size = part.shape[-1], dst.shape[-1]
    h = n // 2
    for rs, rd in ((slice(0, h), slice(0, h)), (slice(h, n), slice(size - h, size))):
        dst[..., rd, :h] += part[..., rs, :h]
        dst[..., rd, size - h :] += part[..., rs, h:]


class FrequencyPyramid(SteerablePyramid):
    """pyrtools' SteerablePyramidFreq (order 3), exactly invertible, levels rescaled by
    FREQUENCY_GAINS. Every band is computed from the image spectrum with the product of the
    masks on its path; down-sampled levels are crops of the spectrum."""

    kind = "frequency"

    def __init__(self, res: int, device: torch.device):
        super().__init__(res, device)
        const = 2**6 * math.factorial(3) ** 2 / (N_ORIENTATIONS * math.factorial(6))
        gains = list(FREQUENCY_GAINS) + [FREQUENCY_GAINS[-1] * 2.0**k for k in range(1, self.levels)]
        self.analysis, self.synthesis, self.crop = [], [], []
        for lev in range(self.levels):
            n = res >> lev
            log_r, angle = _polar(res, n)
            path = _low(log_r, 0.0)  # lo0, then the low-pass of every level above
            for j in range(lev):
                path = path * _low(log_r, -(j + 1.0))
            radial = path * _high(log_r, -(lev + 1.0))
            # Band b: (-i)^3 · sqrt(const)·cos³(θ - πb/4) = i·(a real odd function): Hermitian.
            lobes = [torch.cos(angle - math.pi * b / N_ORIENTATIONS) ** 3 for b in range(N_ORIENTATIONS)]
            m = 1j * math.sqrt(const) * torch.stack(lobes) * radial
            a, s = _pairs(m * gains[1 + lev])
            self.analysis.append(a.to(device))
            self.synthesis.append((s / gains[1 + lev] ** 2).to(device))
            self.crop.append(None if lev == 0 else _crop_index(res, n).to(device))
        log_r, _ = _polar(res, res)
        high = _high(log_r[:, : res // 2 + 1], 0.0)
        self.highpass_mask = (high * gains[0]).to(device, torch.float32)
        self.highpass_synthesis = (high * _col_weight(res) / gains[0]).to(device, torch.float32)
        log_r, _ = _polar(res, res >> self.levels)
        low = _low(log_r, 0.0)
        for j in range(self.levels):
            low = low * _low(log_r, -(j + 1.0))
        self.low_mask = low.to(device, torch.float32)
        self.low_crop = _crop_index(res, res >> self.levels).to(device)

    def build_from_spectrum(self, spec: Tensor) -> Pyramid:
        """Pyramid of real images given by their spectrum [..., N, N] (fft2, norm="forward")."""
        levels = []
        for a, crop in zip(self.analysis, self.crop):
            src = spec if crop is None else _crop(spec, crop)
            levels.append(torch.fft.ifft2(src.unsqueeze(-3) * a, norm="forward"))  # [..., 2, n, n]
        return Pyramid(self._highpass(spec), levels, _crop(spec, self.low_crop) * self.low_mask)

    def reconstruct(self, pyr: Pyramid) -> Tensor:
        """The real images [..., N, N] a pyramid represents (exact inverse of `build`)."""
        out = _synthesise_pairs(pyr.levels[0], self.synthesis[0])  # [..., N, N]
        self._add_highpass(out, pyr.highpass)
        for z, s in zip(pyr.levels[1:], self.synthesis[1:]):
            _add_cropped(out, _synthesise_pairs(z, s))
        _add_cropped(out, pyr.low * self.low_mask)
        return torch.fft.ifft2(out, norm="forward").real.contiguous()


def _symmetric(quadrant: tuple[float, ...]) -> Tensor:
    """A (2c-1)×(2c-1) filter symmetric in rows and columns from its c×c top-left quadrant."""
    c = math.isqrt(len(quadrant))
    q = torch.tensor(quadrant, dtype=torch.float64).view(c, c)
    q = torch.cat((q, q[:, :-1].flip(1)), 1)
    return torch.cat((q, q[:-1].flip(0)), 0)


def sp3_filters() -> dict[str, Tensor]:
    """The sp3 filters as float64 tensors: hi0 [15, 15], lo0 [9, 9], lo [17, 17], bands [4, 9, 9]."""
    q = torch.tensor(BAND0_QUADRANT, dtype=torch.float64).view(5, 4)
    b0 = torch.cat((q, torch.zeros(5, 1, dtype=torch.float64), -q.flip(1)), 1)
    b0 = torch.cat((b0, b0[:-1].flip(0)), 0)
    upper = torch.zeros(9, 9, dtype=torch.float64)
    rows, cols = torch.triu_indices(9, 9, 1)
    upper[rows, cols] = torch.tensor(BAND1_UPPER, dtype=torch.float64)
    b1 = upper - upper.T
    return {
        "hi0": _symmetric(HI0_QUADRANT),
        "lo0": _symmetric(LO0_QUADRANT),
        "lo": _symmetric(LO_QUADRANT),
        "bands": torch.stack((b0, b1, -b0.T, b1.flip(1))),
    }


def _filter_dft(filt: Tensor, n: int) -> Tensor:
    """DFT on an n×n grid of a filter centred at its middle tap (circular): complex128 [n, n].

    Circular correlation with the filter (corrDn) multiplies the spectrum by the conjugate of
    this, convolution (upConv) by it.
    """
    k = filt.shape[-1]
    if k > n:
        raise ValueError(f"a {k}×{k} filter does not fit a {n}×{n} level")
    c = k // 2
    pad = torch.zeros(*filt.shape[:-2], n, n, dtype=torch.float64)
    pad[..., :k, :k] = filt
    return torch.fft.fft2(torch.roll(pad, (-c, -c), (-2, -1)))


def _fold(spec: Tensor, mask: Tensor) -> Tensor:
    """Spectrum [..., n, n] filtered by `mask` [n, n], then sampled every second pixel in both
    directions -> [..., n/2, n/2] (the sum of the four quadrants)."""
    h = spec.shape[-1] // 2
    # quadrant sums written out: a strided sum() is slow, and the filtered spectrum is never stored
    rows = torch.addcmul(spec[..., :h, :] * mask[:h], spec[..., h:, :], mask[h:])  # [..., h, n]
    return rows[..., :h] + rows[..., h:]


class SpatialPyramid(SteerablePyramid):
    """MATLAB's buildSpyr / reconSpyr with sp3Filters and circular edges, as FFT masks.

    Build: hi0 = corr(x, hi0filt); lo = corr(x, lo0filt); per level: bands = corr(lo, bfilt_b),
    lo = corr(lo, lofilt) sampled every 2nd pixel. Reconstruct: per level from the coarsest,
    up-sample (zero insertion) and convolve with lofilt, add conv(band_b, bfilt_b); finally
    conv with lo0filt plus conv(hi0, hi0filt).
    """

    kind = "spatial"

    def __init__(self, res: int, device: torch.device):
        super().__init__(res, device)
        f = sp3_filters()
        hi0 = _filter_dft(f["hi0"], res).real  # symmetric filters: real DFTs
        self.highpass_mask = hi0[:, : res // 2 + 1].to(device, torch.float32)  # = conj
        self.highpass_synthesis = (hi0[:, : res // 2 + 1] * _col_weight(res)).to(device, torch.float32)
        lo0 = _filter_dft(f["lo0"], res).real
        # lo0filt runs once before the first level and once after it in synthesis: it is folded
        # into level 0's band masks and into the low-pass path below it (one pass less each way).
        # The up-sampling's 1/4 (norm="forward") is folded into the synthesis low-pass masks.
        self.analysis, self.synthesis, self.lo_analysis, self.lo_synthesis = [], [], [], []
        for lev in range(self.levels):
            n = res >> lev
            pre = lo0 if lev == 0 else 1.0
            bands = _filter_dft(f["bands"], n) * pre  # [4, n, n], antisymmetric filters: imaginary DFTs
            a, _ = _pairs(bands.conj())  # correlation: conjugate DFT
            _, s = _pairs(bands.conj())  # synthesis pairs of conj(conj(B)) = B, i.e. convolution
            self.analysis.append(a.to(device))
            self.synthesis.append(s.to(device))
            lof = _filter_dft(f["lo"], n).real * pre
            self.lo_analysis.append(lof.to(device, torch.float32))
            h = n // 2  # viewed [2, h, 2, h]: multiplies a level below broadcast to this one's grid
            self.lo_synthesis.append((lof * 0.25).view(2, h, 2, h).to(device, torch.float32))

    def build_from_spectrum(self, spec: Tensor) -> Pyramid:
        """Pyramid of real images given by their spectrum [..., N, N] (fft2, norm="forward")."""
        if spec.device.type == "cpu":
            return self._build_cpu(spec)
        return self._build_torch(spec)

    def reconstruct(self, pyr: Pyramid) -> Tensor:
        """The real images [..., N, N] of a pyramid (MATLAB's reconSpyr; ~1 % from `build`'s input)."""
        if pyr.low.device.type == "cpu":
            return self._reconstruct_cpu(pyr)
        return self._reconstruct_torch(pyr)

    def _build_torch(self, spec: Tensor) -> Pyramid:
        lo, levels = spec, []
        for a, lof in zip(self.analysis, self.lo_analysis):
            levels.append(torch.fft.ifft2(lo.unsqueeze(-3) * a, norm="forward"))  # [..., 2, n, n]
            lo = _fold(lo, lof)
        return Pyramid(self._highpass(spec), levels, lo)

    def _reconstruct_torch(self, pyr: Pyramid) -> Tensor:
        out = pyr.low
        for z, s, lof in zip(reversed(pyr.levels), reversed(self.synthesis), reversed(self.lo_synthesis)):
            h = out.shape[-1]
            # Zero-insertion up-sampling repeats the spectrum 2×2: a broadcast, not a copy.
            up = (out[..., None, :, None, :] * lof).view(*out.shape[:-2], 2 * h, 2 * h)
            out = _synthesise_pairs(z, s, into=up)
        out = self._add_highpass(out, pyr.highpass)
        return torch.fft.ifft2(out, norm="forward").real.contiguous()

    # On CPU the mask products of each level run as one fused loop (steerable_cpu): the same
    # operations in the same order, so the same bytes as the torch path.
    def _build_cpu(self, spec: Tensor) -> Pyramid:
        from noisevision.generators.statistical import steerable_cpu  # numba compiles (or loads) on first use

        lead, res = spec.shape[:-2], self.res
        lo = spec.reshape(-1, res, res).contiguous()
        g = lo.shape[0]
        hp = torch.empty(g, res, res // 2 + 1, dtype=spec.dtype)
        levels = []
        for lev, (a, lof) in enumerate(zip(self.analysis, self.lo_analysis)):
            n = lo.shape[-1]
            pairs = torch.empty(g, 2, n, n, dtype=spec.dtype)
            low = torch.empty(g, n // 2, n // 2, dtype=spec.dtype)
            into = hp if lev == 0 else hp[:0]  # the high-pass band comes with level 0
            steerable_cpu.analyse_level(
                lo.numpy(),
                a.numpy(),
                lof.numpy(),
                self.highpass_mask.numpy(),
                pairs.numpy(),
                low.numpy(),
                into.numpy(),
            )
            levels.append(torch.fft.ifft2(pairs, norm="forward").view(*lead, 2, n, n))
            lo = low
        highpass = torch.fft.irfft2(hp, s=(res, res), norm="forward").view(*lead, res, res)
        return Pyramid(highpass, levels, lo.view(*lead, *lo.shape[-2:]))

    def _reconstruct_cpu(self, pyr: Pyramid) -> Tensor:
        from noisevision.generators.statistical import steerable_cpu

        lead, res = pyr.highpass.shape[:-2], self.res
        out = pyr.low.reshape(-1, *pyr.low.shape[-2:]).contiguous()
        g = out.shape[0]
        hp = torch.fft.rfft2(pyr.highpass, norm="forward").view(g, res, res // 2 + 1)
        for lev in reversed(range(self.levels)):
            z = pyr.levels[lev]
            n = z.shape[-1]
            bands = torch.fft.fft2(z, norm="forward").view(g, 2, n, n)
            dst = torch.empty(g, n, n, dtype=out.dtype)
            steerable_cpu.synthesise_level(
                _floats(out),
                self.lo_synthesis[lev].view(n, n).numpy(),
                _floats(bands),
                _floats(self.synthesis[lev]),
                _floats(hp if lev == 0 else hp[:0]),
                self.highpass_synthesis.numpy(),
                _floats(dst),
            )
            out = dst
        return torch.fft.ifft2(out, norm="forward").real.contiguous().view(*lead, res, res)


def _floats(z: Tensor):
    """A contiguous complex64 tensor as a float32 array, real and imaginary parts interleaved."""
    return torch.view_as_real(z).numpy().reshape(*z.shape[:-1], 2 * z.shape[-1])


@functools.lru_cache(maxsize=32)
def _cached(res: int, device: torch.device, kind: str) -> SteerablePyramid:
    return {"spatial": SpatialPyramid, "frequency": FrequencyPyramid}[kind](res, device)


def steerable_pyramid(
    res: int, device: torch.device | str = "cpu", kind: str = "spatial"
) -> SteerablePyramid:
    """The pyramid of `kind` ("spatial" or "frequency") for res×res images on `device` (cached)."""
    if kind not in KINDS:
        raise ValueError(f"unknown steerable pyramid kind '{kind}': use one of {', '.join(KINDS)}")
    return _cached(res, torch.device(device), kind)
