"""Level exits of the contrarian strategy: the per-bar level prices, computed in pandas.

This module owns the *arrays* the level exits read (no backtrader import, so any engine can
use them): :func:`level_columns` turns the strategy's configuration and the bars into the
feed columns ``level_tp`` (take-profit price) and ``level_sl`` (stop price), each the value
known at the bar's close, from :func:`flushback.signals.structure.structure_table`. The rule
that reads them (which bar's value is in force, fill at the next open) is in
``flushback.strategies.contrarian`` and docs/strategies.md; :func:`levels_in_force` applies
that rule to a finished run's trades for the report's price chart.

Take-profit kinds (``level_take_profit``):

- ``"retracement"``: ``drop_low + level_retracement * (swing_high - drop_low)`` -- a
  retracement of the drop from the last confirmed swing high to the lowest low since it;
- ``"gap"``: the bottom of the nearest open bearish fair value gap above the close;
- ``"swing_high"``: the last confirmed swing high.

Stop kinds (``level_stop``), each ``(1 - level_stop_buffer)`` below its level:

- ``"swing_low"``: the last confirmed swing low (it may be above the price after a break);
- ``"next_level"``: the highest level below the close among the confirmed swing lows of the
  window and the Fibonacci levels of the last swing (``next_level_below``).

The first ``structure_warmup(swing_bars, swing_lookback)`` bars are NaN (no level).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from flushback.signals.base import cached_part
from flushback.signals.structure import structure_table, structure_warmup
from flushback.strategies.config import validate_strategy_params

__all__ = ["LEVEL_COLUMNS", "level_columns", "level_exits_on", "level_warmup", "levels_in_force"]

LEVEL_COLUMNS = ("level_tp", "level_sl")


def _complete(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The contrarian configuration with its declared defaults filled in."""
    return validate_strategy_params("contrarian", cfg)


def level_exits_on(cfg: Mapping[str, Any]) -> bool:
    """Whether the configuration uses a level exit."""
    cfg = _complete(cfg)
    return cfg["level_take_profit"] != "off" or cfg["level_stop"] != "off"


def level_warmup(cfg: Mapping[str, Any]) -> int:
    """Bars of history the level columns need (0 without level exits)."""
    cfg = _complete(cfg)
    if not level_exits_on(cfg):
        return 0
    return structure_warmup(int(cfg["swing_bars"]), int(cfg["swing_lookback"]))


def level_columns(frame: pd.DataFrame, cfg: Mapping[str, Any]) -> dict[str, pd.Series]:
    """``{"level_tp": ..., "level_sl": ...}`` (only those the configuration uses): the level
    price known at each bar's close, NaN where there is none."""
    cfg = _complete(cfg)
    if not level_exits_on(cfg):
        return {}
    k, lookback = int(cfg["swing_bars"]), int(cfg["swing_lookback"])
    tab = cached_part(frame, ("structure", k, lookback),
                      lambda: structure_table(frame, k, lookback))
    out: dict[str, pd.Series] = {}
    tp = cfg["level_take_profit"]
    if tp == "retracement":
        r = float(cfg["level_retracement"])
        out["level_tp"] = tab["drop_low"] + r * (tab["swing_high"] - tab["drop_low"])
    elif tp == "gap":
        out["level_tp"] = tab["gap_above"].astype("float64")
    elif tp == "swing_high":
        out["level_tp"] = tab["swing_high"].astype("float64")
    sl = cfg["level_stop"]
    if sl != "off":
        base = tab["swing_low"] if sl == "swing_low" else tab["next_level_below"]
        out["level_sl"] = base.astype("float64") * (1.0 - float(cfg["level_stop_buffer"]))
    w = level_warmup(cfg)
    for name, s in out.items():
        s = s.astype("float64").copy()
        s.iloc[:w] = np.nan
        s.name = name
        out[name] = s
    return out


def levels_in_force(levels: pd.DataFrame, trades: pd.DataFrame, update: str) -> pd.DataFrame:
    """The take-profit/stop level each bar's close was tested against while in a trade (NaN
    elsewhere): the entry signal bar's value (``update = "fixed"``) or the previous bar's
    (``"moving"``), on the bars from the entry fill to the bar before the exit fill (the last
    bar for a position still open). ``levels`` holds ``level_tp``/``level_sl`` on the bars;
    ``trades`` the run's trades (``signal_time``, ``entry_time``, ``exit_time``)."""
    out = pd.DataFrame(np.nan, index=levels.index,
                       columns=[c for c in LEVEL_COLUMNS if c in levels.columns])
    if trades is None or trades.empty or out.columns.empty:
        return out
    idx = levels.index
    for _, t in trades.drop_duplicates("trade_id").iterrows():
        e = idx.get_indexer([t["entry_time"]])[0]
        s = idx.get_indexer([t["signal_time"]])[0]
        x = idx.get_indexer([t["exit_time"]])[0] if pd.notna(t["exit_time"]) else -1
        if e < 0:
            continue
        last = (x - 1 if t.get("exit_reason") != "end_of_data" else x) if x >= 0 else len(idx) - 1
        if last < e:
            continue
        for c in out.columns:
            vals = levels[c].to_numpy()
            if update == "fixed":
                held = np.full(last + 1 - e, vals[s] if s >= 0 else np.nan)
            else:
                held = vals[e - 1:last].copy()
            if c == "level_tp":
                held[~(held > float(t["entry_price"]))] = np.nan
            out.iloc[e:last + 1, out.columns.get_loc(c)] = held
    return out
