"""Declared parameters: every range is one its generator takes, names round-trip, and a name with
parameters renders what the generator with those arguments renders."""

from __future__ import annotations

import pytest
import torch

from noisevision import generators
from noisevision.errors import NoisevisionError
from noisevision.generators import params as gparams
from noisevision.search.space import build_space

SEARCHABLE = [s.name for s in generators.specs() if gparams.search_space(s.name)]


def test_most_families_declare_parameters():
    families = {generators.spec(n).family for n in SEARCHABLE}
    assert {
        "dead leaves",
        "statistical",
        "random StyleGAN",
        "procedural programs",
        "fdsl",
        "fractals",
    } <= families


@pytest.mark.parametrize("name", SEARCHABLE)
def test_every_range_end_builds_its_generator(name):
    for key, p in gparams.search_space(name).items():
        ends = (
            p.choices
            if p.kind == "choice"
            else [(p.low, p.high)]
            if p.kind == "interval"
            else [p.low, p.high]
        )
        for value in ends:
            value = int(value) if p.kind == "int" else value
            spelled = gparams.named(name, {key: value})
            gen = generators.get(spelled)  # the constructor checks the value
            assert gen.name == spelled and gen.key == generators.get(name).key


def test_name_round_trip_and_same_images():
    name = gparams.named("dead_leaves-mixed", {"sigma": 2.5, "r_min": 0.01})
    assert name == "dead_leaves-mixed:sigma=2.5,r_min=0.01"
    assert gparams.parse_values(name) == ("dead_leaves-mixed", {"sigma": 2.5, "r_min": 0.01})
    by_name = generators.get(name)(range(3), res=32)
    by_args = generators.get("dead_leaves-mixed", sigma=2.5, r_min=0.01)(range(3), res=32)
    assert torch.equal(by_name, by_args)
    assert not torch.equal(by_name, generators.get("dead_leaves-mixed")(range(3), res=32))
    assert gparams.named("dead_leaves-mixed", {"sigma": 3.0}) == "dead_leaves-mixed"  # the default
    assert gparams.named("stat-spectrum", {"slope_range": (1.0, 2.25)}) == "stat-spectrum:slope_range=1..2.25"
    assert generators.get("stat-spectrum:slope_range=1..2.25").params["slope_range"] == (1.0, 2.25)


@pytest.mark.parametrize(
    "name, words",
    [
        ("dead_leaves-mixed:foo=1", "has no parameter 'foo'"),
        ("dead_leaves-mixed:sigma=x", "sigma must be a number"),
        ("stat-spectrum:slope_range=1", "LOW..HIGH"),
        ("dead_leaves-mixed:sigma=2,sigma=3", "given twice"),
    ],
)
def test_bad_names_are_one_line(name, words):
    with pytest.raises(NoisevisionError, match=words):
        generators.get(name)


def test_space_overrides():
    space = build_space("program-mixed", ["depth=2..4", "cppn_share=0.5"])
    assert [d.name for d in space.dims] == ["depth"] and space.fixed == {"cppn_share": 0.5}
    assert (space.dims[0].param.low, space.dims[0].param.high) == (2, 4)
    assert build_space("program-mixed", ["depth=2,5"]).dims[0].choices == (2, 5)
    assert build_space("dead_leaves-mixed", ["sigma=1..8"]).dims[0].param.high == 8  # widened


@pytest.mark.parametrize(
    "items, words",
    [
        (["nope=1..2"], "no searchable parameter 'nope'"),
        (["depth="], "empty range"),
        (["depth=5..2"], "LOW 5 is above HIGH 2"),
        (["depth=1.5..3"], "integer bounds"),
        (["depth=2..3", "depth=4"], "given twice"),
        (["cppn_share=0..1", "depth=3"], None),
        (["depth=3", "cppn_share=0.1"], "nothing to search"),
    ],
)
def test_space_errors(items, words):
    if words is None:
        build_space("program-mixed", items)
        return
    with pytest.raises(NoisevisionError, match=words):
        build_space("program-mixed", items)


def test_a_family_without_parameters_is_refused():
    with pytest.raises(NoisevisionError, match="declares no searchable parameters"):
        build_space("fractal-svd", [])
