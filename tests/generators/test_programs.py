"""Procedural image programs: determinism, grammars, errors, diversity and spectra of the batch,
program categories."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from noisevision import generators
from noisevision.errors import NoisevisionError
from noisevision.generators import programs as pg
from noisevision.generators.programs import render
from noisevision.rng import Rng

pytestmark = pytest.mark.usefixtures("one_thread_module")
NAMES = ["program-cppn", "program-shader", "program-mixed"]


@pytest.fixture(scope="module")
def batch_256() -> dict[str, torch.Tensor]:
    """256 images of each family at 64 px (the tiny preset's size), rendered once."""
    return {name: generators.get(name)(range(256), res=64) for name in ("program-mixed", "program-shader")}


def _power_slopes(img: torch.Tensor, fmin: float = 2, fmax: float = 48) -> torch.Tensor:
    """Log-log slope of the radially averaged power spectrum of the luminance: [B]
    (twice the amplitude slope that tests/generators/test_statistical.py measures)."""
    n = img.shape[-1]
    x = img.float().mean(1)
    x = x - x.mean((-2, -1), keepdim=True)
    amp = torch.fft.fft2(x).abs()
    f = torch.fft.fftfreq(n) * n
    radius = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    edges = torch.logspace(math.log10(fmin), math.log10(fmax), 9)
    bands = list(zip(edges[:-1], edges[1:]))
    logf = torch.stack([torch.log(torch.sqrt(a * b)) for a, b in bands])
    loga = torch.stack([torch.log(amp[:, (radius >= a) & (radius < b)].mean(-1)) for a, b in bands], -1)
    xc = logf - logf.mean()
    return 2 * ((loga - loga.mean(-1, keepdim=True)) * xc).sum(-1) / (xc * xc).sum()


def _max_similarity(features: torch.Tensor) -> float:
    """Largest correlation between two different rows of features [B, D]."""
    z = features - features.mean(1, keepdim=True)
    z = z / z.norm(dim=1, keepdim=True).clamp_min(1e-9)
    corr = z @ z.T
    corr.fill_diagonal_(-1)
    return float(corr.max())


# ============================================================================ registry and errors
def test_the_family_is_listed_as_not_in_the_paper():
    for name in NAMES:
        spec = generators.spec(name)
        assert spec.family == "procedural programs" and spec.label == "" and spec.default_res == 128
        assert spec.description and "\n" not in spec.description
    assert generators.get("program-mixed").params == {"grammar": "mixed", "depth": 3, "cppn_share": 0.2}


def test_bad_parameters_are_one_line_errors():
    with pytest.raises(NoisevisionError, match=r"depth must be an integer in 1\.\.6, got 0"):
        generators.get("program-shader", depth=0)
    with pytest.raises(NoisevisionError, match="unknown grammar 'lsystem'.*cppn, shader, mixed"):
        generators.get("program-mixed", grammar="lsystem")
    with pytest.raises(NoisevisionError, match="bad parameters"):
        generators.get("program-mixed", colours=3)
    with pytest.raises(NoisevisionError, match="depth must be an integer"):
        generators.get("program-cppn:depth=0")
    with pytest.raises(NoisevisionError, match="write program-cppn:depth=N"):
        generators.get("program-cppn:width=3")
    with pytest.raises(NoisevisionError, match="did you mean"):
        generators.get("program-shaders:depth=2")
    with pytest.raises(NoisevisionError, match="depth is given twice"):
        generators.get("program-shader:depth=3,depth=5")
    with pytest.raises(NoisevisionError, match=r"program-cppn takes depth, classes, spread\)"):
        generators.get("program-cppn:cppn_share=0.5")  # a CPPN program mixes in no CPPNs


def test_cli_errors_are_one_line(run_cli, tmp_path):
    code, _, err = run_cli("show", "program-shader:depth=0", "--out", tmp_path / "g.png", "--device", "cpu")
    assert code == 2 and err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_depth_in_the_name_is_the_parameter():
    named = generators.get("program-shader:depth=2")
    assert named.name == "program-shader:depth=2" and named.params["depth"] == 2
    assert torch.equal(named([3, 9], res=32), generators.get("program-shader", depth=2)([3, 9], res=32))
    assert torch.equal(
        generators.get("program-shader:depth=4")([5], res=32), generators.get("program-shader")([5], res=32)
    )
    share = generators.get("program-mixed:depth=2,cppn_share=0.5")
    assert share.params == {"grammar": "mixed", "depth": 2, "cppn_share": 0.5}


# ============================================================================ determinism
@pytest.mark.parametrize("name", [*NAMES, "program-shader:classes=5", "program-mixed:classes=3"])
def test_images_are_bytes_of_their_index_at_any_batch_size_and_order(name):
    gen = generators.get(name)
    full = gen(range(12), res=44, seed=3)  # 44 px: a canvas padded to 48, cropped
    assert full.shape == (12, 3, 44, 44) and full.dtype == torch.uint8
    singles = torch.cat([gen([i], res=44, seed=3) for i in range(12)])
    fives = torch.cat([gen(list(range(i, min(i + 5, 12))), res=44, seed=3) for i in range(0, 12, 5)])
    order = [7, 2, 11, 0, 5, 9, 1, 4, 10, 3, 8, 6]
    assert torch.equal(full, singles) and torch.equal(full, fives)
    assert torch.equal(full[order], gen(order, res=44, seed=3))
    assert not torch.equal(full, gen(range(12), res=44, seed=4))


@pytest.mark.parametrize("name", ["program-mixed", "program-mixed:classes=4"])
def test_thread_count_does_not_change_bytes(name):
    gen = generators.get(name)
    one = gen(range(6), res=40)
    torch.set_num_threads(2)
    try:
        assert torch.equal(one, gen(range(6), res=40))
    finally:
        torch.set_num_threads(1)


def test_grammars_are_drawn_per_image():
    rng = Rng.for_indices("t", 0, torch.arange(400))
    assert 0.4 < pg.sample_program(rng, "mixed", 3, cppn_share=0.5)["grammar"].float().mean() < 0.6
    assert 0.72 < pg.sample_program(rng, "mixed", 3)["grammar"].float().mean() < 0.88  # 1 = shader
    assert (pg.sample_program(rng, "cppn", 3)["grammar"] == 0).all()
    shader = pg.sample_program(rng, "shader", 2)
    assert (shader["grammar"] == 1).all()
    assert not shader["branch"][:, 1:].any()  # depth 2: the root may branch, its children are fields
    assert shader["branch"][:, 0].float().mean() == pytest.approx(pg.BRANCH_PROB, abs=0.08)


def test_every_operator_is_used_and_rendered():
    """Over a batch, every domain operator, field, combinator, activation, palette and finish is
    chosen somewhere, and the batch renders (each operator's code runs on its group)."""
    p = pg.sample_program(Rng.for_indices("t", 1, torch.arange(256)), "mixed", 3)
    assert set(p["global_ops"].unique().tolist()) == set(range(len(pg.DOMAIN_OPS)))
    assert set(p["field_ops"].unique().tolist()) == set(range(len(pg.FIELD_OPS)))
    assert set(p["comb_ops"].unique().tolist()) == set(range(len(pg.COMBINATORS)))
    assert set(p["acts"].unique().tolist()) == set(range(len(pg.CPPN_ACTIVATIONS) + 1))
    assert set(p["finish"].unique().tolist()) == set(range(len(pg.FINISHES)))
    rgb = pg.render_programs(p, 32, 3)
    assert rgb.shape == (256, 3, 32, 32) and torch.isfinite(rgb).all()
    assert rgb.min() >= 0 and rgb.max() <= 1


# ============================================================================ blank images, diversity
def test_no_blank_images(batch_256):
    for images in batch_256.values():
        lum = images.float().mean(1).flatten(1)
        assert (lum.std(1) > pg.BLANK_STD * 255).all()


def test_blank_programs_are_drawn_again(monkeypatch):
    """With a strict blank test, some programs are re-drawn: the images still are pure
    functions of their index, and describe() names the program actually shown."""
    gen = generators.get("program-shader")
    monkeypatch.setattr(render, "BLANK_STD", 0.2)
    rng = Rng.for_indices(gen.key, 0, torch.arange(16))
    _, tries = gen._render_with_tries(rng, 32)
    assert tries.max() > 0
    redrawn = int(tries.argmax())
    assert torch.equal(gen(range(16), res=32), torch.cat([gen([i], res=32) for i in range(16)]))
    assert f"program {int(tries[redrawn]) + 1}" in gen.program_text(redrawn, res=32)


def test_no_two_of_256_images_are_near_duplicates(batch_256):
    for name, images in batch_256.items():
        lum = images.float().mean(1, keepdim=True)
        pixels = F.interpolate(lum, size=16, mode="area").flatten(1)
        spectra = torch.fft.rfft2(lum[:, 0] - lum[:, 0].mean((1, 2), keepdim=True)).abs().add(1e-3).log()
        assert _max_similarity(pixels) < 0.95, name
        assert _max_similarity(spectra.flatten(1)) < 0.95, name


@pytest.mark.parametrize("name", ["program-mixed", "program-shader", "program-cppn"])
def test_spectral_slopes_spread_over_the_natural_range(name):
    """Natural images have power spectra ~1/f^2 (slopes from about −1 to −3): the batch's slopes
    (luminance, 128 px) should cover that range, centred near −2, neither all smooth nor all noise."""
    slopes = _power_slopes(generators.get(name)(range(256), res=128))
    low, mid, high = torch.quantile(slopes, torch.tensor([0.05, 0.5, 0.95])).tolist()
    assert low < -3 and high > -1, (low, high)
    assert -2.7 < mid < -1.7, mid


# ============================================================================ descriptions
def test_describe_prints_the_program():
    gen = generators.get("program-mixed")
    assert gen.describe() == {
        "name": "program-mixed",
        "family": "procedural programs",
        "params": {"grammar": "mixed", "depth": 3, "cppn_share": 0.2},
    }
    texts = [gen.describe(i) for i in range(12)]
    assert len(set(texts)) == 12
    grammars = pg.sample_program(Rng.for_indices(gen.key, 0, torch.arange(12)), "mixed", 3)["grammar"]
    for text, grammar in zip(texts, grammars.tolist(), strict=True):
        assert text.splitlines()[1].startswith("cppn:" if grammar == 0 else "shader:")
        assert "palette" in text and "finish:" in text
    shader = generators.get("program-shader").describe(0)
    field_names = [op.name.split("-")[0] for op in pg.FIELD_OPS]
    assert any(f in shader for f in field_names)
    with pytest.raises(NoisevisionError, match="non-negative"):
        gen.describe(-1)


def test_show_describe_prints_every_shown_program(run_cli, tmp_path):
    code, out, _ = run_cli(
        "show",
        "program-shader",
        "dead_leaves-squares",
        "-n",
        "2",
        "--start",
        "4",
        "--res",
        "32",
        "--out",
        tmp_path / "g.png",
        "--describe",
        "--device",
        "cpu",
    )
    assert code == 0, out
    assert "program-shader image 4 (seed 0)" in out and "program-shader image 5 (seed 0)" in out
    assert "dead_leaves-squares: no per-image program" in out


# ============================================================================ experiments
def test_programs_join_mixes_and_presets():
    mix = generators.get("mix6:program-shader")
    images = mix(range(3), res=32)
    assert images.shape == (3, 3, 32, 32) and torch.equal(images[1:], mix([1, 2], res=32))
    from noisevision.reproduce import plan

    assert "program-mixed" in plan.REPRO_PRESETS.get("demo").generators
    for name in ("paper-small", "paper-large"):
        assert set(plan.BEYOND_PAPER) <= set(plan.REPRO_PRESETS.get(name).generators)


def test_report_marks_program_rows_as_not_in_the_paper():
    from noisevision.reproduce.report import in_paper, render_markdown

    def cell(source: str, kind: str, label: str, paper: float | None) -> dict:
        return {
            "source": source,
            "kind": kind,
            "family": "f",
            "label": label,
            "probe": "fast",
            "dataset": "fashion-mnist",
            "top1": 70.0,
            "paper_top1": paper,
            "stages": {},
        }

    cells = [
        cell("program-mixed", "generator", "program-mixed", None),
        cell("mix6:program-shader", "generator", "mix6:program-shader", None),
        cell("stylegan-oriented", "generator", "StyleGAN – Oriented", 43.4),
        cell("fractaldb", "generator", "FractalDB", None),
        cell("cnn-random", "baseline", "CNN – Random", 20.9),
    ]
    assert [in_paper(c) for c in cells] == [False, False, True, True, True]
    md = render_markdown(cells, {"probes": ["fast"]}, {})
    one = "70.0 (1 seed, no interval) | 1 | 70.0"
    assert f"| program-mixed | f | {one} | not in the paper |" in md
    assert f"| mix6:program-shader | f | {one} | not in the paper |" in md
    assert f"| StyleGAN – Oriented | f | {one} | 43.4 |" in md and f"| FractalDB | f | {one} | – |" in md


def test_gpu_order_reductions_are_batch_free_and_match_torch():
    """The reductions used off the CPU (pairwise row sums, elementwise matrix products) give each
    row the same bytes in any batch, and torch's values up to rounding."""
    f = torch.randn(6, 96 * 96)
    pairwise = pg.row_mean(f, pairwise=True)
    assert torch.equal(pairwise[2:3], pg.row_mean(f[2:3], pairwise=True))
    torch.testing.assert_close(pairwise, f.mean(1, keepdim=True), atol=1e-6, rtol=1e-5)
    a, b = torch.randn(5, 4, 16), torch.randn(5, 16, 300)
    product = pg.batched_matmul(a, b, elementwise=True)
    assert torch.equal(product[1:2], pg.batched_matmul(a[1:2], b[1:2], elementwise=True))
    torch.testing.assert_close(product, torch.bmm(a, b), atol=1e-4, rtol=1e-4)


def test_compiled_noise_is_the_tensor_code():
    """On a CPU, lattice noise, fBm and cellular noise run as one compiled pass per field: the
    tensor code's bytes (negative coordinates and coordinates past the lattice's period included)."""
    from noisevision.generators.programs import operators as ops
    from noisevision.generators.programs.fields import canvas

    g = torch.Generator().manual_seed(0)
    lat = ops.Lattice(torch.rand(6, 32 * 32, generator=g), torch.rand(6, 32 * 32, generator=g))
    x, y = (torch.rand(2, 6, 2048, generator=g) - 0.5) * 80
    gain = torch.rand(6, 1, generator=g) * 0.35 + 0.3
    assert torch.equal(ops.value_noise(x, y, lat), ops._value_noise(x, y, lat))
    assert torch.equal(ops.gradient_noise(x, y, lat), ops._gradient_noise(x, y, lat))
    for gradient in (False, True):
        assert torch.equal(ops.fbm(x, y, lat, 5, gain, gradient), ops._fbm(x, y, lat, 5, gain, gradient))
    jitter = torch.rand(6, 1, generator=g) * 0.5 + 0.5
    for ours, ref in zip(ops.voronoi(x, y, lat, jitter), ops._voronoi(x, y, lat, jitter), strict=True):
        assert torch.equal(ours, ref)
    cx, cy = canvas(6, 40, torch.device("cpu"))  # expanded views, as the shader tree starts from
    half = torch.full_like(gain, 0.5)
    assert torch.equal(ops.fbm(cx, cy, lat, 3, half), ops._fbm(cx, cy, lat, 3, half, False))


def test_compiled_soften_is_the_tensor_code():
    g = torch.Generator().manual_seed(1)
    img = torch.rand(5, 3, 24, 40, generator=g)
    w = torch.tensor([[0.0], [0.1], [0.25], [0.4], [0.2499]])  # 0.4 is clamped to 0.25
    assert torch.equal(render.soften(img, w), render._soften(img, w))


FUSED_CHECK = r"""
import torch
from noisevision.generators import programs as pg
from noisevision.generators.programs import cuda as programs_cuda
from noisevision.rng import Rng

torch.set_num_threads(1)
depth, n, res = 3, 24, 16
p = pg.sample_program(Rng.for_indices("program-shader", 0, torch.arange(n)), "shader", depth)
i, s = torch.arange(n)[:, None], torch.arange(2**depth - 1)[None]
p["global_ops"] = (i + 4 * torch.arange(3)[None]) % len(pg.DOMAIN_OPS)
p["leaf_ops"] = (i[..., None] + s[..., None] + torch.tensor([0, 5])) % len(pg.DOMAIN_OPS)
p["field_ops"] = (i + s) % len(pg.FIELD_OPS)
p["comb_ops"] = (i + s) % len(pg.COMBINATORS)
p["field_u"][..., 4] = ((i + 2 * s) % 3 + 0.5) / 3  # fbm kinds and voronoi modes
root, middle = i[:, 0] % 3 > 0, i[:, 0] % 3 == 2  # a field, 2 or 4 fields under combinators
p["branch"] = torch.stack([root, middle, middle] + [torch.zeros(n, dtype=torch.bool)] * 4, 1)
kind = programs_cuda._slot_kinds(p["branch"])
fields = p["field_ops"][kind == 1]
assert set(fields.tolist()) == set(range(len(pg.FIELD_OPS)))
assert set(p["field_u"][..., 4][kind == 1][fields >= 6].mul(3).floor().tolist()) == {0, 1, 2}
assert set(p["comb_ops"][kind == 2].tolist()) == set(range(len(pg.COMBINATORS)))
leaf_domains = p["leaf_ops"][kind == 1].flatten().tolist() + p["global_ops"].flatten().tolist()
assert set(leaf_domains) == set(range(len(pg.DOMAIN_OPS)))

rows = torch.arange(n)
fused, plain = programs_cuda.shader_field(p, rows, res, depth), pg.shader_field_tensor(p, rows, res, depth)
gap = (fused - plain).abs()
assert gap.median() < 1e-5 and gap.max() < 1e-2, (gap.median(), gap.max())
some = torch.tensor([5, 17, 2])
assert torch.equal(programs_cuda.shader_field(p, some, res, depth), fused[some])

p = pg.sample_program(Rng.for_indices("program-cppn", 0, torch.arange(n)), "cppn", depth)
live = p["acts"] < len(pg.CPPN_ACTIVATIONS)  # (the others: layers the CPPN does not have)
p["acts"] = torch.where(live, (i + s[:, :6]) % len(pg.CPPN_ACTIVATIONS), p["acts"])
used = p["acts"][live]
assert set(used.tolist()) == set(range(len(pg.CPPN_ACTIVATIONS)))
fused, plain = programs_cuda.cppn_outputs(p, rows, res), pg.cppn_outputs_tensor(p, rows, res)
gap = (fused - plain).abs()
assert gap.median() < 1e-5 and gap.max() < 1e-2, (gap.median(), gap.max())
assert torch.equal(programs_cuda.cppn_outputs(p, some, res), fused[some])
assert programs_cuda.available(torch.device("cpu"))
print("agree")
"""


def test_fused_kernels_follow_the_tensor_code():
    """The GPU's fused kernels (through Triton's interpreter on this CPU), on shader programs that
    use every domain transform, field (each fBm kind and Voronoi mode) and combinator, and CPPNs
    that use every activation: the tensor code's fields up to rounding, and the same bytes for an
    image in any batch."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TRITON_INTERPRET": "1", "NOISEVISION_TRITON": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", FUSED_CHECK], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0 and "agree" in proc.stdout, proc.stderr[-3000:]


def test_fused_kernels_compile_for_a_gpu():
    """Triton's compiler (not only its interpreter, which is more lenient) builds every fused kernel
    down to a cubin for a Hopper GPU (sm_90), without one: a kernel that only the interpreter accepts
    would otherwise first fail on a GPU."""
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from noisevision.generators.programs import _triton as k

    f32, i32 = "*fp32", "*i32"
    kernels = {
        k.global_kernel: (
            {
                "coord": f32,
                "gx": f32,
                "gy": f32,
                "ops": i32,
                "par": f32,
                "vals": f32,
                "side": "i32",
                "N": "i32",
            },
            {"SLOTS": pg.GLOBAL_DOMAIN_SLOTS, "BLOCK": 256},
        ),
        k.node_kernel: (
            {
                "buf": f32,
                "gx": f32,
                "gy": f32,
                "kind": i32,
                "leaf_ops": i32,
                "leaf_par": f32,
                "field_ops": i32,
                "field_par": f32,
                "comb_ops": i32,
                "comb_par": f32,
                "vals": f32,
                "angs": f32,
                "gcos": f32,
                "gsin": f32,
                "slot": "i32",
                "reg": "i32",
                "child": "i32",
                "S": "i32",
                "R": "i32",
                "N": "i32",
            },
            {"LEAF_SLOTS": pg.LEAF_DOMAIN_SLOTS, "BLOCK": 256},
        ),
        k.standardise_kernel: ({"f": f32, "row_stride": "i32", "N": "i32"}, {"BLOCK": 1024}),
        k.cppn_kernel: (
            {
                "coord": f32,
                "out": f32,
                "inp": f32,
                "w": f32,
                "b": f32,
                "w_out": f32,
                "b_out": f32,
                "alive": f32,
                "acts": i32,
                "side": "i32",
                "N": "i32",
            },
            {"LAYERS": 6, "WIDTH": pg.CPPN_WIDTH, "BLOCK": 64},
        ),
    }
    for kernel, (signature, constants) in kernels.items():
        source = ASTSource(kernel, {**signature, **dict.fromkeys(constants, "constexpr")}, constants)
        built = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
        assert built.asm["cubin"], kernel


# ============================================================================ categories
def _thumbnails(images: torch.Tensor) -> torch.Tensor:
    """A simple feature space: blurred 16×16 colour thumbnails, flattened [B, 768]."""
    small = F.interpolate(images.float() / 255, size=(16, 16), mode="area")
    return F.avg_pool2d(small, 3, 1, 1, count_include_pad=False).flatten(1)


def _leave_one_out_1nn(features: torch.Tensor, labels: torch.Tensor) -> float:
    dist = torch.cdist(features, features).fill_diagonal_(float("inf"))
    return (labels[dist.argmin(1)] == labels).float().mean().item()


NEAREST_LEAST = {"program-shader": 0.9, "program-mixed": 0.8, "program-cppn": 0.7}  # chance: 1/6


@pytest.mark.parametrize("name, least", NEAREST_LEAST.items())
def test_instances_of_a_category_are_nearer_each_other_than_other_categories(name, least):
    gen = generators.get(f"{name}:classes=6")
    indices = torch.arange(6 * 8)  # 8 instances of each of 6 categories
    features, labels = _thumbnails(gen(indices, res=32)), gen.labels(indices)
    assert _leave_one_out_1nn(features, labels) >= least
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    assert _leave_one_out_1nn(features, shuffled) < 0.4


def test_categories_interleave_and_are_described():
    gen = generators.get("program-mixed:classes=10")
    assert gen.num_classes == 10 and torch.equal(gen.labels(range(25)), torch.arange(25) % 10)
    assert gen.describe() == {
        "name": "program-mixed:classes=10",
        "family": "procedural programs",
        "params": {"grammar": "mixed", "depth": 3, "cppn_share": 0.2, "classes": 10, "spread": 0.1},
        "num_classes": 10,
    }
    assert "num_classes" not in generators.get("program-mixed").describe()
    assert "category 3" in gen.program_text(13)
    with pytest.raises(NoisevisionError, match="has no categories"):
        generators.get("program-shader").labels([0])


def test_a_category_keeps_its_structure_and_spread_zero_is_its_program():
    # spread 0: every instance renders the category's own program (up to rounding of the
    # numbers drawn on a log range); with the default spread they differ
    still = generators.get("program-shader:classes=3,spread=0")([1, 4, 7], res=32).float()
    assert (still - still[0]).abs().mean() < 0.5
    moving = generators.get("program-shader:classes=3")([1, 4, 7], res=32).float()
    assert (moving - moving[0]).abs().mean() > 2
    # the same operators and tree for every instance: compare the programs as text
    gen = generators.get("program-shader:classes=3")
    shapes = {_operators(gen.program_text(i)) for i in (1, 4, 7)}
    assert len(shapes) == 1 and _operators(gen.program_text(2)) not in shapes


def _operators(text: str) -> str:
    """A program's text without its numbers and header: its operators and their nesting."""
    body = text.split("\n", 1)[1]
    return "".join(ch for ch in body if ch.isalpha() or ch in "()[]\n ")


def test_every_program_number_has_a_category_rule():
    p = pg.sample_program(Rng.for_indices("t", 0, torch.arange(2)), "mixed", 3)
    assert set(p) == set(pg.CATEGORY_RULES)


def test_default_bytes_do_not_depend_on_categories():
    # without classes an image is its own program, as before categories existed: the render of
    # the program drawn from the image's key (these indices render no blank program)
    gen = generators.get("program-shader")
    rng = Rng.for_indices("program-shader", 2, torch.tensor([0, 3, 17]))
    rgb = pg.render_programs(pg.sample_program(rng, "shader", 4), 48, 4)
    expected = (rgb * 255).round_().clamp_(0, 255).to(torch.uint8)
    assert not pg.is_blank(rgb).any()
    assert torch.equal(gen([0, 3, 17], res=48, seed=2), expected)
    assert torch.equal(generators.get("program-shader", classes=0)([0, 3], res=48, seed=2), expected[:2])


@pytest.mark.parametrize(
    "name, message",
    [
        ("program-cppn:classes=x", "classes must be an integer"),
        ("program-cppn:classes=-1", "classes must be an integer >= 0"),
        ("program-cppn:spread=0.2", "spread needs classes"),
        ("program-cppn:classes=3,spread=2", "spread must be in 0..1"),
    ],
)
def test_bad_category_parameters_are_one_line(name, message):
    with pytest.raises(NoisevisionError, match=message) as err:
        generators.get(name)
    assert "\n" not in str(err.value)
