"""The report of an analysis: report.md, results.json, results.csv and the plots, in OUT/.

Every number is written with its 95 % interval; the correlations with the probes say in words
which are significant, how many would pass by chance, and how much one source moves them.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

from noisevision.analyze import measures as M
from noisevision.analyze.correlate import EXACT_UP_TO, LEVEL, SOURCE_BOOTSTRAPS
from noisevision.analyze.features import (
    AUGMENTATION,
    RANDOM_ARCH,
    RANDOM_INPUT,
    RANDOM_LAYER,
    RANDOM_SEEDS,
    RANDOM_WIDTH,
)
from noisevision.analyze.statistics import STATISTICS
from noisevision.io import atomic_write_text

SPACE_TEXT = {
    "random": f"random-init {RANDOM_ARCH} at width {RANDOM_WIDTH:g} ({RANDOM_LAYER} pooled, "
    f"{RANDOM_INPUT} px), {len(RANDOM_SEEDS)} networks averaged",
    "encoder": "the trained encoder (--encoder) at its probe layer",
    "stats": "the standardised vector of the per-image statistics",
}
DIVERSITY = (*M.DIVERSITY, "augmentation_gap")
BETTER = {  # the direction a researcher reads each measure in
    "vendi_q1": "↑", "vendi_qinf": "↑", "effective_rank": "↑", "intrinsic_dim": "↑", "uniformity": "↓",
    "near_duplicates": "↓", "augmentation_gap": "", "precision": "↑", "recall": "↑", "density": "↑",
    "coverage": "↑", "fd": "↓", "kid": "↓",
}  # fmt: skip
CSV_FIELDS = ("source", "kind", "space", "measure", "value", "ci_low", "ci_high")


def _num(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    a = abs(v)
    if a < 1e-12:
        return "0"
    if a >= 1e4 or a < 1e-3:
        return f"{v:.2e}"
    return f"{v:.3g}" if a < 100 else f"{v:.0f}"


def _cell(e: dict[str, float | None]) -> str:
    if e.get("low") is None:
        return _num(e["value"])
    return f"{_num(e['value'])} [{_num(e['low'])}, {_num(e['high'])}]"


def csv_rows(numbers: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (source, space, measure), image statistics as space "pixels"."""
    rows = []
    for label, src in numbers["sources"].items():
        for space, ms in src["measures"].items():
            for k, e in ms.items():
                rows.append({"source": label, "kind": src["kind"], "space": space, "measure": k, **_flat(e)})
        for k, st in src["statistics"].items():
            for what, e in st.items():
                rows.append(
                    {
                        "source": label,
                        "kind": src["kind"],
                        "space": "pixels",
                        "measure": f"{what}:{k}",
                        **_flat(e),
                    }
                )
    return rows


def _flat(e: dict[str, float | None]) -> dict[str, float | None]:
    return {"value": e["value"], "ci_low": e["low"], "ci_high": e["high"]}


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def correlation_lines(numbers: dict[str, Any]) -> list[str]:
    """The "which measure predicts the probes" section."""
    corr = numbers.get("correlations") or []
    if not corr:
        return []
    lines = ["## Which measure predicts the probes", ""]
    for probe in dict.fromkeys(c["probe"] for c in corr):
        cs = sorted((c for c in corr if c["probe"] == probe), key=lambda c: -abs(c["rho"]))
        n, tests = cs[0]["n"], len(cs)
        sig = [c for c in cs if c["significant"]]
        lines += [
            f"### {probe} ({n} sources)",
            "",
            f"Spearman's ρ of each measure against the probe's top-1 over {n} sources; 95 % interval from "
            f"{SOURCE_BOOTSTRAPS} bootstrap resamples of the sources; p exact (every ordering) up to "
            f"{EXACT_UP_TO} sources, else from the t approximation; LOO: the smallest and "
            f"largest ρ with one source left out.",
            "",
        ]
        if sig:
            names = ", ".join(f"{c['measure']} (ρ = {c['rho']:+.2f})" for c in sig[:8])
            lines.append(
                f"**{len(sig)} of {tests} measures** are significant at the {LEVEL * 100:.0f} % level "
                f"with an interval that excludes 0: {names}{' …' if len(sig) > 8 else ''}. With {tests} "
                f"tests, about {tests * LEVEL:.0f} would pass by chance alone: treat single hits as leads, "
                "not findings."
            )
        else:
            lines.append(
                f"**No measure is significant** at the {LEVEL * 100:.0f} % level (none of {tests}): with "
                f"{n} sources only |ρ| near 1 could be; every ρ below is not significant."
            )
        if n < 8:
            lines.append(f"With {n} sources one source can flip a ranking: read the LOO range before the ρ.")
        lines += [""]
        rows = [
            [
                c["measure"],
                f"{c['rho']:+.2f}",
                f"[{_num(c['low'])}, {_num(c['high'])}]",
                f"{c['p']:.3f}",
                "–" if c["loo_min"] is None else f"{c['loo_min']:+.2f} … {c['loo_max']:+.2f}",
                "significant" if c["significant"] else "not significant",
            ]
            for c in cs[:15]
        ]
        lines += _table(["measure", "ρ", "95 % interval", "p", "LOO", "verdict"], rows)
        lines += ["", f"(the 15 largest |ρ| of {tests}; all of them in results.json)", ""]
    return lines


def render_markdown(numbers: dict[str, Any], plots: dict[str, str]) -> str:
    s = numbers["settings"]
    sources = numbers["sources"]
    lines = [
        "# noisevision analyze",
        "",
        f"Sources: {', '.join(s['sources'])}. {s['num_images']} images each at {s['res']} px, "
        f"seed {s['seed']}"
        + (f"; real set: {s['real']}" if s["real"] else "; no real set (--real): no naturalism measures")
        + (f"; encoder: {s['encoder']}" if s["encoder"] else "")
        + ".",
        "",
        f"Intervals: 95 %, the value ± 1.96 standard deviations of {s['bootstraps']} half-samples (half "
        "the images of each set drawn without replacement, whose spread is the sampling spread of the "
        "full set).",
        "",
        "Feature spaces: " + "; ".join(f"**{sp}**: {SPACE_TEXT[sp]}" for sp in numbers["spaces"]) + ".",
        "",
    ]
    if "plane" in plots:
        lines += [f"![naturalism and diversity]({plots['plane']})", ""]
    for sp in numbers["spaces"]:
        lines += [f"## Diversity in the {sp} space", ""]
        rows = [
            [label, *(_cell(src["measures"][sp][k]) for k in DIVERSITY)] for label, src in sources.items()
        ]
        lines += _table(["source", *(f"{k} {BETTER.get(k, '')}".strip() for k in DIVERSITY)], rows) + [""]
        if s["real"]:
            lines += [f"## Naturalism and coverage against the real set, {sp} space", ""]
            rows = [
                [label, *(_cell(src["measures"][sp][k]) for k in M.NATURALISM)]
                for label, src in sources.items()
                if "coverage" in src["measures"][sp]
            ]
            lines += _table(["source", *(f"{k} {BETTER[k]}" for k in M.NATURALISM)], rows) + [""]
    lines += ["## Image statistics (median over images)", ""]
    rows = [
        [label, *(_cell(src["statistics"][k]["median"]) for k in STATISTICS)]
        for label, src in sources.items()
    ]
    lines += _table(["source", *STATISTICS], rows) + [""]
    if s["real"]:
        lines += [
            "Kolmogorov–Smirnov distance of each statistic's distribution to the real images' (0: the same):",
            "",
        ]
        rows = [
            [label, *(_cell(src["statistics"][k]["ks"]) for k in STATISTICS)]
            for label, src in sources.items()
            if "ks" in src["statistics"][STATISTICS[0]]
        ]
        lines += _table(["source", *STATISTICS], rows) + [""]
    lines += correlation_lines(numbers)
    pictures = [(k, v) for k, v in plots.items() if k != "plane"]
    if pictures:
        lines += ["## Plots", ""] + [f"![{k}]({v})" for k, v in pictures] + [""]
    lines += [
        "## Reading the numbers",
        "",
        f"- Diversity: Vendi (q = 1, q = ∞) counts effectively distinct images (cosine kernel); "
        "effective rank counts directions of spread; intrinsic dimension is TwoNN's; uniformity is Wang & "
        f"Isola's (t = 2, lower is more uniform); near-duplicates: share of images whose nearest image is "
        f"within {M.NEAR_DUPLICATE} of the median distance; augmentation gap: distance between two "
        f"'{AUGMENTATION}' training views of an image over the distance between views of two images.",
        f"- Against the real set, at equal N: precision/recall with k = {M.PR_K}, density/coverage with "
        f"k = {M.DC_K}. Noise images inflate recall (diverse but unrealistic samples widen their own balls): "
        "coverage is the safer diversity-versus-real, density the safer naturalism. FD is biased in N and "
        "only comparable at equal N; KID is unbiased.",
        "- Random-network spaces weigh low-level statistics; rankings can differ between spaces.",
        "",
    ]
    return "\n".join(lines)


def write_report(
    out: Path, numbers: dict[str, Any], data: dict[str, Any], images: dict[str, Any], net: str
) -> None:
    """report.md, results.json, results.csv and the plots."""
    from noisevision.analyze import plots

    pictures = plots.draw_all(out, numbers, data, images, net)
    atomic_write_text(out / "results.json", json.dumps(clean(numbers), indent=1, allow_nan=False))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    writer.writeheader()
    writer.writerows(csv_rows(numbers))
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_text(out / "report.md", render_markdown(numbers, pictures))


def clean(v: Any) -> Any:
    """`v` with every NaN or infinite float as None (JSON has neither)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [clean(x) for x in v]
    return v
