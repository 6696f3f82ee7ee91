"""The files of a reproduction folder that the run writes and the report reads back.

OUT/plan.json names the preset, evaluation set, probes and sources; OUT/cells/SOURCE__PROBE.json
holds one (source × probe) result, written atomically, so that a finished cell is never run
again and the report can be rebuilt from the folder alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from noisevision.io import slug


def cell_path(out: Path, source: str, probe: str) -> Path:
    return out / "cells" / f"{slug(source)}__{probe}.json"


def read_cell(path: Path) -> dict[str, Any] | None:
    """A JSON file of the folder, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def load_cells(out: Path) -> list[dict[str, Any]]:
    """Every readable cell file of OUT, in the plan's source order when there is a plan."""
    cells = [c for p in sorted((out / "cells").glob("*.json")) if (c := read_cell(p)) is not None]
    plan = read_cell(out / "plan.json") or {}
    order = {name: i for i, name in enumerate(plan.get("sources", []))}
    return sorted(cells, key=lambda c: (order.get(c["source"], len(order)), c["probe"]))
