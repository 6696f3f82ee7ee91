"""The report of a reproduction, rebuilt from its cell files: report.md, results.csv,
results.json and chart.png.

Each (source × probe) is summarised over its seeds: mean, 95 % Student-t interval and n
(`summarize`); sources are compared by paired t-tests on their per-seed differences, at least
neighbours in the ranking and each trained encoder against CNN-Random (`compare`), and each
comparison is written out in words, "not significant" included. Where sources were pre-trained
by formula-supervised and by self-supervised recipes, the best of each is compared too. The chart
shows one panel of dots and intervals per probe on a zoomed axis, and the published numbers
(another dataset, probe and encoders: plan.REFERENCES) in a panel of their own.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from noisevision.errors import NoisevisionError
from noisevision.io import atomic_write_bytes, atomic_write_text
from noisevision.logs import get_logger
from noisevision.reproduce.cells import load_cells, read_cell, read_plan
from noisevision.reproduce.chart import FAMILY_COLORS, panel
from noisevision.reproduce.stats import CONFIDENCE, mean_interval, paired_test

log = get_logger(__name__)


# One row per cell (source × probe × seed), with its (source × probe)'s mean, interval and n.
CSV_FIELDS = (
    "source", "label", "family", "kind", "recipe", "probe", "dataset", "seed", "probe_seed", "top1", "std",
    "mean", "ci_low", "ci_high", "half_width", "n", "paper_top1",
    "gen_images_per_s", "gen_seconds", "pretrain_seconds", "pretrain_images_per_s",
    "probe_seconds", "probe_images_per_s", "device", "arch", "layer", "n_train", "n_test",
)  # fmt: skip


def _flat_row(cell: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    st = cell.get("stages", {})
    gen, pre, probe = st.get("generation", {}), st.get("pretrain", {}), st.get("probe", {})
    row = {k: cell.get(k) for k in CSV_FIELDS}
    row.update({k: summary[k] for k in ("mean", "ci_low", "ci_high", "half_width", "n")})
    row.update(
        gen_images_per_s=gen.get("images_per_s"),
        gen_seconds=gen.get("seconds"),
        pretrain_seconds=pre.get("seconds"),
        pretrain_images_per_s=pre.get("images_per_s"),
        probe_seconds=probe.get("seconds"),
        probe_images_per_s=probe.get("feature_images_per_s"),
    )
    return row


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None or v == "":
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def in_paper(cell: dict[str, Any]) -> bool:
    """Whether a row's data is one of the paper's: every baseline, and generators with a paper label
    (our own generators, e.g. the procedural programs or mixes, have none)."""
    if cell.get("kind") != "generator":
        return True
    from noisevision.reproduce.plan import generator_spec

    spec = generator_spec(cell["source"])
    return spec is None or bool(spec.label)


def reference_of(plan_or_cell: dict[str, Any]) -> Any:
    """The published results (plan.Reference) a plan or a cell is shown beside."""
    from noisevision.reproduce.plan import REFERENCES

    return REFERENCES.get(plan_or_cell.get("paper_scale") or "small", REFERENCES["small"])


def _paper_cell(cell: dict[str, Any]) -> str:
    reference = reference_of(cell)
    if cell.get("paper_top1") is not None:
        return _fmt(cell["paper_top1"])
    return "–" if in_paper(cell) and reference.probe is None else reference.missing


def _shows_reference(reference: Any, probe: str) -> bool:
    return reference.probe is None or reference.probe == probe


def trains_network(probe: str) -> bool:
    """Whether `probe` trains the whole network (fine-tuning): CNN-Random is then training from scratch."""
    from noisevision.evaluate.probes import PROBES

    return probe in PROBES and PROBES.get(probe).trains_model


def recipe_kind(recipe: str | None) -> str | None:
    """ "formula-supervised" or "self-supervised": how the training preset `recipe` learns."""
    from noisevision.presets import PRESETS

    if not recipe or recipe not in PRESETS:
        return None
    return "formula-supervised" if PRESETS.get(recipe).values["method"] == "supervised" else "self-supervised"


# ---------------------------------------------------------------------------------- statistics
def summarize(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (source × probe), in the cells' order: its seeds, their top-1 values, the mean,
    its 95 % interval (Student t; ci_low = ci_high = mean and half_width None for one seed) and n."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in cells:
        groups.setdefault((c["source"], c["probe"]), []).append(c)
    rows = []
    for group in groups.values():
        group = sorted(group, key=lambda c: c.get("seed", 0))
        first = group[0]
        ci = mean_interval([c["top1"] for c in group])
        rows.append(
            {
                **{
                    k: first.get(k)
                    for k in (
                        "source",
                        "label",
                        "family",
                        "kind",
                        "probe",
                        "dataset",
                        "paper_top1",
                        "paper_scale",
                        "recipe",
                    )
                },
                "seeds": [c.get("seed", 0) for c in group],
                "values": [c["top1"] for c in group],
                "mean": ci.mean,
                "ci_low": ci.low,
                "ci_high": ci.high,
                "half_width": ci.half_width,
                "sd": ci.sd,
                "n": ci.n,
                "stages": first.get("stages", {}),
                "device": first.get("device"),
            }
        )
    return rows


def ranked(summaries: list[dict[str, Any]], probe: str) -> list[dict[str, Any]]:
    """The rows of `probe`, best mean first."""
    return sorted((r for r in summaries if r["probe"] == probe), key=lambda r: -r["mean"])


def paired(a: dict[str, Any], b: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """A paired t-test of a - b over the seeds both rows have (None when they share none)."""
    va, vb = dict(zip(a["seeds"], a["values"], strict=True)), dict(zip(b["seeds"], b["values"], strict=True))
    common = sorted(set(va) & set(vb))
    if not common:
        return None
    test = paired_test([va[s] for s in common], [vb[s] for s in common])
    return {
        "probe": a["probe"],
        "kind": kind,
        "a": a["source"],
        "b": b["source"],
        "a_label": a["label"],
        "b_label": b["label"],
        "n": test.diff.n,
        "seeds": common,
        "diff": test.diff.mean,
        "ci_low": test.diff.low,
        "ci_high": test.diff.high,
        "p_value": test.p_value,
        "significant": test.significant,
    }


def compare(summaries: list[dict[str, Any]], probe: str) -> list[dict[str, Any]]:
    """The comparisons the report writes out for `probe`: each pair of neighbours in the ranking
    ("neighbours"), and each trained encoder against CNN-Random ("vs cnn-random")."""
    rows = ranked(summaries, probe)
    out = [c for a, b in zip(rows, rows[1:], strict=False) if (c := paired(a, b, "neighbours"))]
    rand = next((r for r in rows if r["source"] == "cnn-random"), None)
    if rand is not None:
        out += [c for r in rows if r["kind"] != "baseline" and (c := paired(r, rand, "vs cnn-random"))]
    if (c := yardsticks(summaries, probe)) is not None:
        out.append(c)
    return out


def yardsticks(summaries: list[dict[str, Any]], probe: str) -> dict[str, Any] | None:
    """The best formula-supervised source against the best self-supervised one on `probe` (each
    the best by mean, tested by a paired t-test); None unless both kinds were pre-trained."""
    best: dict[str, dict[str, Any]] = {}
    for r in ranked(summaries, probe):
        kind = recipe_kind(r.get("recipe"))
        if kind is not None and r["kind"] != "baseline":
            best.setdefault(kind, r)
    if len(best) < 2:
        return None
    return paired(best["formula-supervised"], best["self-supervised"], "yardsticks")


def comparison_sentence(c: dict[str, Any]) -> str:
    """One comparison in words: "A > B by 1.3 points (95 % interval 0.4 to 2.2, paired over 3
    seeds, p = 0.02), significant" / "..., not significant" / "... (1 seed: no test)"."""
    a, b, d, lo, hi = c["a_label"], c["b_label"], c["diff"], c["ci_low"], c["ci_high"]
    if d < 0:  # say it as the larger one first
        a, b, d, lo, hi = b, a, -d, -hi, -lo
    rel = ">" if d > 0 else "="
    if c["n"] < 2:
        return f"{a} {rel} {b} by {d:.1f} points (1 seed: no test)"
    p = c["p_value"]
    p_text = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
    verdict_text = "significant" if c["significant"] else "not significant"
    return (
        f"{a} {rel} {b} by {d:.1f} points (95 % interval {lo:.1f} to {hi:.1f}, paired over "
        f"{c['n']} seeds, {p_text}), {verdict_text}"
    )


def mean_text(row: dict[str, Any]) -> str:
    """ "74.3 ± 0.8" (mean ± half-width of its 95 % interval), or "74.3 (1 seed, no interval)"."""
    if row["n"] < 2:
        return f"{row['mean']:.1f} (1 seed, no interval)"
    return f"{row['mean']:.1f} ± {row['half_width']:.1f}"


def verdict(cells: list[dict[str, Any]], probe: str) -> str | None:
    """One honest sentence: does noise pre-training beat CNN-Random on this probe, by how much
    (means over seeds), and, with several seeds, whether that is significant."""
    summaries = summarize(cells)
    rows = ranked(summaries, probe)
    rand = next((r for r in rows if r["source"] == "cnn-random"), None)
    trained = [r for r in rows if r["kind"] == "generator"]
    if rand is None or not trained:
        return None
    best = trained[0]
    wins = sum(r["mean"] > rand["mean"] for r in trained)
    sign = "beats" if best["mean"] > rand["mean"] else "does NOT beat"
    test = paired(best, rand, "vs cnn-random")
    text = (
        f"{probe}: the best pre-trained encoder ({best['label']}, {best['mean']:.1f}) {sign} "
        f"CNN-Random ({rand['mean']:.1f}) by {best['mean'] - rand['mean']:+.1f} points"
    )
    if test is not None and test["n"] >= 2:
        word = "significant" if test["significant"] else "not significant"
        text += (
            f" (mean of {test['n']} seeds; paired 95 % interval {test['ci_low']:+.1f} to "
            f"{test['ci_high']:+.1f}, {word})"
        )
    text += f"; {wins} of {len(trained)} generators score above CNN-Random"
    tests = [t for r in trained if (t := paired(r, rand, "vs cnn-random")) is not None and t["n"] >= 2]
    if tests:
        above = sum(t["significant"] and t["diff"] > 0 for t in tests)
        below = sum(t["significant"] and t["diff"] < 0 for t in tests)
        text += f", {above} significantly" + (f", and {below} significantly below it" if below else "")
    text += "."
    pixels = next((r for r in rows if r["source"] == "raw-pixels"), None)
    if pixels is not None and pixels["mean"] > best["mean"]:
        text += f" Raw pixels ({pixels['mean']:.1f}) score above every encoder on this set."
    return text


# ---------------------------------------------------------------------------------- report.md
def _seeds_of(summaries: list[dict[str, Any]]) -> int:
    return max((r["n"] for r in summaries), default=0)


def render_markdown(cells: list[dict[str, Any]], plan: dict[str, Any], charts: dict[str, str]) -> str:
    """report.md: one table per probe (sorted by mean), its comparisons in words, verdicts,
    costs, notes. `charts`: probe (or "all") -> image file."""
    summaries = summarize(cells)
    probes = list(dict.fromkeys([*plan.get("probes", []), *(c["probe"] for c in cells)]))
    dataset = plan.get("dataset") or (cells[0]["dataset"] if cells else "?")
    from noisevision.reproduce.plan import runs_probe

    reference = reference_of(plan)
    n_seeds = _seeds_of(summaries)
    lines = [
        f"# noisevision reproduction: preset `{plan.get('preset', '?')}`",
        "",
        plan.get("description", ""),
        "",
        f"Evaluation set: **{dataset}**. {reference.about}",
        "",
        f"**Seeds: {n_seeds}** independent repetitions of every cell (own images, augmentations, "
        "initial weights and probe subsets). Top-1 is the mean over seeds ± the half-width of its "
        f"{CONFIDENCE * 100:.0f} % interval (Student t, n - 1 degrees of freedom). Differences between two "
        "sources: a **paired t-test** on their per-seed differences (the same seed probes on the same "
        "subsets), two-sided at the 5 % level, without correction for the number of comparisons; "
        '"significant" means the 95 % interval of the difference excludes 0. The low-shot probe\'s '
        "label draws are the same in every repetition.",
        "",
    ]
    if n_seeds < 2:
        lines += [
            "With 1 seed there is no interval and no test: run with `--seeds 3` or more before "
            "reading a ranking into differences of a point or two.",
            "",
        ]
    if "all" in charts:
        lines += [f"![results]({charts['all']})", ""]
    for probe in probes:
        rows = ranked(summaries, probe)
        if not rows:
            continue
        lines += [f"## Probe `{probe}`", ""]
        if probe in charts:
            lines += [f"![{probe}]({charts[probe]})", ""]
        shown = _shows_reference(reference, probe)
        lines += [
            "| data | family | top-1 (%), mean ± 95 % interval | seeds | per seed |"
            + (f" {reference.column} |" if shown else ""),
            "|---|---|---|---|---|" + ("---|" if shown else ""),
        ]
        for r in rows:
            per_seed = ", ".join(f"{v:.1f}" for v in r["values"])
            lines.append(
                f"| {r['label']} | {r['family']} | {mean_text(r)} | {r['n']} | {per_seed} |"
                + (f" {_paper_cell(r)} |" if shown else "")
            )
        if trains_network(probe):
            lines += [
                "",
                "The whole network is trained on the evaluation set: CNN-Random's row is the same "
                "network trained from scratch; the baselines without weights have no row.",
            ]
        comparisons = compare(summaries, probe)
        neighbours = [c for c in comparisons if c["kind"] == "neighbours"]
        versus = [c for c in comparisons if c["kind"] == "vs cnn-random"]
        kinds = [c for c in comparisons if c["kind"] == "yardsticks"]
        if neighbours:
            lines += [
                "",
                "Neighbours in the ranking:",
                "",
                *[f"- {comparison_sentence(c)}" for c in neighbours],
            ]
        if versus:
            lines += ["", "Against CNN-Random:", "", *[f"- {comparison_sentence(c)}" for c in versus]]
        if kinds:
            lines += [
                "",
                "Formula-supervised against self-supervised pre-training (the best of each by mean):",
                "",
                *[f"- {comparison_sentence(c)}" for c in kinds],
            ]
        v = verdict(cells, probe)
        lines += ["", f"**{v}**" if v else "", ""]
    by_source: dict[str, dict[str, Any]] = {}
    for r in summaries:
        if r.get("stages", {}).get("pretrain"):
            by_source.setdefault(r["source"], r)
    if by_source:
        lines += [
            f"## Costs per data source{' (seed 0)' if n_seeds > 1 else ''}",
            "",
            "| data | device | generation img/s | generation s | pre-train s | "
            "pre-train img/s | feature img/s |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in by_source.values():
            st = c["stages"]
            g, p, q = st.get("generation", {}), st["pretrain"], st.get("probe", {})
            lines.append(
                f"| {c['label']} | {c['device']} | {_fmt(g.get('images_per_s'), 0)} | "
                f"{_fmt(g.get('seconds'), 0)}{' (est.)' if g.get('estimated') else ''} | "
                f"{_fmt(p.get('seconds'), 0)} | "
                f"{_fmt(p.get('images_per_s'), 0)} | {_fmt(q.get('feature_images_per_s'), 0)} |"
            )
            pre = st.get("prerequisite", {})
            if pre.get("seconds") is not None and not pre.get("shared"):
                lines.append(
                    f"| ↳ its {pre.get('arch', 'encoder')} on {pre.get('source')} (trained first) | "
                    f"{c['device']} | | | {_fmt(pre['seconds'], 0)} | {_fmt(pre.get('images_per_s'), 0)} | |"
                )
        lines += [
            "",
            "Generation: measured when the images are rendered once to a folder; '(est.)' "
            "when streamed = images rendered during pre-training ÷ the generator's measured "
            "rate (the stream renders in a worker, overlapping the training steps).",
            "",
        ]
    planned = int(plan.get("seeds", 1))
    missing = [
        (s, p, seed)
        for seed in range(planned)
        for s in plan.get("sources", [])
        for p in probes
        if runs_probe(s, p)
        and not any(c["source"] == s and c["probe"] == p and c.get("seed", 0) == seed for c in cells)
    ]
    notes = list(plan.get("notes", []))
    if missing:
        notes.append(f"{len(missing)} cell(s) not done yet: run the same command again to finish")
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- chart
def render_chart(cells: list[dict[str, Any]], probes: list[str], path: Path, title: str = "") -> Path:
    """Dot and interval plot: one panel per probe (each seed a grey dot, the mean a coloured dot,
    its 95 % interval a line, on an axis zoomed onto the bulk of the values), rows in the order of
    the first probe's means, and the paper's numbers in a panel of their own."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    summaries = summarize(cells)
    probes = [p for p in probes if any(r["probe"] == p for r in summaries)]
    if not probes:
        raise NoisevisionError(f"no results for probes {', '.join(probes) or '(none)'} to chart")
    order = [r["source"] for r in ranked(summaries, probes[0])[::-1]]  # best at the top
    order += [s for s in dict.fromkeys(r["source"] for r in summaries) if s not in order]
    first = {s: next(r for r in summaries if r["source"] == s) for s in order}
    published = {
        s: next(
            (r["paper_top1"] for r in summaries if r["source"] == s and r.get("paper_top1") is not None), None
        )
        for s in order
    }
    has_paper = any(v is not None for v in published.values())
    reference = reference_of(summaries[0])
    n, ncols = len(order), len(probes) + has_paper
    fig, axes = plt.subplots(
        1, ncols, figsize=(2.2 + 3.3 * ncols, 1.9 + 0.36 * n), sharey=True, squeeze=False
    )
    axes = axes[0]
    ys = list(range(n))
    colors = [FAMILY_COLORS.get(first[s]["family"], "#17becf") for s in order]
    dataset = summaries[0]["dataset"]
    for ax, probe in zip(axes, probes, strict=False):
        by_source = {r["source"]: r for r in summaries if r["probe"] == probe}
        panel(ax, ys, [by_source.get(s) for s in order], lambda r: r["mean"], colors)
        seeds = max((r["n"] for r in by_source.values()), default=0)
        ax.set_title(f"{probe} probe, {dataset}\n({seeds} seed{'s' if seeds != 1 else ''})", fontsize=9)
        ax.set_xlabel("top-1 (%)", fontsize=8)
    if has_paper:
        ax = axes[-1]
        rows = [{**first[s], "paper_top1": published[s]} for s in order]
        panel(ax, ys, rows, lambda r: r.get("paper_top1"), colors, paper=True)
        ax.set_facecolor("#f3f3f3")
        ax.set_title(reference.panel, fontsize=9, color="#444444")
        ax.set_xlabel("top-1 (%), published", fontsize=8)
    marked = reference.probe is None  # the paper's presets mark our own sources

    def name(s: str) -> str:
        return first[s]["label"] + ("" if not marked or in_paper(first[s]) else " (not in paper)")

    axes[0].set_yticks(ys, [name(s) for s in order], fontsize=8)
    axes[0].set_ylim(-0.7, n - 0.3)
    for ax in axes:
        ax.tick_params(axis="x", labelsize=7)
    fams = list(dict.fromkeys(first[s]["family"] for s in order))
    handles = [Patch(color=FAMILY_COLORS.get(f, "#17becf"), label=f) for f in fams]
    handles += [
        Line2D([], [], marker="o", color="#333333", linestyle="", markersize=3, label="one seed"),
        Line2D([], [], marker="o", color="black", linewidth=2, label="mean, 95 % interval"),
    ]
    if has_paper:
        handles.append(
            Line2D(
                [],
                [],
                marker="D",
                color="black",
                markerfacecolor="white",
                linestyle="",
                label=reference.legend,
            )
        )
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=7, frameon=False)
    fig.suptitle(title or f"noisevision: {dataset}", fontsize=11)
    fig.tight_layout(rect=(0, 0.03 + 0.12 / max(1, n / 8), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def analysis_section(out: Path) -> str:
    """ "Which measure predicted this ranking": the correlations of OUT/analysis (written by
    `noisevision analyze` during the reproduction), or "" when there is none."""
    from noisevision.analyze.report import correlation_lines

    numbers = read_cell(out / "analysis" / "results.json")
    if not isinstance(numbers, dict) or not numbers.get("correlations"):
        return ""
    lines = correlation_lines(numbers)
    lines[0] = "## Which measure predicted this ranking"
    intro = (
        "The data of the generators, measured without training (`noisevision analyze`: image "
        "statistics, diversity, naturalism against the evaluation set, in three feature spaces), "
        "ranked against each probe. Every measure with its interval, and the plots, are in "
        "[analysis/report.md](analysis/report.md)."
    )
    plane = (
        "![naturalism and diversity](analysis/plane.png)" if (out / "analysis" / "plane.png").exists() else ""
    )
    return "\n" + "\n".join([lines[0], "", intro, "", *([plane, ""] if plane else []), *lines[2:]]) + "\n"


def build_report(out: str | Path) -> dict[str, Path]:
    """results.csv (one row per cell, with its mean, interval and n), results.json (the plan, the
    summaries, the comparisons and the cells), chart.png (a panel per probe) and report.md."""
    out = Path(out)
    cells = load_cells(out)
    if not cells:
        raise NoisevisionError(f"no results in {out / 'cells'}: run `noisevision reproduce` first")
    plan = read_plan(out)
    probes = list(dict.fromkeys([*plan.get("probes", []), *(c["probe"] for c in cells)]))
    probes = [p for p in probes if any(c["probe"] == p for c in cells)]
    title = f"noisevision '{plan.get('preset', '?')}': {cells[0]['dataset']}"
    render_chart(cells, probes, out / "chart.png", title)
    for probe in probes:  # the one-chart-per-probe files of earlier versions would show older results
        (out / f"chart-{probe}.png").unlink(missing_ok=True)
    summaries = summarize(cells)
    by_key = {(r["source"], r["probe"]): r for r in summaries}
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for c in cells:
        writer.writerow(_flat_row(c, by_key[c["source"], c["probe"]]))
    atomic_write_text(out / "results.csv", buf.getvalue())
    results = {
        "plan": plan,
        "statistics": {
            "interval": f"{CONFIDENCE * 100:.0f} % Student t over seeds",
            "comparisons": "paired t-test on per-seed differences, two-sided, 5 % level",
        },
        "summary": [{k: v for k, v in r.items() if k != "stages"} for r in summaries],
        "comparisons": [c for p in probes for c in compare(summaries, p)],
        "cells": cells,
    }
    atomic_write_text(out / "results.json", json.dumps(results, indent=1))
    markdown = render_markdown(cells, plan, {"all": "chart.png"}) + analysis_section(out)
    atomic_write_text(out / "report.md", markdown)
    for probe in probes:
        if v := verdict(cells, probe):
            log.info(v)
    return {
        "markdown": out / "report.md",
        "csv": out / "results.csv",
        "json": out / "results.json",
        "chart": out / "chart.png",
    }
