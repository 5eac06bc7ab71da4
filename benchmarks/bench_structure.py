"""Time ``flushback.signals.structure.structure_table`` (swings, Fibonacci levels, fair value
gaps, liquidity levels) on ~50k hourly bars: the real BTCUSDT 1h history when ``--data-dir``
holds it, else a seeded synthetic frame.

    python benchmarks/bench_structure.py --data-dir ../shared/data [--smoke]

``--smoke``: 2,000 synthetic bars and the real hourly bars of 2026 only, one repeat (a check
that the script runs, not a figure to quote).
"""

from __future__ import annotations

import argparse
import time

from flushback.signals.structure import structure_table
from flushback.signals.testing import synthetic_frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="a tiny size, one repeat")
    args = ap.parse_args()
    bars, start = (2_000, "2026-01-01") if args.smoke else (50_000, None)
    if args.smoke:
        args.repeats = 1
    frames = {"synthetic 1h": synthetic_frame(bars, "1h", seed=1)}
    if args.data_dir:
        from flushback.data import load_frame

        frames["BTCUSDT 1h"] = load_frame("BTCUSDT", "1h", data_dir=args.data_dir,
                                          externals=(), start=start).frame
    print("| data | bars | swing_bars | lookback | best of repeats (s) | bars/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, frame in frames.items():
        for k, lookback in ((3, 120), (5, 500)):
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                structure_table(frame, k, lookback)
                best = min(best, time.perf_counter() - t0)
            print(f"| {label} | {len(frame):,} | {k} | {lookback} | {best:.2f} | "
                  f"{len(frame) / best:,.0f} |")


if __name__ == "__main__":
    main()
