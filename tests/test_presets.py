"""Training presets: each timing names a generator, precisions and feeds that exist."""

from __future__ import annotations

from noisevision import generators
from noisevision.bench import MODES
from noisevision.precision import check_precision
from noisevision.presets import PRESETS


def test_timings_name_registered_generators_precisions_and_feeds() -> None:
    timed = {name: PRESETS.get(name).timing for name in PRESETS if PRESETS.get(name).timing}
    assert set(timed) == {"paper-small", "paper-large"}
    for timing in timed.values():
        generators.spec(timing.data)
        for precision in timing.precisions:
            check_precision(precision)
        assert set(timing.feeds) <= set(MODES) - {"in-memory"} and timing.steps > 0
