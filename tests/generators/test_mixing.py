"""Mixes: mix<K>:a+b (convex mixes) and a+b / a:0.7+b:0.3 (picks) names, weights, determinism, errors."""

import pytest
import torch

from noisevision import generators
from noisevision.errors import NoisevisionError, UnknownNameError
from noisevision.generators.mixing import mixing_weights, parse_mix_name, parse_pick_name
from noisevision.rng import Rng


def test_parse_names():
    assert parse_mix_name("mix6:a+b") == (6, ["a", "b"])
    assert parse_mix_name("mix:a") == (6, ["a"])
    assert parse_mix_name("mix12:a") == (12, ["a"])
    assert parse_mix_name("dead_leaves-mixed") is None


@pytest.mark.parametrize("weighting", ["dirichlet", "uniform"])
def test_weights_are_convex(weighting):
    w = mixing_weights(Rng.for_indices("t", 0, torch.arange(20000)), 6, weighting)
    assert w.shape == (20000, 6) and (w > 0).all()
    assert torch.allclose(w.sum(1), torch.ones(20000), atol=1e-6)
    assert torch.allclose(w.mean(0), torch.full((6,), 1 / 6), atol=0.005)
    if weighting == "dirichlet":  # Dirichlet(1): each weight ~ Beta(1, K-1), E[w²] = 2 / (K(K+1))
        assert abs((w**2).mean() - 2 / 42) < 0.002


def test_mix_is_the_convex_combination_of_component_images():
    blobs = generators.get("test-blobs")
    mix = generators.get("mix3:test-blobs")
    idx = torch.tensor([0, 7])
    got = mix(idx, res=16, seed=5)
    rng = Rng.for_indices("mix3:test-blobs", 5, idx)
    rng.randint(0, 1, 3)  # the slot-generator draw comes first
    w = mixing_weights(rng, 3)
    parts = blobs((idx[:, None] * 3 + torch.arange(3)).flatten(), res=16, seed=5).view(2, 3, 3, 16, 16)
    want = sum(w[:, j, None, None, None] * parts[:, j].float() for j in range(3))
    assert torch.equal(got, want.round().to(torch.uint8))


def test_k1_mix_of_one_component_is_that_component():
    for name in ["test-blobs", "dead_leaves-squares"]:
        alone = generators.get(name)(range(3), res=32, seed=2)
        assert torch.equal(generators.get(f"mix1:{name}")(range(3), res=32, seed=2), alone)


def test_deterministic_alone_and_in_batches():
    mix = generators.get("mix4:test-blobs+dead_leaves-squares")
    whole = mix([9, 0, 3], res=32, seed=1)
    assert torch.equal(whole[0], mix([9], res=32, seed=1)[0])
    assert torch.equal(whole[1:], mix([0, 3], res=32, seed=1))
    assert not torch.equal(whole, mix([9, 0, 3], res=32, seed=2))


def test_resolutions_are_shared_by_all_components():
    mix = generators.get("mix2:stylegan-oriented+dead_leaves-mixed")
    assert mix.spec.resolutions == (128, 256, 512) and mix.spec.default_res == 256
    with pytest.raises(NoisevisionError, match="only resolutions"):
        mix([0], res=64)


def test_bad_names_are_one_line_errors():
    with pytest.raises(NoisevisionError, match="K must be at least 1"):
        generators.get("mix0:dead_leaves-mixed")
    with pytest.raises(UnknownNameError, match="did you mean dead_leaves-mixed"):
        generators.get("mix6:stylegan-oriented+deadleaves-mixed")
    with pytest.raises(NoisevisionError, match="list generators"):
        generators.get("mix6:")
    with pytest.raises(NoisevisionError, match="weighting"):
        generators.get("mix2:test-blobs", weighting="softmax")


def test_list_shows_mix_names(run_cli):
    code, out, _ = run_cli("list")
    assert code == 0 and "mix<K>:" in out


def test_describe_names_each_slot_and_its_program():
    mix = generators.get("mix3:program-shader+test-blobs")
    text = mix.program_text(5, seed=2)
    lines = text.splitlines()
    assert lines[0] == "mix3:program-shader+test-blobs image 5 (seed 2): a mix of 3 images"
    slots = [line.split() for line in lines[1:] if line.startswith("  ") and not line.startswith("    ")]
    assert [s[3] + " " + s[4] for s in slots] == ["image 15", "image 16", "image 17"]
    assert abs(sum(float(s[0]) for s in slots) - 1) < 2e-3
    # the image is the weighted sum of the slots it names
    parts = [generators.get(s[2])([int(s[4])], res=32, seed=2).float() for s in slots]
    rebuilt = sum(float(s[0]) * x for s, x in zip(slots, parts, strict=True))
    assert (rebuilt - mix([5], res=32, seed=2).float()).abs().max() <= 1.0
    if any(s[2] == "program-shader" for s in slots):
        assert "shader: p =" in text


def test_pick_names():
    assert parse_pick_name("a+b") == [("a", 1.0), ("b", 1.0)]
    assert parse_pick_name("a:0.7+b:0.3") == [("a", 0.7), ("b", 0.3)]
    assert parse_pick_name("program-shader:depth=5:2+b") == [("program-shader:depth=5", 2.0), ("b", 1.0)]
    assert parse_pick_name("dead_leaves-mixed") is None


def test_pick_draws_each_image_from_one_part_by_weight():
    """Image i is image i of one part, drawn from (seed, i) with probability ∝ weight; the same
    bytes alone and in any batch, and `A+B` is a name wherever a generator is taken."""
    pick = generators.get("test-blobs:3+test-blobs:1")
    which = pick.choice(torch.arange(20000), seed=0)
    assert abs(float((which == 0).float().mean()) - 0.75) < 0.02
    blobs = generators.get("test-blobs")
    idx = [5, 1, 9, 40]
    batch = pick(idx, res=16, seed=2)
    assert torch.equal(batch, blobs(idx, res=16, seed=2))  # both parts are test-blobs
    assert torch.equal(pick([9, 5], res=16, seed=2), batch[[2, 0]])
    assert pick.describe()["weights"] == [0.75, 0.25] and pick.describe()["params"] == {}


def test_pick_of_two_generators_renders_each_image_with_its_part():
    pick = generators.get("test-blobs+mix1:test-blobs")
    idx = torch.arange(12)
    which = pick.choice(idx, seed=0)
    assert set(which.tolist()) == {0, 1}
    images = pick(idx, res=16)
    for i, k in zip(idx.tolist(), which.tolist()):
        assert torch.equal(images[i], pick.parts[k]([i], res=16)[0])


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("test-blobs:0+test-blobs", NoisevisionError, "finite positive weights"),
        ("test-blobs:inf+test-blobs:1", NoisevisionError, "not test-blobs:inf"),
        ("test-blobs:nan+test-blobs", NoisevisionError, "finite positive"),
        ("test-blobs:1e308+test-blobs:1e308", NoisevisionError, "add up to more"),
        ("test-blobs++test-blobs", NoisevisionError, "write A\\+B"),
        ("test-blobs+no-such-generator", UnknownNameError, "in 'test-blobs\\+no-such-generator'"),
    ],
)
def test_bad_picks_are_one_line_errors(name, error, match):
    with pytest.raises(error, match=match):
        generators.get(name)
