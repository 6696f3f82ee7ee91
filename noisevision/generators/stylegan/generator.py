"""The random StyleGAN generators: variants, filter banks, architecture, the networks shared by
blocks of indices, per-image draws and synthesis, and their registry names."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from noisevision.generators.params import Param
from noisevision.generators.registry import Generator, GeneratorSpec, register
from noisevision.generators.stylegan.layers import (
    RELU_GAIN,
    TiedActivation,
    modulated_conv2d,
    per_image_matmul,
    place_taps,
    tied_demodulation,
    to_rgb,
    upsample2d,
)
from noisevision.generators.stylegan.noise import pink_noise
from noisevision.rng import Rng

W_DIM = 512
IMAGES_PER_NETWORK = 400  # a fresh network every 400 images, as the paper
NOISE_BANK_SIZE = 100  # pink-noise maps per layer (highfreq, sparse)
NOISE_STRENGTH_MAX = 0.3  # noise strength ~ U(0, 0.3) per image and layer
SHARED_NOISE_SIZE = 512  # oriented: one 512×512 map per image, area-resized to every layer
SUBSET_MIN = 5  # oriented: n ~ U{5..40} bank filters per layer
# Per-image colour statistics, as the paper: channel mean ~ N(m, s²) and channel std ~ N(m, s²), R, G, B.
COLOUR_MEAN = ((0.483, 0.145), (0.455, 0.142), (0.401, 0.161))
COLOUR_STD = ((0.219, 0.063), (0.213, 0.062), (0.213, 0.069))


# ---------------------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class Variant:
    """What is random in one named variant (the paper's table of variants)."""

    bank: str | None  # None: dense N(0,1) weights per network; "highfreq" or "oriented" filter bank
    subset: bool  # per image and layer, channels pick from a random subset of 5..all bank filters
    noise: str | None  # None, "bank" (100 maps per layer and network) or "shared" (one map per image)
    envelope: bool  # Laplacian envelope on the pink noise
    bias: tuple[float, float] | None  # per image and output channel U(low, high); None: zero


VARIANTS = {
    "random": Variant(bank=None, subset=False, noise=None, envelope=False, bias=None),
    "highfreq": Variant(bank="highfreq", subset=False, noise="bank", envelope=False, bias=None),
    "sparse": Variant(bank="highfreq", subset=False, noise="bank", envelope=True, bias=(0.0, 0.2)),
    "oriented": Variant(bank="oriented", subset=True, noise="shared", envelope=True, bias=(-0.2, 0.2)),
}


# ------------------------------------------------------------------------------------ filter banks
def _rotated_centre(pattern: np.ndarray, degrees: float) -> np.ndarray:
    """Centre 3×3 of an 11×11 pattern rotated counter-clockwise (PIL, bilinear), as the paper did."""
    rotated = Image.fromarray(pattern.astype(np.float32)).rotate(degrees, resample=Image.BILINEAR)
    return np.asarray(rotated, dtype=np.float64)[4:7, 4:7]


def _step_edge() -> np.ndarray:
    """11×11 vertical step: +1 left, 0 on the centre column, −1 right."""
    a = np.ones((11, 11))
    a[:, 5] = 0
    a[:, 6:] = -1
    return a


def _line() -> np.ndarray:
    """11×11 vertical line: −1 on the centre column, +1 elsewhere."""
    a = np.ones((11, 11))
    a[:, 5] = -1
    return a


def _sparse_filters() -> list[np.ndarray]:
    """Centre delta, centre-surround, plus of ones, plus with −1 corners."""
    delta = np.zeros((3, 3))
    delta[1, 1] = 1
    surround = -np.ones((3, 3))
    surround[1, 1] = 1
    plus = np.ones((3, 3))
    plus[::2, ::2] = 0
    plus_corners = np.sign(plus - 0.5)
    return [delta, surround, plus, plus_corners]


def highfreq_bank() -> Tensor:
    """The 32 binary 3×3 filters of stylegan-highfreq and -sparse, float32 [32, 3, 3].

    16 step edges every 22.5° over 360° (sign of the mean-removed centre), 4 lines every 45° with
    both signs, 4 sparse filters with both signs.
    """
    bank = []
    for k in range(16):
        centre = _rotated_centre(_step_edge(), k * 22.5)
        bank.append(np.sign(centre - centre.mean()))
    for k in range(4):
        line = np.sign(_rotated_centre(_line(), k * 45.0))
        bank += [line, -line]
    for f in _sparse_filters():
        bank += [f, -f]
    return torch.tensor(np.stack(bank), dtype=torch.float32)


def oriented_bank() -> Tensor:
    """The 40 real 3×3 filters of stylegan-oriented, float32 [40, 3, 3].

    8 step edges and 8 lines at k·22.5° over 180° (mean removed, not binarised), the 4 sparse
    filters, then the negatives of those 20.
    """
    bank = []
    for pattern in (_step_edge(), _line()):
        for k in range(8):
            centre = _rotated_centre(pattern, k * 22.5)
            bank.append(centre - centre.mean())
    bank += _sparse_filters()
    bank += [-f for f in bank]
    return torch.tensor(np.stack(bank), dtype=torch.float32)


_BANKS = {"highfreq": highfreq_bank, "oriented": oriented_bank}


@lru_cache(maxsize=8)
def _bank(name: str, device: torch.device) -> Tensor:
    """A filter bank on `device`, built once (treat as read-only)."""
    return _BANKS[name]().to(device)


# ------------------------------------------------------------------------------------ architecture
@dataclass(frozen=True)
class ConvLayer:
    res: int  # output resolution
    c_in: int
    c_out: int
    up: bool  # 2× up-sampling (the first conv of every block but the 4×4 one)
    w_index: int  # which of the per-layer latents w drives its style


@dataclass(frozen=True)
class Block:
    res: int
    convs: tuple[ConvLayer, ...]
    channels: int
    rgb_w_index: int  # the ToRGB shares its w with the next block's first conv (StyleGAN2-ADA)


def block_channels(res: int) -> int:
    """Channels per block resolution: 512 up to 64 px, then halving (128: 256, 256: 128, 512: 64)."""
    return min(32768 // res, 512)


def synthesis_blocks(res: int) -> tuple[Block, ...]:
    """The blocks 4, 8, …, res px; at 256 px: 13 convolutions and 14 latents."""
    blocks, w, r = [], 0, 4
    while r <= res:
        c = block_channels(r)
        if r == 4:
            convs = (ConvLayer(4, c, c, False, 0),)
        else:
            convs = (ConvLayer(r, block_channels(r // 2), c, True, w), ConvLayer(r, c, c, False, w + 1))
        w += len(convs)
        blocks.append(Block(r, convs, c, w))
        r *= 2
    return tuple(blocks)


def num_latents(res: int) -> int:
    """Number of per-layer latents w: every conv's plus the last ToRGB's."""
    return synthesis_blocks(res)[-1].rgb_w_index + 1


# ------------------------------------------------------------------------------------ network
@dataclass
class Network:
    """The parts shared by a block of 400 images; per-image randomness is drawn at render time."""

    const: Tensor  # [512, 4, 4] learned-constant input (random here)
    affine: list[Tensor]  # per conv: [c_in, 512]; style = A w / √512 + 1
    rgb_affine: list[Tensor]  # per block: [c, 512]
    weight: list[Tensor] | None  # dense variant, per conv: [c_out, c_in, 3, 3]
    rgb_weight: list[Tensor] | None  # dense variant, per block: [3, c]
    noise_bank: list[Tensor] | None  # bank-noise variants, per conv: [100, r, r]


def build_networks(
    key: str, variant: Variant, seed: int, ks: list[int], res: int, device: torch.device
) -> list[Network]:
    """Networks ks of generator `key` (network k serves images [400k, 400k+400)), drawn together:
    each a pure function of (key, variant, seed, k, res), the same as drawn alone."""
    rng = Rng.for_indices(key + "/net", seed, torch.tensor(ks, device=device))
    blocks = synthesis_blocks(res)
    convs = [c for b in blocks for c in b.convs]
    const = rng.normal(blocks[0].channels, 4, 4)
    affine = [rng.normal(c.c_in, W_DIM) for c in convs]
    rgb_affine = [rng.normal(b.channels, W_DIM) for b in blocks]
    weight = rgb_weight = noise_bank = None
    if variant.bank is None:
        weight = [rng.normal(c.c_out, c.c_in, 3, 3) for c in convs]
        rgb_weight = [rng.normal(3, b.channels) for b in blocks]
    if variant.noise == "bank":
        layer = torch.arange(len(convs), device=device).expand(len(ks), -1)
        per_layer = rng.child("noise", layer)  # one key per (network, layer)
        noise_bank = [
            pink_noise(Rng(per_layer.keys.view(len(ks), -1)[:, i]), NOISE_BANK_SIZE, c.res, variant.envelope)
            for i, c in enumerate(convs)
        ]

    def part(tensors: list[Tensor] | None, i: int) -> list[Tensor] | None:
        return None if tensors is None else [t[i] for t in tensors]

    return [
        Network(
            const[i],
            part(affine, i),
            part(rgb_affine, i),
            part(weight, i),
            part(rgb_weight, i),
            part(noise_bank, i),
        )
        for i in range(len(ks))
    ]


def build_network(key: str, variant: Variant, seed: int, k: int, res: int, device: torch.device) -> Network:
    """Network k (images [400k, 400k+400)) of generator `key`: a pure function of its arguments."""
    return networks(key, variant, seed, [k], res, device)[0]


#: Networks kept per device: a batch of images in random order needs one per image, and building
#: those it lacks in one set of draws is what makes random-order batches cheap; consecutive
#: batches of consecutive indices reuse theirs. ≈ 18 MB each at 256 px (oriented).
_CACHE_SIZE = {"cpu": 8, "cuda": 256}
_NETWORKS: OrderedDict[tuple, Network] = OrderedDict()


def networks(
    key: str, variant: Variant, seed: int, ks: list[int], res: int, device: torch.device
) -> list[Network]:
    """Networks ks, from the cache or built (together) and cached."""
    tags = [(key, variant, seed, k, res, str(device)) for k in ks]
    missing = [k for k, tag in zip(ks, tags) if tag not in _NETWORKS]
    if missing:
        for k, net in zip(missing, build_networks(key, variant, seed, missing, res, device)):
            _NETWORKS[(key, variant, seed, k, res, str(device))] = net
    for tag in tags:
        _NETWORKS.move_to_end(tag)
    out = [_NETWORKS[tag] for tag in tags]
    limit = max(_CACHE_SIZE.get(torch.device(device).type, 8), len(ks))
    while len(_NETWORKS) > limit:
        _NETWORKS.popitem(last=False)
    return out


def per_image_network(nets: list[Network], slot: Tensor) -> Network:
    """The parts the shared-noise variant's synthesis reads, one per image: image b gets network
    nets[slot[b]] (const [B, C, 4, 4], affines [B, C, 512])."""

    def gather(tensors: list[Tensor]) -> Tensor:
        return torch.stack(tensors)[slot]

    first = nets[0]
    return Network(
        gather([n.const for n in nets]),
        [gather([n.affine[i] for n in nets]) for i in range(len(first.affine))],
        [gather([n.rgb_affine[i] for n in nets]) for i in range(len(first.rgb_affine))],
        None,
        None,
        None,
    )


# ------------------------------------------------------------------------------------ colour
def colour_statistics(rng: Rng) -> tuple[Tensor, Tensor]:
    """Per-image target channel means and stds: two float32 [B, 3]."""
    z = rng.normal(2, 3)  # [B, 2, 3]
    m = torch.tensor(COLOUR_MEAN, device=rng.device).T  # [2, 3]: (mean, std) of the channel mean
    s = torch.tensor(COLOUR_STD, device=rng.device).T
    return m[0] + m[1] * z[:, 0], s[0] + s[1] * z[:, 1]


def apply_colour_statistics(img: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """Standardise each channel over the image, then give it `mean`, `std` ([B, 3]); not clipped."""
    mu = img.mean(dim=(2, 3), keepdim=True)
    sd = img.std(dim=(2, 3), keepdim=True, unbiased=False).clamp_min(1e-12)
    return (img - mu) / sd * std[:, :, None, None] + mean[:, :, None, None]


def to_uint8(img: Tensor) -> Tensor:
    """[0, 1] float -> uint8 (clip, ×255, truncate, as the original's astype)."""
    return (img.clamp(0.0, 1.0) * 255.0).to(torch.uint8)


# ------------------------------------------------------------------------------------ per-image draws
@dataclass
class ImageDraws:
    """Everything random about a batch of images, drawn from their keys before rendering."""

    styles: list[Tensor]  # per conv: [B, C_in]
    rgb: list[Tensor]  # per block: modulated ToRGB weights [B, 3, C]
    filters: list[Tensor] | None = None  # tied variants, per conv: bank filter per input [B, C_in, 3, 3]
    gains: list[Tensor] | None = None  # tied variants, per conv: [B, C_out]
    noise: list[Tensor] | None = None  # per conv: noise map × strength [B, 1, r, r]
    bias: list[Tensor] | None = None  # per conv: [B, C_out]


def _bank_filters(rng: Rng, bank: Tensor, c_in: int, subset: bool) -> Tensor:
    """One bank filter per input channel, per image: [B, c_in, 3, 3].

    `subset` (oriented): first a random subset of n ~ U{5..len(bank)} bank filters per image and
    layer, then each channel picks uniformly from that subset.
    """
    n_bank = bank.shape[0]
    if not subset:
        return bank[rng.randint(0, n_bank, c_in)]
    n = rng.randint(SUBSET_MIN, n_bank + 1, 1)  # [B, 1]
    order = rng.uniform(n_bank).argsort(dim=1)  # [B, n_bank]: a random permutation
    pick = torch.minimum((rng.uniform(c_in) * n).long(), n - 1)  # [B, c_in] in 0..n-1
    return bank[order.gather(1, pick)]


def sample_draws(net: Network, variant: Variant, rng: Rng, res: int) -> ImageDraws:
    """Per-image latents, styles and (tied variants) filters, gains, noise and biases."""
    blocks = synthesis_blocks(res)
    convs = [c for block in blocks for c in block.convs]
    ws = F.leaky_relu(rng.child("w").normal(num_latents(res), W_DIM), 0.2)  # [B, L, 512]

    def style(affine: Tensor, w_index: int) -> Tensor:  # affine [C, 512], or [B, C, 512] per image
        return per_image_matmul(ws[:, w_index], affine.transpose(-1, -2)) / math.sqrt(W_DIM) + 1.0  # [B, C]

    styles = [style(a, c.w_index) for a, c in zip(net.affine, convs)]
    rgb_rng = rng.child("rgb")
    rgb = []
    for block, affine, shared in zip(blocks, net.rgb_affine, net.rgb_weight or [None] * len(blocks)):
        weight = shared[None] if shared is not None else rgb_rng.normal(3, block.channels)
        rgb.append(weight * style(affine, block.rgb_w_index)[:, None] / math.sqrt(block.channels))
    if variant.bank is None:
        return ImageDraws(styles, rgb)

    bank = _bank(variant.bank, rng.device)
    lr = rng.child("layers")
    shared_noise = {}  # resolution -> the image's map area-resized to it [B, 1, r, r]
    if variant.noise == "shared":
        maps = pink_noise(rng.child("noise"), 1, SHARED_NOISE_SIZE, variant.envelope)
        while maps.shape[-1] >= 4:  # area-resizing by 2^k = k successive 2×2 means
            shared_noise[maps.shape[-1]] = maps
            maps = F.avg_pool2d(maps, 2)
    draws = ImageDraws(styles, rgb, [], [], [], [])
    for li, conv in enumerate(convs):
        draws.filters.append(_bank_filters(lr, bank, conv.c_in, variant.subset))
        draws.gains.append(lr.normal(conv.c_out))
        if variant.noise == "bank":
            maps = net.noise_bank[li][lr.randint(0, NOISE_BANK_SIZE, 1)[:, 0]][:, None]
        else:
            maps = shared_noise[conv.res]
        draws.noise.append(maps * lr.uniform(1, 1, 1, high=NOISE_STRENGTH_MAX))
        if variant.bias is None:
            draws.bias.append(torch.zeros(rng.batch, conv.c_out, device=rng.device))
        else:
            draws.bias.append(lr.uniform(conv.c_out, low=variant.bias[0], high=variant.bias[1]))
    return draws


# ------------------------------------------------------------------------------------ synthesis
def synthesise_dense(net: Network, d: ImageDraws, res: int) -> Tensor:
    """stylegan-random: dense modulated convs, zero noise and biases -> float32 [B, 3, res, res]."""
    b = d.styles[0].shape[0]
    x = net.const.expand(b, *net.const.shape)
    img, li = None, 0
    for bi, block in enumerate(synthesis_blocks(res)):
        for conv in block.convs:
            # Image by image: oneDNN/cuDNN pick conv algorithms by batch size, and an image must be
            # the same bytes in any batch; per image, the loop's overhead is negligible.
            pairs = zip(x.split(1), d.styles[li].split(1))
            x = torch.cat([modulated_conv2d(xi, net.weight[li], si, conv.up) for xi, si in pairs])
            x = x.relu_().mul_(RELU_GAIN)
            li += 1
        rgb = to_rgb(x, d.rgb[bi])
        img = rgb if img is None else upsample2d(img) + rgb
    return img


def synthesise_tied(net: Network, d: ImageDraws, res: int) -> Tensor:
    """Bank variants: every layer is one map y (`place_taps`) and two activation maps
    (`TiedActivation`); the next layer's taps and the ToRGB read them out -> [B, 3, res, res]."""
    b = d.styles[0].shape[0]
    blocks = synthesis_blocks(res)
    n_convs = len(d.styles)
    m = [f * s[:, :, None, None] for f, s in zip(d.filters, d.styles)]  # modulated [B, C_in, 3, 3]
    readers = [mi.flatten(2).transpose(1, 2) for mi in m]  # [B, 9, C_in]: taps of the next conv
    const = net.const.flatten(-2)  # [C, 16], or per image [B, C, 16]
    const = const if const.dim() == 2 else const[:, None]
    taps = per_image_matmul(readers[0], const)  # [B, 9, 16]: reads the constant
    img, li = None, 0
    for bi, block in enumerate(blocks):
        for conv in block.convs:
            r_in = conv.res // 2 if conv.up else conv.res
            y = place_taps(taps.reshape(b, 9, r_in, r_in), conv.up).flatten(1)  # [B, HW]
            y = y * tied_demodulation(m[li])[:, None]
            noise = d.noise[li].flatten(1)
            act = TiedActivation(noise + y, noise - y, d.gains[li] > 0, d.bias[li])
            li += 1
            last = conv is block.convs[-1]
            weights = ([readers[li]] if li < n_convs else []) + ([d.rgb[bi]] if last else [])
            out = act.readout(torch.cat(weights, dim=1))  # [B, 9 and/or 3, HW]
            taps = out[:, :9]
        rgb = out[:, -3:].reshape(b, 3, block.res, block.res)
        img = rgb if img is None else upsample2d(img) + rgb
    return img


class RandomStyleGAN(Generator):
    """Random StyleGAN2 images; a fresh network every `images_per_network` indices."""

    search_space = (
        Param("images_per_network", "int", 1, 5000, log=True, help="images drawn from one random network"),
    )

    def __init__(self, spec: GeneratorSpec, variant: str, images_per_network: int = IMAGES_PER_NETWORK):
        super().__init__(spec, variant=variant, images_per_network=images_per_network)
        self.variant = VARIANTS[variant]
        self.images_per_network = int(images_per_network)
        # dense activations take ~100 MB per image at 256 px; the tied variants a few MB
        self.max_batch = 16 if self.variant.bank is None else 64
        self.gpu_pixels = 0 if self.variant.bank is None else 256 * 256 * 256  # 256 images at 256 px

    def batch_invariant(self, device: torch.device) -> bool:
        # A network's images are rendered together, and on a GPU the kernels chosen for the
        # group round by its size: an image may move by a grey level with its batch.
        return torch.device(device).type == "cpu"

    def render_indices(self, indices: Tensor, seed: int, res: int) -> Tensor:
        return to_uint8(self.render_unclipped(indices, seed, res))

    def render_unclipped(self, indices: Tensor, seed: int, res: int) -> Tensor:
        """Images with their colour statistics, before clipping: float32 [B, 3, res, res].

        Image i uses network k = i // 400. The shared-noise variant (oriented) renders the whole
        batch at once, each image reading its own network's constant and affines, so that a batch
        in random order (one network per image) costs about what one network's batch does. The
        others hold per-network dense weights or noise banks (≈ 100 MB each) and render the batch
        group by group.
        """
        rng = Rng.for_indices(self.key, seed, indices)
        nets = indices // self.images_per_network
        synthesise = synthesise_dense if self.variant.bank is None else synthesise_tied
        ks = nets.unique()
        built = networks(self.key, self.variant, seed, ks.tolist(), res, indices.device)
        if self.variant.noise == "shared" and len(built) > 1:
            net = per_image_network(built, torch.searchsorted(ks, nets))
            img = synthesise(net, sample_draws(net, self.variant, rng, res), res)
            return apply_colour_statistics(img, *colour_statistics(rng.child("colour")))
        out = torch.empty(len(indices), 3, res, res, device=indices.device)
        for k, net in zip(ks.tolist(), built):
            sel = (nets == k).nonzero()[:, 0]
            group = Rng(rng.keys[sel])
            img = synthesise(net, sample_draws(net, self.variant, group, res), res)
            out[sel] = apply_colour_statistics(img, *colour_statistics(group.child("colour")))
        return out


# variant: (paper label, description), registered as stylegan-<variant> in this order
LABELS = {
    "random": (
        "StyleGAN – Random",
        "Random StyleGAN2: default N(0,1) init, no noise (slow: dense 3×3 convs).",
    ),
    "highfreq": (
        "StyleGAN – High freq.",
        "Random StyleGAN2: 32 binary filters per input channel, pink noise.",
    ),
    "sparse": ("StyleGAN – Sparse", "High freq. + Laplacian noise envelope + random biases."),
    "oriented": (
        "StyleGAN – Oriented",
        "Random StyleGAN2: subsets of 40 oriented filters, one enveloped pink map (best).",
    ),
}
for _variant, (_label, _description) in LABELS.items():
    register(
        f"stylegan-{_variant}",
        family="random StyleGAN",
        label=_label,
        default_res=256,
        resolutions=(128, 256, 512),
        description=_description,
        variant=_variant,
    )(RandomStyleGAN)
