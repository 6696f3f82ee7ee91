"""`make demo`: the demo reproduction on this machine's CPU, report in ./demo/.

    python -m noisevision.demo [--out demo] [--device auto]

Pre-trains small encoders on generators from four families, probes them and the paper's
baselines on Fashion-MNIST, and writes demo/report.md with bar charts. Resumable: run it again
after an interruption and finished cells are skipped.
"""

from __future__ import annotations

import argparse
import sys
import time

from noisevision.errors import NoisevisionError
from noisevision.memory import keep_freed_memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m noisevision.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="demo", help="report folder (default: demo)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    args = parser.parse_args(argv)
    keep_freed_memory()

    from noisevision.reproduce import REPRO_PRESETS, build_report, load_cells, reproduce, verdict

    preset = REPRO_PRESETS.get("demo")
    print(f"noisevision demo: {preset.description}")
    t0 = time.perf_counter()
    try:
        reproduce(preset.name, args.out, device=args.device, log=lambda m: print(m, flush=True))
    except NoisevisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = build_report(args.out)
    main_probe = preset.probe_settings().probes[0]
    all_cells = load_cells(paths["markdown"].parent)
    cells = [c for c in all_cells if c["probe"] == main_probe]
    print(f"\n{'data':32s} {'family':22s} top-1 ({cells[0]['probe']} probe on {cells[0]['dataset']})")
    for c in sorted(cells, key=lambda c: -c["top1"]):
        print(f"{c['label']:32s} {c['family']:22s} {c['top1']:6.2f}")
    for probe in preset.probe_settings().probes:
        v = verdict(all_cells, probe)
        if v:
            print(v if probe != main_probe else f"\n{v}")
    print(f"\ndone in {time.perf_counter() - t0:.0f} s: open {paths['markdown']} (chart: {paths['chart']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
