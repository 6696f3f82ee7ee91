"""Named tables, all kept one way: generators, architectures, methods, presets, datasets, probes…

    ARCHS = Registry("architecture")
    ARCHS.add("resnet50", ResNetEncoder, "torchvision ResNet-50, 224 px", depth=50)
    entry = ARCHS.entry("resnet50")       # Entry(name, description, value, defaults)
    ARCHS.get("resnet5O")                 # UnknownNameError: … did you mean resnet50?

An entry is a name, a one-line description, a value (a builder, a class or a recipe) and the fixed
keyword defaults of that name. Parametric names (`imagefolder:PATH`, `mix6:a+b`) are entries whose
name is the part before the argument, or come from resolvers. `noisevision list` shows every
registry (`REGISTRIES`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


class Registry(Generic[T]):
    """Entries by name, in registration order."""

    def __init__(self, kind: str):
        self.kind = kind  # "architecture", "method", … (for errors and `list`)
        self._entries: dict[str, Entry[T]] = {}
        self._resolvers: list[tuple[Callable[[str], Entry[T] | None], str]] = []

    def add(self, name: str, value: T, description: str = "", **defaults: Any) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' registered twice")
        self._entries[name] = Entry(name, description, value, dict(defaults))
        return value

    def register(self, name: str, description: str = "", **defaults: Any) -> Callable[[T], T]:
        """Decorator form of `add`."""

        def deco(value: T) -> T:
            return self.add(name, value, description, **defaults)

        return deco

    def add_resolver(self, resolve: Callable[[str], Entry[T] | None], usage: str) -> None:
        """For parametric names: `resolve(name)` returns an entry, or None for names it does not
        handle; `usage` says what it accepts (shown by `noisevision list`)."""
        self._resolvers.append((resolve, usage))

    def entry(self, name: str) -> Entry[T]:
        if name in self._entries:
            return self._entries[name]
        for resolve, _ in self._resolvers:
            found = resolve(name)
            if found is not None:
                return found
        raise unknown_name(self.kind, name, list(self._entries))

    def get(self, name: str) -> T:
        return self.entry(name).value

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def usages(self) -> list[str]:
        return [usage for _, usage in self._resolvers]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def registries() -> dict[str, tuple[Registry[Any], Callable[[Entry[Any]], dict[str, Any]]]]:
    """Every registry `noisevision list` shows, by its `list` name, with the columns of a row
    beyond name and description (imports the packages that fill them)."""
    from noisevision import augment, generators, methods, models, presets, train
    from noisevision.data import eval_datasets
    from noisevision.evaluate import baselines, probes
    from noisevision.reproduce import plan

    def none(_: Entry[Any]) -> dict[str, Any]:
        return {}

    return {
        "generators": (generators.GENERATORS, generators.list_columns),
        "archs": (models.ARCHS, lambda e: {"defaults": e.defaults}),
        "methods": (methods.METHODS, none),
        "augmentations": (augment.AUGMENTATIONS, none),
        "presets": (presets.PRESETS, none),
        "repro-presets": (plan.REPRO_PRESETS, none),
        "datasets": (eval_datasets.DATASETS, none),
        "probes": (probes.PROBES, none),
        "protocols": (probes.PROTOCOLS, none),
        "baselines": (baselines.BASELINES, lambda e: {"paper label": e.value.label}),
        "schedules": (train.SCHEDULES, none),
    }
