"""The grid of bench_fast_engine.py in vectorbt and backtesting.py (run with a Python that has
both installed; prints one JSON line). RSI(14) < threshold entries, exit N bars later, BTC-USD
daily 2014-2026, 0.1 % fees, all-in; 10 thresholds x 10 holding periods (``--smoke``: 2 x 2).

    /work/venv-peers/bin/python benchmarks/peers_grid.py ../shared/data [--smoke]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

THRESHOLDS = [10.0, 14.0, 18.0, 22.0, 26.0, 30.0, 34.0, 38.0, 42.0, 46.0]
HOLDS = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89]
#: ``--smoke``: the same 2 x 2 corner bench_fast_engine.py's smoke grid uses
SMOKE_THRESHOLDS, SMOKE_HOLDS = THRESHOLDS[4:6], HOLDS[2:4]


def load(data_dir: str) -> pd.DataFrame:
    df = pd.read_csv(Path(data_dir) / "prices" / "BTC-USD_1d.csv", parse_dates=["timestamp"],
                     index_col="timestamp")
    return df[["open", "high", "low", "close", "volume"]].astype(float)


def run_vectorbt(df: pd.DataFrame) -> dict:
    import vectorbt as vbt

    cold = _vectorbt_grid(vbt, df)  # the first call compiles vectorbt's numba kernels
    warm = _vectorbt_grid(vbt, df)
    return {**warm, "seconds_first_call_incl_compile": cold["seconds"]}


def _vectorbt_grid(vbt, df: pd.DataFrame) -> dict:
    close = df["close"]
    t0 = time.perf_counter()
    rsi = vbt.RSI.run(close, window=14).rsi.to_numpy()
    cols, entries, exits = [], [], []
    for thr in THRESHOLDS:
        e = rsi < thr
        for hold in HOLDS:
            x = np.zeros_like(e)
            x[hold:] = e[:-hold]
            entries.append(e)
            exits.append(x)
            cols.append((thr, hold))
    idx = pd.MultiIndex.from_tuples(cols, names=["thr", "hold"])
    ent = pd.DataFrame(np.column_stack(entries), index=close.index, columns=idx)
    ext = pd.DataFrame(np.column_stack(exits), index=close.index, columns=idx)
    pf = vbt.Portfolio.from_signals(close, ent, ext, fees=0.001, freq="1D")
    sharpe = pf.sharpe_ratio()
    dt = time.perf_counter() - t0
    return {"configs": len(cols), "seconds": dt, "configs_per_second": len(cols) / dt,
            "finite_sharpes": int(np.isfinite(sharpe.to_numpy()).sum())}


def run_backtesting(df: pd.DataFrame) -> dict:
    from backtesting import Backtest, Strategy

    data = df.rename(columns=str.capitalize)

    def rsi(values, n=14):
        s = pd.Series(values)
        d = s.diff()
        up = d.clip(lower=0).ewm(alpha=1 / n, adjust=False).mean()
        dn = (-d.clip(upper=0)).ewm(alpha=1 / n, adjust=False).mean()
        return (100 - 100 / (1 + up / dn)).to_numpy()

    class RsiHold(Strategy):
        thr = 30.0
        hold = 5

        def init(self):
            self.rsi = self.I(rsi, self.data.Close)

        def next(self):
            if not self.position:
                if self.rsi[-1] < self.thr:
                    self.buy()
            elif len(self.data) - 1 - self.trades[-1].entry_bar >= self.hold:
                self.position.close()

    t0 = time.perf_counter()
    n = 0
    for thr in THRESHOLDS:
        for hold in HOLDS:
            bt = Backtest(data, RsiHold, cash=10_000_000, commission=0.001,
                          finalize_trades=True)
            bt.run(thr=thr, hold=hold)
            n += 1
    dt = time.perf_counter() - t0
    return {"configs": n, "seconds": dt, "configs_per_second": n / dt}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir")
    ap.add_argument("--smoke", action="store_true", help="a 2 x 2 grid (a smoke run)")
    args = ap.parse_args()
    if args.smoke:
        THRESHOLDS, HOLDS = SMOKE_THRESHOLDS, SMOKE_HOLDS
    warnings.simplefilter("ignore")
    frame = load(args.data_dir)
    out = {"bars": len(frame)}
    try:
        out["vectorbt"] = run_vectorbt(frame)
    except Exception as exc:  # report, do not hide
        out["vectorbt_error"] = f"{type(exc).__name__}: {exc}"
    try:
        out["backtesting.py"] = run_backtesting(frame)
    except Exception as exc:
        out["backtesting_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
