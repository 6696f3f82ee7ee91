"""Registries and `noisevision list`: every table is listed, round-trips its names, and the list
survives pipes, JSON and narrow terminals; help texts name the registries' choices."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys

import pytest
from rich.console import Console

from noisevision import cli
from noisevision.cli import lists
from noisevision.errors import UnknownNameError
from noisevision.registry import LISTS, Registry, listing, registries, registry


@pytest.mark.parametrize("name", LISTS)
def test_every_registry_lists_entries_that_round_trip(name):
    reg = registry(name)
    assert len(reg) >= 1 and reg.names() == [e.name for e in reg.entries()]
    for e in reg.entries():
        assert reg.get(e.name) is e.value and reg.entry(e.name) is e
        assert e.description and "SPEC" not in e.description  # user-facing text
    with pytest.raises(UnknownNameError, match=f"unknown {reg.kind} '{reg.names()[0]}x'.*did you mean"):
        reg.get(reg.names()[0] + "x")


def test_registry_rejects_a_name_twice_and_keeps_defaults():
    reg: Registry[int] = Registry("thing")
    reg.add("a", 1, "first", size=3)
    reg.add("b:x", 2, "second", form="b:PATH")
    with pytest.raises(ValueError, match="registered twice"):
        reg.add("a", 4)
    assert reg.entry("a").defaults == {"size": 3} and reg.choices() == "a, b:PATH"


def test_list_json_parses_and_holds_every_registry(run_cli):
    code, out, _ = run_cli("list", "all", "--json")
    data = json.loads(out)
    assert code == 0 and tuple(data) == LISTS
    for name, reg in registries().items():
        assert [row["name"] for row in data[name]["entries"]] == reg.names()
    generators = {row["name"]: row for row in data["generators"]["entries"]}
    assert generators["stat-spectrum_color_wmm"]["paper label"] == "Spectrum + Color + WMM"
    assert any(u.startswith("mix<K>:") for u in data["generators"]["usages"])
    datasets = {row["name"]: row for row in data["datasets"]["entries"]}
    assert datasets["imagefolder"]["written"] == "imagefolder:PATH"


def test_list_through_a_pipe_prints_whole_rows():
    """`noisevision list | grep NAME` in a real pipe, in a narrow terminal: the row is found whole."""
    env = {**os.environ, "COLUMNS": "40"}
    for what, name in (("", "stat-spectrum_color_wmm"), ("datasets", "imagenet100"), ("all", "moco_v2")):
        cmd = f"'{sys.executable}' -m noisevision list {what} | grep -P '^{name}\\t'"
        done = subprocess.run(cmd, shell=True, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert len(done.stdout.splitlines()) == 1 and "\t" in done.stdout and "…" not in done.stdout


@pytest.mark.parametrize("width", [50, 90, 200])
def test_list_on_a_terminal_never_cuts_a_name_or_a_word(monkeypatch, width):
    screen = io.StringIO()
    terminal = Console(file=screen, width=width, force_terminal=True, color_system=None)
    monkeypatch.setattr(lists, "console", terminal)
    for what in ("generators", "archs", "datasets"):
        part = listing([what])[what]
        lists._list_table(what, part)
        text = screen.getvalue()
        cells = {cell.strip() for line in text.splitlines() for cell in line.split("│")}
        assert {row["name"] for row in part["entries"]} <= cells
        entries = text.split("also:")[0]  # the usage lines write "…" themselves
        assert all(len(line) <= width for line in text.splitlines()) and "…" not in entries
        words = set(re.sub(r"[│┃]", " ", text).split())
        for row in part["entries"]:  # every word of the description is there, whole
            assert set(lists._cell(row["description"]).split()) <= words, row["name"]


def test_list_unknown_is_one_line(run_cli):
    code, _, err = run_cli("list", "arhcs")
    assert code == 2 and "did you mean archs" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "command,expected",
    [
        (
            ("train",),
            [
                "smallalexnet, resnet18",
                "align_uniform, moco_v2, simclr",
                "paper-small, paper-large, tiny",
                "multistep, cosine, constant",
            ],
        ),
        (
            ("eval",),
            [
                "imagefolder:PATH",
                "cnn-random:ARCH|ENCODER",
                "linear, fast, knn, lowshot",
                "default: fast, knn",
                "default 10",
            ],
        ),
        (("reproduce",), ["demo, fdsl-tiny, paper-small, paper-large"]),
        (("bench", "train"), ["smallalexnet, resnet18"]),
    ],
)
def test_help_names_the_registries_choices(run_cli, command, expected):
    code, out, _ = run_cli(*command, "--help")
    text = " ".join(re.sub(r"[│\s]+", " ", out).split())
    assert code == 0
    for phrase in expected:
        assert phrase in text, phrase
    assert not cli._PLACEHOLDER.search(out.replace("{encoder}", ""))  # every placeholder filled
