"""After the trials: the best setting against the defaults on the untouched test split over
several seeds, Optuna's plots, sample grids, the analysis of both, report.md and results.json."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from noisevision.errors import NoisevisionError
from noisevision.generators import params as gparams
from noisevision.io import atomic_write_text
from noisevision.logs import get_logger
from noisevision.search import objectives as obj
from noisevision.search.study import Plan

log = get_logger(__name__)

MEASURES = ("coverage", "density", "vendi_q1", "effective_rank")  # shown for both settings


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """Every trial as the report and results.json show it."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "generator": t.user_attrs.get("generator"),
                "value": t.value,
                "params": t.params,
                "epochs_reported": sorted(t.intermediate_values),
                "failure": t.user_attrs.get("failure"),
                "interrupted": bool(t.user_attrs.get("interrupted")),
                "seconds": t.duration.total_seconds() if t.duration else None,
            }
        )
    return rows


def best_trial(study: Any) -> Any:
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not done:
        failures = {t.user_attrs.get("failure") for t in study.get_trials(deepcopy=False)} - {None}
        why = f" (failures: {'; '.join(sorted(failures))[:300]})" if failures else ""
        raise NoisevisionError(f"no trial of the study finished{why}: nothing to report")
    return study.best_trial


def confirm(p: Plan, best: str) -> dict[str, Any]:
    """The best setting and the defaults on held-out data over `test_seeds` seeds: probes on the
    test split after pre-training with seeds seed..seed+S-1; a measure on other images (seeds
    seed+1..seed+S) against the real training images. The paired difference says whether the gain
    holds."""
    from noisevision.data.eval_datasets import load_eval_dataset
    from noisevision.reproduce.plan import repetition_seed
    from noisevision.reproduce.stats import mean_interval, paired_test

    s = p.settings
    names = {"defaults": s.name, "best": best, **{name: name for name in s.compare}}
    values: dict[str, list[float]] = {which: [] for which in names}
    test = None
    if p.objective.kind == "probe":
        data = load_eval_dataset(s.dataset)
        test = obj.splits(data, s.val_images, s.probe_images, s.test_images, s.seed)["test"]
    for which, name in names.items():
        if which == "best" and name == names["defaults"]:  # the defaults stayed best: measured already
            values["best"] = list(values["defaults"])
            continue
        for r in range(s.test_seeds):
            log.info(f"held-out check: {which} ({name}), seed {r + 1} of {s.test_seeds}")
            if test is not None:
                assert p.budget is not None
                run = p.out / "test" / obj.folder_name(name) / f"seed{r}"
                seed = repetition_seed(s.seed, r)
                values[which].append(
                    obj.pretrain_and_probe(name, run, p.budget, seed, test, p.objective.target)
                )
            else:
                values[which].append(
                    obj.measure_value(
                        name,
                        p.objective.target,
                        s.dataset,
                        s.analysis_images,
                        p.res,
                        s.seed + 1 + r,
                        p.out / "analysis-cache",
                        s.device,
                    )
                )
    sign = 1.0 if p.objective.direction == "maximize" else -1.0
    paired = paired_test([sign * v for v in values["best"]], [sign * v for v in values["defaults"]])
    against = {}
    for other in s.compare:  # the best setting against other generators, seed by seed
        pt = paired_test([sign * v for v in values["best"]], [sign * v for v in values[other]])
        against[other] = {"gain": _interval(pt.diff), "p_value": pt.p_value, "significant": pt.significant}
    return {
        "where": "test split" if test is not None else "other images of each generator",
        "names": names,
        "values": values,
        "mean": {k: _interval(mean_interval(v)) for k, v in values.items()},
        "gain": _interval(paired.diff),
        "p_value": paired.p_value,
        "holds": bool(paired.significant and paired.diff.mean > 0),
        "significant": paired.significant,
        "against": against,
    }


def _interval(i: Any) -> dict[str, float]:
    return {"mean": i.mean, "low": i.low, "high": i.high, "n": i.n}


def plots(study: Any, out: Path, params: list[str]) -> dict[str, str]:
    """Optuna's plots that matter, as PNG: {file: "" or why it was not drawn}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    drawn: dict[str, str] = {}
    top = params[:2]
    try:
        ranked = list(optuna.importance.get_param_importances(study))
        top = ranked[:2]
    except (ValueError, RuntimeError) as exc:
        drawn["importances.png"] = f"not drawn: {exc}"
    jobs = [
        ("history.png", lambda: ovm.plot_optimization_history(study)),
        ("importances.png", lambda: ovm.plot_param_importances(study)),
        ("slice.png", lambda: ovm.plot_slice(study, params=top)),
    ]
    if len(top) == 2:
        jobs.append(("contour.png", lambda: ovm.plot_contour(study, params=top)))
    for file, draw in jobs:
        if file in drawn:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = draw()
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            drawn[file] = f"not drawn: {exc}"
            continue
        first = axes.flat[0] if hasattr(axes, "flat") else axes
        fig = first.figure
        fig.set_size_inches(max(6.0, 3.2 * (len(axes.flat) if hasattr(axes, "flat") else 1)), 4.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # contour's colour bar is no tight_layout axes
            fig.tight_layout()
        fig.savefig(out / file, dpi=110)
        plt.close(fig)
        drawn[file] = ""
    return drawn


def analysis(p: Plan, names: list[str]) -> dict[str, Any]:
    """analyze's measures of the defaults and the best setting against the real training images."""
    from noisevision.analyze import AnalyzeSettings, analyze
    from noisevision.analyze import plan as analysis_plan

    s = p.settings
    settings = AnalyzeSettings(
        num_images=s.analysis_images, res=p.res, seed=s.seed, real=s.dataset, bootstraps=20, progress=False
    )
    numbers = analyze(analysis_plan(list(dict.fromkeys(names)), settings), p.out / "analysis")
    return {
        label: {m: src["measures"]["random"].get(m) for m in MEASURES}
        for label, src in numbers["sources"].items()
        if src["kind"] != "real"
    }


def write(
    p: Plan, study: Any, check: dict[str, Any], drawn: dict[str, str], measures: dict[str, Any]
) -> None:
    """report.md and results.json."""
    s, best = p.settings, study.best_trial
    rows = trial_rows(study)
    states = {st: sum(r["state"] == st for r in rows) for st in ("complete", "pruned", "fail", "running")}
    unit = "top-1 %" if p.objective.kind == "probe" else p.objective.target
    head = f"{len(rows)} trials: {states['complete']} finished, {states['pruned']} pruned, "
    head += f"{states['fail']} failed. "
    if p.objective.kind == "probe":
        extra = ", ".join(f"{k} {v}" for k, v in (p.budget.overrides if p.budget else {}).items())
        head += f"Budget: `{s.budget}` pre-training{f' ({extra})' if extra else ''}; validation: "
        head += f"{s.val_images:,} images of {s.dataset}'s training split "
        head += f"(probes fit on {s.probe_images:,} others)."
    else:
        head += f"{s.analysis_images} images per setting against {s.dataset}'s training images."
    lines = [
        f"# Search: {s.name}, {s.objective} ({p.objective.direction})",
        "",
        head,
        "",
        "## Best setting",
        "",
        f"`{best.user_attrs.get('generator')}` — validation {unit} {best.value:.4g} (trial {best.number}).",
        "",
        "| parameter | default | searched | best |",
        "|---|---|---|---|",
    ]
    chosen = gparams.parse_values(best.user_attrs.get("generator") or s.name)[1]  # as rounded and measured
    declared = gparams.search_space(s.name)
    for name, default, searched in p.space.rows():
        value = declared[name].write(chosen[name]) if name in chosen else default
        lines.append(f"| {name} | {default} | {searched} | {value} |")
    g, means = check["gain"], check["mean"]
    verdict = (
        "the defaults stayed best"
        if check["names"]["best"] == check["names"]["defaults"]
        else "the gain **holds**"
        if check["holds"]
        else "**not significant**: the best setting is not shown to beat the defaults"
        if check["significant"] is not True
        else "the defaults are **better** on held-out data"
    )
    lines += [
        "",
        f"## Validation against held-out data ({check['where']}, {s.test_seeds} seeds)",
        "",
        "| setting | generator | validation | held-out mean [95 % CI] |",
        "|---|---|---|---|",
    ]
    val = {r["generator"]: r["value"] for r in rows if r["state"] == "complete"}
    for which in check["names"]:
        name, m = check["names"][which], means[which]
        v = val.get(name)
        shown = "–" if v is None else f"{v:.4g}"
        row = "compared" if which == name else which
        lines.append(f"| {row} | `{name}` | {shown} | {m['mean']:.4g} [{m['low']:.4g}, {m['high']:.4g}] |")
    p_text = "–" if check["p_value"] is None else f"{check['p_value']:.3f}"
    lines += [
        "",
        f"Gain of the best over the defaults on held-out data: {g['mean']:+.3g} "
        f"[{g['low']:+.3g}, {g['high']:+.3g}] "
        f"(paired t-test over seeds, p = {p_text}): {verdict}.",
        "",
    ]
    for other, a in check.get("against", {}).items():
        ga, pa = a["gain"], "–" if a["p_value"] is None else f"{a['p_value']:.3f}"
        word = "significant" if a["significant"] else "not significant"
        lines += [
            f"Best setting against `{other}`: {ga['mean']:+.3g} [{ga['low']:+.3g}, {ga['high']:+.3g}] "
            f"(p = {pa}, {word}).",
            "",
        ]
    if measures:
        lines += ["## Analysis of both (random-network features, 95 % intervals)", ""]
        lines += ["| generator | " + " | ".join(MEASURES) + " |", "|---" * (len(MEASURES) + 1) + "|"]
        for label, ms in measures.items():
            cells = [_measure(ms.get(m)) for m in MEASURES]
            lines.append(f"| `{label}` | " + " | ".join(cells) + " |")
        lines += ["", "The whole analysis: [analysis/report.md](analysis/report.md).", ""]
    lines += ["## Plots", "", "![defaults and best setting](samples.png)", ""]
    for file, why in drawn.items():
        lines += [f"![{file[:-4]}]({file})" if not why else f"- {file[:-4]}: {why}", ""]
    lines += ["", "## Trials", "", f"| # | state | generator | {unit} | note |", "|---|---|---|---|---|"]
    for r in rows:
        v = "–" if r["value"] is None else f"{r['value']:.4g}"
        note = r["failure"] or ("interrupted, run again" if r["interrupted"] else "")
        lines.append(f"| {r['number']} | {r['state']} | `{r['generator']}` | {v} | {note} |")
    atomic_write_text(p.out / "report.md", "\n".join(lines) + "\n")
    results = {
        "settings": s.identity() | {"test_seeds": s.test_seeds, "test_images": s.test_images},
        "study": p.study_name,
        "best": {"generator": best.user_attrs.get("generator"), "value": best.value, "params": best.params},
        "held_out": check,
        "measures": measures,
        "trials": rows,
    }
    atomic_write_text(p.out / "results.json", json.dumps(results, indent=1, default=str))
    atomic_write_text(p.out / "trials.csv", trials_csv(rows))


def trials_csv(rows: list[dict[str, Any]]) -> str:
    """One line per trial: number, state, generator, value, seconds, failure, then each parameter."""
    import csv
    import io

    keys = sorted({k for r in rows for k in r["params"]})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["number", "state", "generator", "value", "seconds", "failure", *keys])
    for r in rows:
        w.writerow(
            [r["number"], r["state"], r["generator"], r["value"], r["seconds"], r["failure"] or ""]
            + [r["params"].get(k, "") for k in keys]
        )
    return buf.getvalue()


def _measure(m: dict[str, Any] | None) -> str:
    if not m or m.get("value") is None:
        return "–"
    if m.get("low") is None:
        return f"{m['value']:.3g}"
    return f"{m['value']:.3g} [{m['low']:.3g}, {m['high']:.3g}]"
