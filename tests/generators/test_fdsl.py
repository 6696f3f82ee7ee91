"""Formula-driven families (rcdb, visualatom, fractal-1p): recipe statistics, labels, classes, errors."""

import numpy as np
import pytest
import torch

from noisevision import generators
from noisevision.errors import NoisevisionError
from noisevision.generators.fdsl import contours, one_fractal, rcdb
from noisevision.rng import Rng

BACKGROUND = {"rcdb": 255, "visualatom": 0, "fractal-1p": 0}


def _orbits(name, indices, seed=0, **params):
    """The orbit drawings (512 px units) a contour family renders for `indices`."""
    gen = generators.get(name, **params)
    idx = torch.as_tensor(indices)
    cls = Rng.for_indices(gen.key + "/class", seed, idx % gen.num_classes)
    return gen.draw_orbits(cls, Rng.for_indices(gen.key, seed, idx), idx // gen.num_classes)


def _spectrum_features(images, background):
    """A translation-invariant feature: the radial profile of the line mask's power spectrum
    (log, 16 bins, mean removed) and the lit fraction."""
    lit = (images[:, 0] != background).float()
    n = lit.shape[-1]
    power = torch.fft.fft2(lit - lit.mean((1, 2), keepdim=True)).abs() ** 2
    f = torch.fft.fftfreq(n)
    r = (f[:, None] ** 2 + f[None] ** 2).sqrt()
    ring = (r / r.max() * 15.999).long().flatten()
    profile = torch.zeros(len(lit), 16).index_add_(1, ring, power.flatten(1)) / torch.bincount(
        ring, minlength=16
    )
    profile = torch.log1p(profile)
    return torch.cat([profile - profile.mean(1, keepdim=True), 10 * lit.mean((1, 2))[:, None]], 1)


def _leave_one_out(features, labels):
    d = torch.cdist(features, features)
    d.fill_diagonal_(float("inf"))
    return (labels[d.argmin(1)] == labels).float().mean().item()


def test_rcdb_grey_polygons_on_white():
    gen = generators.get("rcdb", classes=8)
    images = gen(range(8), res=256)
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])  # grey
    lit = (images[:, 0] != 255).float().mean((1, 2))
    assert (lit > 0.005).all() and (lit < 0.9).all(), lit  # thin lines on a mostly white canvas
    drawn = _orbits("rcdb", range(8), classes=8)
    assert ((drawn.vertices >= 3) & (drawn.vertices <= 200)).all()
    assert ((drawn.orbits >= 1) & (drawn.orbits <= 200)).all()
    # one grey per polygon: an image has at most K levels, and about as many as K random greys give
    levels = torch.tensor([len(img[0][img[0] != 255].unique()) for img in images])
    assert (levels <= drawn.orbits).all()
    expected = 255 * (1 - (1 - 1 / 256) ** drawn.orbits.float())  # distinct greys of K draws (not 255)
    assert (levels / expected).median() > 0.5, (levels, drawn.orbits)


def test_rcdb_vertex_counts_follow_the_truncated_exponential():
    n = rcdb.vertex_counts(Rng.for_indices("t", 0, torch.arange(4000)))
    assert n.min() >= 3 and n.max() <= 200
    # ⌊X⌋, X ~ Exp(100) given 3 ≤ X < 201: E X = 3 + 100 − 198 e^-1.98 / (1 − e^-1.98) ≈ 71.3,
    # so E n ≈ 70.8; P(n < 50) = (e^-.03 − e^-.5) / (e^-.03 − e^-2.01) ≈ 0.435
    assert 69 < n.float().mean() < 73
    assert 0.40 < (n < 50).float().mean() < 0.46


def test_rcdb_instance_zero_keeps_the_class_placement():
    # classes 2: images 0, 1 are instance 0, images 2, 3 instance 1, images 4, 5 instance 2
    drawn = _orbits("rcdb", range(6), classes=2)
    assert torch.equal(drawn.orbits[0::2], drawn.orbits[0].expand(3))  # the class: n, K (and λ, w)
    assert torch.equal(drawn.vertices[1::2], drawn.vertices[1].expand(3))
    assert not torch.equal(drawn.centre[0], drawn.centre[2])  # later instances draw their own
    assert not torch.equal(drawn.centre[2], drawn.centre[4])


def test_visualatom_orbits_on_black():
    gen = generators.get("visualatom", classes=8)
    images = gen(range(8), res=128)
    assert torch.equal(images[:, 0], images[:, 2])
    black = (images[:, 0] == 0).float().mean((1, 2))
    assert black.mean() > 0.3, black
    drawn = _orbits("visualatom", range(16), classes=8)
    assert ((drawn.orbits >= 1) & (drawn.orbits <= 200)).all()
    assert ((drawn.vertices >= 200) & (drawn.vertices <= 1000)).all()
    assert torch.equal(drawn.orbits[:8], drawn.orbits[8:])  # a class keeps K, q, r0, stretch
    assert torch.equal(drawn.stretch[:8], drawn.stretch[8:])
    assert not torch.equal(drawn.centre[:8], drawn.centre[8:])  # instances move the centre
    levels = torch.tensor([len(img[0][img[0] != 0].unique()) for img in images])
    assert (levels <= drawn.orbits[:8]).all()


def test_visualatom_frequencies_differ_unless_the_first_is_zero():
    from noisevision.generators.fdsl.visualatom import frequencies

    n1, n2 = frequencies(Rng.for_indices("t", 0, torch.arange(3000)))
    assert n1.min() == 0 and n1.max() == 20 and n2.min() == 0 and n2.max() == 20
    assert ((n1 != n2) | (n1 == 0)).all()
    assert ((n1 == 0) & (n2 == 0)).any()


def test_perlin_values_stay_in_half_a_unit():
    p = contours.perlin_at_random(Rng.for_indices("t", 0, torch.arange(4)), 50, 100, (50, 100))
    assert p.shape == (4, 2, 50, 100)
    assert p.abs().max() <= 0.5 and p.std() > 0.1 and p.mean().abs() < 0.01


def test_one_fractal_classes_are_small_perturbations_of_one_base():
    gen = generators.get("fractal-1p", classes=4, points=30_000)
    base = gen.base(0, torch.device("cpu"))
    params = gen.class_params(0, torch.arange(4))
    ratio = params / base
    assert ((ratio >= 0.9 - 1e-6) & (ratio <= 1.1 + 1e-6)).all() and not torch.equal(params[0], params[1])
    images = gen(range(4), res=64).float()
    other = generators.get("fractal-1p", classes=4, points=30_000)(range(4), res=64, seed=1).float()
    within = (images[0] - images[1:]).abs().mean()  # classes 0 vs 1..3 of one base
    across = (images - other).abs().mean()  # the same classes of another seed's base fractal
    assert within < 0.8 * across, (within, across)
    lit = (images[:, 0] > 0).float().mean((1, 2))
    assert (lit > 0.05).all()  # every class passed the 5% rule on its 512 px canvas


def test_one_fractal_classes_are_a_pure_function_of_seed_and_class():
    a = generators.get("fractal-1p", classes=10, points=20_000).class_params(0, torch.tensor([3, 7]))
    b = generators.get("fractal-1p", classes=10, points=20_000).class_params(0, torch.tensor([7]))
    assert torch.equal(a[1], b[0]) and not torch.equal(a[0], a[1])


@pytest.mark.parametrize("name", ["rcdb", "visualatom", "fractal-1p"])
def test_labels_interleave(name):
    gen = generators.get(name, classes=3)
    assert gen.num_classes == 3 and gen.describe()["num_classes"] == 3
    assert gen.labels(range(7)).tolist() == [0, 1, 2, 0, 1, 2, 0]


@pytest.mark.parametrize(
    ("name", "res", "params"),
    [("rcdb", 128, {}), ("visualatom", 64, {}), ("fractal-1p", 64, {"points": 30_000})],
)
def test_instances_of_a_class_are_nearest_each_other(name, res, params):
    """Leave-one-out 1-NN on a translation-invariant feature: well above chance with the true
    labels, at chance with shuffled ones."""
    gen = generators.get(name, classes=4, **params)
    images = gen(range(32), res=res)
    labels = gen.labels(range(32))
    features = _spectrum_features(images, BACKGROUND[name])
    shuffled = labels[torch.randperm(32, generator=torch.Generator().manual_seed(0))]
    assert _leave_one_out(features, labels) >= 0.6
    assert _leave_one_out(features, shuffled) <= 0.45


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("rcdb", {"classes": 0}, "classes >= 1"),
        ("visualatom", {"classes": "many"}, "must be an integer"),
        ("visualatom", {"drift": float("inf")}, "must be finite"),
        ("visualatom", {"lambda_min": 5.0}, "lambda_min <= lambda_max"),
        ("rcdb", {"drift": -0.1}, "drift >= 0"),
        ("rcdb", {"r0_min": 50, "r0_max": 10}, "r0_min <= r0_max"),
        ("fractal-1p", {"delta": -0.1}, "0 <= delta < 1"),
        ("fractal-1p", {"delta": 1.0}, "0 <= delta < 1"),
        ("fractal-1p", {"sigma": 7.0}, "sigma"),
        ("fractal-1p", {"classes": 0}, "classes >= 1"),
    ],
)
def test_bad_parameters_are_one_line_errors(name, params, message):
    with pytest.raises(NoisevisionError, match=message) as err:
        generators.get(name, **params)
    assert "\n" not in str(err.value)


def test_one_fractal_patches_light_the_point_and_neighbours():
    rng = Rng.for_indices("t", 0, torch.arange(2))
    params = torch.tensor([[[0.5, 0, 0, 0.5, 0, 0], [0.5, 0, 0, 0.5, 0.5, 0.5]]]).expand(2, -1, -1)
    lit, finite = one_fractal.patch_render(rng, params, 2000, 64)
    assert finite.all() and lit.shape == (2, 64, 64)
    assert not torch.equal(lit[0], lit[1])  # the chaos game and the masks come from each key


def test_parameters_in_the_name():
    named = generators.get("rcdb:classes=10,lambda_max=6")
    assert named.num_classes == 10 and named.params["lambda_max"] == 6.0
    same = generators.get("rcdb", classes=10, lambda_max=6)
    assert torch.equal(named([3, 11], res=32), same([3, 11], res=32))
    rebuilt = generators.get("visualatom", **generators.get("visualatom:classes=5").describe()["params"])
    assert rebuilt.num_classes == 5
    # a dataset manifest records the name and every parameter: both given at once
    again = generators.get("visualatom:classes=5", **rebuilt.params)
    assert again.params == rebuilt.params
    errors = {"rcdb:classes": "key=value", "rcdb:classes=1.5": "an integer", "fractal-1p:delta=x": "a number"}
    for bad, message in errors.items():
        with pytest.raises(NoisevisionError, match=message):
            generators.get(bad)


def test_one_fractal_search_does_not_depend_on_how_many_candidates_run_at_once(monkeypatch):
    classes = torch.tensor([3, 5])  # class 3's first candidate fails (lights < 5%)
    wide = generators.get("fractal-1p", classes=12, points=20_000, delta=0.3).class_params(0, classes)
    monkeypatch.setattr(one_fractal, "ROUND", 1)
    gen = generators.get("fractal-1p", classes=12, points=20_000, delta=0.3)
    narrow = gen.class_params(0, classes)
    assert torch.equal(wide, narrow)
    first = Rng.for_indices(gen.key + "/class", 0, classes[:1]).child("try", torch.zeros(1, dtype=torch.long))
    candidate = gen.base(0, torch.device("cpu")) * first.child("factors").uniform(2, 6, low=0.7, high=1.3)
    assert not torch.equal(candidate[0], narrow[0])  # the search went past class 3's first candidate


@pytest.mark.parametrize("name", ["rcdb:classes=5", "visualatom:classes=5,lambda_min=2,lambda_max=6"])
@pytest.mark.parametrize("res", [37, 96])
def test_the_cpu_loop_draws_the_bytes_of_the_tensor_code(name, res):
    """contours_cpu draws each image in one numba loop; the tensor code (the GPU's) must give the
    same bytes for the same draws."""
    from noisevision.generators.fdsl import contours, contours_cpu

    gen = generators.get(name)
    idx = torch.arange(3, 15)
    cat, inst = idx % gen.num_classes, idx // gen.num_classes

    def draws():
        return gen.draw(Rng.for_indices(gen.key + "/class", 0, cat), Rng.for_indices(gen.key, 0, idx), inst)

    tensor_code = contours.rasterise(draws().orbits_drawn(), res)
    assert torch.equal(contours_cpu.render(draws(), res, res / contours.CANVAS, contours.FIXED), tensor_code)
    assert torch.equal(gen(idx, res=res), tensor_code)  # what the generator renders on a CPU


def test_the_perlin_parts_give_every_table_value():
    """The CPU loop computes Perlin values from 1.8 KB of parts; all 2^20 must equal the table's."""
    from noisevision.generators.fdsl import contours, contours_cpu

    f, f1, fade, g = contours_cpu.perlin_parts()
    index = np.arange(1 << contours.PERLIN_BITS)
    a = index >> 12
    near = g[(index >> 6) & 63] * f[a]
    far = g[index & 63] * f1[a]
    value = near + fade[a] * (far - near)  # float32 throughout
    assert value.dtype == np.float32
    assert np.array_equal(value, contours.perlin_table(torch.device("cpu")).numpy())
