"""Named tables, all kept one way: generators, architectures, methods, presets, datasets, probes…

    ARCHS = Registry("architecture")
    ARCHS.add("resnet50", ResNetEncoder, "torchvision ResNet-50, 224 px", depth=50)
    entry = ARCHS.entry("resnet50")       # Entry(name, description, value, defaults)
    ARCHS.get("resnet5O")                 # UnknownNameError: … did you mean resnet50?

An entry is a name, a one-line description, a value (a builder, a class or a recipe) and the fixed
keyword defaults of that name. A name that takes an argument (`imagefolder:PATH`) is an entry
under the part before the colon, with that `form`; families of names built on the fly (`mix6:a+b`)
are resolved by their module and described here by a usage line. `noisevision list` shows every
registry (`registries()`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from noisevision.errors import unknown_name

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    description: str
    value: T
    defaults: dict[str, Any] = field(default_factory=dict)
    form: str = ""  # how the name is written when it takes an argument, e.g. "imagefolder:PATH"

    @property
    def written(self) -> str:
        return self.form or self.name


class Registry(Generic[T]):
    """Entries by name, in registration order."""

    def __init__(self, kind: str):
        self.kind = kind  # "architecture", "method", … (for errors and `list`)
        self._entries: dict[str, Entry[T]] = {}
        self._usages: list[str] = []

    def add(self, name: str, value: T, description: str = "", *, form: str = "", **defaults: Any) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' registered twice")
        self._entries[name] = Entry(name, description, value, dict(defaults), form)
        return value

    def add_usage(self, usage: str) -> None:
        """A family of names resolved outside the table (e.g. "mix<K>:<name>+<name>…: convex
        mixes"), one line shown by `noisevision list` below the entries."""
        self._usages.append(usage)

    def entry(self, name: str) -> Entry[T]:
        if name in self._entries:
            return self._entries[name]
        raise unknown_name(self.kind, name, list(self._entries))

    def get(self, name: str) -> T:
        return self.entry(name).value

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def usages(self) -> list[str]:
        return list(self._usages)

    def choices(self) -> str:
        """The names as a user writes them, for help texts: "fashion-mnist, imagefolder:PATH, …"."""
        return ", ".join(e.written for e in self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


# `noisevision list` names: where each registry lives (imported only when asked for: seconds).
_WHERE = {
    "generators": ("noisevision.generators", "GENERATORS"),
    "archs": ("noisevision.models", "ARCHS"),
    "methods": ("noisevision.methods", "METHODS"),
    "augmentations": ("noisevision.augment", "AUGMENTATIONS"),
    "presets": ("noisevision.presets", "PRESETS"),
    "repro-presets": ("noisevision.reproduce.plan", "REPRO_PRESETS"),
    "datasets": ("noisevision.data.eval_datasets", "DATASETS"),
    "probes": ("noisevision.evaluate.probes", "PROBES"),
    "protocols": ("noisevision.evaluate.probes", "PROTOCOLS"),
    "baselines": ("noisevision.evaluate.baselines", "BASELINES"),
    "schedules": ("noisevision.train", "SCHEDULES"),
    "optimizers": ("noisevision.train", "OPTIMIZERS"),
    "export-formats": ("noisevision.export", "FORMATS"),
    "loggers": ("noisevision.tracking", "TRACKERS"),
    "objectives": ("noisevision.search.objectives", "OBJECTIVES"),
}
LISTS = tuple(_WHERE)


def registry(name: str) -> Registry[Any]:
    """The registry `noisevision list NAME` shows."""
    if name not in _WHERE:
        raise unknown_name("list", name, list(LISTS))
    module, attr = _WHERE[name]
    return getattr(importlib.import_module(module), attr)


def registries() -> dict[str, Registry[Any]]:
    """Every registry `noisevision list` shows, by its list name (imports them all)."""
    return {name: registry(name) for name in LISTS}


# The columns of a row beyond name and description, where a registry has some.
def _generator(e: Entry[Any]) -> dict[str, Any]:
    s = e.value
    return {"family": s.family, "paper label": s.label or "-", "res": s.default_res}


def _preset(e: Entry[Any]) -> dict[str, Any]:
    v = e.value.values
    return {"arch": v["arch"], "method": v["method"], "epochs": v["epochs"], "batch": v["batch_size"]}


def _repro_preset(e: Entry[Any]) -> dict[str, Any]:
    p = e.value
    training = ", ".join(dict.fromkeys([p.train_preset, *p.recipes.values()]))  # its recipes
    return {"training": training, "sources": len(p.generators), "evaluation": p.eval_dataset}


def _protocol(e: Entry[Any]) -> dict[str, Any]:
    p = e.value
    return {"optimizer": p.optimizer, "lr": p.lr, "batch": p.batch_size, "epochs": p.epochs}


_COLUMNS: dict[str, Callable[[Entry[Any]], dict[str, Any]]] = {
    "generators": _generator,
    "archs": lambda e: {"defaults": e.defaults},
    "presets": _preset,
    "repro-presets": _repro_preset,
    "protocols": _protocol,
    "baselines": lambda e: {"paper label": e.value.label},
}


def listing(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """What `noisevision list` shows for the registries `names`: {list name: {"kind", "columns",
    "entries": [{"name", **columns, "description"}], "usages"}}; "written" is a column where some
    names take an argument (imagefolder:PATH)."""
    out = {}
    for name in names:
        reg, columns = registry(name), _COLUMNS.get(name, lambda _: {})
        written = any(e.form for e in reg.entries())  # names that take an argument: say how
        rows = [
            {
                "name": e.name,
                **({"written": e.written} if written else {}),
                **columns(e),
                "description": e.description,
            }
            for e in reg.entries()
        ]
        extra = [k for k in (rows[0] if rows else {}) if k not in ("name", "description")]
        out[name] = {"kind": reg.kind, "columns": extra, "entries": rows, "usages": reg.usages()}
    return out
