"""Throughput benchmarks: images/s measured side by side in one process (`noisevision bench`).

`timing` holds the clock and the machine line every report starts with; `generators`, `training`,
`evaluation`, `datasets` and `tracking` measure the generators, the training step fed four ways,
reading image files into probe inputs, per-image datasets, and what experiment trackers cost a
training run, each with the report its command prints.
"""

from noisevision.bench.datasets import DATASET_OUTPUTS, Rate, bench_dataset_loader, report_datasets
from noisevision.bench.evaluation import PHOTO_SIZES, bench_eval_input, report_eval_input, write_photo_folder
from noisevision.bench.generators import bench_generator, bench_reference, report_generators
from noisevision.bench.timing import _cpu_name, machine_line, synchronize, throughput
from noisevision.bench.tracking import LOGGER_SETS, TrackedTiming, bench_tracking, report_tracking
from noisevision.bench.training import MODES, BenchResult, bench_train, report_train

__all__ = [
    "DATASET_OUTPUTS",
    "LOGGER_SETS",
    "MODES",
    "PHOTO_SIZES",
    "BenchResult",
    "Rate",
    "TrackedTiming",
    "_cpu_name",
    "bench_dataset_loader",
    "bench_eval_input",
    "bench_generator",
    "bench_reference",
    "bench_tracking",
    "bench_train",
    "machine_line",
    "report_datasets",
    "report_eval_input",
    "report_generators",
    "report_tracking",
    "report_train",
    "synchronize",
    "throughput",
    "write_photo_folder",
]
