"""`noisevision search`: tune a generator's parameters for a downstream objective with Optuna.

    from noisevision.search import SearchSettings, plan, search
    best = search(plan(SearchSettings("program-shader", trials=12), Path("search-shader")))

See study.py (the loop, storage, resuming), objectives.py (what is measured, and where) and
report.py (the held-out comparison and the report).
"""

from __future__ import annotations

from typing import Any

from noisevision.search.study import Plan, SearchSettings, open_study, plan, run_trials

__all__ = ["Plan", "SearchSettings", "plan", "search"]


def search(p: Plan) -> dict[str, Any]:
    """Run a checked plan: the trials (until the study holds enough), then, unless told not to,
    the held-out comparison and the report. Returns the best trial's generator and value."""
    from noisevision.search import report

    study = open_study(p)
    run_trials(p, study)
    best = report.best_trial(study)
    out = {"generator": best.user_attrs.get("generator"), "value": best.value}
    if not p.settings.report:
        return out
    name = out["generator"]
    check = report.confirm(p, name)
    from noisevision.visualize import sample_grid

    sample_grid([p.settings.name, name], p.out / "samples.png", num=8, res=p.res, seed=p.settings.seed)
    drawn = report.plots(study, p.out, [d.name for d in p.space.dims])
    measures = report.analysis(p, [p.settings.name, name])
    report.write(p, study, check, drawn, measures)
    return {**out, "held_out": check}
