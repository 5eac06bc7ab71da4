"""Time one backtest of the BTC daily spec and of the 4h-RSI hourly spec; write the figures.

    python benchmarks/bench_backtest.py --data-dir ../shared/data --write benchmarks/README.md
    python benchmarks/bench_backtest.py --data-dir ../shared/data --quick   # a smoke run

Each case runs in a fresh process (so peak memory is that case's own). Per case it measures:
loading the data (``prepare``), the whole ``run_backtest`` (signals + strategy + benchmark +
metrics), the strategy's backtrader run alone (bars per second, best of ``--repeat``), and the
peak resident memory of the process (``ru_maxrss``) before and after the run. For context, the
floor is an empty ``bt.Strategy`` over the same numpy feed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    # BTC daily, the whole Yahoo history (2014-09-17 .. 2026-06-04); F&G exists from 2018-02.
    "fear_flush_btc_daily": ["data.start=2014-09-17"],
    # 4h RSI on hourly bars, 2020-2026: Binance BTCUSDT 1h is the only hourly file reaching
    # back to 2020 (2020-10-07 18:00 .. 2026-02-02 10:00).
    "rsi4h_btc_hourly": ["data.symbol=BTCUSDT"],
}
#: ``--quick``: one daily case over a short window, one repeat (checks the script still runs)
QUICK_CASES = {"fear_flush_btc_daily": ["data.start=2024-01-01"]}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run_case(name: str, data_dir: str, repeat: int, quick: bool = False) -> dict:
    import backtrader as bt

    from flushback.backtests.run import runner as R
    from flushback.backtests.run.spec import load_spec
    from flushback.strategies.adapter import make_feed

    rss0 = _rss_mb()
    overrides = (QUICK_CASES if quick else CASES)[name]
    spec = load_spec(name, overrides=overrides)
    t = time.perf_counter()
    prepared = R.prepare(spec, data_dir=data_dir)
    t_load = time.perf_counter() - t
    window = prepared.window
    n = len(window)

    t = time.perf_counter()
    result = R.run_backtest(spec, prepared=prepared)
    t_total = time.perf_counter() - t
    rss_backtest = _rss_mb()

    import tempfile

    from flushback.backtests.run.folders import write_run

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        write_run(result, runs_dir=tmp)
        t_write = time.perf_counter() - t

    signals = R.compute_signals(spec, prepared.frame)
    engine = []
    for _ in range(repeat):
        t = time.perf_counter()
        R.run_strategy_window(spec.strategy, prepared.frame, window, signals, spec,
                              result.periods_per_year)
        engine.append(time.perf_counter() - t)

    class Empty(bt.Strategy):
        def next(self) -> None:
            pass

    floor = []
    for _ in range(repeat):
        cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
        cerebro.adddata(make_feed(window))
        cerebro.addstrategy(Empty)
        t = time.perf_counter()
        cerebro.run()
        floor.append(time.perf_counter() - t)
    return {
        "case": name,
        "overrides": overrides,
        "symbol": spec.data.symbol,
        "interval": spec.data.interval,
        "start": str(window.index[0]),
        "end": str(window.index[-1]),
        "bars": n,
        "trades": int(result.metrics["n_trades"]),
        "load_s": t_load,
        "run_backtest_s": t_total,
        "write_run_s": t_write,
        "strategy_s_best": min(engine),
        "strategy_bars_per_s": n / min(engine),
        "empty_strategy_bars_per_s": n / min(floor),
        "rss_before_mb": rss0,
        "rss_backtest_mb": rss_backtest,
        "rss_peak_mb": _rss_mb(),
    }


def _markdown(rows: list[dict], command: str) -> str:
    lines = [
        "# Backtest benchmarks",
        "",
        "Produced by:",
        "",
        f"    {command}",
        "",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.platform()}; backtrader {_bt_version()}. Timings are wall-clock on a shared "
        f"machine (1-minute load average {os.getloadavg()[0]:.1f} when the run ended): treat "
        "them as orders of magnitude; bars/s is the best of the repeats.",
        "",
        "| case | data | bars | trades | load (s) | run_backtest (s) | write_run (s) "
        "| strategy run (s) | strategy bars/s | empty-strategy bars/s | peak RSS after "
        "run_backtest (MB) | peak RSS after write_run (MB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} (`--set {' '.join(r['overrides'])}`) | {r['symbol']} {r['interval']} "
            f"{r['start'][:16]} .. {r['end'][:16]} | {r['bars']:,} | {r['trades']} | "
            f"{r['load_s']:.2f} | {r['run_backtest_s']:.2f} | {r['write_run_s']:.2f} | "
            f"{r['strategy_s_best']:.2f} | "
            f"{r['strategy_bars_per_s']:,.0f} | {r['empty_strategy_bars_per_s']:,.0f} | "
            f"{r['rss_backtest_mb']:,.0f} (after imports: {r['rss_before_mb']:,.0f}) | "
            f"{r['rss_peak_mb']:,.0f} |"
        )
    lines += [
        "",
        "- *load*: `prepare()` — CSV parsing, validation, point-in-time joins of the externals.",
        "- *run_backtest*: signals (pandas) + the strategy + the buy-and-hold benchmark "
        "(backtrader) + metrics; the benchmark is cached on the `Prepared` object, so "
        "optimizer trials pay only signals + strategy.",
        "- *write_run*: report.json (validated by the report schema), trades.csv, equity.csv "
        "and report.html (plotly), written atomically.",
        "- *strategy run*: the strategy's backtrader run alone (best of the repeats); "
        "*empty-strategy*: a `bt.Strategy` with an empty `next()` over the same numpy feed "
        "(with `cheat_on_open`), the floor for this machine.",
        "- *peak RSS*: `ru_maxrss` of the fresh process that ran the case (imports alone take "
        "the amount in brackets); the report's HTML charts dominate the write_run peak.",
        "",
    ]
    return "\n".join(lines)


def _bt_version() -> str:
    import backtrader as bt

    return bt.__version__


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("FLUSHBACK_DATA_DIR", "../shared/data"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", default=None, help="write the Markdown table to this file")
    ap.add_argument("--quick", action="store_true",
                    help="one daily case over a short window, one repeat (a smoke run)")
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.repeat = 1
    if args.case:
        print(json.dumps(run_case(args.case, args.data_dir, args.repeat, args.quick)))
        return 0
    rows = []
    for name in QUICK_CASES if args.quick else CASES:
        proc = subprocess.run(
            [sys.executable, __file__, "--case", name, "--data-dir", args.data_dir,
             "--repeat", str(args.repeat), *(["--quick"] if args.quick else [])],
            capture_output=True, text=True, check=True,
        )
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1], indent=2))
    command = "python benchmarks/bench_backtest.py --data-dir ../shared/data --write " + (
        args.write or "benchmarks/README.md")
    text = _markdown(rows, command)
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
