"""Sample grids: one labelled row of images per generator, like the paper's Figure 2."""

from __future__ import annotations

import io
from pathlib import Path

from noisevision.io import atomic_write_bytes
from noisevision.logs import get_logger

log = get_logger(__name__)

MAX_COLUMNS = 256  # a row wider than this is no longer a picture anyone can look at


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backend_bases import FigureCanvasBase

    from noisevision import generators
    from noisevision.errors import NoisevisionError

    kinds = FigureCanvasBase.get_supported_filetypes()
    if out.suffix.lower().lstrip(".") not in kinds:
        raise NoisevisionError(
            f"cannot save a grid as '{out.name}': name a .png, .jpg, .pdf or .svg file "
            f"(or any of {', '.join(sorted(kinds))})"
        )
    if not 1 <= num <= MAX_COLUMNS:
        raise NoisevisionError(f"a grid shows 1 to {MAX_COLUMNS} images per generator, not {num}")
    gens = [generators.get(n) for n in names]  # fail on a bad name before any rendering
    rows = []
    for gen in gens:
        at = gen.check_res(gen.spec.default_res if res is None else res)
        if note := gen.setup_note(at, device):
            log.info(f"{gen.name} {note}")
        rows.append(gen(range(start, start + num), res=res, seed=seed, device=device).cpu())
    cell = 1.3
    fig, axes = plt.subplots(
        len(gens), num, figsize=(num * cell + 1.8, len(gens) * cell + 0.2), squeeze=False
    )
    for r, (gen, images) in enumerate(zip(gens, rows)):
        for c in range(num):
            ax = axes[r][c]
            ax.imshow(images[c].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
        label = gen.spec.label or gen.name
        axes[r][0].set_ylabel(f"{label}\n({gen.name})", rotation=0, ha="right", va="center", fontsize=8)
    fig.subplots_adjust(
        left=1.8 / (num * cell + 1.8), right=0.99, top=0.99, bottom=0.01, wspace=0.04, hspace=0.04
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format=out.suffix.lower().lstrip("."))
    plt.close(fig)
    return atomic_write_bytes(out, buffer.getvalue())
