"""flushback: backtest contrarian crypto signals -- buy the flush, with evidence.

The notebook surface (the CLI calls the same functions, so the two cannot disagree)::

    import flushback as fb

    res = fb.backtest("fear_flush_btc_daily", set={"strategy.take_profit": 0.2})
    res.metrics, res.trades, res.equity      # pandas Series / DataFrames
    res.plot()                               # plotly figure, inline in Jupyter
    res.to_html()                            # the self-contained report

    # your own prices and boolean entries (decided at a bar's close, filled at the next open)
    res = fb.backtest(data=frame, entries=frame["close"] < 20_000, exits=..., strategy={...})

    fb.optimize("fear_flush_btc_daily", n_trials=300, walk_forward=3, seed=42)
    fb.events.study(horizons=(7, 30, 90))
    fb.data.load("BTC-USD", "1d", data_dir="../shared/data")
    fb.signals.get("oversold_rsi", period=14)

Importing this package is light: the engines, optuna and plotly load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["Result", "backtest", "backtest_frame", "data", "events", "optimize", "signals",
           "strategies"]

_LAZY = {
    "backtest": ("flushback.backtests.api", "backtest"),
    "backtest_frame": ("flushback.backtests.api", "backtest_frame"),
    "Result": ("flushback.backtests.api", "Result"),
    "optimize": ("flushback.backtests.optimize.study", "optimize_spec"),
}
_MODULES = {"data", "signals", "strategies", "events", "backtests"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    if name in _MODULES:
        return importlib.import_module(f"flushback.{name}")
    raise AttributeError(f"module 'flushback' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(globals()))
