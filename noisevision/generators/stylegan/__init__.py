"""Randomly initialised StyleGAN2, as in the paper: a synthesis network that was never trained.

The generator is StyleGAN2-ADA's "skip" synthesis network with random weights: a learned-constant
4×4 input, two 3×3 modulated/demodulated convolutions per resolution (the first up-samples 2× with
the [1,3,3,1] FIR filter), ReLU×√2, and a 1×1 ToRGB per block whose images are up-sampled and summed.
The mapping network is bypassed: every layer gets its own w ~ N(0, I) through LeakyReLU(0.2).

Variants (the paper's table of variants) differ in what is random:
  random    dense N(0,1) conv and ToRGB weights per network, no noise, zero biases;
  highfreq  per image and layer, each input channel gets one of 32 binary filters, each output channel
            a N(0,1) gain; pink noise from a bank of 100 maps per layer; ToRGB weights per image;
  sparse    highfreq + a Laplacian envelope on the noise + biases U(0, 0.2) per image;
  oriented  40 real filters, per layer a random subset of 5..40 of them; one 512² pink map with the
            envelope per image, area-resized to each layer; biases U(−0.2, 0.2).

A fresh network (constant input, style affines, dense weights, noise banks) serves each block of
400 indices: network k is a pure function of (name, seed, k), so any index renders alone.

Speed. With one bank filter per input channel shared by all output channels, the modulated and
demodulated weight W[o, i] = gain[o]·filter[i]·style[i]·demod[o] has rank one in (o, i): every output
channel is the same map y times ±1/|W·s| ("tied wavelets", as the paper remarks, kept as is). So each
tied layer computes one map y (`place_taps`) instead of C_out, and its C_out activations
ReLU(±y + noise + bias_o) are never formed: the next layer and the ToRGB read them out through a
piecewise-linear lookup (`TiedActivation.readout`). The result equals StyleGAN2's grouped
convolution (tests compare the two) at a small fraction of its cost. The dense variant uses
StyleGAN2's non-fused form, image by image.
"""

from noisevision.generators.stylegan.generator import (  # noqa: F401 (the family's names, as before)
    COLOUR_MEAN,
    COLOUR_STD,
    IMAGES_PER_NETWORK,
    VARIANTS,
    ImageDraws,
    Network,
    RandomStyleGAN,
    Variant,
    _bank_filters,
    apply_colour_statistics,
    build_network,
    build_networks,
    colour_statistics,
    highfreq_bank,
    num_latents,
    oriented_bank,
    sample_draws,
    synthesis_blocks,
    synthesise_dense,
    synthesise_tied,
    to_uint8,
)
from noisevision.generators.stylegan.layers import (  # noqa: F401
    TiedActivation,
    conv3x3,
    fir_filter,
    modulated_conv2d,
    per_image_matmul,
    place_taps,
    sum_in_order,
    tied_demodulation,
    to_rgb,
    upsample2d,
)
from noisevision.generators.stylegan.noise import _bicubic_matrix, bicubic_envelope, pink_noise  # noqa: F401
