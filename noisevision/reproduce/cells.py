"""The files of a reproduction folder that the run writes and the report reads back.

OUT/plan.json names the preset, evaluation set, probes, sources and seeds;
OUT/cells/SOURCE__PROBE.json holds one (source × probe) result of seed 0, and
SOURCE__PROBE__seedS.json that of repetition S, written atomically, so that a finished cell is
never run again and the report can be rebuilt from the folder alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from noisevision.io import slug


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


def load_cells(out: Path) -> list[dict[str, Any]]:
    """Every readable cell file of OUT, in the plan's source order when there is a plan, then by
    probe and seed (cells written before repetitions existed have no "seed": they are seed 0)."""
    cells = [c for p in sorted((out / "cells").glob("*.json")) if (c := read_cell(p)) is not None]
    plan = read_cell(out / "plan.json") or {}
    order = {name: i for i, name in enumerate(plan.get("sources", []))}
    for c in cells:
        c.setdefault("seed", 0)
    return sorted(cells, key=lambda c: (order.get(c["source"], len(order)), c["probe"], c["seed"]))
