"""Dead leaves: radius law, shape counts, coverage, hard edges, geometry, determinism,
exactness against a plain painter's algorithm, and textures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from noisevision import generators, reference
from noisevision.errors import NoisevisionError
from noisevision.generators import dead_leaves as dl
from noisevision.generators.registry import Generator, register
from noisevision.rng import Rng

pytestmark = pytest.mark.usefixtures("one_thread")


NAMES = ["dead_leaves-squares", "dead_leaves-oriented", "dead_leaves-mixed", "dead_leaves-textures"]
FLAT = NAMES[:3]


@pytest.fixture(autouse=True)
def _no_disk_cache(monkeypatch):
    """The texture-bank tests count renders: no bank comes from the disk cache (see test_cache.py)."""
    monkeypatch.setenv("NOISEVISION_CACHE", "off")


def rng_for(g: Generator, n: int, seed: int = 0) -> Rng:
    return Rng.for_indices(g.key, seed, torch.arange(n))


# ------------------------------------------------------------------------------- stand-in texture
TEXTURE = "test-dead-leaves-texture"


class NoiseTexture(Generator):
    """Stand-in texture model: uniform RGB noise, a pure function of the image's key."""

    calls: list[int] = []

    def render(self, rng: Rng, res: int) -> torch.Tensor:
        NoiseTexture.calls.append(rng.batch)
        return rng.randint(0, 256, 3, res, res).to(torch.uint8)


if TEXTURE not in generators.names():
    register(TEXTURE, family="test", description="uniform noise (tests only)")(NoiseTexture)


def textured(**params) -> dl.DeadLeavesTextures:
    return generators.get("dead_leaves-textures", texture=TEXTURE, bank_size=16, **params)


# ------------------------------------------------------------------------------- registry
def test_registered_names_labels_and_parameters():
    labels = {s.name: s.label for s in generators.specs() if s.family == "dead leaves"}
    assert labels == {
        "dead_leaves-squares": "Dead leaves – Squares",
        "dead_leaves-oriented": "Dead leaves – Oriented",
        "dead_leaves-mixed": "Dead leaves – Shapes",
        "dead_leaves-textures": "Dead leaves – Textures",
    }
    for name in NAMES:
        assert generators.spec(name).default_res == 128
    g = generators.get("dead_leaves-mixed", max_shapes=2000)
    assert g.params["max_shapes"] == 2000 and g.params["sigma"] == 3.0
    assert g.params["r_min"] == 0.03 and g.params["r_max"] == 1.0 and g.params["grid"] == 200
    t = generators.get("dead_leaves-textures")
    assert t.params["shapes"] == "oriented"  # the released Textures data
    assert t.params["texture"] == "stat-spectrum_color_wmm"
    assert generators.get("dead_leaves-textures", shapes="mixed").kinds == tuple(range(6))


def test_bad_parameters_are_one_line_errors():
    with pytest.raises(NoisevisionError, match="unknown shape set 'hexagons'"):
        generators.get("dead_leaves-squares", shapes="hexagons")
    with pytest.raises(NoisevisionError, match="max_shapes"):
        generators.get("dead_leaves-squares", max_shapes=0)
    with pytest.raises(NoisevisionError, match="bad parameters"):
        generators.get("dead_leaves-squares", colour="red")


# ------------------------------------------------------------------------------- radius law
def nearest_cdf_law(grid: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of the grid points under 'nearest CDF point to u', computed independently."""
    r = np.linspace(0.03, 1.0, grid)
    d = r**-3.0 - 1.0
    cdf = np.cumsum(d) / d.sum()
    edges = np.concatenate([[0.0], (cdf[1:] + cdf[:-1]) / 2, [1.0]])
    return r, np.diff(edges)


def test_radius_cdf_is_the_power_law():
    r, cdf = dl.radius_cdf()
    ref_r, _ = nearest_cdf_law()
    np.testing.assert_allclose(r.numpy(), ref_r)
    assert torch.all(torch.diff(cdf) >= 0) and abs(cdf[-1] - 1.0) < 1e-12
    assert cdf[-2] == cdf[-1]  # d = 0 at r = 1: the largest radius is never drawn
    # Masses follow r^-3 on the small radii (where the -1 offset is negligible).
    d = torch.diff(cdf)[:40].numpy()
    slope = np.polyfit(np.log(r[1:41].numpy()), np.log(d), 1)[0]
    assert -3.1 < slope < -2.9


def test_radius_histogram_matches_discretised_law():
    r, cdf = dl.radius_cdf()
    u = Rng.for_indices("radius-test", 0, torch.arange(1)).uniform(200_000).reshape(-1)
    res = 1000  # floor(r_k * 1000) is distinct for every grid point: one bin per grid point
    rho = dl.sample_radii(u, res, r, cdf).numpy()
    grid_r, p = nearest_cdf_law()
    bins = np.floor(grid_r * res).astype(int)
    assert len(set(bins)) == len(bins)
    observed = np.array([(rho == b).sum() for b in bins])
    assert observed.sum() == len(u)
    expected = p * len(u)
    # Pool the tail where expected counts fall below 20 (chi-square validity).
    cut = int(np.argmax(expected < 20))
    obs = np.append(observed[:cut], observed[cut:].sum())
    exp = np.append(expected[:cut], expected[cut:].sum())
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    dof = len(obs) - 1
    pvalue = torch.special.gammaincc(torch.tensor(dof / 2), torch.tensor(chi2 / 2)).item()
    assert pvalue > 1e-3, (chi2, dof)


@pytest.mark.parametrize("name", FLAT)
def test_radius_percentiles_at_128(name):
    g = generators.get(name)
    rng = rng_for(g, 32)
    rho = g.leaves(rng, 128, 0, 1024).rho.reshape(-1).double()
    assert rho.min() == 3  # floor(0.03 * 128)
    assert rho.median() == 4
    assert 5.5 < rho.mean() < 6.5
    assert 27 <= torch.quantile(rho, 0.99) <= 35


# ------------------------------------------------------------------------------- counts, coverage
@pytest.mark.parametrize(
    "name, spec_mean",
    [("dead_leaves-squares", 1300), ("dead_leaves-oriented", 1400), ("dead_leaves-mixed", 1600)],
)
def test_shape_counts_at_128(name, spec_mean):
    # n_stop has a std of ≈ 450-550 (SE of a 48-image mean ≈ 70): allow ±15% of SPEC's count.
    n = generators.get(name).shape_counts(range(48), res=128).double()
    assert 0.85 * spec_mean < n.mean() < 1.15 * spec_mean
    assert n.min() > 100 and n.max() <= 5000


def test_full_coverage_and_the_shape_cap():
    g = generators.get("dead_leaves-oriented")
    visible, n_stop = g.layout(rng_for(g, 6), 64)
    assert torch.all(n_stop < 5000) and torch.all(visible >= 0)  # covered: nothing left black
    assert torch.all(visible.flatten(1).amax(1) == n_stop - 1)  # the last shape painted shows
    capped = generators.get("dead_leaves-oriented", max_shapes=30)
    visible, n_stop = capped.layout(rng_for(capped, 6), 64)
    assert torch.all(n_stop == 30) and torch.all(visible < 30)
    black = visible < 0
    assert black.any()
    img = capped(range(6), res=64)
    assert torch.all(img.permute(0, 2, 3, 1)[black] == 0)


@pytest.mark.parametrize("name", FLAT)
def test_hard_edges_one_flat_colour_per_visible_shape(name):
    g = generators.get(name)
    rng = rng_for(g, 4)
    visible, n_stop = g.layout(rng, 128)
    colours = g.gather_paint(rng, n_stop, 128)  # [B, n, 3]
    img = g(range(4), res=128).long()
    packed = (img[:, 0] << 16) | (img[:, 1] << 8) | img[:, 2]  # [B, res, res]
    table = (colours[..., 0] << 16) | (colours[..., 1] << 8) | colours[..., 2]
    for b in range(4):
        shown = torch.unique(visible[b])
        # Every pixel has exactly its visible shape's colour: nothing blended, nothing smoothed.
        assert torch.equal(packed[b], table[b][visible[b]])
        # ... hence as many distinct colours as visible shapes (24-bit colours rarely collide).
        assert abs(len(torch.unique(packed[b])) - len(shown)) <= 1
        assert len(shown) > 20


# ------------------------------------------------------------------------------- geometry
def lone_shape_pixels(kind: int, rho: int, phi=None, res: int = 64) -> torch.Tensor:
    """Mask [res, res] of one shape centred at (32, 32), rendered through leaf_map."""
    kind_t = torch.tensor([[kind]])
    u = torch.zeros(1, 1, 0) if phi is None else None
    angles = dl.vertex_angles(kind_t, u) if phi is None else torch.tensor([[phi]], dtype=torch.float64)
    leaves = dl.Leaves(kind_t, torch.tensor([[rho]]), torch.tensor([[32]]), torch.tensor([[32]]), angles)
    visible, n_stop = dl.leaf_map(lambda images, start, count: leaves, 1, res, max_shapes=1)
    assert n_stop.item() == 1
    return visible[0] == 0


def lattice_points(inside) -> int:
    y, x = np.mgrid[-32:32, -32:32].astype(float)
    return int(inside(x, y).sum())


def test_single_shapes_cover_the_expected_pixels():
    rho = 20
    h = math.floor(rho / math.sqrt(2))  # 14: the square's half-side, rounded to pixel centres
    assert lone_shape_pixels(dl.SQUARE, rho).sum() == (2 * h + 1) ** 2
    assert lone_shape_pixels(dl.CIRCLE, rho).sum() == lattice_points(lambda x, y: x * x + y * y <= 400)
    # Rectangle with a = π/6: corners (±ρ cos a, ±ρ sin a) = (±17.3, ±10).
    a = math.pi / 6
    rect = lone_shape_pixels(dl.RECTANGLE, rho, [a, math.pi - a, math.pi + a, 2 * math.pi - a])
    assert rect.sum() == 35 * 21
    # Vertices at 0, π/2, π, 3π/2: the diamond |x| + |y| <= ρ.
    quarter = [k * math.pi / 2 for k in range(4)]
    assert lone_shape_pixels(dl.QUAD, rho, quarter).sum() == 2 * rho * rho + 2 * rho + 1
    # Equilateral triangle (repeated last vertex): area (3√3/4)ρ²; lattice count within 4%.
    third = [0.0, 2 * math.pi / 3, 4 * math.pi / 3, 4 * math.pi / 3]
    area = lone_shape_pixels(dl.TRIANGLE, rho, third).sum().item()
    assert abs(area - 3 * math.sqrt(3) / 4 * rho**2) < 0.04 * area
    # A rotated square keeps area 2ρ² (to the pixel grid's rounding) and fits in its circle.
    for theta in (0.3, 1.0, 2.5):
        phi = [theta + math.pi / 4 + k * math.pi / 2 for k in range(4)]
        mask = lone_shape_pixels(dl.ORIENTED, rho, phi)
        assert abs(mask.sum().item() - 2 * rho * rho) < 0.04 * 2 * rho * rho
        y, x = torch.nonzero(mask, as_tuple=True)
        assert torch.all((x - 32) ** 2 + (y - 32) ** 2 <= rho * rho)


def test_shapes_are_clipped_at_the_border():
    leaves = dl.Leaves(
        torch.tensor([[dl.SQUARE]]),
        torch.tensor([[10]]),
        torch.tensor([[0]]),
        torch.tensor([[63]]),
        dl.vertex_angles(torch.tensor([[dl.SQUARE]]), torch.zeros(1, 1, 0)),
    )
    visible, _ = dl.leaf_map(lambda images, start, count: leaves, 1, 64, max_shapes=1)
    assert (visible[0] == 0).sum() == 8 * 8  # the corner pixel and 7 px right of it / above it


@pytest.mark.parametrize("name", FLAT)
def test_same_images_as_the_painters_algorithm(name):
    """The original algorithm, literally (noisevision.reference): shape after shape over the whole
    image until no pixel is black; the same shapes, so the same layout and bytes."""
    g = generators.get(name)
    rng = rng_for(g, 2, seed=3)
    visible, n_stop = g.layout(rng, 24)
    ref_images, ref_visible, ref_n_stop = reference.paint_dead_leaves(g, rng, 24)
    assert n_stop.tolist() == ref_n_stop.tolist()
    assert np.array_equal(visible.numpy(), ref_visible)
    assert np.array_equal(g.render(rng, 24).numpy(), ref_images)


@pytest.mark.parametrize(
    "shapes", ["mixed", "squares", "oriented", "circle", "rectangle", "triangle", "quadrilateral"]
)
@pytest.mark.parametrize(("res", "cap"), [(37, dl.MAX_SHAPES), (96, dl.MAX_SHAPES), (64, 300)])
def test_cpu_painter_gives_the_range_update_layout(shapes, res, cap):
    """On a CPU the shapes are painted in one compiled loop (dead_leaves.paint_cpu); the range
    updates of layout.leaf_map (the GPU's way, run here on the CPU) give the same visible shapes
    and counts, from the CPU's draws and from the tensor code's."""
    g = generators.get("dead_leaves-mixed", shapes=shapes, max_shapes=cap)
    rng = rng_for(g, 5, seed=7)
    args = (g._draw_fn(rng, res), 5, res, cap)
    visible, n_stop = dl.paint_cpu.leaf_map(*args, circles=dl.CIRCLE in g.kinds)
    table_visible, table_n_stop = dl.leaf_map(*args, slots=3)
    assert torch.equal(visible.to(torch.int64), table_visible) and torch.equal(n_stop, table_n_stop)
    assert cap == dl.MAX_SHAPES or bool((n_stop == cap).any())  # the cap case is exercised
    leaves = g.leaves(rng, res, 0, 512)
    u = Rng(rng.keys).uniform(512, 4)
    for kinds in (g.kinds, tuple(range(6))):
        assert torch.equal(
            dl.paint_cpu.vertex_angles(leaves.kind, u, kinds), dl.vertex_angles(leaves.kind, u, kinds)
        )
    assert torch.equal(
        dl.paint_cpu.sample_radii(u[..., 0], res, g.radii, g.cdf),
        dl.sample_radii(u[..., 0], res, g.radii, g.cdf),
    )


@pytest.mark.parametrize("cap", [dl.MAX_SHAPES, 40])
def test_cpu_textures_give_the_tensor_codes_pixels(cap):
    g = generators.get("dead_leaves-textures", texture=TEXTURE, bank_size=8, max_shapes=cap)
    rng = rng_for(g, 4, seed=2)
    img = g.render(rng, 48)
    assert torch.equal(img, g.render_tensors(rng, 48))
    assert cap == dl.MAX_SHAPES or bool((img == 0).all(1).any())  # bare pixels stay black


# ------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("name", FLAT)
def test_images_do_not_depend_on_batching(name):
    g = generators.get(name)
    full = g(range(8), res=48, seed=5)
    assert full.dtype == torch.uint8 and full.shape == (8, 3, 48, 48)
    singles = torch.cat([g([i], res=48, seed=5) for i in range(8)])
    threes = torch.cat([g(range(i, min(i + 3, 8)), res=48, seed=5) for i in range(0, 8, 3)])
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    shuffled = g(perm, res=48, seed=5)
    assert torch.equal(full, singles) and torch.equal(full, threes)
    assert torch.equal(full[perm], shuffled)
    assert torch.equal(full[[5, 2, 7]], g([5, 2, 7], res=48, seed=5))
    assert not torch.equal(full, g(range(8), res=48, seed=6))


# ------------------------------------------------------------------------------- textures
def test_textures_show_the_bank_image_of_each_region():
    g = textured()
    rng = rng_for(g, 3)
    res = 32
    img = g.render(rng, res)
    visible, n_stop = g.layout(rng, res)
    choice = g.gather_paint(rng, n_stop, res)  # [B, n, 4]: entry, row shift, column shift, flip
    bank = g.bank(torch.arange(16), res, torch.device("cpu"))
    for b in range(3):
        for s in torch.unique(visible[b]).tolist():
            entry, sy, sx, flip = choice[b, s].tolist()
            # The texture moved as a whole image: shifted, flipped, transposed.
            tex = torch.roll(bank[entry], shifts=(-sy, -sx), dims=(1, 2))
            if flip & 2:
                tex = tex.flip(2)
            if flip & 4:
                tex = tex.flip(1)
            if flip & 1:
                tex = tex.transpose(1, 2)
            mask = visible[b] == s
            assert torch.equal(img[b][:, mask], tex[:, mask])


def test_textures_bank_is_lazy_cached_and_batch_independent():
    NoiseTexture.calls.clear()
    g = textured()
    full = g(range(4), res=32, seed=1)
    rendered = sum(NoiseTexture.calls)
    assert 0 < rendered <= 16
    again = torch.cat([g([i], res=32, seed=1) for i in range(4)])
    assert torch.equal(full, again)
    assert sum(NoiseTexture.calls) == rendered  # cached: nothing re-rendered
    fresh = textured()(reversed(range(4)), res=32, seed=1)  # a new bank, entries in another order
    assert torch.equal(full.flip(0), fresh)
    # Textured regions are not flat: many more distinct colours than visible shapes.
    packed = (full[0, 0].long() << 16) | (full[0, 1].long() << 8) | full[0, 2].long()
    assert len(torch.unique(packed)) > 0.5 * 32 * 32


def test_textures_prepare_renders_the_whole_bank_up_front():
    NoiseTexture.calls.clear()
    g = textured()
    g.prepare(32)
    assert sum(NoiseTexture.calls) == 16
    imgs = g(range(4), res=32, seed=1)
    assert sum(NoiseTexture.calls) == 16  # nothing left to render lazily
    assert torch.equal(imgs, textured()(range(4), res=32, seed=1))  # same images as a lazy bank
    with pytest.raises(NoisevisionError, match="too small"):
        g.prepare(4)


def test_textures_with_the_statistical_model():
    if "stat-spectrum_color_wmm" not in generators.names():
        pytest.skip("statistical generators not available")
    g = generators.get("dead_leaves-textures", bank_size=2)
    img = g(range(2), res=64)
    assert img.shape == (2, 3, 64, 64) and img.dtype == torch.uint8
    assert img.float().std() > 10


@pytest.mark.slow
@pytest.mark.parametrize("name", FLAT)
@pytest.mark.parametrize("res", [100, 128])
def test_same_images_as_the_painters_algorithm_full_size(name, res):
    g = generators.get(name)
    rng = rng_for(g, 2, seed=11)
    visible, n_stop = g.layout(rng, res)
    _, ref_visible, ref_n_stop = reference.paint_dead_leaves(g, rng, res)
    assert n_stop.tolist() == ref_n_stop.tolist()
    assert np.array_equal(visible.numpy(), ref_visible)
