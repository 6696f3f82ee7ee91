"""What a search varies: a generator's declared parameters, narrowed, widened or fixed by --param.

    --param sigma=2..4          a numeric range (an integer parameter takes integers)
    --param depth=3,4,5         a list of values (searched as choices)
    --param cppn_share=0.3      one value: fixed, not searched

Every value a trial measures is rounded to params.SIGNIFICANT digits first, so that the trial's
generator name (params.named) renders exactly the images that were measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from noisevision.errors import NoisevisionError
from noisevision.generators import params as gparams
from noisevision.generators.params import Param


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: its declaration as narrowed or widened by the user, or its choices."""

    param: Param
    choices: tuple[Any, ...] = ()  # searched as a list of values (from KEY=a,b,c)

    @property
    def name(self) -> str:
        return self.param.name

    def describe(self) -> str:
        if self.choices:
            return " | ".join(self.param.write(c) for c in self.choices)
        return self.param.range_text


@dataclass(frozen=True)
class Space:
    """A generator's search space: the base name, what is searched and what is fixed."""

    base: str
    dims: tuple[Dimension, ...]
    fixed: dict[str, Any]
    defaults: dict[str, Any]

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The trial's values (Optuna's define-by-run suggestions), rounded, and the fixed ones."""
        values = dict(self.fixed)
        for d in self.dims:
            p = d.param
            if d.choices:
                pick = trial.suggest_categorical(p.name, [p.write(c) for c in d.choices])
                values[p.name] = p.parse(pick, p.name)
            elif p.kind == "int":
                values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
            elif p.kind == "float":
                values[p.name] = gparams.rounded(trial.suggest_float(p.name, p.low, p.high, log=p.log))
            elif p.kind == "interval":  # its two ends, the upper one above the lower
                lo = gparams.rounded(trial.suggest_float(f"{p.name}.low", p.low, p.high, log=p.log))
                hi = gparams.rounded(trial.suggest_float(f"{p.name}.high", lo, p.high, log=p.log))
                values[p.name] = (lo, hi)
            else:
                values[p.name] = p.parse(
                    trial.suggest_categorical(p.name, [str(c) for c in p.choices]), p.name
                )
        return values

    def name(self, values: dict[str, Any]) -> str:
        return gparams.named(self.base, values)

    def default_params(self) -> dict[str, Any] | None:
        """Optuna's parameters of the defaults (to enqueue them as the first trial), or None when
        the defaults lie outside the searched space."""
        out: dict[str, Any] = {}
        for d in self.dims:
            p, value = d.param, self.defaults.get(d.name)
            if value is None:
                return None
            if d.choices or p.kind == "choice":
                written = p.write(value)
                if written not in [p.write(c) for c in (d.choices or p.choices)]:
                    return None
                out[p.name] = written
            elif p.kind == "interval":
                lo, hi = value
                if not p.low <= lo <= hi <= p.high:
                    return None
                out[f"{p.name}.low"], out[f"{p.name}.high"] = lo, hi
            else:
                if not p.low <= value <= p.high:
                    return None
                out[p.name] = value
        if any(self.fixed.get(k) != self.defaults.get(k) for k in self.fixed):
            return None
        return out

    def rows(self) -> list[tuple[str, str, str]]:
        """(parameter, default, searched) for the report."""
        rows = [(d.name, _written(d.param, self.defaults.get(d.name)), d.describe()) for d in self.dims]
        space = gparams.search_space(self.base)
        rows += [
            (k, _written(space[k], self.defaults.get(k)), f"fixed: {space[k].write(v)}")
            for k, v in self.fixed.items()
        ]
        return rows


def _written(p: Param, value: Any) -> str:
    return "–" if value is None else p.write(value)


def build_space(base: str, overrides: list[str] | tuple[str, ...]) -> Space:
    """The search space of generator `base` with the user's --param KEY=… items; a one-line
    NoisevisionError for an unknown parameter, a malformed, empty or reversed range."""
    declared = gparams.search_space(base)
    if not declared:
        raise NoisevisionError(
            f"'{base}' declares no searchable parameters: search one of "
            f"{', '.join(n for n in _searchable_names())}"
        )
    dims = {k: Dimension(p) for k, p in declared.items()}
    fixed: dict[str, Any] = {}
    seen: set[str] = set()
    for item in overrides:
        key, eq, text = (part.strip() for part in item.partition("="))
        where = f"--param {item}"
        if not eq or not key:
            raise NoisevisionError(f"{where}: write KEY=LOW..HIGH, KEY=a,b,c or KEY=VALUE")
        if key not in declared:
            raise NoisevisionError(
                f"{where}: {base} has no searchable parameter '{key}' (it has {', '.join(declared)})"
            )
        if key in seen:
            raise NoisevisionError(f"{where}: {key} is given twice")
        seen.add(key)
        if not text:
            raise NoisevisionError(
                f"{where}: an empty range; write {key}=LOW..HIGH, {key}=a,b,c or {key}=VALUE"
            )
        p = declared[key]
        if "," in text:
            values = tuple(p.parse(v, where) for v in text.split(","))
            if len(set(map(p.write, values))) < len(values):
                raise NoisevisionError(f"{where}: a value is listed twice")
            dims[key] = Dimension(p, values)
        elif ".." in text and p.kind in ("int", "float", "interval"):
            lo_text, _, hi_text = text.partition("..")
            lo, hi = (Param(key, "float", 0, 1).parse(t, where) for t in (lo_text, hi_text))
            if p.kind == "int" and not (float(lo).is_integer() and float(hi).is_integer()):
                raise NoisevisionError(f"{where}: {key} is an integer: give integer bounds")
            if lo > hi:
                raise NoisevisionError(f"{where}: LOW {lo:g} is above HIGH {hi:g}")
            if lo == hi and p.kind != "interval":
                fixed[key] = int(lo) if p.kind == "int" else lo
                del dims[key]
                continue
            if lo == hi:
                raise NoisevisionError(f"{where}: an empty range; give LOW < HIGH")
            if p.log and lo <= 0:
                raise NoisevisionError(f"{where}: {key} is searched on a log scale: LOW must be above 0")
            dims[key] = Dimension(replace(p, low=lo, high=hi))
        else:
            fixed[key] = p.parse(text, where)
            del dims[key]
    if not dims:
        raise NoisevisionError(f"every parameter of {base} is fixed by --param: nothing to search")
    for d in dims.values():
        if d.param.kind in ("int", "float") and not d.choices:
            assert math.isfinite(d.param.low) and math.isfinite(d.param.high)
    return Space(base, tuple(dims.values()), fixed, gparams.defaults(base))


def _searchable_names() -> list[str]:
    from noisevision import generators

    return [s.name for s in generators.specs() if gparams.search_space(s.name)]
