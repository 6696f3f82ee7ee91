"""One-command reproduction: every (data source × probe) cell, then a report like the paper's.

    noisevision reproduce --preset demo --out demo/

For each data source of a preset — a generator, an image folder (`--extra-data NAME=DIR`) or a
baseline (a random network, raw pixels, mean colours) — the pipeline is: pre-train
(noisevision.train) → probe the frozen encoder (noisevision.evaluate) → one JSON file per
(source, probe) cell in OUT/cells/, written atomically, so an interrupted reproduction continues
where it stopped; the report (OUT/report.md, results.csv, results.json and bar charts like the
paper's ImageNet-100 figure) is rebuilt from the cell files.

`plan` decides what a reproduction consists of (presets, sources, prerequisites, which
generators are rendered once), `run` runs it, `cells` names the files they share and `report`
writes the report.
"""

from noisevision.reproduce.cells import cell_path, load_cells, read_cell
from noisevision.reproduce.plan import (
    DERIVED,
    MATERIALIZE_HELP,
    PAPER_NUMBERS,
    REPRO_PRESETS,
    SPEC_DATASETS,
    Needs,
    ReproPreset,
    Source,
    derived_source,
    generation_res,
    get_repro_preset,
    materialize_selectors,
    parse_extra_data,
    plan_prerequisites,
    prerequisite_path,
    renders_once,
    resolve_sources,
    run_folder,
)
from noisevision.reproduce.report import build_report, render_chart, render_markdown, verdict
from noisevision.reproduce.run import ReproductionFailed, reproduce

__all__ = [
    "DERIVED", "MATERIALIZE_HELP", "PAPER_NUMBERS", "REPRO_PRESETS", "SPEC_DATASETS", "Needs",
    "ReproPreset", "ReproductionFailed", "Source", "build_report", "cell_path", "derived_source",
    "generation_res", "get_repro_preset", "load_cells", "materialize_selectors", "parse_extra_data",
    "plan_prerequisites", "prerequisite_path", "read_cell", "render_chart", "render_markdown",
    "renders_once", "reproduce", "resolve_sources", "run_folder", "verdict",
]  # fmt: skip
