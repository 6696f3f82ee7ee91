"""The report of a reproduction, rebuilt from its cell files: report.md, results.csv,
results.json and bar charts like the paper's ImageNet-100 figure, the paper's number beside ours.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from noisevision.errors import NoisevisionError
from noisevision.io import atomic_write_bytes, atomic_write_text
from noisevision.reproduce.cells import load_cells, read_cell

Log = Callable[[str], None]

FAMILY_COLORS = {
    "dead leaves": "#1f77b4", "statistical": "#2ca02c", "random StyleGAN": "#d62728",
    "feature visualization": "#9467bd", "fractals": "#ff7f0e", "mixing": "#e377c2",
    "procedural programs": "#bcbd22",
    "image folder": "#8c564b", "baseline": "#7f7f7f",
}  # fmt: skip

CSV_FIELDS = (
    "source", "label", "family", "kind", "probe", "dataset", "top1", "std", "paper_top1",
    "gen_images_per_s", "gen_seconds", "pretrain_seconds", "pretrain_images_per_s",
    "probe_seconds", "probe_images_per_s", "device", "arch", "layer", "n_train", "n_test",
)  # fmt: skip


def _flat_row(cell: dict[str, Any]) -> dict[str, Any]:
    st = cell.get("stages", {})
    gen, pre, probe = st.get("generation", {}), st.get("pretrain", {}), st.get("probe", {})
    row = {k: cell.get(k) for k in CSV_FIELDS}
    row.update(
        gen_images_per_s=gen.get("images_per_s"), gen_seconds=gen.get("seconds"),
        pretrain_seconds=pre.get("seconds"), pretrain_images_per_s=pre.get("images_per_s"),
        probe_seconds=probe.get("seconds"), probe_images_per_s=probe.get("feature_images_per_s"),
    )  # fmt: skip
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


def _paper_cell(cell: dict[str, Any]) -> str:
    return _fmt(cell.get("paper_top1")) if in_paper(cell) else "not in the paper"


def verdict(cells: list[dict[str, Any]], probe: str) -> str | None:
    """One honest sentence: does noise pre-training beat CNN-Random on this probe, by how much."""
    rows = [c for c in cells if c["probe"] == probe]
    rand = next((c for c in rows if c["source"] == "cnn-random"), None)
    trained = [c for c in rows if c["kind"] == "generator"]
    if rand is None or not trained:
        return None
    best = max(trained, key=lambda c: c["top1"])
    wins = sum(c["top1"] > rand["top1"] for c in trained)
    sign = "beats" if best["top1"] > rand["top1"] else "does NOT beat"
    text = (f"{probe}: the best noise encoder ({best['label']}, {best['top1']:.1f}) {sign} "
            f"CNN-Random ({rand['top1']:.1f}) by {best['top1'] - rand['top1']:+.1f} points; "
            f"{wins} of {len(trained)} generators score above CNN-Random.")  # fmt: skip
    pixels = next((c for c in rows if c["source"] == "raw-pixels"), None)
    if pixels is not None and pixels["top1"] > best["top1"]:
        text += f" Raw pixels ({pixels['top1']:.1f}) score above every encoder on this set."
    return text


def render_markdown(cells: list[dict[str, Any]], plan: dict[str, Any], charts: dict[str, str]) -> str:
    """report.md: one table per probe (sorted by accuracy), verdicts, costs, notes."""
    probes = list(dict.fromkeys([*plan.get("probes", []), *(c["probe"] for c in cells)]))
    dataset = plan.get("dataset") or (cells[0]["dataset"] if cells else "?")
    scale = plan.get("paper_scale", "small")
    lines = [
        f"# noisevision reproduction: preset `{plan.get('preset', '?')}`", "",
        plan.get("description", ""), "",
        f"Evaluation set: **{dataset}**. Paper numbers (from the paper's {scale}-scale table) are "
        "ImageNet-100 linear-probe accuracies of the paper's own encoders: **a different dataset and "
        "budget**, shown only as a reference for the ranking, not as a target for the values.", "",
    ]  # fmt: skip
    for probe in probes:
        rows = sorted((c for c in cells if c["probe"] == probe), key=lambda c: -c["top1"])
        if not rows:
            continue
        lines += [f"## Probe `{probe}`", ""]
        if probe in charts:
            lines += [f"![{probe}]({charts[probe]})", ""]
        lines += ["| data | family | top-1 (%) | paper, ImageNet-100 | pre-train s | probe s |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for c in rows:
            acc = _fmt(c["top1"]) + (f" ± {c['std']:.1f}" if c.get("std") else "")
            st = c.get("stages", {})
            lines.append(
                f"| {c['label']} | {c['family']} | {acc} | {_paper_cell(c)} | "
                f"{_fmt(st.get('pretrain', {}).get('seconds'), 0)} | "
                f"{_fmt(st.get('probe', {}).get('seconds'), 0)} |"
            )
        v = verdict(cells, probe)
        lines += ["", f"**{v}**" if v else "", ""]
    gens = {c["source"]: c for c in cells if c.get("stages", {}).get("pretrain")}
    if gens:
        lines += ["## Costs per data source", "",
                  "| data | device | generation img/s | generation s | pre-train s | "
                  "pre-train img/s | feature img/s |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for c in gens.values():
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
        lines += ["", "Generation: measured when the images are rendered once to a folder; '(est.)' "
                  "when streamed = images rendered during pre-training ÷ the generator's measured "
                  "rate (the stream renders in a worker, overlapping the training steps).", ""]
    missing = [s for s in plan.get("sources", []) for p in probes
               if not any(c["source"] == s and c["probe"] == p for c in cells)]  # fmt: skip
    notes = list(plan.get("notes", []))
    if missing:
        notes.append(f"{len(missing)} cell(s) not done yet: run the same command again to finish")
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def render_chart(cells: list[dict[str, Any]], probe: str, path: Path, title: str = "") -> Path:
    """Bar chart like the paper's ImageNet-100 figure: sorted by accuracy, coloured by family,
    the paper's number as a hatched bar beside ours where it exists."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = sorted((c for c in cells if c["probe"] == probe), key=lambda c: c["top1"])
    if not rows:
        raise NoisevisionError(f"no results for probe '{probe}' to chart")
    n = len(rows)
    fig, ax = plt.subplots(figsize=(10.5, 1.4 + 0.42 * n))
    y = list(range(n))
    has_paper = any(c.get("paper_top1") is not None for c in rows)
    h = 0.38 if has_paper else 0.7
    colors = [FAMILY_COLORS.get(c["family"], "#17becf") for c in rows]
    ours = ax.barh([i + (h / 2 if has_paper else 0) for i in y], [c["top1"] for c in rows], h,
                   color=colors, edgecolor="black", linewidth=0.5)  # fmt: skip
    for bar, c in zip(ours, rows, strict=True):
        err = f" ± {c['std']:.1f}" if c.get("std") else ""
        ax.text(bar.get_width() + 0.5, bar.get_y() + bar.get_height() / 2, f"{c['top1']:.1f}{err}",
                va="center", fontsize=8)  # fmt: skip
    if has_paper:
        for i, c in enumerate(rows):
            if c.get("paper_top1") is None:
                continue
            b = ax.barh(i - h / 2, c["paper_top1"], h, color="white", edgecolor=colors[i],
                        hatch="///", linewidth=0.8)  # fmt: skip
            ax.text(b[0].get_width() + 0.5, i - h / 2, f"{c['paper_top1']:.1f} (paper)", va="center",
                    fontsize=7, color="#555555")  # fmt: skip
    ax.set_yticks(y, [c["label"] + ("" if in_paper(c) else " (not in paper)") for c in rows], fontsize=9)
    ax.set_xlabel(f"top-1 accuracy (%), probe '{probe}' on {rows[0]['dataset']}")
    top = max([c["top1"] for c in rows] + [c.get("paper_top1") or 0 for c in rows])
    ax.set_xlim(0, min(100, top * 1.18 + 2))
    ax.set_title(title or f"Linear evaluation: {rows[0]['dataset']}", fontsize=11)
    fams = list(dict.fromkeys(c["family"] for c in rows))
    handles = [Patch(color=FAMILY_COLORS.get(f, "#17becf"), label=f) for f in fams]
    if has_paper:
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///",
                             label="paper (ImageNet-100, other data)"))  # fmt: skip
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def build_report(out: str | Path, log: Log | None = None) -> dict[str, Path]:
    """results.csv, results.json, a chart per probe (chart.png = the first) and report.md."""
    out = Path(out)
    cells = load_cells(out)
    if not cells:
        raise NoisevisionError(f"no results in {out / 'cells'}: run `noisevision reproduce` first")
    plan = read_cell(out / "plan.json") or {}
    probes = list(dict.fromkeys([*plan.get("probes", []), *(c["probe"] for c in cells)]))
    probes = [p for p in probes if any(c["probe"] == p for c in cells)]
    charts: dict[str, str] = {}
    for i, probe in enumerate(probes):
        name = "chart.png" if i == 0 else f"chart-{probe}.png"
        title = f"noisevision '{plan.get('preset', '?')}': {cells[0]['dataset']} ({probe} probe)"
        render_chart(cells, probe, out / name, title)
        charts[probe] = name
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for c in cells:
        writer.writerow(_flat_row(c))
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "results.json", json.dumps({"plan": plan, "cells": cells}, indent=1))
    atomic_write_text(out / "report.md", render_markdown(cells, plan, charts))
    if log:
        for probe in probes:
            v = verdict(cells, probe)
            if v:
                log(v)
    return {"markdown": out / "report.md", "csv": out / "results.csv",
            "json": out / "results.json", "chart": out / "chart.png"}  # fmt: skip
