"""Throughput benchmarks: images/s measured side by side in one process (`noisevision bench`).

`timing` holds the clock and the machine line every report starts with; `generators`, `training`,
`evaluation` and `datasets` measure the generators, the training step fed four ways, reading image
files into probe inputs, and per-image datasets, each with the report its command prints.
"""

from noisevision.bench.datasets import DATASET_OUTPUTS, Rate, bench_dataset_loader, report_datasets
from noisevision.bench.evaluation import PHOTO_SIZES, bench_eval_input, report_eval_input, write_photo_folder
from noisevision.bench.generators import bench_generator, bench_reference, report_generators
from noisevision.bench.timing import _cpu_name, machine_line, synchronize, throughput
from noisevision.bench.training import MODES, BenchResult, bench_train, report_train

__all__ = [
    "DATASET_OUTPUTS",
    "MODES",
    "PHOTO_SIZES",
    "BenchResult",
    "Rate",
    "_cpu_name",
    "bench_dataset_loader",
    "bench_eval_input",
    "bench_generator",
    "bench_reference",
    "bench_train",
    "machine_line",
    "report_datasets",
    "report_eval_input",
    "report_generators",
    "report_train",
    "synchronize",
    "throughput",
    "write_photo_folder",
]
