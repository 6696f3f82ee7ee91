"""The pictures of an analysis, PNG files beside report.md:

plane.png         density against coverage (the naturalism–diversity plane), one panel per
                  space, 95 % intervals as error bars, coloured by probe accuracy when given
spectra.png       radially averaged amplitude spectra (log-log, 1/f and 1/f^1.2 reference lines)
                  and violins of the per-image slopes
statistics.png    sources × statistics heat-map: KS distance to the real images, or without a
                  real set the standardised median
correlations.png  the measures with the largest |ρ| against the probe, one scatter each
samples.png       each source's first images, under each its nearest real image (random space)
duplicates.png    each source's closest pairs of images (random space)
pca.png           the sources and the real set on the first two principal components of each space
vendi.png         Vendi (q = 1) of the first n images against n
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import torch

from noisevision.analyze.features import space_features, standardisation
from noisevision.analyze.sets import scalar_measures
from noisevision.analyze.statistics import STATISTICS, curve_frequencies
from noisevision.io import atomic_write_bytes

DPI = 110
GRID = 8  # images per row of the sample grids


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path.name


def _colors(labels: list[str]) -> dict[str, Any]:
    plt = _plt()
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {label: ("black" if label == "real" else cmap(i % cmap.N)) for i, label in enumerate(labels)}


def _first_probe(numbers: dict[str, Any]) -> str | None:
    corr = numbers.get("correlations") or []
    return corr[0]["probe"] if corr else None


def plane(numbers: dict[str, Any], path: Path) -> str | None:
    sources = {
        k: v for k, v in numbers["sources"].items() if "coverage" in v["measures"][numbers["spaces"][0]]
    }
    if not sources:
        return None
    plt = _plt()
    spaces = numbers["spaces"]
    probe = _first_probe(numbers)
    fig, axes = plt.subplots(1, len(spaces), figsize=(4.6 * len(spaces), 4.2), squeeze=False)
    accs = [v.get("accuracy", {}).get(probe) for v in sources.values()] if probe else []
    known = [a for a in accs if a is not None]
    norm = plt.Normalize(min(known), max(known)) if known else None
    cmap = plt.get_cmap("viridis")
    for ax, sp in zip(axes[0], spaces, strict=True):
        for label, src in sources.items():
            d, c = src["measures"][sp]["density"], src["measures"][sp]["coverage"]
            acc = src.get("accuracy", {}).get(probe) if probe else None
            color = cmap(norm(acc)) if norm is not None and acc is not None else "gray"
            err = [
                [d["value"] - (d["low"] if d["low"] is not None else d["value"])],
                [(d["high"] if d["high"] is not None else d["value"]) - d["value"]],
            ]
            cerr = [
                [c["value"] - (c["low"] if c["low"] is not None else c["value"])],
                [(c["high"] if c["high"] is not None else c["value"]) - c["value"]],
            ]
            ax.errorbar(
                d["value"], c["value"], xerr=err, yerr=cerr, fmt="o", color=color, ecolor="0.6", capsize=2
            )
            ax.annotate(
                label, (d["value"], c["value"]), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
        ax.set_xlabel("density (naturalism) →")
        ax.set_ylabel("coverage (diversity vs real) →")
        ax.set_title(f"{sp} space", fontsize=9)
        ax.grid(alpha=0.3)
    if norm is not None:
        fig.colorbar(
            plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes[0].tolist(), label=f"{probe} top-1 %"
        )
    return _save(fig, path)


def spectra(numbers: dict[str, Any], data: dict[str, Any], res: int, path: Path) -> str:
    plt = _plt()
    labels = list(numbers["sources"])
    colors = _colors(labels)
    f = curve_frequencies(res).numpy()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.4), gridspec_kw={"width_ratios": [1, 1.3]})
    levels = []
    for label in labels:
        curve = torch.tensor([math.nan if v is None else v for v in numbers["sources"][label]["spectrum"]])
        ok = torch.isfinite(curve) & (curve > 0)  # bins with no integer frequency are empty
        a1.loglog(
            f[ok.numpy()],
            curve[ok].numpy(),
            color=colors[label],
            label=label,
            lw=2.2 if label == "real" else 1.2,
        )
        levels.append(curve[ok])
    anchor = float(f[len(f) // 2])
    level = float(torch.cat(levels).log().median().exp()) if levels else 1.0
    for slope, style in ((-1.0, "--"), (-1.2, ":")):
        a1.loglog(f, level * (f / anchor) ** slope, "k" + style, lw=0.8, label=f"1/f^{-slope:g}")
    a1.xaxis.set_major_formatter(_plt().ScalarFormatter())
    a1.xaxis.set_minor_formatter(_plt().NullFormatter())
    a1.set_xlabel("spatial frequency (cycles / image)")
    a1.set_ylabel("mean amplitude")
    a1.legend(fontsize=7)
    a1.set_title("radially averaged amplitude spectra", fontsize=9)
    slopes = [data[label]["stats"]["spectrum_slope"].numpy() for label in labels]
    parts = a2.violinplot(slopes, showmedians=True)
    for body, label in zip(parts["bodies"], labels, strict=True):
        body.set_facecolor(colors[label])
    a2.axhspan(-1.5, -0.8, color="green", alpha=0.1, label="photographs, -0.8 to -1.5")
    a2.axhline(0, color="k", lw=0.5)
    a2.set_xticks(range(1, len(labels) + 1), labels, rotation=30, ha="right", fontsize=7)
    a2.set_ylabel("amplitude-spectrum slope per image")
    a2.legend(fontsize=7)
    return _save(fig, path)


def heatmap(numbers: dict[str, Any], path: Path) -> str:
    plt = _plt()
    sources = numbers["sources"]
    labels = list(sources)
    with_ks = "ks" in sources[labels[-1]]["statistics"][STATISTICS[0]]
    if with_ks:
        labels = [lb for lb in labels if "ks" in sources[lb]["statistics"][STATISTICS[0]]]
        grid = [[sources[lb]["statistics"][k]["ks"]["value"] or 0.0 for k in STATISTICS] for lb in labels]
        title, cmap, vmin, vmax = "KS distance to the real images (0: the same distribution)", "magma_r", 0, 1
    else:
        med = torch.tensor(
            [[sources[lb]["statistics"][k]["median"]["value"] or 0.0 for k in STATISTICS] for lb in labels]
        )
        grid = (
            ((med - med.mean(0)) / med.std(0).clamp_min(1e-9)).tolist() if len(labels) > 1 else med.tolist()
        )
        title, cmap, vmin, vmax = "median per source, standardised over sources", "coolwarm", -2, 2
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(STATISTICS), 1 + 0.4 * len(labels)))
    im = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(STATISTICS)), STATISTICS, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax)
    return _save(fig, path)


def correlation_grid(numbers: dict[str, Any], path: Path) -> str | None:
    corr = numbers.get("correlations") or []
    probe = _first_probe(numbers)
    if probe is None:
        return None
    top = sorted((c for c in corr if c["probe"] == probe), key=lambda c: -abs(c["rho"]))[:9]
    plt = _plt()
    cols = 3
    rows = math.ceil(len(top) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    sources = {k: v for k, v in numbers["sources"].items() if probe in v.get("accuracy", {})}
    flat = {k: scalar_measures(v) for k, v in sources.items()}
    for ax, c in zip(axes.flat, top, strict=False):
        for label, src in sources.items():
            ax.scatter(flat[label][c["measure"]], src["accuracy"][probe], color="C0")
            ax.annotate(label, (flat[label][c["measure"]], src["accuracy"][probe]), fontsize=6)
        verdict = "" if c["significant"] else " (not significant)"
        ax.set_title(f"{c['measure']}: ρ = {c['rho']:+.2f}{verdict}", fontsize=8)
        ax.set_ylabel(f"{probe} top-1 %", fontsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(top) :]:
        ax.axis("off")
    return _save(fig, path)


def _image_rows(plt: Any, rows: list[tuple[str, torch.Tensor]], path: Path) -> str:
    """Rows of (label, uint8 images [n, 3, S, S]) as one montage in one axes (one image to draw,
    not one axes per image: ten times faster to save)."""
    side, gap = rows[0][1].shape[-1], 2
    columns = max(len(x) for _, x in rows)
    canvas = torch.full((3, len(rows) * (side + gap), columns * (side + gap)), 255, dtype=torch.uint8)
    for r, (_, images) in enumerate(rows):
        for c, im in enumerate(images):
            y, x = r * (side + gap), c * (side + gap)
            canvas[:, y : y + side, x : x + side] = im.cpu()
    fig, ax = plt.subplots(figsize=(1.1 * columns + 1.6, 1.1 * len(rows)))
    ax.imshow(canvas.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks(
        [(r + 0.5) * (side + gap) for r in range(len(rows))], [label for label, _ in rows], fontsize=7
    )
    for edge in ax.spines.values():
        edge.set_visible(False)
    return _save(fig, path)


def samples(
    numbers: dict[str, Any], data: dict[str, Any], images: dict[str, Any], net: str, path: Path
) -> str:
    """Each source's first GRID images and, below them, each one's nearest real image."""
    plt = _plt()
    rows = []
    real = "real" in data
    feats_real = data["real"]["features"][net] if real else None
    for label in numbers["sources"]:
        if label == "real":
            continue
        shown = data[label]["samples"][:GRID]
        rows.append((label, shown))
        if feats_real is not None:
            f = data[label]["features"][net][: len(shown)]
            nearest = torch.cdist(f.double(), feats_real.double()).argmin(1).tolist()
            rows.append(("nearest real", images["real"].take(nearest).cpu()))
    return _image_rows(plt, rows, path)


def duplicates(
    numbers: dict[str, Any], data: dict[str, Any], images: dict[str, Any], net: str, path: Path
) -> str:
    """Each source's closest pairs of images in the first random network's space (found and
    kept by extract)."""
    plt = _plt()
    rows = [(f"{label}\nclosest pairs", data[label]["pairs"]) for label in numbers["sources"]]
    return _image_rows(plt, rows, path)


def pca_map(numbers: dict[str, Any], data: dict[str, Any], nets: list[str], path: Path) -> str:
    plt = _plt()
    labels = list(numbers["sources"])
    colors = _colors(labels)
    spaces = numbers["spaces"]
    fig, axes = plt.subplots(1, len(spaces), figsize=(4.4 * len(spaces), 4.2), squeeze=False)
    for ax, sp in zip(axes[0], spaces, strict=True):
        norm = standardisation(data, labels, sp, nets)
        feats = {lb: space_features(data[lb], sp, nets, norm)["x"][0][:300].double() for lb in labels}
        allf = torch.cat(list(feats.values()))
        center = allf.mean(0)
        _, _, v = torch.linalg.svd(allf - center, full_matrices=False)
        for lb, f in feats.items():
            p = (f - center) @ v[:2].T
            ax.scatter(p[:, 0], p[:, 1], s=4, alpha=0.5, color=colors[lb], label=lb)
        ax.set_title(f"{sp} space: first two principal components", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][-1].legend(fontsize=7, markerscale=3, loc="center left", bbox_to_anchor=(1, 0.5))
    return _save(fig, path)


def vendi_plot(numbers: dict[str, Any], path: Path) -> str:
    plt = _plt()
    labels = list(numbers["sources"])
    colors = _colors(labels)
    spaces = numbers["spaces"]
    fig, axes = plt.subplots(1, len(spaces), figsize=(4.4 * len(spaces), 3.8), squeeze=False)
    for ax, sp in zip(axes[0], spaces, strict=True):
        for lb in labels:
            curve = numbers["sources"][lb]["vendi_curve"][sp]
            ax.plot([int(n) for n in curve], list(curve.values()), "o-", ms=3, color=colors[lb], label=lb)
        ax.set_xscale("log")
        ax.set_xlabel("images n")
        ax.set_ylabel("Vendi (q = 1)")
        ax.set_title(f"{sp} space", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    return _save(fig, path)


def draw_all(
    out: Path, numbers: dict[str, Any], data: dict[str, Any], images: dict[str, Any], net: str
) -> dict[str, str]:
    """Every plot into `out`: {name: file name}."""
    nets = [k for k in next(iter(data.values()))["features"] if k.startswith("random/")]
    res = numbers["settings"]["res"]
    drawn = {
        "plane": plane(numbers, out / "plane.png"),
        "spectra": spectra(numbers, data, res, out / "spectra.png"),
        "statistics": heatmap(numbers, out / "statistics.png"),
        "correlations": correlation_grid(numbers, out / "correlations.png"),
        "samples": samples(numbers, data, images, net, out / "samples.png"),
        "duplicates": duplicates(numbers, data, images, net, out / "duplicates.png"),
        "pca": pca_map(numbers, data, nets, out / "pca.png"),
        "vendi": vendi_plot(numbers, out / "vendi.png"),
    }
    return {k: v for k, v in drawn.items() if v is not None}
