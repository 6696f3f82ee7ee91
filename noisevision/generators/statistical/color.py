"""The statistical models' colour model: random colours in bands, blurred, noised, and its PCA.

Each image's colour model gives the decorrelated colour space the model is imposed in and the
target histograms of its channels (MATLAB's `get_image_histograms` and `colorPCA`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from noisevision.generators.statistical.histmatch import _bincount
from noisevision.rng import Rng

MAX_COLORS = 22  # K = 3 + floor(20 U) is at most 22
COLOR_BINS = 256  # bins of the colour target histograms (MATLAB get_image_histograms)


def box_blur_same(img: Tensor, size: Tensor) -> Tensor:
    """m×m mean filter with zero padding, m per image: MATLAB convn(img, ones(m)/m², 'same').

    img: [B, C, N, N]; size: int [B] (m ≥ 1). 'same' keeps the window [i - ceil(m/2) + 1,
    i + floor(m/2)] (for even m it leans forward, as MATLAB's centre does); pixels outside the
    image count as zeros, so borders darken. Running sums over the zero-padded image, one pass
    per distinct m in the batch (at most 10 sizes).
    """
    if img.device.type == "cpu" and img.dtype == torch.float32:
        from noisevision.generators.statistical import color_cpu

        out = torch.empty_like(img, memory_format=torch.contiguous_format)
        color_cpu.box_blur(img.contiguous().numpy(), size.contiguous().numpy(), out.numpy())
        return out
    return _box_blur_torch(img, size)


def _box_blur_torch(img: Tensor, size: Tensor) -> Tensor:
    out = torch.empty_like(img)
    for m in size.unique().tolist():
        pick = (size == m).nonzero()[:, 0]
        x = img.index_select(0, pick)
        out.index_copy_(0, pick, _window_sums(_window_sums(x, m, -2), m, -1) / float(m * m))
    return out


def _window_sums(x: Tensor, m: int, dim: int) -> Tensor:
    """Sums over the windows [i - ceil(m/2) + 1, i + floor(m/2)] along `dim` (-2 or -1), zeros outside."""
    before = (m + 1) // 2  # the window's ceil(m/2) - 1 pixels back, plus the exclusive start
    pad = (0, 0, before, m - before) if dim == -2 else (before, m - before)
    cs = torch.nn.functional.pad(x, pad).cumsum(dim)  # zeros added to a sum change nothing
    n = x.shape[dim]
    return cs.narrow(dim, m, n) - cs.narrow(dim, 0, n)


def sym3_eigh(a: Tensor, sweeps: int = 6) -> tuple[Tensor, Tensor]:
    """Eigen-decomposition of symmetric 3×3 matrices [B, 3, 3] by cyclic Jacobi rotations.

    Pure elementwise tensor code, so each matrix's result does not depend on the batch (batched
    LAPACK/cuSOLVER choose algorithms by batch size); at most `sweeps` sweeps. Returns
    eigenvalues [B, 3] in descending order and eigenvectors as columns [B, 3, 3], each with a
    non-negative component sum.
    """
    a = a.to(torch.float64).clone()
    v = torch.eye(3, dtype=torch.float64, device=a.device).expand_as(a).clone()
    if a.device.type == "cpu":
        from noisevision.generators.statistical import color_cpu  # numba compiles (or loads) on first use

        color_cpu.jacobi_sweeps(a.numpy(), v.numpy(), sweeps)
    else:
        a, v = _jacobi(a, v, sweeps)
    w = torch.diagonal(a, dim1=1, dim2=2)
    order = torch.argsort(-w, dim=1, stable=True)
    w = w.gather(1, order)
    v = v.gather(2, order[:, None, :].expand(-1, 3, -1))
    sign = torch.where(v.sum(1, keepdim=True) < 0, -1.0, 1.0)
    return w, v * sign


def _jacobi(a: Tensor, v: Tensor, sweeps: int) -> tuple[Tensor, Tensor]:
    """sym3_eigh's rotations as tensor code: a [B, 3, 3] diagonalised, v [B, 3, 3] its rotations."""
    for _ in range(sweeps):
        for p, q in ((0, 1), (0, 2), (1, 2)):
            apq = a[:, p, q]
            app, aqq = a[:, p, p], a[:, q, q]
            small = apq.abs() < 1e-300
            theta = (aqq - app) / (2.0 * torch.where(small, torch.ones_like(apq), apq))
            t = torch.sign(theta) / (theta.abs() + torch.sqrt(theta * theta + 1.0))
            t = torch.where(theta == 0, torch.ones_like(t), t)
            t = torch.where(small, torch.zeros_like(t), t)
            cos = 1.0 / torch.sqrt(t * t + 1.0)
            sin = t * cos
            rot = torch.eye(3, dtype=torch.float64, device=a.device).repeat(a.shape[0], 1, 1)
            rot[:, p, p], rot[:, q, q], rot[:, p, q], rot[:, q, p] = cos, cos, sin, -sin
            # a <- Rᵀ a R, v <- v R (3×3 products written out: deterministic per matrix)
            a = _mm3(_mm3(rot.transpose(1, 2), a), rot)
            v = _mm3(v, rot)
        # Converged matrices only get identity rotations from here on (exactly), so stopping
        # once all are converged (usually after 4 sweeps) changes no result. On CPU only: on a GPU
        # the test would wait for the device at every sweep.
        if a.device.type == "cpu" and bool((a[:, [0, 0, 1], [1, 2, 2]].abs() < 1e-300).all()):
            break
    return a, v


def _mm3(x: Tensor, y: Tensor) -> Tensor:
    """Batched 3×3 product as broadcast multiply-sum (no batch-size-dependent BLAS path)."""
    return (x[:, :, :, None] * y[:, None, :, :]).sum(2)


def sample_color_model(rng: Rng, res: int) -> dict[str, Tensor]:
    """The paper's colour model for each image of the batch.

    K = 3 + floor(20U) colours uniform in RGB, proportions 0.001 + U (normalised), a multinomial
    assignment of the res² pixels sorted into contiguous bands (MATLAB's column-major order:
    vertical stripes), ×256, an m×m box blur (m = ceil(10U)), per-pixel noise 10U, rescaled to
    0..256. Its PCA gives the decorrelated space; the targets are the 256-bin histograms of the
    projected channels. Returns tensors on rng's device:
      n_colors [B] int, colors [B, 22, 3], proportions [B, 22] (0 past K), color_counts [B, 22]
      (pixels per colour), blur [B] int,
      reference [B, 3, N, N] (the blurred image), pc [B, 3, 3] (principal axes as columns,
      descending variance), mean [B, 3], hist_counts [B, 3, 256], hist_lo / hist_step [B, 3].
    """
    dev, npix = rng.device, res * res
    n_colors = 3 + (20.0 * rng.uniform()).floor().to(torch.int64)  # [B] 3..22
    slot = torch.arange(MAX_COLORS, device=dev)
    colors = rng.uniform(MAX_COLORS, 3)  # [B, 22, 3]
    props = (0.001 + rng.uniform(MAX_COLORS)) * (slot[None] < n_colors[:, None])
    props = props / props.sum(1, keepdim=True)
    counts = multinomial_counts(props.cumsum(1), rng.uniform(npix))  # [B, 22]
    ref = band_image(colors, counts, res)
    blur = (10.0 * rng.uniform()).ceil().clamp_min(1).to(torch.int64)  # [B] 1..10
    ref = box_blur_same(ref, blur)
    # per-pixel noise (MATLAB's, not the port's scalar), then 0..256
    ref = add_noise_and_rescale(ref, rng.uniform(3, res, res))
    pc, mean = color_pca(ref)
    hist, lo, step = projected_histograms(ref, pc, mean)
    return {
        "n_colors": n_colors,
        "colors": colors,
        "proportions": props,
        "color_counts": counts,
        "blur": blur,
        "reference": ref,
        "pc": pc,
        "mean": mean,
        "hist_counts": hist,
        "hist_lo": lo,
        "hist_step": step,
    }


def add_noise_and_rescale(img: Tensor, noise: Tensor) -> Tensor:
    """img + 10·noise, rescaled to 0..256 over each image's three channels: [B, 3, N, N]."""
    if img.device.type == "cpu" and img.dtype == torch.float32:
        from noisevision.generators.statistical import color_cpu

        out = torch.empty_like(img, memory_format=torch.contiguous_format)
        color_cpu.noise_and_rescale(img.contiguous().numpy(), noise.contiguous().numpy(), out.numpy())
        return out
    return _add_noise_and_rescale_torch(img, noise)


def _add_noise_and_rescale_torch(img: Tensor, noise: Tensor) -> Tensor:
    flat = (img + 10.0 * noise).flatten(1)
    flat = flat - flat.amin(1, keepdim=True)
    return (256.0 * flat / flat.amax(1, keepdim=True)).view(img.shape)


def band_image(colors: Tensor, counts: Tensor, res: int) -> Tensor:
    """The sorted assignment as an image ×256, float32 [B, 3, N, N]: the pixels of colour k fill
    a contiguous run of counts_k positions, which MATLAB reshapes column-major (position p ->
    row p % N, column p // N). colors [B, K, 3], counts int64 [B, K] summing to N²."""
    b = colors.shape[0]
    if colors.device.type == "cpu":
        from noisevision.generators.statistical import color_cpu

        out = torch.empty(b, 3, res, res)
        color_cpu.paint_bands(colors.contiguous().numpy(), counts.contiguous().numpy(), out.numpy())
        return out.transpose(2, 3).contiguous()
    return _band_image_torch(colors, counts, res)


def _band_image_torch(colors: Tensor, counts: Tensor, res: int) -> Tensor:
    b = colors.shape[0]
    ref = torch.repeat_interleave(colors.reshape(-1, 3), counts.view(-1), dim=0, output_size=b * res * res)
    return (256.0 * ref).view(b, res, res, 3).permute(0, 3, 2, 1).contiguous()


def projected_histograms(img: Tensor, pc: Tensor, mean: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The COLOR_BINS-bin histograms of the decorrelated channels over their own range:
    counts int64 [B, 3, bins], first edges lo and bin widths step float32 [B, 3]."""
    if img.device.type == "cpu":
        from noisevision.generators.statistical import color_cpu

        b = img.shape[0]
        hist = torch.zeros(b, 3, COLOR_BINS, dtype=torch.int64)
        lo, step = torch.empty(b, 3), torch.empty(b, 3)
        args = (img.contiguous(), pc.contiguous(), mean.contiguous(), lo, step, hist)
        color_cpu.projected_histograms(*(a.numpy() for a in args))
        return hist, lo, step
    return _projected_histograms_torch(img, pc, mean)


def _projected_histograms_torch(img: Tensor, pc: Tensor, mean: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    b = img.shape[0]
    p = project_colors(img, pc, mean).reshape(b * 3, -1)
    lo, hi = p.amin(1), p.amax(1)
    step = (hi - lo).clamp_min(1e-12) / COLOR_BINS
    idx = ((p - lo[:, None]) / step[:, None]).to(torch.int64).clamp_(0, COLOR_BINS - 1)
    idx = idx + torch.arange(b * 3, device=img.device)[:, None] * COLOR_BINS
    hist = _bincount(idx.view(-1), b * 3 * COLOR_BINS).view(b, 3, COLOR_BINS)
    return hist, lo.view(b, 3), step.view(b, 3)


def multinomial_counts(cdf: Tensor, u: Tensor) -> Tensor:
    """Pixels per colour, int64 [B, K]: pixel p draws colour k = #{j: cdf_j <= u_p}, i.e. u_p in
    [cdf_{k-1}, cdf_k); the last slot takes any pixel past a cdf_K that rounded below 1.

    cdf: [B, K] cumulative proportions; u: [B, P] uniform numbers, one per pixel.
    """
    b, k = cdf.shape
    if cdf.device.type == "cpu":
        from noisevision.generators.statistical import color_cpu  # numba compiles (or loads) on first use

        counts = torch.zeros(b, k, dtype=torch.int64)
        color_cpu.multinomial_counts(cdf.contiguous().numpy(), u.contiguous().numpy(), counts.numpy())
        return counts
    return _multinomial_counts_torch(cdf, u)


def _multinomial_counts_torch(cdf: Tensor, u: Tensor) -> Tensor:
    b, k = cdf.shape
    label = torch.searchsorted(cdf, u, right=True).clamp_(max=k - 1)
    label += torch.arange(b, device=cdf.device)[:, None] * k
    return _bincount(label.view(-1), b * k).view(b, k).to(torch.int64)


def color_pca(img: Tensor) -> tuple[Tensor, Tensor]:
    """MATLAB colorPCA: mean colour [B, 3] and principal axes [B, 3, 3] (columns, descending).

    Axis signs matter for the variants without colour histograms: their decorrelated channels
    keep the white-noise mean 128, so the mean colour of an image is 128·(v1 + v2 + v3) + μ.
    MATLAB's eigs (LAPACK) leaves signs unspecified; the first axis pointing away from grey
    (component sum <= 0) and the others towards it reproduces the released images' colour
    saturation (mean chroma of stat-spectrum ≈ 92 vs 90 in paper_gallery, stat-wmm ≈ 50 vs 47;
    all axes towards grey gives ≈ 65 and 40).
    """
    b = img.shape[0]
    if img.device.type == "cpu" and img.dtype == torch.float32:
        from noisevision.generators.statistical import color_cpu

        mean = torch.empty(b, 3, dtype=torch.float64)
        scatter = torch.empty(b, 3, 3, dtype=torch.float64)
        color_cpu.pca_moments(img.contiguous().numpy(), mean.numpy(), scatter.numpy())
    else:
        mean, scatter = _pca_moments_torch(img)
    _, pc = sym3_eigh(scatter)  # component sums >= 0
    pc = pc * torch.tensor([-1.0, 1.0, 1.0], dtype=pc.dtype, device=pc.device)
    return pc.to(img.dtype), mean.to(img.dtype)


def _pca_moments_torch(img: Tensor) -> tuple[Tensor, Tensor]:
    """Mean colour [B, 3] and scatter x'x of the centred colours [B, 3, 3], in float64."""
    b = img.shape[0]
    x = img.reshape(b, 3, -1).to(torch.float64)
    mean = x.mean(-1)
    x = x - mean[:, :, None]
    pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    dots = torch.stack([torch.linalg.vecdot(x[:, i], x[:, j]) for i, j in pairs], -1)  # [B, 6]
    return mean, dots[:, [0, 1, 2, 1, 3, 4, 2, 4, 5]].view(b, 3, 3)


def project_colors(img: Tensor, pc: Tensor, mean: Tensor) -> Tensor:
    """RGB [B, 3, N, N] -> decorrelated channels c_j = (x - μ)·v_j."""
    x = img - mean[:, :, None, None]
    return (pc[:, :, :, None, None] * x[:, :, None]).sum(1)


def unproject_colors(chan: Tensor, pc: Tensor, mean: Tensor) -> Tensor:
    """Decorrelated channels [B, 3, N, N] -> RGB: MATLAB inv_colorPCA (x = c·PCᵀ + μ)."""
    return (pc[:, :, :, None, None] * chan[:, None]).sum(2) + mean[:, :, None, None]
