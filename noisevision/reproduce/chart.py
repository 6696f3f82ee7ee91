"""The drawing parts of a reproduction's chart: family colours, an axis zoomed onto the bulk of
the values, and one panel of dots and intervals (report.render_chart lays the panels out)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FAMILY_COLORS = {
    "dead leaves": "#1f77b4", "statistical": "#2ca02c", "random StyleGAN": "#d62728",
    "feature visualization": "#9467bd", "fractals": "#ff7f0e", "mixing": "#e377c2",
    "procedural programs": "#bcbd22", "fdsl": "#17becf",
    "image folder": "#8c564b", "baseline": "#7f7f7f",
}  # fmt: skip


def zoomed_range(values: list[float], gap_factor: float = 2.0) -> tuple[float, float]:
    """The lowest and highest of `values` (one per row) that an axis zoomed onto their bulk keeps:
    values cut off by a gap more than `gap_factor` times the span of the rest (e.g. mean colours
    at 20 % beside encoders at 70-80 %) are left off, at most a third of them on each side, so
    that differences of a point stay visible."""
    v = sorted(values)
    lo, hi = 0, len(v) - 1
    most = (len(v) - 1) // 3
    for i in range(most):  # the largest cut from below whose gap dwarfs the span of the rest
        if v[i + 1] - v[i] > gap_factor * (v[hi] - v[i + 1]):
            lo = i + 1
    for i in range(len(v) - 1, len(v) - 1 - most, -1):
        if v[i] - v[i - 1] > gap_factor * (v[i - 1] - v[lo]):
            hi = i - 1
    return v[lo], v[hi]


def panel(
    ax: Any,
    ys: list[int],
    rows: list[dict[str, Any] | None],
    value: Callable[[dict], Any],
    colors: list[str],
    paper: bool = False,
) -> None:
    """Dots and intervals of one panel on a zoomed axis; rows off the axis are marked at its edge."""
    shown = [
        (y, r, value(r)) for y, r in zip(ys, rows, strict=True) if r is not None and value(r) is not None
    ]
    if not shown:
        ax.text(0.5, 0.5, "no values", transform=ax.transAxes, ha="center", color="#777777")
        return

    def ends(keep_lo: float, keep_hi: float) -> list[float]:
        return [
            x
            for _, r, m in shown
            if keep_lo <= m <= keep_hi
            for x in ([m] if paper else [r["ci_low"], r["ci_high"], *r["values"]])
        ]

    def limits(values: list[float]) -> tuple[float, float, float]:
        span = max(max(values) - min(values), 1.0)
        return min(values) - 0.08 * span, max(values) + 0.38 * span, span  # room on the right for labels

    left, right, span = limits(ends(*zoomed_range([m for _, _, m in shown])))
    left, right, span = limits(ends(left, right))  # a row whose mean falls inside is shown whole
    ax.set_xlim(left, right)
    for y, r, m in shown:
        color = colors[y]
        if m < left or m > right:  # off the zoomed axis: an arrow at the edge, with the value
            x_edge, arrow, ha = (left, "<", "left") if m < left else (right, ">", "right")
            ax.plot([x_edge], [y], marker=arrow, color=color, markersize=7, clip_on=False)
            ax.text(
                x_edge + (0.05 if ha == "left" else -0.05) * span,
                y,
                f"{m:.1f} (off scale)",
                va="center",
                ha=ha,
                fontsize=7,
                color="#444444",
            )
            continue
        if paper:
            ax.plot([m], [y], marker="D", markersize=6, markerfacecolor="white", markeredgecolor="black")
            ax.text(m + 0.04 * span, y, f"{m:.1f}", va="center", fontsize=7, color="#444444")
            continue
        ax.scatter(r["values"], [y] * r["n"], s=11, color="#333333", alpha=0.65, zorder=5, linewidths=0)
        if r["n"] > 1:
            ax.plot(
                [r["ci_low"], r["ci_high"]],
                [y, y],
                color=color,
                linewidth=2.2,
                zorder=3,
                solid_capstyle="butt",
            )
        ax.plot(
            [m],
            [y],
            marker="o",
            markersize=6.5,
            color=color,
            markeredgecolor="black",
            markeredgewidth=0.6,
            zorder=4,
        )
        label = f"{m:.1f}" + (f" ± {r['half_width']:.1f}" if r["n"] > 1 else "")
        ax.text(max(r["ci_high"], max(r["values"])) + 0.04 * span, y, label, va="center", fontsize=7)
    ax.grid(axis="x", alpha=0.3)
