"""Statistical image models: 1/f^α spectrum, colour model, wavelet marginals (WMM).

Every image samples a small model (spectrum slopes, a colour model, WMM band shapes), starts from
white noise in a decorrelated colour space and, `n_iter` times, imposes the spectrum, then the
wavelet marginals, then the colour histograms (each only if the variant uses it); the channels are
then rotated back to RGB with the colour model's PCA and mean colour and the whole image is
min–max rescaled to 0..255. This follows the MATLAB code that produced the paper's data.

Everything is batched: per-image parameters (number of colours, blur size, slopes …) live in
tensors and differ inside a batch; histogram matching is sort-free (a histogram of the source
on [min, max] and a per-rank table of the target quantile function, as matlabPyrTools'
`histoMatch` + `pointOp` do); the steerable pyramids run as cached FFT masks (steerable.py;
by default MATLAB's own spatial pyramid, which decides the look of the WMM images). Every random
number comes from the image's own key, so an image is the same bytes at any batch size or order.

Modules: `model` (the model, its generators), `color`, `spectrum`, `wmm` (its three parts),
`histmatch` (histogram matching), `steerable` (the pyramids), and `*_cpu` (their numba kernels).
"""

from noisevision.generators.statistical.color import (
    COLOR_BINS,
    MAX_COLORS,
    box_blur_same,
    color_pca,
    multinomial_counts,
    project_colors,
    sample_color_model,
    sym3_eigh,
    unproject_colors,
)
from noisevision.generators.statistical.histmatch import (
    HistogramTarget,
    histogram_target,
    match_histograms,
    quantile_table,
)
from noisevision.generators.statistical.model import (
    PARAMETERS,
    VARIANTS,
    ModelConfig,
    StatisticalModel,
    impose_model,
    sample_params,
    synthesize,
    to_rgb8,
)
from noisevision.generators.statistical.spectrum import (
    full_spectrum,
    impose_spectrum,
    sample_slopes,
    spectrum_amplitude,
)
from noisevision.generators.statistical.wmm import (
    WMM_GRID,
    WMM_SHAPE_GRID,
    impose_wmm,
    wmm_band_scales,
    wmm_targets,
)

__all__ = [
    "COLOR_BINS",
    "MAX_COLORS",
    "PARAMETERS",
    "VARIANTS",
    "WMM_GRID",
    "WMM_SHAPE_GRID",
    "HistogramTarget",
    "ModelConfig",
    "StatisticalModel",
    "box_blur_same",
    "color_pca",
    "full_spectrum",
    "histogram_target",
    "impose_model",
    "impose_spectrum",
    "impose_wmm",
    "match_histograms",
    "multinomial_counts",
    "project_colors",
    "quantile_table",
    "sample_color_model",
    "sample_params",
    "sample_slopes",
    "spectrum_amplitude",
    "sym3_eigh",
    "synthesize",
    "to_rgb8",
    "unproject_colors",
    "wmm_band_scales",
    "wmm_targets",
]
