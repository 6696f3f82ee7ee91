"""Data plumbing: dataset folders written by `generate`, streams for training, evaluation sets, and
per-image datasets over a generator for other training loops (GeneratorDataset,
GeneratorIterableDataset: noisevision.data.datasets)."""

from typing import Any

_DATASETS = ("GeneratorDataset", "GeneratorIterableDataset")


def __getattr__(name: str) -> Any:
    # Imported on first use: the generators take seconds to import, which the folder and
    # evaluation-set modules of this package need not pay.
    if name in _DATASETS:
        from noisevision.data import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_DATASETS)
