"""`make demo`: the demo reproduction on this machine's CPU, report in ./demo/.

    python -m noisevision.demo [--out demo] [--device auto] [--seeds N]

Pre-trains small encoders on generators from four families, probes them and the paper's
baselines on Fashion-MNIST, each over the demo preset's seeds (independent repetitions), and
writes demo/report.md with the means, their 95 % intervals, which differences are significant,
and a chart. Resumable: run it again after an interruption and finished cells are skipped.
"""

from __future__ import annotations

import argparse
import sys
import time

from noisevision.errors import NoisevisionError
from noisevision.logs import install_cli_handler
from noisevision.memory import tune_process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m noisevision.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="demo", help="report folder (default: demo)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="independent repetitions of every cell (default: the demo preset's)",
    )
    args = parser.parse_args(argv)
    tune_process()  # before torch's first allocation (see noisevision.memory)

    from rich.console import Console

    install_cli_handler(Console(soft_wrap=True))

    from noisevision.reproduce import (
        REPRO_PRESETS,
        build_report,
        compare,
        comparison_sentence,
        load_cells,
        mean_text,
        ranked,
        reproduce,
        summarize,
        verdict,
    )

    preset = REPRO_PRESETS.get("demo")
    print(f"noisevision demo: {preset.description}")
    t0 = time.perf_counter()
    try:
        reproduce(preset.name, args.out, device=args.device, seeds=args.seeds)
    except NoisevisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = build_report(args.out)
    main_probe = preset.probe_settings().probes[0]
    all_cells = load_cells(paths["markdown"].parent)
    summaries = summarize(all_cells)
    rows = ranked(summaries, main_probe)
    n = max(r["n"] for r in rows)
    print(
        f"\n{'data':32s} {'family':22s} top-1 % ({main_probe} probe on {rows[0]['dataset']}), "
        f"mean ± 95 % interval over {n} seed{'s' if n != 1 else ''}"
    )
    for r in rows:
        per_seed = "  (" + ", ".join(f"{v:.1f}" for v in r["values"]) + ")" if r["n"] > 1 else ""
        print(f"{r['label']:32s} {r['family']:22s} {mean_text(r)}{per_seed}")
    tested = [c for c in compare(summaries, main_probe) if c["kind"] == "neighbours" and c["n"] >= 2]
    if tested:
        print("\nNeighbours in this ranking, paired t-test over the seeds:")
        for c in tested:
            print(f"  {comparison_sentence(c)}")
    for probe in preset.probe_settings().probes:
        v = verdict(all_cells, probe)
        if v:
            print(v if probe != main_probe else f"\n{v}")
    print(f"\ndone in {time.perf_counter() - t0:.0f} s: open {paths['markdown']} (chart: {paths['chart']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
