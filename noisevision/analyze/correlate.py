"""Which measure predicts the probes: Spearman's ρ of every measure against every probe's accuracy
across sources, with a bootstrap interval over sources, a t-test p-value and a leave-one-source-out
range.

Probe accuracies come from a `noisevision reproduce` folder (its cells: the mean over seeds of
each source × probe) or from `noisevision eval` JSON files (the source is the training data the
encoder file names). A result's source matches an analysed source by its name (a generator name,
or a folder's name or path).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from noisevision.errors import NoisevisionError
from noisevision.reproduce.stats import t_cdf

SOURCE_BOOTSTRAPS = 2000
LEVEL = 0.05
EXACT_UP_TO = 8  # sources up to which p is exact (every permutation: 8! = 40,320)


def _eval_source(blob: dict[str, Any]) -> str | None:
    meta = blob.get("meta") or {}
    for value in (meta.get("data"), (meta.get("config") or {}).get("data"), meta.get("baseline")):
        if isinstance(value, str) and value:
            return value
    return None


def read_results(paths: list[Path]) -> dict[str, dict[str, float]]:
    """{probe (dataset/probe): {source: top-1 %}} from reproduce folders, eval JSON files or
    folders of them; NoisevisionError when none holds a probe result."""
    from noisevision.reproduce.cells import load_cells

    table: dict[str, dict[str, float]] = {}
    for path in paths:
        if not path.exists():
            raise NoisevisionError(f"--results {path}: no such file or folder")
        if (path / "cells").is_dir():  # a reproduction: each (source, probe)'s mean over its seeds
            runs: dict[tuple[str, str], list[float]] = {}
            for cell in load_cells(path):
                probe = f"{cell.get('dataset', '?')}/{cell['probe']}"
                runs.setdefault((probe, cell["source"]), []).append(float(cell["top1"]))
            for (probe, source), values in runs.items():
                table.setdefault(probe, {})[source] = sum(values) / len(values)
            continue
        files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
        for file in files:
            try:
                blob = json.loads(file.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            source = _eval_source(blob) if isinstance(blob, dict) else None
            probes = blob.get("probes") if isinstance(blob, dict) else None
            if source is None or not isinstance(probes, dict):
                continue
            for probe, r in probes.items():
                if isinstance(r, dict) and isinstance(r.get("top1"), int | float):
                    table.setdefault(f"{blob.get('dataset', '?')}/{probe}", {})[source] = float(r["top1"])
    if not table:
        where = ", ".join(map(str, paths))
        raise NoisevisionError(
            f"--results {where}: no probe results (expected a `noisevision reproduce` folder with cells/ "
            "or `noisevision eval` JSON files)"
        )
    return table


def match(results: dict[str, float], label: str, spec: str) -> float | None:
    """A source's accuracy in `results` by its name, path or folder name."""
    for key in (label, spec):
        if key in results:
            return results[key]
    for key, value in results.items():
        if Path(key).name == Path(spec).name and Path(spec).name:
            return value
    return None


def ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..n along the last dim, ties given their average rank ([..., n] -> [..., n])."""
    below = (x[..., None, :] < x[..., :, None]).sum(-1)
    equal = (x[..., None, :] == x[..., :, None]).sum(-1)
    return below.double() + (equal.double() + 1) / 2


def spearman(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | float:
    """Spearman's ρ (Pearson of the ranks) along the last dim; NaN where either is constant. One
    float for 1-d inputs, a tensor for batches [..., n] (the bootstrap's resamples at once)."""
    rx, ry = ranks(x.double()), ranks(y.double())
    rx, ry = rx - rx.mean(-1, keepdim=True), ry - ry.mean(-1, keepdim=True)
    den = rx.norm(dim=-1) * ry.norm(dim=-1)
    rho = torch.where(den > 0, (rx * ry).sum(-1) / den.clamp_min(1e-300), torch.nan).clamp(-1, 1)
    return float(rho) if rho.dim() == 0 else rho


def permutation_p(x: torch.Tensor, y: torch.Tensor, rho: float) -> float:
    """Exact two-sided p: the share of all orderings of y whose |ρ| reaches |rho|."""
    import itertools

    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    perms = torch.tensor(list(itertools.permutations(range(len(y)))))  # [n!, n]
    rhos = (ry[perms] * rx).sum(1) / (rx.norm() * ry.norm())
    return float((rhos.abs() >= abs(rho) - 1e-9).double().mean())


def t_p(rho: float, n: int) -> float:
    """Two-sided p of ρ from t = ρ √((n-2)/(1-ρ²)) with n - 2 degrees of freedom."""
    if abs(rho) >= 1 - 1e-12:
        return 0.0
    t = rho * math.sqrt((n - 2) / (1 - rho * rho))
    return 2 * t_cdf(-abs(t), n - 2)


@dataclass
class Correlation:
    measure: str
    probe: str
    n: int
    rho: float
    low: float  # 95 % bootstrap interval over sources
    high: float
    p: float  # two-sided: exact permutation test up to EXACT_UP_TO sources, else the t approximation
    loo_min: float  # ρ with each source left out in turn: the smallest and largest
    loo_max: float

    @property
    def significant(self) -> bool:
        return self.p < LEVEL and not (self.low <= 0 <= self.high)

    def to_dict(self) -> dict[str, Any]:
        d = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in vars(self).items()}
        return {**d, "significant": self.significant}


def correlate(
    measure: str, probe: str, values: list[float], acc: list[float], seed: int = 0
) -> Correlation | None:
    """ρ of a measure's values against the accuracies of the same sources (None under 3 sources)."""
    keep = [(v, a) for v, a in zip(values, acc, strict=True) if math.isfinite(v)]
    n = len(keep)
    if n < 3:
        return None
    x = torch.tensor([v for v, _ in keep], dtype=torch.float64)
    y = torch.tensor([a for _, a in keep], dtype=torch.float64)
    rho = spearman(x, y)
    if math.isnan(rho):
        return None
    p = permutation_p(x, y, rho) if n <= EXACT_UP_TO else t_p(rho, n)
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(n, (SOURCE_BOOTSTRAPS, n), generator=g)
    boot = spearman(x[i], y[i])
    boot = boot[~boot.isnan()]  # resamples that drew one source n times
    low, high = (math.nan, math.nan)
    if len(boot) > 10:
        q = torch.quantile(boot, torch.tensor([0.025, 0.975], dtype=torch.float64))
        low, high = float(q[0]), float(q[1])
    keep = ~torch.eye(n, dtype=torch.bool)  # row k: every source but k
    loo = spearman(x.expand(n, n)[keep].view(n, n - 1), y.expand(n, n)[keep].view(n, n - 1))
    loo = loo[~loo.isnan()] if n > 3 else torch.tensor([math.nan])
    loo_min, loo_max = (float(loo.min()), float(loo.max())) if len(loo) else (math.nan, math.nan)
    return Correlation(measure, probe, n, rho, low, high, p, loo_min, loo_max)
