"""Set measures of a source's features: diversity without a reference, and naturalism and
coverage against real images. Pure functions of float tensors; the formulas are a few lines of
torch each, so they run batched on the device and in float64, and are checked against the
reference packages in the tests (vendi-score, prdc; FD against scipy's sqrtm).

Diversity (features X [N, D] of one source):
    vendi_q1, vendi_qinf  Vendi score of order 1 (exp of the entropy of the eigenvalues of the
                          cosine-similarity kernel / N) and order ∞ (1 / the largest eigenvalue):
                          the effective number of distinct images (Friedman & Dieng 2023)
    effective_rank        exp of the entropy of the normalised singular values of the centred
                          features (RankMe, Garrido et al. 2023): how many directions they spread in
    intrinsic_dim         TwoNN maximum-likelihood estimate N / Σ log(r2 / r1) (Facco et al. 2017)
    uniformity            log E exp(-2‖z_i - z_j‖²) of the unit-normalised features (Wang & Isola
                          2020, t = 2): lower is more uniform on the sphere
    near_duplicates       share of images whose nearest other image lies within NEAR_DUPLICATE of
                          the median distance between the source's images

Against real features R [M, D] (Kynkäänniemi et al. 2019; Naeem et al. 2020):
    precision, recall     k = 3 nearest-neighbour balls of the real / generated set
    density, coverage     k = 5: how many real balls hold a generated image; which real images
                          have a generated image in their ball
    fd                    Fréchet distance of the two Gaussians (biased in N: compared at equal N)
    kid                   unbiased MMD² with the polynomial kernel (x·y / D + 1)³
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

PR_K = 3  # k of precision and recall (Kynkäänniemi et al.)
DC_K = 5  # k of density and coverage (Naeem et al.)
NEAR_DUPLICATE = 0.05  # nearest-image distance, as a fraction of the median distance, of a near-duplicate
UNIFORMITY_T = 2.0
KNN = max(PR_K, DC_K, 2)  # the neighbours one search finds: every k-NN measure's k (TwoNN: 2)

DIVERSITY = ("vendi_q1", "vendi_qinf", "effective_rank", "intrinsic_dim", "uniformity", "near_duplicates")
NATURALISM = ("precision", "recall", "density", "coverage", "fd", "kid")


@dataclass
class Pairs:
    """Features of a source X [N, D] (and real features R [M, D]) with every pairwise matrix the
    measures read — distances, the uniformity and KID kernels — computed once: every half-sample
    of the bootstrap indexes them (`take`) instead of computing them again. Distances and the
    uniformity kernel in float32 (compared, or summed in float64), the KID kernels in float64
    (their sums nearly cancel). `scale`, the median distance between the full set's images, is
    the near-duplicate yardstick of every half-sample too (one threshold per source)."""

    x: Tensor
    dx: Tensor  # distances within X [N, N], +inf on the diagonal (an image is not its own neighbour)
    ux: Tensor  # exp(-t ‖z_i - z_j‖²) of the unit-normalised features [N, N] (uniformity)
    kxx: Tensor  # KID's kernel (x·y / D + 1)³ within X [N, N]
    scale: float  # median distance between two images of the full set
    r: Tensor | None = None
    dr: Tensor | None = None  # distances within R [M, M], diagonal +inf
    krr: Tensor | None = None  # KID's kernel within R [M, M]
    kxr: Tensor | None = None  # KID's kernel between X and R [N, M]
    cross: Tensor | None = None  # distances real to source [M, N]

    @staticmethod
    def of(x: Tensor, r: Tensor | None = None) -> Pairs:
        x = x.double()
        dim = x.shape[1]
        xx = x @ x.T
        dx = _self_distances(xx)
        norm = xx.diagonal().clamp_min(1e-24).sqrt()
        sq = (2 - 2 * xx / (norm[:, None] * norm[None, :])).clamp_min(0)  # between unit vectors
        ux = torch.exp(-UNIFORMITY_T * sq).float()
        pairs = Pairs(x, dx, ux, _kid_kernel(xx, dim), median_distance(dx))
        if r is None:
            return pairs
        r = r.double().to(x.device)
        rr, xr = r @ r.T, x @ r.T
        pairs.r, pairs.dr, pairs.krr = r, _self_distances(rr), _kid_kernel(rr, dim)
        pairs.kxr, pairs.cross = _kid_kernel(xr, dim), distances(xr.T, rr.diagonal(), xx.diagonal())
        return pairs

    def take(self, i: Tensor, j: Tensor | None = None) -> Pairs:
        """The pairs of source images `i` (and real images `j`); every measure is a function of
        the set, so the indices are sorted first (rows read in order: several times faster)."""
        i = i.sort().values
        sub = Pairs(self.x[i], _square(self.dx, i), _square(self.ux, i), _square(self.kxx, i), self.scale)
        if self.r is None or j is None:
            return sub
        assert (
            self.dr is not None and self.krr is not None and self.kxr is not None and self.cross is not None
        )
        j = j.sort().values
        sub.r, sub.dr, sub.krr = self.r[j], _square(self.dr, j), _square(self.krr, j)
        sub.kxr = self.kxr.index_select(0, i).index_select(1, j)
        sub.cross = self.cross.index_select(0, j).index_select(1, i)
        return sub

    @cached_property
    def near_x(self) -> Tensor:
        """Distances of each source image to its KNN nearest other images, ascending [N, KNN]."""
        return _nearest(self.dx)

    @cached_property
    def near_r(self) -> Tensor:
        """The same for the real images [M, KNN]."""
        assert self.dr is not None
        return _nearest(self.dr)


def _kid_kernel(gram: Tensor, dim: int) -> Tensor:
    """KID's polynomial kernel (x·y / dim + 1)³ from a Gram matrix."""
    return (gram / dim + 1) ** 3


def _square(m: Tensor, i: Tensor) -> Tensor:
    """m[i][:, i] of a square matrix."""
    return m.index_select(0, i).index_select(1, i)


def _nearest(d: Tensor) -> Tensor:
    """The KNN smallest distances of each row, ascending (one k-NN search serves every measure)."""
    return d.topk(min(KNN, d.shape[1]), dim=1, largest=False).values


def median_distance(d: Tensor) -> float:
    """The median of the n(n-1) off-diagonal distances of [N, N] (the n +inf of the diagonal sort last)."""
    n = len(d)
    return float(d.flatten().kthvalue((n * (n - 1) + 1) // 2).values)


def distances(gram: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Euclidean distances [N, M] (float32) from the Gram matrix and the squared norms a [N], b [M]."""
    return (a[:, None] + b[None, :] - 2 * gram).clamp_min(0).sqrt().float()


def _self_distances(gram: Tensor) -> Tensor:
    """Distances within one set [N, N], +inf on the diagonal (an image is not its own neighbour)."""
    sq = gram.diagonal()
    d = distances(gram, sq, sq)
    return d.fill_diagonal_(math.inf)


def _kth(d: Tensor, k: int, nearest: Tensor | None = None) -> Tensor:
    """Distance of each row's k-th nearest neighbour (the diagonal +inf excluded) [N]; from
    `nearest` (a row's ascending nearest distances) when given."""
    return (nearest if nearest is not None else _nearest(d))[:, k - 1]


def _entropy_exp(p: Tensor) -> Tensor:
    p = p[p > 0]
    return torch.exp(-(p * p.log()).sum())


def _cosine_spectrum(x: Tensor) -> Tensor:
    """Eigenvalues of the cosine kernel / N (they sum to 1), through the smaller of the N×N kernel
    and the D×D second-moment matrix (both have the same non-zero eigenvalues)."""
    z = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    n, d = z.shape
    m = z.T @ z if d < n else z @ z.T
    return torch.linalg.eigvalsh(m / n).clamp_min(0)


def vendi(x: Tensor, q: float = 1.0) -> float:
    """Vendi score of order q (1 or inf) with the cosine kernel."""
    return _vendi_of(_cosine_spectrum(x), q)


def _vendi_of(lam: Tensor, q: float) -> float:
    lam = lam / lam.sum().clamp_min(1e-300)
    return float(1.0 / lam.max()) if math.isinf(q) else float(_entropy_exp(lam))


def effective_rank(x: Tensor) -> float:
    """RankMe of the centred features: exp entropy of σ_k / Σσ."""
    c = x - x.mean(0, keepdim=True)
    if c.shape[1] < c.shape[0]:  # σ² are the eigenvalues of the smaller Gram matrix
        s = torch.linalg.eigvalsh(c.T @ c).clamp_min(0).sqrt()
    else:
        s = torch.linalg.svdvals(c)
    total = s.sum()
    return float(_entropy_exp(s / total)) if total > 0 else 1.0


def twonn(d: Tensor, nearest: Tensor | None = None) -> float:
    """TwoNN intrinsic dimension from the distances within a set ([N, N], diagonal +inf); images
    with a duplicate (r1 = 0) give no ratio. NaN when no image has two distinct neighbours."""
    two = (nearest if nearest is not None else _nearest(d))[:, :2]
    ok = two[:, 0] > 0
    mu = two[ok, 1] / two[ok, 0]
    logs = mu.log()
    return float(ok.sum() / logs.sum()) if ok.any() and logs.sum() > 0 else math.nan


def uniformity(pairs: Pairs) -> float:
    """log mean exp(-t ‖z_i - z_j‖²) over pairs i ≠ j of unit-normalised features."""
    n = len(pairs.ux)
    # the diagonal (exp 0 = 1) adds exactly n: taken off the sum instead of masked out of the matrix
    total = pairs.ux.sum(dtype=torch.float64) - n
    return float(torch.log(total.clamp_min(1e-300)) - math.log(n * (n - 1)))


def near_duplicates(d: Tensor, scale: float | None = None, nearest: Tensor | None = None) -> float:
    """Share of images whose nearest other image is within NEAR_DUPLICATE × `scale` (default: the
    median distance between the set's images)."""
    scale = median_distance(d) if scale is None else scale
    first = nearest[:, 0] if nearest is not None else d.min(1).values
    return float((first <= NEAR_DUPLICATE * scale).double().mean())


def diversity(pairs: Pairs) -> dict[str, float]:
    """Every DIVERSITY measure of the source features."""
    d, lam = pairs.dx, _cosine_spectrum(pairs.x)
    return {
        "vendi_q1": _vendi_of(lam, 1.0),
        "vendi_qinf": _vendi_of(lam, math.inf),
        "effective_rank": effective_rank(pairs.x),
        "intrinsic_dim": twonn(d, pairs.near_x),
        "uniformity": uniformity(pairs),
        "near_duplicates": near_duplicates(d, pairs.scale, pairs.near_x),
    }


def prdc(
    real_d: Tensor,
    fake_d: Tensor,
    cross: Tensor,
    k: int,
    near: tuple[Tensor, Tensor] | None = None,
) -> dict[str, float]:
    """Precision, recall, density and coverage with k-NN balls (prdc's definitions, strict <).

    real_d [M, M] and fake_d [N, N]: distances within each set (diagonal +inf); cross [M, N];
    `near`: each set's ascending nearest distances, when already searched.
    """
    real_near, fake_near = near if near is not None else (None, None)
    real_r, fake_r = _kth(real_d, k, real_near), _kth(fake_d, k, fake_near)
    inside_real = cross < real_r[:, None]  # [M, N]: fake j inside real i's ball
    return {
        "precision": float(inside_real.any(0).double().mean()),
        "recall": float((cross < fake_r[None, :]).any(1).double().mean()),
        "density": float(inside_real.sum(0).double().mean() / k),
        "coverage": float((cross.min(1).values < real_r).double().mean()),
    }


def frechet_distance(x: Tensor, r: Tensor) -> float:
    """‖μx - μr‖² + tr(Σx + Σr - 2 (Σx Σr)^½); the trace of the root is the nuclear norm of
    Ax Arᵀ / √((N-1)(M-1)) for the centred data A, computed from the eigenvalues of the smaller of
    (Σx^½ Σr Σx^½) and that product."""
    x, r = x.double(), r.double()
    ax, ar = x - x.mean(0), r - r.mean(0)
    n, m, d = len(x), len(r), x.shape[1]
    cx, cr = ax.T @ ax / (n - 1), ar.T @ ar / (m - 1)
    if d <= max(n, m):
        w, v = torch.linalg.eigh(cx)
        root = (v * w.clamp_min(0).sqrt()) @ v.T
        middle = root @ cr @ root
        trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    else:
        trace_root = torch.linalg.svdvals(ax @ ar.T).sum() / math.sqrt((n - 1) * (m - 1))
    mean_term = (x.mean(0) - r.mean(0)).pow(2).sum()
    return float(mean_term + cx.trace() + cr.trace() - 2 * trace_root)


def kid(pairs: Pairs) -> float:
    """Unbiased MMD² with the kernel (x·y / D + 1)³ (D: the feature dimension)."""
    assert pairs.krr is not None and pairs.kxr is not None
    kxx, krr, kxr = pairs.kxx, pairs.krr, pairs.kxr
    n, m = len(kxx), len(krr)
    off_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    off_r = (krr.sum() - krr.diagonal().sum()) / (m * (m - 1))
    return float(off_x + off_r - 2 * kxr.mean())


def naturalism(pairs: Pairs) -> dict[str, float]:
    """Every NATURALISM measure of the source features against the real ones."""
    assert pairs.r is not None and pairs.dr is not None and pairs.cross is not None
    real_d, fake_d, cross = pairs.dr, pairs.dx, pairs.cross
    near = (pairs.near_r, pairs.near_x)
    pr, dc = prdc(real_d, fake_d, cross, PR_K, near), prdc(real_d, fake_d, cross, DC_K, near)
    return {
        "precision": pr["precision"],
        "recall": pr["recall"],
        "density": dc["density"],
        "coverage": dc["coverage"],
        "fd": frechet_distance(pairs.x, pairs.r),
        "kid": kid(pairs),
    }


def augmentation_gap(view1: Tensor, view2: Tensor) -> float:
    """Mean ‖f(v1_i) - f(v2_i)‖² over images / mean ‖f(v1_i) - f(v2_j)‖² over pairs i ≠ j: how far
    the training augmentation moves an image relative to the spread between images (0: it does
    not move it; 1: its two views are as far apart as two different images)."""
    a, b = view1.double(), view2.double()
    sq = (a.pow(2).sum(1)[:, None] + b.pow(2).sum(1)[None, :] - 2 * a @ b.T).clamp_min(0)
    n = len(sq)
    same = sq.diagonal().mean()
    other = (sq.sum() - sq.diagonal().sum()) / (n * (n - 1))
    return float(same / other) if other > 0 else math.nan


def ks_distance(a: Tensor, b: Tensor) -> float:
    """Two-sample Kolmogorov–Smirnov statistic sup |F_a - F_b| of two samples of one statistic."""
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a[torch.isfinite(a)], b[torch.isfinite(b)]
    if not len(a) or not len(b):
        return math.nan
    grid = torch.cat([a, b]).sort().values
    fa = torch.searchsorted(a.sort().values, grid, right=True) / len(a)
    fb = torch.searchsorted(b.sort().values, grid, right=True) / len(b)
    return float((fa - fb).abs().max())
