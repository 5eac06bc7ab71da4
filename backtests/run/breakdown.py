"""A portfolio run asset by asset: what each asset contributed, and how their returns moved
together (report.json ``portfolio``; the terminal and ``fb.backtest(...).portfolio``).

Per asset, over the run's window: ``first_bar`` (its first bar in the window), ``trades``
(positions held in it), ``win_rate`` (positions with pnl > 0), ``pnl`` (the positions' pnl in
cash, fees included), ``contribution`` (pnl / starting cash: the contributions add up to the
portfolio's total return), ``exposure`` (share of the window's bars that end with a position in
it), ``asset_return`` (its own buy-and-hold: last close / first open in the window - 1).
``correlation``: the Pearson correlation of the assets' bar-to-bar close returns, each pair on
the bars where both have a return.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from flushback.data.basket import basket_column

__all__ = ["portfolio_breakdown"]


def _num(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def portfolio_breakdown(window: pd.DataFrame, trades: pd.DataFrame, symbols: list[str],
                        cash: float) -> dict[str, Any]:
    """The ``portfolio`` section of a portfolio run (see the module docstring)."""
    idx = window.index
    rows = []
    returns = {}
    for sym in symbols:
        close = window[basket_column("close", sym)].astype("float64")
        open_ = window[basket_column("open", sym)].astype("float64")
        mine = trades[trades["symbol"] == sym] if len(trades) else trades
        held = np.zeros(len(idx), dtype=bool)
        for entry, exit_, reason in zip(mine.get("entry_time", []), mine.get("exit_time", []),
                                        mine.get("exit_reason", []), strict=True):
            held |= (idx >= entry) & ((idx <= exit_) if reason == "end_of_data"
                                      else (idx < exit_))
        first = close.first_valid_index()
        last = close.last_valid_index()
        pnl = float(mine["pnl"].sum()) if len(mine) else 0.0
        rows.append({
            "symbol": sym,
            "first_bar": None if first is None else pd.Timestamp(first).isoformat(),
            "trades": int(len(mine)),
            "win_rate": _num((mine["pnl"] > 0).mean()) if len(mine) else None,
            "pnl": pnl,
            "contribution": pnl / cash,
            "exposure": float(held.mean()) if len(idx) else 0.0,
            "asset_return": (None if first is None else
                             _num(close.loc[last] / open_.loc[first] - 1.0)),
        })
        returns[sym] = close / close.shift(1) - 1.0
    corr = pd.DataFrame(returns).corr(min_periods=3)
    return {
        "assets": rows,
        "correlation": {a: {b: _num(corr.at[a, b]) for b in symbols} for a in symbols},
    }
