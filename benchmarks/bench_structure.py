"""Time ``flushback.signals.structure.structure_table`` (swings, Fibonacci levels, fair value
gaps, liquidity levels) on ~50k hourly bars: the real BTCUSDT 1h history when ``--data-dir``
holds it, else a seeded synthetic frame.

    python benchmarks/bench_structure.py --data-dir ../shared/data
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
    args = ap.parse_args()
    frames = {"synthetic 1h": synthetic_frame(50_000, "1h", seed=1)}
    if args.data_dir:
        from flushback.data import load_frame

        frames["BTCUSDT 1h"] = load_frame("BTCUSDT", "1h", data_dir=args.data_dir,
                                          externals=()).frame
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
