"""The statistical image model and its four generators: sample each image's model, impose it
on white noise, rotate back to RGB."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from noisevision.errors import NoisevisionError
from noisevision.generators.params import Param
from noisevision.generators.registry import Generator, GeneratorSpec, register
from noisevision.generators.statistical import steerable
from noisevision.generators.statistical.color import COLOR_BINS, sample_color_model, unproject_colors
from noisevision.generators.statistical.histmatch import histogram_target, match_histograms
from noisevision.generators.statistical.spectrum import (
    full_spectrum,
    impose_spectrum,
    sample_slopes,
    spectrum_amplitude,
)
from noisevision.generators.statistical.wmm import impose_wmm, wmm_targets
from noisevision.rng import Rng


@dataclass(frozen=True)
class ModelConfig:
    """What a variant imposes and the model's hyper-parameters: the one place their values (the
    paper's) are written."""

    spectrum: bool = True
    wmm: bool = True
    color: bool = True
    n_iter: int = 10  # rounds of spectrum -> WMM -> colour histograms
    slope_range: tuple[float, float] = (0.5, 3.5)  # s ~ U(slope_range)
    slope_jitter: float = 0.05  # d ~ N(0, slope_jitter²): α_x = s + d, α_y = s - d
    wmm_shape_range: tuple[float, float] = (0.4, 0.8)  # band shapes r ~ U(wmm_shape_range)
    pyramid: str = "spatial"  # steerable pyramid of the WMM: "spatial" (MATLAB's) or "frequency"


#: A statistical generator's parameters and their defaults: ModelConfig's, but for the variant's switches.
PARAMETERS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(ModelConfig) if f.name not in ("spectrum", "wmm", "color")
}


def sample_params(rng: Rng, res: int, config: ModelConfig = ModelConfig()) -> dict[str, Tensor]:
    """Every per-image parameter of the model (all variants draw all of them).

    Keys: the colour model's (see sample_color_model), the slopes' (see sample_slopes),
    wmm_shape [B, 3, 1 + 4·levels] (high-pass band, then 4 orientations per level) and
    init [B, 3, N, N], the white-noise start 256·U. Each part draws from its own child stream.
    """
    params = sample_color_model(rng.child("color"), res)
    params.update(sample_slopes(rng.child("spectrum"), config.slope_range, config.slope_jitter))
    n_bands = 1 + 4 * steerable.pyramid_levels(res)
    lo, hi = config.wmm_shape_range
    params["wmm_shape"] = rng.child("wmm").uniform(3, n_bands, low=lo, high=hi)
    params["init"] = 256.0 * rng.child("init").uniform(3, res, res)
    return params


def impose_model(params: dict[str, Tensor], res: int, config: ModelConfig = ModelConfig()) -> Tensor:
    """Impose the sampled model on the white-noise start: float32 [B, 3, N, N].

    Returns the decorrelated channels after `n_iter` rounds, or one for the spectrum alone (see
    to_rgb8 for the RGB image).
    Each round: the spectrum (on the rfft2 grid of the channels), then the WMM (its pyramid is
    built straight from that spectrum, completed to the full grid), then the colour histograms
    (on pixels).
    """
    b = params["init"].shape[0]
    dev = params["init"].device
    img = params["init"]  # [B, 3, N, N]
    if config.spectrum:
        amplitude = spectrum_amplitude(params["alpha_x"], params["alpha_y"], res)
    if config.wmm:
        pyramid = steerable.steerable_pyramid(res, dev, config.pyramid)
        wmm = wmm_targets(params["wmm_shape"], res, config.wmm_shape_range)
    if config.color:
        color_target = histogram_target(
            params["hist_counts"].reshape(b * 3, COLOR_BINS),
            params["hist_lo"].reshape(-1),
            params["hist_step"].reshape(-1),
            res * res,
        )
    # Imposing the spectrum alone is a projection (phase, mean and std kept, modulus A): a second
    # round would only add rounding, so the spectrum-only model needs one.
    rounds = config.n_iter if config.wmm or config.color else 1
    for _ in range(rounds):
        if config.wmm:  # the pyramid takes the full fft2 grid [B, 3, N, N]
            spec = torch.fft.rfft2(img, norm="forward")
            spec = impose_spectrum(spec, amplitude, full=True) if config.spectrum else full_spectrum(spec)
            img = impose_wmm(spec, wmm, pyramid)
        elif config.spectrum:
            spec = impose_spectrum(torch.fft.rfft2(img, norm="forward"), amplitude)
            img = torch.fft.irfft2(spec, s=(res, res), norm="forward")
        if config.color:
            img = match_histograms(img.reshape(b * 3, -1), color_target, overwrite=True).view(b, 3, res, res)
    return img


def synthesize(params: dict[str, Tensor], res: int, config: ModelConfig = ModelConfig()) -> Tensor:
    """The images of a sampled model: uint8 RGB [B, 3, N, N] (impose_model, then to_rgb8)."""
    return to_rgb8(impose_model(params, res, config), params["pc"], params["mean"])


def to_rgb8(chan: Tensor, pc: Tensor, mean: Tensor) -> Tensor:
    """Decorrelated channels -> RGB (PCA inverse + mean colour) -> joint min-max to uint8 0..255."""
    b, _, n, _ = chan.shape
    if chan.device.type == "cpu" and chan.dtype == pc.dtype == mean.dtype == torch.float32:
        from noisevision.generators.statistical import color_cpu  # numba compiles (or loads) on first use

        out = torch.empty(b, 3, n, n, dtype=torch.uint8)
        args = (chan.contiguous(), pc.contiguous(), mean.contiguous(), torch.empty(3, n, n), out)
        color_cpu.to_rgb8(*(a.numpy() for a in args))
        return out
    return _to_rgb8_torch(chan, pc, mean)


def _to_rgb8_torch(chan: Tensor, pc: Tensor, mean: Tensor) -> Tensor:
    b, _, n, _ = chan.shape
    rgb = unproject_colors(chan, pc, mean).reshape(b, -1)
    rgb = rgb - rgb.amin(1, keepdim=True)
    rgb = rgb.mul_(255.0 / rgb.amax(1, keepdim=True).clamp_min(1e-12))
    return rgb.add_(0.5).floor_().clamp_(0, 255).to(torch.uint8).view(b, 3, n, n)


# name: (paper label, what it imposes, description)
VARIANTS: dict[str, tuple[str, tuple[bool, bool, bool], str]] = {
    "stat-spectrum": (
        "Spectrum",
        (True, False, False),
        "1/f^a noise with random slopes; channels correlated by a random colour model",
    ),
    "stat-wmm": (
        "WMM",
        (False, True, False),
        "sparse steerable-wavelet marginals (generalised-Laplacian bands)",
    ),
    "stat-spectrum_color": (
        "Spectrum + Color",
        (True, False, True),
        "1/f^a spectrum plus the colour histograms of a random colour model",
    ),
    "stat-spectrum_color_wmm": (
        "Spectrum + Color + WMM",
        (True, True, True),
        "1/f^a spectrum, wavelet marginals and colour histograms together",
    ),
}


class StatisticalModel(Generator):
    """The four statistical-model datasets of the paper; the registered name picks what is imposed.

    Parameters: those of ModelConfig (`PARAMETERS`, the paper's values by default).
    `sample_params(rng, res)` gives the per-image model, `render` the images (dead_leaves-textures
    renders its texture bank with it).
    """

    # GPUs need large batches (their time goes to launching kernels). Each 128 px image needs
    # ≈10 MB of bands and temporaries, so on a GPU chunks shrink with the pixel count (512 at
    # 128 px, 128 at 256 px: ≈5 GB). On CPU, chunks of 8 images at 128 px (32 at 64 px; at
    # least 8): measured from 2 to 128 at 64-256 px, 8 keeps a chunk's float channels (1.5 MB
    # at 128 px) in a core's cache, 1.1-1.5× faster than 16 for stat-spectrum and stat-wmm.
    cpu_pixels = 8 * 128 * 128
    cpu_chunk = 8
    gpu_pixels = 512 * 128 * 128
    single_cpu_thread = True  # a multi-threaded irfft2 rounds differently; histogram matching shows it
    _SPECTRUM = ("stat-spectrum", "stat-spectrum_color", "stat-spectrum_color_wmm")
    search_space = (
        Param(
            "slope_range", "interval", 0.25, 4.0, help="range the 1/f^a slope a is drawn from", only=_SPECTRUM
        ),
        Param(
            "slope_jitter", "float", 0.0, 0.5, help="x/y slope difference: oriented textures", only=_SPECTRUM
        ),
        Param(
            "wmm_shape_range",
            "interval",
            0.2,
            1.5,
            help="range of the wavelet marginals' shape (low: sparse, 2: Gaussian)",
            only=("stat-wmm", "stat-spectrum_color_wmm"),
        ),
        Param(
            "n_iter",
            "int",
            1,
            20,
            log=True,
            help="rounds of imposing the constraints in turn",
            only=("stat-spectrum_color", "stat-spectrum_color_wmm"),
        ),
    )

    def __init__(self, spec: GeneratorSpec, **params: Any):
        unknown = set(params) - set(PARAMETERS)
        if unknown:
            known = ", ".join(PARAMETERS)
            raise TypeError(f"unexpected parameter(s) {', '.join(sorted(unknown))}; known: {known}")
        values = {**PARAMETERS, **params}
        n_iter, pyramid, slope_jitter = values["n_iter"], values["pyramid"], values["slope_jitter"]
        slope_range, wmm_shape_range = values["slope_range"], values["wmm_shape_range"]
        if int(n_iter) < 1:
            raise NoisevisionError(f"n_iter must be at least 1, not {n_iter}")
        slope_range = (float(slope_range[0]), float(slope_range[1]))
        wmm_shape_range = (float(wmm_shape_range[0]), float(wmm_shape_range[1]))
        if not 0 < slope_range[0] <= slope_range[1]:
            raise NoisevisionError(f"slope_range must be (low, high) with 0 < low <= high, not {slope_range}")
        if not 0 < wmm_shape_range[0] <= wmm_shape_range[1]:
            raise NoisevisionError(
                f"wmm_shape_range must be (low, high) with 0 < low <= high, not {wmm_shape_range}"
            )
        if pyramid not in steerable.KINDS:
            raise NoisevisionError(f"unknown pyramid '{pyramid}': use {' or '.join(steerable.KINDS)}")
        super().__init__(
            spec,
            n_iter=int(n_iter),
            slope_range=slope_range,
            slope_jitter=float(slope_jitter),
            wmm_shape_range=wmm_shape_range,
            pyramid=pyramid,
        )
        spectrum, wmm, color = VARIANTS[spec.key or spec.name][1]
        self.config = ModelConfig(spectrum, wmm, color, **self.params)

    def check_res(self, res: int) -> int:
        res = super().check_res(res)
        levels = steerable.pyramid_levels(res)
        if self.config.wmm and res % 2 ** (levels + 1):
            raise NoisevisionError(
                f"'{self.name}' needs a resolution divisible by {2 ** (levels + 1)} at {res} px "
                f"({levels} pyramid levels), e.g. {2 ** (levels + 1) * round(res / 2 ** (levels + 1))}"
            )
        return res

    def device_block(self, res: int) -> int:
        return max(1, self.gpu_pixels // max(res, 64) ** 2)

    def sample_params(self, rng: Rng, res: int) -> dict[str, Tensor]:
        """Per-image model parameters for the keys of `rng` (see module-level sample_params)."""
        return sample_params(rng, res, self.config)

    def render(self, rng: Rng, res: int) -> Tensor:
        """uint8 [B, 3, res, res] for the keys of `rng` (each image depends on its key only)."""
        if rng.device.type == "cpu":
            chunk = max(self.cpu_chunk, self.cpu_pixels // (res * res))
        else:
            chunk = self.device_block(res)
        if rng.batch > chunk:
            return torch.cat([self._render(Rng(keys), res) for keys in rng.keys.split(chunk)])
        return self._render(rng, res)

    def batch_invariant(self, device: torch.device) -> bool:
        # On a GPU, cuFFT and the reductions round by the batch's shape and an image's place in
        # it, and the ten rounds of spectrum and histogram matching carry last bits into visible
        # differences: the same request gives the same bytes, another batch statistically the
        # same image (generate renders fixed blocks; see Generator.device_block).
        return torch.device(device).type == "cpu"

    def _render(self, rng: Rng, res: int) -> Tensor:
        return synthesize(self.sample_params(rng, res), res, self.config)


for _name, (_label, _, _description) in VARIANTS.items():
    register(_name, family="statistical", label=_label, description=_description, min_res=32)(
        StatisticalModel
    )
