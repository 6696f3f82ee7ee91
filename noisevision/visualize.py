"""Sample grids: one labelled row of images per generator, like the paper's Figure 2, or one row per
category of a generator with categories."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from noisevision.io import atomic_write_bytes
from noisevision.logs import get_logger

log = get_logger(__name__)

MAX_COLUMNS = 256  # a row wider than this is no longer a picture anyone can look at
MAX_ROWS = 256  # categories in one by-class grid, likewise
CELL = 1.3  # inches per image
MARGIN = 1.8  # inches left of the rows, for their labels
DPI = 110


def sample_grid(
    names: list[str],
    out: Path,
    num: int = 8,
    res: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    start: int = 0,
) -> Path:
    """Render images start..start+num-1 of each generator and save a labelled grid (its kind from
    the file name); a generator's slow one-time set-up (e.g. a texture bank) is logged first."""
    from noisevision import generators

    _check_grid(out, num)
    gens = [generators.get(n) for n in names]  # fail on a bad name before any rendering
    rows = []
    for gen in gens:
        _note_setup(gen, res, device)
        images = gen(range(start, start + num), res=res, seed=seed, device=device).cpu()
        rows.append((f"{gen.spec.label or gen.name}\n({_wrapped(gen.name)})", images))
    return _save_grid(rows, out)


def _wrapped(name: str, width: int = 28) -> str:
    """A long generator name over several label lines, broken after its ':' and ','."""
    if len(name) <= width:
        return name
    return name.replace(":", ":\n").replace(",", ",\n")


def class_grid(
    name: str,
    out: Path,
    classes: int | None = None,
    num: int = 8,
    res: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    start: int = 0,
) -> Path:
    """One row per category (the first `classes`, default up to 8) of a generator with categories:
    row c shows instances start..start+num-1 of category c, i.e. images c + C·n (C categories)."""
    from noisevision import generators
    from noisevision.errors import NoisevisionError

    _check_grid(out, num)
    gen = generators.get(name)
    total = gen.num_classes
    if not total:
        raise NoisevisionError(f"--by-class needs a generator with categories, and '{name}' has none")
    classes = default_classes(total) if classes is None else classes
    if not 1 <= classes <= min(total, MAX_ROWS):
        raise NoisevisionError(
            f"--classes must be in 1..{min(total, MAX_ROWS)} ('{name}' has {total} categories), not {classes}"
        )
    _note_setup(gen, res, device)
    images = gen(class_indices(total, classes, num, start), res=res, seed=seed, device=device).cpu()
    title = f"{gen.spec.label or gen.name}\n({gen.name})\n"
    rows = [(f"{title * (c == 0)}category {c}", images[c * num : (c + 1) * num]) for c in range(classes)]
    return _save_grid(rows, out)  # images: [classes·num, 3, res, res], category-major


def default_classes(total: int) -> int:
    """How many categories a by-class grid shows unless told."""
    return min(8, total)


def class_indices(total: int, classes: int, num: int, start: int = 0) -> list[int]:
    """The images of a by-class grid, row by row: instances start..start+num-1 of categories
    0..classes-1 of `total`."""
    return [c + total * n for c in range(classes) for n in range(start, start + num)]


def _check_grid(out: Path, num: int) -> None:
    from matplotlib.backend_bases import FigureCanvasBase

    from noisevision.errors import NoisevisionError

    kinds = FigureCanvasBase.get_supported_filetypes()
    if out.suffix.lower().lstrip(".") not in kinds:
        raise NoisevisionError(
            f"cannot save a grid as '{out.name}': name a .png, .jpg, .pdf or .svg file "
            f"(or any of {', '.join(sorted(kinds))})"
        )
    if not 1 <= num <= MAX_COLUMNS:
        raise NoisevisionError(f"a grid shows 1 to {MAX_COLUMNS} images per generator, not {num}")


def _note_setup(gen: Any, res: int | None, device: str) -> None:
    at = gen.check_res(gen.spec.default_res if res is None else res)
    if note := gen.setup_note(at, device):
        log.info(f"{gen.name} {note}")


def grid_size(rows: int, columns: int) -> tuple[float, float]:
    """A grid's figure size in inches (width, height)."""
    return columns * CELL + MARGIN, rows * CELL + 0.2


def _save_grid(rows: list[tuple[str, Any]], out: Path) -> Path:
    """Rows of (label, uint8 images [num, 3, H, W]) as one picture, saved atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num = len(rows[0][1])
    width, height = grid_size(len(rows), num)
    fig, axes = plt.subplots(len(rows), num, figsize=(width, height), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(num):
            ax = axes[r][c]
            ax.imshow(images[c].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.subplots_adjust(left=MARGIN / width, right=0.99, top=0.99, bottom=0.01, wspace=0.04, hspace=0.04)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, format=out.suffix.lower().lstrip("."))
    plt.close(fig)
    return atomic_write_bytes(out, buffer.getvalue())


def pixel_grid(images: Any, out: Path, columns: int = 8, pad: int = 2) -> Path:
    """uint8 images [B, 3, H, W] tiled `columns` to a row at their own pixels (no figure, no
    labels: what a tracker shows as the run's sample grid), saved atomically as PNG."""
    import torch
    from PIL import Image

    count, channels, height, width = images.shape
    rows = -(-count // columns)
    canvas = torch.full(
        (channels, rows * (height + pad) + pad, columns * (width + pad) + pad), 255, dtype=torch.uint8
    )
    for k in range(count):
        top, left = pad + (k // columns) * (height + pad), pad + (k % columns) * (width + pad)
        canvas[:, top : top + height, left : left + width] = images[k]
    buffer = io.BytesIO()
    Image.fromarray(canvas.permute(1, 2, 0).contiguous().numpy()).save(buffer, format="PNG")
    return atomic_write_bytes(out, buffer.getvalue())
