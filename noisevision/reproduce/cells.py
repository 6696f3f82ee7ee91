"""The files of a reproduction folder that the run writes and the report reads back.

OUT/plan.json names the preset, evaluation set, probes, sources and seeds;
OUT/cells/SOURCE__PROBE.json holds one (source × probe) result of seed 0, and
SOURCE__PROBE__seedS.json that of repetition S, written atomically, so that a finished cell is
never run again and the report can be rebuilt from the folder alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from noisevision.io import slug
from noisevision.logs import get_logger

log = get_logger(__name__)


def seed_tag(seed: int) -> str:
    """The suffix of repetition `seed`'s file and folder names: none for seed 0, so that a
    reproduction made before repetitions existed is seed 0's, and resumes as it is."""
    return f"__seed{seed}" if seed else ""


def cell_path(out: Path, source: str, probe: str, seed: int = 0) -> Path:
    """The file of one cell: (source × probe) in repetition `seed`."""
    return out / "cells" / f"{slug(source)}__{probe}{seed_tag(seed)}.json"


def read_cell(path: Path) -> dict[str, Any] | None:
    """A JSON file of the folder, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


#: The plan's fields the report reads, and their types (lists: of names).
PLAN_FIELDS: dict[str, type] = {
    "preset": str,
    "description": str,
    "dataset": str,
    "paper_scale": str,
    "probes": list,
    "sources": list,
    "notes": list,
    "seeds": int,
}


def read_plan(out: Path) -> dict[str, Any]:
    """OUT/plan.json's fields the report reads; a missing, unreadable or mistyped field is left out
    (the report then says "?"), so that a damaged plan cannot stop the report of finished cells."""
    plan = read_cell(out / "plan.json")
    if not isinstance(plan, dict):
        return {}
    kept = {}
    for key, kind in PLAN_FIELDS.items():
        value = plan.get(key)
        if kind is list and isinstance(value, list) and all(isinstance(v, str) for v in value):
            kept[key] = value
        elif kind is int and isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31:
            kept[key] = value
        elif kind is str and isinstance(value, str):
            kept[key] = value
    return kept


def _number(value: Any, low: float = -math.inf, high: float = math.inf) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high


def cell_problem(cell: Any) -> str | None:
    """What makes `cell` no cell the report can use (a hand-edited or foreign file), or None."""
    if not isinstance(cell, dict):
        return "not a JSON object"
    for key in ("source", "probe", "kind"):
        if not isinstance(cell.get(key), str) or not cell[key]:
            return f'"{key}" is not a name'
    if not _number(cell.get("top1"), 0, 100):
        return '"top1" is not an accuracy in 0..100'
    seed = cell.get("seed", 0)
    if not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**31):
        return '"seed" is not a repetition number'
    for key in ("std", "paper_top1"):
        if cell.get(key) is not None and not _number(cell[key], 0, 100):
            return f'"{key}" is not a number in 0..100'
    for key, kind in (("stages", dict), ("label", str), ("family", str), ("recipe", str)):
        if cell.get(key) is not None and not isinstance(cell[key], kind):
            return f'"{key}" has the wrong type'
    return None


def load_cells(out: Path) -> list[dict[str, Any]]:
    """Every readable cell file of OUT, in the plan's source order when there is a plan, then by
    probe and seed (cells written before repetitions existed have no "seed": they are seed 0).
    A file that is no usable cell is left out with a warning naming it."""
    cells = []
    for p in sorted((out / "cells").glob("*.json")):
        cell = read_cell(p)
        if cell is None or (problem := cell_problem(cell)) is not None:
            log.warning(f"{p} left out of the report: {'unreadable JSON' if cell is None else problem}")
            continue
        cells.append(cell)
    order = {name: i for i, name in enumerate(read_plan(out).get("sources", []))}
    for c in cells:
        c.setdefault("seed", 0)
    return sorted(cells, key=lambda c: (order.get(c["source"], len(order)), c["probe"], c["seed"]))
