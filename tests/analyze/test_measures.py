"""Set measures on sets whose answer is known, and against the reference packages where those are
installed (vendi-score, prdc, scipy)."""

import math

import pytest
import torch

from noisevision.analyze import measures as M
from noisevision.analyze.correlate import correlate, spearman
from noisevision.analyze.sets import SpaceData, interval, space_measures

pytestmark = pytest.mark.usefixtures("one_thread")


def gaussian(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) + shift


def test_vendi_counts_copies_as_one_and_orthogonal_images_as_many():
    copies = gaussian(1, 16, 0).expand(50, -1)
    assert M.vendi(copies) == pytest.approx(1.0)
    assert M.vendi(copies, math.inf) == pytest.approx(1.0)
    eye = torch.eye(12, dtype=torch.float64)
    assert M.vendi(eye) == pytest.approx(12.0)
    assert M.vendi(eye, math.inf) == pytest.approx(12.0)
    assert M.vendi(torch.cat([eye, eye])) == pytest.approx(12.0)  # repeating a set adds nothing


def test_vendi_matches_the_reference_package():
    vendi_score = pytest.importorskip("vendi_score.vendi")
    x = gaussian(300, 40, 1)
    assert M.vendi(x) == pytest.approx(float(vendi_score.score_dual(x.numpy())), rel=1e-6)
    wide = gaussian(30, 100, 2)  # more dimensions than images: the N×N kernel
    assert M.vendi(wide) == pytest.approx(float(vendi_score.score_dual(wide.numpy())), rel=1e-6)


def test_prdc_matches_the_reference_package():
    prdc = pytest.importorskip("prdc")
    x, r = gaussian(200, 8, 3), gaussian(180, 8, 4, shift=0.3)
    mine = M.naturalism(M.Pairs.of(x, r))
    for k, names in ((M.PR_K, ("precision", "recall")), (M.DC_K, ("density", "coverage"))):
        ref = prdc.compute_prdc(real_features=r.numpy(), fake_features=x.numpy(), nearest_k=k)
        for name in names:
            assert mine[name] == pytest.approx(float(ref[name]), abs=1e-9), name


def test_fd_and_kid_match_their_reference_formulas():
    """FD as pytorch-fid computes it (scipy's sqrtm of the covariance product), KID as
    torch-fidelity and Bińkowski et al. write it (torch-fidelity itself installs a top-level
    `tests` package that shadows this suite's, so its formula is written out here)."""
    linalg = pytest.importorskip("scipy.linalg")
    import numpy as np

    def fd_reference(a, b):
        a, b = a.numpy(), b.numpy()
        mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        root = linalg.sqrtm(s1 @ s2).real
        return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * root))

    def kid_reference(a, b):
        a, b = a.numpy(), b.numpy()
        d, m = a.shape[1], len(a)
        kxx, kyy, kxy = ((u @ v.T / d + 1) ** 3 for u, v in ((a, a), (b, b), (a, b)))
        off = lambda k: (k.sum() - np.diag(k).sum()) / (m * (m - 1))  # noqa: E731
        return float(off(kxx) + off(kyy) - 2 * kxy.mean())

    x, r = gaussian(150, 20, 5), gaussian(150, 20, 6, shift=0.2)
    assert M.frechet_distance(x, r) == pytest.approx(fd_reference(x, r), rel=1e-6)
    # fewer images than dimensions: the nuclear-norm route
    assert M.frechet_distance(x[:10], r[:10]) == pytest.approx(fd_reference(x[:10], r[:10]), rel=1e-5)
    assert M.kid(M.Pairs.of(x, r)) == pytest.approx(kid_reference(x, r), rel=1e-9)


def test_a_sample_against_another_of_its_distribution_is_natural_and_covering():
    x, r = gaussian(1000, 6, 7), gaussian(1000, 6, 8)
    same = M.naturalism(M.Pairs.of(x, r))
    assert same["coverage"] > 0.9
    assert same["density"] == pytest.approx(1.0, abs=0.15)
    assert abs(same["kid"]) < 0.01
    other = M.naturalism(M.Pairs.of(gaussian(1000, 6, 9, shift=1.0), r))
    assert other["kid"] > 0.1 and other["fd"] > 5.0
    assert other["density"] < same["density"] and other["coverage"] < same["coverage"]


def test_copies_of_one_image_cover_nothing_and_are_all_near_duplicates():
    copies = gaussian(1, 6, 10).expand(200, -1)
    pairs = M.Pairs.of(copies, gaussian(200, 6, 11))
    div, nat = M.diversity(pairs), M.naturalism(pairs)
    assert div["near_duplicates"] == 1.0
    assert div["vendi_q1"] == pytest.approx(1.0)
    assert math.isnan(div["intrinsic_dim"])  # no image has a distinct nearest neighbour
    assert nat["coverage"] < 0.05
    assert M.diversity(M.Pairs.of(gaussian(200, 6, 12)))["near_duplicates"] == 0.0


def test_intrinsic_dimension_and_effective_rank_of_a_plane_in_ten_dimensions():
    plane = gaussian(2000, 2, 13) @ gaussian(2, 10, 14)
    assert M.twonn(M.Pairs.of(plane).dx) == pytest.approx(2.0, abs=0.25)
    assert M.effective_rank(plane) < 2.01
    assert M.effective_rank(gaussian(5000, 10, 15)) == pytest.approx(10.0, abs=0.3)


def test_uniformity_augmentation_gap_and_ks():
    spread, clump = gaussian(500, 3, 16), gaussian(500, 3, 17) * 0.01 + 5.0
    assert M.uniformity(M.Pairs.of(spread)) < M.uniformity(M.Pairs.of(clump))
    assert M.uniformity(M.Pairs.of(clump)) == pytest.approx(0.0, abs=1e-3)  # all on one point
    assert M.augmentation_gap(spread, spread) == pytest.approx(0.0, abs=1e-12)
    assert M.augmentation_gap(spread, gaussian(500, 3, 18)) == pytest.approx(1.0, abs=0.1)
    a = torch.arange(100.0)
    assert M.ks_distance(a, a) == 0.0
    assert M.ks_distance(a, a + 1000) == 1.0


def test_half_sample_intervals_cover_the_mean_and_respect_bounds():
    x = gaussian(400, 4, 19)
    data = SpaceData([x.float()], [gaussian(400, 4, 20).float()], [torch.stack([x, x + 0.1]).float()])
    m = space_measures(data, bootstraps=40, seed=0, device=torch.device("cpu"))
    for name, e in m.items():
        assert e.low <= e.value <= e.high, name
    assert 0.0 <= m["coverage"].low and m["coverage"].high <= 1.0
    assert interval(0.0, [0.0, 0.5, -0.5], (0.0, 1.0)).low == 0.0
    again = space_measures(data, bootstraps=40, seed=0, device=torch.device("cpu"))
    assert again == m  # deterministic


def test_spearman_with_ties_matches_scipy_and_correlations_say_what_they_know():
    stats = pytest.importorskip("scipy.stats")
    a = torch.tensor([1.0, 2.0, 2.0, 3.0, 5.0, 4.0])
    b = torch.tensor([2.0, 1.0, 4.0, 3.0, 6.0, 6.0])
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a.numpy(), b.numpy())[0])
    c = correlate("m", "probe", [1, 2, 3, 4, 5, 6, 7, 8], [10, 20, 30, 40, 50, 60, 70, 80])
    assert c.rho == pytest.approx(1.0) and c.significant and c.loo_min == pytest.approx(1.0)
    weak = correlate("m", "probe", [1, 2, 3, 4, 5], [3, 1, 4, 5, 2])
    assert not weak.significant
    assert weak.p == pytest.approx(
        stats.permutation_test(
            ([1, 2, 3, 4, 5],), lambda a: stats.spearmanr(a, [3, 1, 4, 5, 2])[0], permutation_type="pairings"
        ).pvalue
    )  # exact: every ordering of 5
    assert correlate("m", "probe", [1, 2, 3], [1, 2, 3]).p == pytest.approx(1 / 3)  # 2 of 6 orderings
    assert correlate("m", "probe", [1, 2], [3, 4]) is None  # two sources rank nothing
