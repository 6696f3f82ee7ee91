"""One-command reproduction: every (data source × probe) cell, then a report like the paper's.

    noisevision reproduce --preset demo --out demo/

For each data source of a preset — a generator, an image folder (`--extra-data NAME=DIR`) or a
baseline (a random network, raw pixels, mean colours) — the pipeline is: pre-train
(noisevision.train) → probe the frozen encoder (noisevision.evaluate) → one JSON file per
(source, probe) cell in OUT/cells/, written atomically, so an interrupted reproduction continues
where it stopped. With `seeds` > 1 every cell is repeated with independent images, augmentations,
initial weights and probe draws; seed 0 is the single run. The report (OUT/report.md,
results.csv, results.json and a dot-and-interval chart per probe beside the paper's numbers) is
rebuilt from the cell files: means over seeds, 95 % intervals, and paired tests between sources.

`plan` decides what a reproduction consists of (presets, sources, prerequisites, which
generators are rendered once, the seeds of each repetition), `run` runs it, `cells` names the
files they share, `stats` holds the intervals and paired tests, and `report` writes the report.
"""

from noisevision.reproduce.cells import cell_path, load_cells, read_cell, seed_tag
from noisevision.reproduce.plan import (
    DERIVED,
    MATERIALIZE_HELP,
    MAX_SEEDS,
    PAPER_NUMBERS,
    REPRO_PRESETS,
    SPEC_DATASETS,
    Needs,
    ReproPreset,
    Source,
    check_seeds,
    data_folder,
    derived_source,
    generation_res,
    get_repro_preset,
    materialize_selectors,
    parse_extra_data,
    plan_prerequisites,
    prerequisite_path,
    renders_once,
    repetition_seed,
    resolve_sources,
    run_folder,
)
from noisevision.reproduce.report import (
    build_report,
    compare,
    comparison_sentence,
    mean_text,
    ranked,
    render_chart,
    render_markdown,
    summarize,
    verdict,
)
from noisevision.reproduce.run import ReproductionFailed, reproduce

__all__ = [
    "DERIVED",
    "MATERIALIZE_HELP",
    "MAX_SEEDS",
    "PAPER_NUMBERS",
    "REPRO_PRESETS",
    "SPEC_DATASETS",
    "Needs",
    "ReproPreset",
    "ReproductionFailed",
    "Source",
    "build_report",
    "cell_path",
    "check_seeds",
    "compare",
    "comparison_sentence",
    "data_folder",
    "derived_source",
    "generation_res",
    "get_repro_preset",
    "load_cells",
    "materialize_selectors",
    "mean_text",
    "parse_extra_data",
    "plan_prerequisites",
    "prerequisite_path",
    "ranked",
    "read_cell",
    "render_chart",
    "render_markdown",
    "renders_once",
    "repetition_seed",
    "reproduce",
    "resolve_sources",
    "run_folder",
    "seed_tag",
    "summarize",
    "verdict",
]
