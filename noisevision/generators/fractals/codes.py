"""Published FractalDB category codes read from CSV: one category per file, one map per row.

FractalDB ships its 1,000 accepted codes as CSV files (`csv_rate0.2_category1000/csv*/NNNNN.csv`):
no header, one row a,b,c,d,e,f,p per affine map x' = [[a, b], [c, d]] x + (e, f), chosen with
probability p. `read_codes` takes one such file (one category, or several separated by blank
lines) or a folder of them (one category per file, in file-name order). It parses numbers only
(nothing is evaluated) and says which file and line is wrong in one line.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from noisevision.errors import NoisevisionError

MAX_MAPS = 7  # slots per code: FractalDB draws 2..7 maps
COLUMNS = ("a", "b", "c", "d", "e", "f", "p")


def read_codes(path: str | Path) -> Tensor:
    """Categories from a CSV file or a folder of them: float32 [C, MAX_MAPS, 7] (a..f, p; the
    unused map slots are zero; p is normalised where it is used)."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(path.rglob("*.csv"), key=lambda p: (p.name, str(p)))
        if not files:
            raise NoisevisionError(f"fractaldb codes: no .csv files in {path}")
        categories = [c for f in files for c in _read_file(f, one=True)]
    elif path.is_file():
        categories = _read_file(path, one=False)
    else:
        raise NoisevisionError(f"fractaldb codes: no such file or folder: {path}")
    if not categories:
        raise NoisevisionError(f"fractaldb codes: {path} holds no code rows")
    out = torch.zeros(len(categories), MAX_MAPS, len(COLUMNS))
    for i, rows in enumerate(categories):
        out[i, : len(rows)] = torch.tensor(rows, dtype=torch.float64).float()
    return out


def _read_file(path: Path, one: bool) -> list[list[list[float]]]:
    """The categories of one file: lists of map rows; a blank line ends a category (unless `one`:
    a file of a folder is one category whatever its blank lines)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise NoisevisionError(f"fractaldb codes: cannot read {path}: {exc}") from None
    categories: list[list[list[float]]] = []
    rows: list[list[float]] = []
    first = None  # the line each category starts on, for the messages

    def close() -> None:
        if rows:
            _check_category(path, first, rows)
            categories.append(rows.copy())
            rows.clear()

    for number, line in enumerate(text.splitlines(), start=1):
        cells = [c.strip() for c in line.split(",")]
        if line.strip() == "":
            if not one:
                close()
            continue
        if number == 1 and [c.lower() for c in cells] == list(COLUMNS):
            continue  # a header naming the columns
        if len(cells) != len(COLUMNS):
            raise NoisevisionError(
                f"fractaldb codes: {path} line {number}: expected 7 columns a,b,c,d,e,f,p, got {len(cells)}"
            )
        try:
            values = [float(c) for c in cells]
        except ValueError:
            where = f"fractaldb codes: {path} line {number}"
            raise NoisevisionError(f"{where}: not a number in '{line.strip()}'") from None
        if not all(math.isfinite(v) for v in values):
            raise NoisevisionError(f"fractaldb codes: {path} line {number}: values must be finite")
        if values[6] < 0:
            raise NoisevisionError(f"fractaldb codes: {path} line {number}: probability p must be >= 0")
        if not rows:
            first = number
        rows.append(values)
        if len(rows) > MAX_MAPS:
            raise NoisevisionError(
                f"fractaldb codes: {path} line {number}: more than {MAX_MAPS} maps in one category"
                + ("" if one else " (separate categories with a blank line)")
            )
    close()
    return categories


def _check_category(path: Path, line: int | None, rows: list[list[float]]) -> None:
    if sum(r[6] for r in rows) <= 0:
        raise NoisevisionError(f"fractaldb codes: {path} line {line}: the category's probabilities sum to 0")


def write_codes(path: str | Path, codes: Tensor) -> None:
    """Write categories [C, MAX_MAPS, 7] (unused slots p = 0 are left out) in the format
    `read_codes` reads: one file, categories separated by blank lines."""
    blocks = []
    for code in codes.tolist():
        rows = [r for r in code if r[6] > 0]
        blocks.append("\n".join(",".join(repr(float(v)) for v in r) for r in rows))
    Path(path).write_text("\n\n".join(blocks) + "\n")
