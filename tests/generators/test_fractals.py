"""Fractals: FractalDB codes, categories and instances, patch drawing, published codes from CSV,
SVD-sampled contractive maps, determinism."""

import pytest
import torch
import torch.nn.functional as F

from noisevision import generators
from noisevision.errors import NoisevisionError
from noisevision.generators import fractals as fr
from noisevision.generators.fractals import ifs
from noisevision.rng import Rng


def test_accepted_codes_fill_a_fifth_of_the_canvas():
    gen = generators.get("fractaldb", render="points")
    # instance 0 of a category is its code itself, unflipped; at 512 px the generator draws points
    # on FractalDB's search canvas, so its lit share is the filling rate (up to sampling noise)
    images = gen([0, 1], res=512, seed=3)
    lit = (images[:, 0] > 0).float().mean(dim=(1, 2))
    assert (lit >= 0.19).all(), lit
    codes = gen.search.codes(3, torch.tensor([0, 1]))
    assert codes.shape == (2, 7, 7)
    n_maps = (codes[..., 6] > 0).sum(1)  # p ∝ |det|, 0 for the unused slots
    assert ((n_maps >= 2) & (n_maps <= 7)).all()
    assert torch.allclose(codes[..., 6].sum(1), torch.ones(2))
    assert codes[..., :6].abs().max() <= 1


def test_category_codes_are_a_pure_function_of_seed_and_category():
    a = fr.CodeSearch("fractaldb", 100_000).codes(0, torch.tensor([2, 0]))
    b = fr.CodeSearch("fractaldb", 100_000).codes(0, torch.tensor([0]))
    assert torch.equal(a[1], b[0]) and not torch.equal(a[0], a[1])


def test_instances_scale_one_parameter_of_every_map():
    code = torch.rand(25, 7, 7)
    code[..., 6] = 1
    out = fr.instance_code(code, torch.arange(25))
    assert torch.equal(out[0], code[0])  # variation 0: the code itself
    ratio = out / code
    for v in range(1, 25):
        changed = (ratio[v] - 1).abs() > 1e-6  # [7 maps, 7 columns]
        col = (v - 1) // 4
        assert changed[:, col].all() and changed.sum() == 7  # one parameter, all maps
        assert torch.allclose(ratio[v, :, col], torch.full((7,), fr.WEIGHT_FACTORS[(v - 1) % 4]))


def test_instances_of_a_category_differ():
    images = generators.get("fractaldb")([0, 1000, 2000, 3000], res=64)  # category 0
    assert all(not torch.equal(images[0], images[i]) for i in range(1, 4))


@pytest.mark.parametrize("name", ["fractaldb", "fractal-svd"])
def test_deterministic_alone_and_in_batches(name):
    gen = generators.get(name)
    whole = gen([7, 0, 130], res=64, seed=1)
    assert whole.dtype == torch.uint8 and whole.shape == (3, 3, 64, 64)
    parts = torch.cat([gen([7], res=64, seed=1), gen([0, 130], res=64, seed=1)])
    assert torch.equal(whole, parts)


def test_svd_maps_are_contractive_with_the_sigma_factor_in_range():
    maps, offsets, probs = fr.svd_maps(Rng.for_indices("t", 0, torch.arange(2000)))
    used = probs > 0
    n = used.sum(1)
    assert ((n >= 2) & (n <= 4)).all() and torch.allclose(probs.sum(1), torch.ones(2000))
    sv = torch.linalg.svdvals(maps)  # [B, 4, 2], descending
    assert (sv[..., 0][used] < 1).all(), "a map is not contractive"
    alpha = ((sv[..., 0] + 2 * sv[..., 1]) * used).sum(1)
    assert ((alpha >= (5 + n) / 2 - 1e-4) & (alpha <= (6 + n) / 2 + 1e-4)).all()
    assert offsets.abs().max() <= 1


def test_svd_fractals_are_coloured_on_a_background():
    images = generators.get("fractal-svd")(range(4), res=64).float()
    assert (images.std(dim=(2, 3)) > 5).all()  # not flat
    assert (images.std(dim=1).mean(dim=(1, 2)) > 5).all()  # colour, not grey


def test_too_few_points_is_a_clear_error():
    with pytest.raises(NoisevisionError, match="points must be an integer >="):
        generators.get("fractaldb", points=1000)


def test_labels_interleave_categories():
    gen = generators.get("fractaldb")
    assert gen.num_classes == 1000 and gen.describe()["num_classes"] == 1000
    assert torch.equal(gen.labels(range(2005)), torch.arange(2005) % 1000)
    small = generators.get("fractaldb:classes=7")
    assert small.num_classes == 7 and small.labels([6, 7, 15]).tolist() == [6, 0, 1]
    # image i is instance i div 7 of category i mod 7: instance 0 of category 2 is its code itself
    code = small.search.codes(0, torch.tensor([2]))
    assert torch.equal(fr.instance_code(code, torch.tensor([0])), code)


def test_patches_stamp_3x3_masks_around_the_points():
    kw = {"classes": 5}
    patch = generators.get("fractaldb", render="patch", **kw)([0, 1], res=512)[:, 0]
    points = generators.get("fractaldb", render="points", **kw)([0, 1], res=512)[:, 0]
    assert set(patch.unique().tolist()) == {0, 127}  # grey 127 on black only
    lit, dots = patch > 0, (points > 0).float()[:, None]
    assert not torch.equal(lit, dots[:, 0].bool())
    # the same chaos game: every lit pixel is within one pixel of a point
    near_point = F.max_pool2d(dots, 3, 1, 1)[:, 0] > 0
    assert not (lit & ~near_point).any()


def test_interval_sets_the_parameter_scales():
    assert fr.weight_factors(0.4) == pytest.approx((0.2, 0.6, 1.4, 1.8))
    code = torch.rand(4, 7, 7) + 0.5
    out = fr.instance_code(code, torch.arange(1, 5), interval=0.4) / code  # variations 1..4
    assert torch.allclose(out[:, :, 0], torch.tensor([0.2, 0.6, 1.4, 1.8])[:, None].expand(4, 7))
    assert torch.allclose(out[:, :, 6], torch.ones(4, 7))  # p kept
    assert generators.get("fractaldb:interval=0.4,points=200000").interval == 0.4


@pytest.mark.parametrize(
    "name, message",
    [
        ("fractaldb:classes=0", "classes must be an integer >= 1"),
        ("fractaldb:interval=-0.1", "interval must be in"),
        ("fractaldb:interval=0.5", "interval must be in"),
        ("fractaldb:render=lines", "render must be one of patch, points"),
        ("fractaldb:classes=x", "classes must be an integer"),
        ("fractaldb:size=3", "with keys classes"),
        ("fractaldb:classes=3,classes=4", "given twice"),
        ("fractaldb:codes=/no/such.csv", "no such file or folder"),
    ],
)
def test_bad_parameters_are_one_line(name, message):
    with pytest.raises(NoisevisionError, match=message) as err:
        generators.get(name)
    assert "\n" not in str(err.value)


def test_codes_csv_round_trips(tmp_path):
    searched = generators.get("fractaldb:classes=3,render=points")
    codes = searched.search.codes(0, torch.arange(3))
    fr.write_codes(tmp_path / "codes.csv", codes)
    loaded = generators.get(f"fractaldb:codes={tmp_path / 'codes.csv'},render=points")
    assert loaded.num_classes == 3 and torch.equal(loaded.search.table, codes)
    assert torch.equal(loaded([0, 4], res=32), searched([0, 4], res=32))
    # FractalDB's own layout: a folder of one-category files without a header, in name order
    for c in range(3):
        (tmp_path / "csv0").mkdir(exist_ok=True)
        fr.write_codes(tmp_path / "csv0" / f"{c + 1:05d}.csv", codes[c : c + 1])
    folder = generators.get("fractaldb", codes=str(tmp_path / "csv0"), classes=2)
    assert folder.num_classes == 2 and torch.equal(folder.search.table, codes[:2])
    with pytest.raises(NoisevisionError, match="classes=4 but"):
        generators.get("fractaldb", codes=str(tmp_path / "codes.csv"), classes=4)


@pytest.mark.parametrize(
    "text, message",
    [
        ("1,2,3,4,5,6,0.5\n1,2,3,4,5,0.5\n", "codes.csv line 2: expected 7 columns"),
        ("1,2,3,4,5,6,0.5\n1,2,3,4,5,__import__,1\n", "codes.csv line 2: not a number"),
        ("1,2,3,4,5,6,-1\n", "codes.csv line 1: probability p must be >= 0"),
        ("1,2,3,4,5,nan,1\n", "codes.csv line 1: values must be finite"),
        ("".join("1,0,0,1,0,0,1\n" for _ in range(8)), "codes.csv line 8: more than 7 maps"),
        ("1,2,3,4,5,6,0\n", "codes.csv line 1: the category's probabilities sum to 0"),
        ("\n\n", "holds no code rows"),
    ],
)
def test_a_bad_codes_csv_is_one_line_naming_file_and_line(tmp_path, text, message):
    path = tmp_path / "codes.csv"
    path.write_text(text)
    with pytest.raises(NoisevisionError, match=message) as err:
        generators.get(f"fractaldb:codes={path}")
    assert "\n" not in str(err.value)


def test_a_header_row_and_blank_line_separated_categories_are_read(tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text("a,b,c,d,e,f,p\n0.5,0,0,0.5,0,0,1\n0.5,0,0,0.5,0.5,0,1\n\n0.5,0,0,0.5,0,0.5,2\n")
    table = fr.read_codes(path)
    assert table.shape == (2, 7, 7) and table[0, :2, 6].tolist() == [1, 1] and table[1, 0, 5] == 0.5


def test_thread_count_does_not_change_patch_bytes():
    gen = generators.get("fractaldb:classes=2")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = gen([0, 1, 3], res=64)
        torch.set_num_threads(2)
        assert torch.equal(one, gen([0, 1, 3], res=64))
    finally:
        torch.set_num_threads(before)


class _Masks:
    """An Rng stand-in whose randint returns the given masks."""

    def __init__(self, masks: list[int]):
        self.masks = torch.tensor([masks])

    def randint(self, low: int, high: int, *shape: int) -> torch.Tensor:
        return self.masks


def test_a_later_patch_pastes_over_an_earlier_one():
    """As FractalDB pastes each 3×3 patch whole, a later point's empty cells black out what an
    earlier point lit; an invalid point pastes nothing."""
    size = 10
    pixels = torch.tensor([[5 * size + 5, 5 * size + 6, 2 * size + 2]])  # (x, y): (5, 5), (6, 5), (2, 2)
    valid = torch.tensor([[True, True, False]])
    lit = ifs.stamp_patches(_Masks([511, 1, 511]), pixels, valid, size)[0]
    expected = torch.zeros(size, size, dtype=torch.bool)
    expected[4:7, 4] = True  # the first patch's column the second does not cover
    expected[4, 5] = True  # the second's only cell: offset (−1, −1) from (6, 5)
    assert torch.equal(lit, expected)
