"""Backtests of several windows chained into one account (:func:`stitch_out_of_sample` for
results with frames, :func:`stitch_arrays` for the fast engine's arrays) and the metrics of a
configuration scored on several windows (:func:`score_windows`).

Each window is backtested on its own, flat at its start; its account is rescaled to start
where the previous window's ended, so returns compound and nothing is re-run. Equity, position
units, trade sizes, fees, funding and P&L scale with the account; prices, returns and
excursions do not. Trade ids continue from the previous window's largest id (legs of one
position keep sharing theirs). The walk-forward result, the CPCV paths and a CPCV split's
training segments are all stitched this way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["stitch_out_of_sample", "stitch_with_metrics", "stitch_arrays", "combine",
           "score_windows", "evaluator_cash", "SCALED_TRADE_COLUMNS"]

#: trade columns in account currency (rescaled with the account)
SCALED_TRADE_COLUMNS = ("size", "entry_fee", "exit_fee", "funding", "pnl")


def stitch_out_of_sample(results: Sequence[Any], cash: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Chain backtest results in time order; returns (equity frame, trades)."""
    parts, trades = [], []
    level, blevel = float(cash), float(cash)
    tid = 0
    for res in results:
        eq = res.equity
        scale = level / cash
        bscale = blevel / cash
        part = eq.copy()
        for col in ("equity", "cash", "position"):
            if col in part:
                part[col] = part[col] * scale
        if "benchmark_equity" in part:
            part["benchmark_equity"] = part["benchmark_equity"] * bscale
        parts.append(part)
        level = float(part["equity"].iloc[-1])
        if "benchmark_equity" in part:
            blevel = float(part["benchmark_equity"].iloc[-1])
        t = res.trades.copy()
        if len(t):
            for col in SCALED_TRADE_COLUMNS:
                if col in t:
                    t[col] = t[col] * scale
            if "trade_id" in t:
                ids = t["trade_id"].to_numpy()
                t["trade_id"] = ids + tid
                tid += int(ids.max())
            trades.append(t)
    equity = pd.concat(parts)
    all_trades = pd.concat(trades, ignore_index=True) if trades else results[-1].trades.iloc[0:0]
    return equity, all_trades


def stitch_with_metrics(results: Sequence[Any], cash: float, periods_per_year: int) -> tuple[
        pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """:func:`stitch_out_of_sample` and the metrics of the stitched account (equity, trades,
    position units): (equity frame, trades, metrics)."""
    from flushback.backtests.run.metrics import compute_metrics

    equity, trades = stitch_out_of_sample(results, cash)
    metrics = compute_metrics(equity["equity"], trades, periods_per_year,
                              position=equity.get("position"))
    return equity, trades, metrics


def stitch_arrays(pieces: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], cash: float,
                  fields: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`stitch_out_of_sample` on the fast engine's arrays: ``pieces`` of (equity,
    position units, trade rows with columns ``fields``); returns the same three, stitched."""
    col = {name: i for i, name in enumerate(fields)}
    scaled = [col[c] for c in SCALED_TRADE_COLUMNS if c in col]
    level, tid = float(cash), 0
    eqs, poss, rows = [], [], []
    for eq, pos, tr in pieces:
        scale = level / cash
        eqs.append(eq * scale)
        poss.append(pos * scale)
        level = float(eqs[-1][-1])
        if len(tr):
            t = np.array(tr, dtype=np.float64)
            t[:, scaled] *= scale
            if "trade_id" in col:
                ids = t[:, col["trade_id"]].copy()
                t[:, col["trade_id"]] = ids + tid
                tid += int(ids.max())
            rows.append(t)
    width = len(fields)
    return (np.concatenate(eqs), np.concatenate(poss),
            np.concatenate(rows) if rows else np.empty((0, width)))


def combine(parts: Sequence[Any], cash: float, periods_per_year: int) -> Any:
    """Per-window :class:`~flushback.backtests.optimize.evaluator.Evaluation` s as one
    stitched account: the metrics of the stitched equity and trades when every part kept its
    result, else of the compounded returns (``n_trades`` the parts' sum); the returns one after
    the other; timings summed."""
    from flushback.backtests.optimize.evaluator import Evaluation
    from flushback.backtests.run.metrics import compute_metrics

    r = np.concatenate([np.asarray(p.returns, dtype=np.float64) for p in parts])
    if all(p.result is not None for p in parts):
        _, _, metrics = stitch_with_metrics([p.result for p in parts], cash, periods_per_year)
    else:
        metrics = compute_metrics(pd.Series(cash * np.cumprod(1.0 + r)), None, periods_per_year)
        if all("n_trades" in p.metrics for p in parts):
            metrics["n_trades"] = sum(int(p.metrics["n_trades"] or 0) for p in parts)
    timings: dict[str, float] = {}
    for p in parts:
        for k, v in p.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    return Evaluation(metrics=dict(metrics), returns=r, timings=timings)


def score_windows(ev: Any, params: Mapping[str, Any],
                  windows: Sequence[tuple[pd.Timestamp, pd.Timestamp]]) -> Any:
    """What a trial is scored with: one configuration on one window, or on several as one
    stitched account (an :class:`~flushback.backtests.optimize.evaluator.Evaluation`). An
    evaluator with ``score`` does it itself (its metrics may be narrowed to the scored ones);
    otherwise each window is evaluated and, when there are several, :func:`combine` d."""
    own = getattr(ev, "score", None)
    if own is not None:
        return own(params, windows)
    if len(windows) == 1:
        return ev.evaluate(params, *windows[0])
    parts = [ev.evaluate(params, a, b) for a, b in windows]
    return combine(parts, evaluator_cash(ev), ev.periods_per_year)


def evaluator_cash(ev: Any) -> float:
    """The starting cash of an evaluator's backtests (its spec's; 1 when it has none)."""
    return float(getattr(getattr(ev, "spec", None), "cash", 1.0))
