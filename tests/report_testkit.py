"""A seeded generator of small, schema-valid reports for the report and compare tests.

Prices are a seeded random walk with planted flushes (a sharp drop with fear and a liquidation
spike) on given dates; the "strategy" buys at the next bar's open after Fear & Greed < 20 and
holds a fixed number of bars, all-in, no costs; the benchmark buys and holds from the first
open. Everything is computed here in a few lines so tests can check the renderers against it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flushback.backtests.reports.schema import build_report

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # pragma: no cover - import helper for sibling modules
    sys.path.insert(0, str(TESTS_DIR))

DEFAULT_FLUSHES = ("2021-05-19", "2021-09-07", "2022-06-13")


def make_report(
    seed: int = 0,
    *,
    symbol: str = "BTC-USD",
    interval: str = "1d",
    start: str = "2021-01-01",
    n: int = 600,
    hold: int = 10,
    threshold: float = 20.0,
    flushes: tuple[str, ...] = DEFAULT_FLUSHES,
    spec_name: str = "synthetic_fear",
    kind: str = "backtest",
    optimization: dict[str, Any] | None = None,
    audit: dict[str, Any] | None = None,
    with_events_section: bool = True,
    cash: float = 10_000.0,
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    freq = {"1d": "1D", "4h": "4h", "1h": "1h"}[interval]
    idx = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="timestamp")
    rets = rng.normal(0.0008, 0.03, n)
    fng = np.clip(50 + np.cumsum(rng.normal(0, 3, n)) * 0.3, 25, 90)
    liq_long = rng.lognormal(17, 0.6, n)
    liq_short = rng.lognormal(16.5, 0.6, n)
    for day in flushes:
        t = pd.Timestamp(day, tz="UTC")
        if idx[0] <= t <= idx[-1]:
            i = int(idx.get_indexer([t], method="nearest")[0])
            rets[i] -= 0.12
            rets[i + 1 : i + 8] += 0.01
            fng[max(i - 1, 0) : i + 3] = rng.uniform(8, 15, len(fng[max(i - 1, 0) : i + 3]))
            liq_long[i] *= 12
    close = 30_000 * np.exp(np.cumsum(rets))
    open_ = np.concatenate([[30_000.0], close[:-1]]) * np.exp(rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, n))
    fng_s = pd.Series(fng.round(), index=idx)
    fng_s.iloc[:3] = np.nan  # sentiment starts later than prices
    frame = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "fng": fng_s,
         "liq_long_usd": liq_long, "liq_short_usd": liq_short},
        index=idx,
    )
    trigger = (frame["fng"] < threshold).fillna(False)
    # simulate: enter next open after a trigger when flat, exit at the open `hold` bars later
    trades = []
    equity = np.empty(n)
    cash_now, units, entry_i, entry_px, sig_i = cash, 0.0, -1, 0.0, -1
    for i in range(n):
        if units > 0 and i == entry_i + hold:
            px = open_[i]
            cash_now = units * px
            trades.append({
                "trade_id": len(trades) + 1, "signal_time": idx[sig_i], "entry_time": idx[entry_i],
                "entry_price": entry_px, "exit_time": idx[i], "exit_price": px, "size": units,
                "entry_fee": 0.0, "exit_fee": 0.0, "pnl": units * (px - entry_px),
                "return_pct": px / entry_px - 1.0, "bars_held": hold, "exit_reason": "time",
                "mae": float(low[entry_i:i].min() / entry_px - 1.0),
                "mfe": float(high[entry_i:i].max() / entry_px - 1.0),
            })
            units = 0.0
        if units == 0 and i > 0 and trigger.iloc[i - 1] and i + hold < n:
            entry_i, entry_px, sig_i = i, open_[i], i - 1
            units = cash_now / entry_px
            cash_now = 0.0
        equity[i] = cash_now + units * close[i]
    bench = cash / open_[0] * close
    eq = pd.DataFrame({"equity": equity, "benchmark_equity": bench}, index=idx)

    def metrics(values: np.ndarray) -> dict[str, float]:
        r = np.diff(values) / values[:-1]
        sharpe = float(r.mean() / r.std(ddof=1) * np.sqrt(365))
        dd = float((values / np.maximum.accumulate(values) - 1).min())
        return {"total_return": float(values[-1] / values[0] - 1), "sharpe": sharpe,
                "max_drawdown": dd}

    m = metrics(equity)
    m["n_trades"] = len(trades)
    events_section = None
    if with_events_section:
        events_section = {
            "events": [{"event_id": f"ev{k}", "name": f"planted flush {k}", "date": d}
                       for k, d in enumerate(flushes)],
        }
    return build_report(
        run_id=f"synthetic-{spec_name}-{seed}",
        spec_name=spec_name,
        kind=kind,
        created_at="2026-03-01T12:00:00Z",
        config={"data": {"symbol": symbol, "interval": interval},
                "signals": {"entry": {"type": "extreme_fear", "threshold": threshold}},
                "strategy": {"type": "contrarian", "hold_bars": hold}, "cash": cash},
        data={"symbol": symbol, "interval": interval, "start": idx[0], "end": idx[-1],
              "fingerprints": {f"prices/{symbol}_{interval}": "ab" * 32,
                               "sentiment/fng": "cd" * 32},
              "sources": {"prices": "synthetic"}},
        periods_per_year={"1d": 365, "4h": 2190, "1h": 8760}[interval],
        metrics=m,
        benchmark={"name": "buy_and_hold", "metrics": metrics(bench)},
        trades=pd.DataFrame(trades),
        equity=eq,
        series=frame,
        triggers=pd.DataFrame({"entry": trigger}),
        events=events_section,
        optimization=optimization,
        audit=audit,
    )


def make_audit_section(passed: bool = True) -> dict[str, Any]:
    """An audit section shaped like ``flushback.backtests.audit.run`` writes it."""
    verdict = "pass" if passed else "fail"
    return {
        "schema_version": "1", "passed": passed, "verdict": verdict, "spec_name": "synthetic",
        "run_id": None, "created_at": "2026-03-01T12:00:00Z", "bars": 600,
        "window": {"start": "2021-01-01", "end": None}, "settings": {"trades": 20},
        "checks": [
            {"name": "lookahead", "title": "Look-ahead", "verdict": verdict,
             "summary": "3 truncated re-runs", "params": {}, "columns": ["bar", "column"],
             "rows": [{"bar": "2021-05-19", "column": "entry", "truncated": 1.0}],
             "findings": [] if passed else [{"bar": "2021-05-19", "column": "entry"}]},
            {"name": "warmup", "title": "Warm-up", "verdict": "pass",
             "summary": "1 signal converges", "params": {}, "columns": [], "rows": [],
             "findings": []},
        ],
    }


def make_optimization_section(seed: int = 0, n_trials: int = 30, n_folds: int = 3
                              ) -> dict[str, Any]:
    """An optimization section shaped like ``flushback.backtests.optimize.section`` writes it."""
    rng = np.random.default_rng(seed)
    trials = []
    for fold in range(1, n_folds + 1):
        for k in range(n_trials):
            thr = float(rng.uniform(5, 40))
            hold = int(rng.integers(3, 30))
            value = float(1.5 - ((thr - 18) / 15) ** 2 - ((hold - 12) / 20) ** 2
                          + rng.normal(0, 0.1))
            trials.append({"fold": fold, "number": k, "state": "COMPLETE", "values": [value],
                           "params": {"signals.entry.threshold": thr, "strategy.hold_bars": hold,
                                      "strategy.mode": ["a", "b"][k % 2]}})
    trials.append({"fold": n_folds, "number": n_trials, "state": "FAIL", "values": None,
                   "params": {}})
    last = [t for t in trials if t["fold"] == n_folds and t["values"]]
    best = max(last, key=lambda t: t["values"][0])
    is_vs_oos = [{"fold": f, "train": ["2021-01-01T00:00:00Z", f"2021-0{f + 3}-01T00:00:00Z"],
                  "test": [f"2021-0{f + 3}-02T00:00:00Z", f"2021-0{f + 5}-01T00:00:00Z"],
                  "in_sample": {"sharpe": 1.4 - 0.1 * f, "total_return": 0.3},
                  "out_of_sample": {"sharpe": 0.6 + 0.05 * f, "total_return": 0.1},
                  "dsr": 0.5 + 0.1 * f, "pbo": 0.4 - 0.05 * f} for f in range(1, n_folds + 1)]
    return {
        "result_is_out_of_sample": True,
        "note": "metrics of this report are the stitched out-of-sample test windows",
        "study": {"name": "synthetic", "objectives": ["max_sharpe"], "n_trials": n_trials,
                  "sampler": "tpe", "seed": seed},
        "best_params": best["params"],
        "best_params_fold": n_folds,
        "trials": trials,
        "param_importances": {"signals.entry.threshold": 0.7, "strategy.hold_bars": 0.25,
                              "strategy.mode": 0.05},
        "is_vs_oos": is_vs_oos,
        "dsr": {"dsr": 0.81, "n_trials": n_trials, "kurtosis_raw": 5.2},
        "pbo": {"pbo": 0.23, "n_splits": 16},
    }


def unpack_page(text: str) -> tuple[str, dict[str, Any]]:
    """(plotly.js, chart document) embedded in a report page, inflated the way the page's own
    script does it (base64, then gzip); the chart document's shared axes put back into every
    trace, so ``doc["figures"][div_id]["data"][i]["x"]`` is the plain list."""
    import base64
    import gzip
    import json
    import re

    def block(block_id: str) -> bytes:
        m = re.search(rf'<script type="application/octet-stream" id="{block_id}">([^<]*)'
                      r"</script>", text)
        assert m, f"no {block_id} block in the page"
        return gzip.decompress(base64.b64decode(m.group(1)))

    doc = json.loads(block("fb-figures"))
    for fig in doc["figures"].values():
        for trace in fig["data"]:
            if isinstance(trace.get("x"), dict) and "shared" in trace["x"]:
                trace["x"] = doc["shared"][trace["x"]["shared"]]
    return block("fb-plotly-js").decode("utf-8"), doc


def strip_embedded(text: str) -> str:
    """The page without its embedded (compressed) blocks: the markup and scripts we wrote."""
    import re

    return re.sub(r'(<script type="application/octet-stream" id="[^"]+">)[^<]*(</script>)',
                  r"\1\2", text)
