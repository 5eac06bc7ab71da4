"""What an engine returns, whichever engine ran: :class:`EngineResult` and its trade table.

Owned here (no backtrader import) so that the reference engine
(:mod:`flushback.strategies.adapter`) and the fast engine (:mod:`flushback.strategies.fast`)
build the very same frames: same columns, same dtypes, same index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["EngineResult", "TRADE_COLUMNS", "FILL_COLUMNS", "equity_frame", "trades_frame"]

TRADE_COLUMNS = [
    "trade_id",
    "signal_time",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "size",
    "entry_fee",
    "exit_fee",
    "funding",
    "pnl",
    "return_pct",
    "bars_held",
    "exit_reason",
    "tranches",
    "mae",
    "mfe",
]
FILL_COLUMNS = ["bar", "size", "price", "fee", "reason"]


@dataclass
class EngineResult:
    """One engine run: per-bar ``equity`` (equity, cash, position), ``trades`` (one row per
    reducing fill, :data:`TRADE_COLUMNS`), ``fills`` (:data:`FILL_COLUMNS`); ``strategy`` is
    the backtrader strategy object for the reference engine, None for the fast engine."""

    equity: pd.DataFrame
    trades: pd.DataFrame
    fills: pd.DataFrame
    strategy: Any = field(repr=False, default=None)
    #: the extra feed columns the run read (signals, levels...), set by the runner
    feed: pd.DataFrame | None = field(repr=False, default=None)


def equity_frame(values: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    """(n x 3) equity, cash, position on the bars' index."""
    values = np.asarray(values, dtype=np.float64).reshape(-1, 3)
    equity = pd.DataFrame(values, index=index[: len(values)],
                          columns=["equity", "cash", "position"])
    equity.index.name = "timestamp"
    return equity


def trades_frame(trades: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
    """The trade table from rows carrying bar positions (``signal_bar``, ``entry_bar``,
    ``exit_bar``) instead of times."""
    if trades.empty:
        trades = pd.DataFrame(columns=TRADE_COLUMNS)
        for col in ("signal_time", "entry_time", "exit_time"):
            trades[col] = pd.Series(dtype="datetime64[ns, UTC]")
    else:
        trades = trades.copy()
        trades["signal_time"] = index[trades.pop("signal_bar").to_numpy(dtype=np.int64)]
        trades["entry_time"] = index[trades.pop("entry_bar").to_numpy(dtype=np.int64)]
        trades["exit_time"] = index[trades.pop("exit_bar").to_numpy(dtype=np.int64)]
        trades = trades[TRADE_COLUMNS]
    trades["bars_held"] = trades["bars_held"].astype("int64")
    trades["trade_id"] = trades["trade_id"].astype("int64")
    trades["tranches"] = trades["tranches"].astype("int64")
    return trades.reset_index(drop=True)
