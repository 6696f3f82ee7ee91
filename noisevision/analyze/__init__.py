"""Measuring synthetic data: image statistics, diversity, and naturalism against real images.

    from noisevision.analyze import AnalyzeSettings, analyze, plan
    checked = plan(["dead_leaves-mixed", "stat-spectrum"], AnalyzeSettings(real="fashion-mnist"))
    numbers = analyze(checked, Path("analysis"))  # report.md, results.json, plots in analysis/

`sources` turns names and folders into images, `statistics` measures each image, `features` holds
the feature spaces, `extract` runs one source through them (cached in OUT/cache), `measures` holds
the set measures' formulas, `sets` computes them with half-sampling intervals, `correlate` relates
them to probe results, `report` and `plots` write what was found.
"""

from noisevision.analyze.run import MIN_IMAGES, AnalyzeSettings, Plan, analyze, plan, scalar_measures
from noisevision.analyze.statistics import STATISTICS, image_statistics

__all__ = [
    "MIN_IMAGES",
    "STATISTICS",
    "AnalyzeSettings",
    "Plan",
    "analyze",
    "image_statistics",
    "plan",
    "scalar_measures",
]
