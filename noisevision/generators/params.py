"""Searchable parameters: each family declares, beside its defaults, the ranges worth searching.

A family lists `Param`s in its class's `search_space`; `noisevision list generators --params NAME`
shows them and `noisevision search` samples them. Any declared parameter can be set in a name,
wherever a generator name is accepted:

    dead_leaves-mixed:sigma=2.5,r_min=0.01
    stat-spectrum:slope_range=1.0..2.0

(families with their own name syntax, such as `program-shader:depth=5` or `rcdb:classes=100`,
read those names themselves). Such a generator draws its random keys from the base name, so that a
changed parameter changes the images only through the parameter.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any

from noisevision.errors import NoisevisionError
from noisevision.generators import registry

KINDS = ("int", "float", "choice", "interval")
SIGNIFICANT = 4  # digits a searched number keeps: its name then renders exactly what was measured


@dataclass(frozen=True)
class Param:
    """One parameter a search may vary: its kind, the range worth searching, what it does.

    kind "interval" is a (low, high) pair (e.g. a range random slopes are drawn from), searched
    as its two ends within [low, high] and written `low..high` in names.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    help: str = ""
    only: tuple[str, ...] = ()  # the registered names it applies to (empty: every name of the class)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"parameter {self.name}: kind {self.kind!r} is none of {KINDS}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"parameter {self.name}: a choice needs choices")
        ordered = self.low is not None and self.high is not None and self.low < self.high
        if self.kind != "choice" and not ordered:
            raise ValueError(f"parameter {self.name}: needs low < high")

    @property
    def range_text(self) -> str:
        """The search range in words: `1..6`, `0.005..0.5 (log)`, `patch | points`."""
        if self.kind == "choice":
            return " | ".join(map(str, self.choices))
        integer = self.kind == "int"
        text = f"{format_number(self.low, integer)}..{format_number(self.high, integer)}"
        return text + (" (log)" if self.log else "")

    def parse(self, text: str, where: str) -> Any:
        """A value written in a name or on a command line -> the parameter's value."""
        text = text.strip()
        try:
            if self.kind == "int":
                return int(text)
            if self.kind == "float":
                value = float(text)
                if not math.isfinite(value):
                    raise ValueError
                return value
            if self.kind == "interval":
                lo, sep, hi = text.partition("..")
                if not sep:
                    raise ValueError
                pair = (float(lo), float(hi))
                if not all(map(math.isfinite, pair)):
                    raise ValueError
                return pair
        except ValueError:
            kind = {"int": "an integer", "float": "a number", "interval": "LOW..HIGH, two numbers"}[self.kind]
            raise NoisevisionError(f"{where}: {self.name} must be {kind}, not '{text}'") from None
        for choice in self.choices:
            if str(choice) == text:
                return choice
        raise NoisevisionError(
            f"{where}: {self.name} must be one of {', '.join(map(str, self.choices))}, not '{text}'"
        )

    def write(self, value: Any) -> str:
        """The value as a name writes it (parse(write(v)) == v)."""
        if self.kind == "interval":
            return f"{format_number(value[0])}..{format_number(value[1])}"
        if self.kind in ("int", "float"):
            return format_number(value, self.kind == "int")
        return str(value)


def format_number(value: Any, integer: bool = False) -> str:
    """A number as short as it is exact: 3, 0.25, 1e-05."""
    if integer:
        return str(int(value))
    text = f"{float(value):.{SIGNIFICANT + 8}g}"
    return text if float(text) == float(value) and len(text) < 12 else repr(float(value))


def rounded(value: float) -> float:
    """`value` to SIGNIFICANT digits (what a searched float becomes before it is measured)."""
    return float(f"{value:.{SIGNIFICANT}g}")


# ---------------------------------------------------------------------------------- per name
def search_space(name: str) -> dict[str, Param]:
    """The declared parameters of the registered generator `name` (a base name), by name."""
    spec = registry.spec(name)
    return {p.name: p for p in getattr(spec.build, "search_space", ()) if not p.only or name in p.only}


def defaults(name: str) -> dict[str, Any]:
    """Every parameter value of the registered generator `name` when none is given: its class's
    keyword defaults, then its registered ones, then what the built generator records."""
    spec = registry.spec(name)
    values = {
        k: p.default
        for k, p in inspect.signature(spec.build.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    values.update(spec.defaults)
    values.update(registry.get(name).params)
    return values


def parameter_rows(name: str) -> list[dict[str, str]]:
    """The declared parameters of generator `name` as `noisevision list generators --params` shows
    them: name, default, type, search range, description; NoisevisionError when it has none."""
    base = name.partition(":")[0]
    space = search_space(base)  # an unknown name: "did you mean …"
    if not space:
        raise NoisevisionError(f"'{name}' declares no searchable parameters")
    default = defaults(base)
    return [
        {
            "name": key,
            "default": "-" if default.get(key) is None else p.write(default[key]),
            "type": p.kind,
            "search range": p.range_text,
            "description": p.help,
        }
        for key, p in space.items()
    ]


def split_name(name: str, example: str = "") -> tuple[str, dict[str, str]]:
    """`base:k=v,k=v` -> (base, {k: v}) as written; NoisevisionError on a malformed list (naming
    `example`, a well-formed name, when given)."""
    base, sep, args = name.partition(":")
    given: dict[str, str] = {}
    if not sep:
        return base, given
    for item in args.split(","):
        key, eq, value = (part.strip() for part in item.partition("="))
        if not eq or not key or not value:
            hint = f", e.g. {example}" if example else ""
            raise NoisevisionError(f"'{name}': write {base}:key=value[,key=value…]{hint}")
        if key in given:
            raise NoisevisionError(f"'{name}': {key} is given twice")
        given[key] = value
    return base, given


def parse_values(name: str) -> tuple[str, dict[str, Any]]:
    """A name with declared parameters -> (base, {parameter: value})."""
    base, given = split_name(name)
    space = search_space(base)
    values = {}
    for key, text in given.items():
        if key not in space:
            takes = ", ".join(space) or "no parameters in its name"
            raise NoisevisionError(f"'{name}': {base} has no parameter '{key}' (it takes {takes})")
        values[key] = space[key].parse(text, f"'{name}'")
    return base, values


def named(base: str, values: dict[str, Any]) -> str:
    """The generator name of `base` with `values` (declared order; defaults left out), which every
    command accepts: `program-shader:depth=5`, or `base` itself when nothing differs."""
    space, default = search_space(base), defaults(base)
    parts = [
        f"{key}={p.write(values[key])}"
        for key, p in space.items()
        if key in values and not _same(values[key], default.get(key))
    ]
    return f"{base}:{','.join(parts)}" if parts else base


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def resolve_declared(name: str, params: dict[str, Any]) -> registry.Generator | None:
    """Registry resolver for `<name>:key=value,…` with the name's declared parameters (tried after
    the families' own resolvers)."""
    base, sep, _ = name.partition(":")
    if not sep or base not in registry.GENERATORS or not search_space(base):
        return None
    _, values = parse_values(name)
    return registry.build_named(base, name, values, params)


#: How `noisevision list` shows the names `resolve_declared` reads (registered by the package after
#: every family's own resolver).
USAGE = (
    "<name>:key=value,… — a generator with its searchable parameters set (`noisevision list "
    "generators --params NAME` lists them), e.g. dead_leaves-mixed:sigma=2.5, "
    "stat-spectrum:slope_range=1..2"
)
