"""Per-bar inputs a strategy reads besides its signals, computed in pandas and shared by both
engines: the realised volatility for volatility-target sizing, the bar length in hours for
funding (re-exported from :mod:`flushback.data.intervals`), which extra columns each built-in
strategy type puts on its feed, and the checks bars pass before they reach either engine
(:func:`validate_bars`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from flushback.data.errors import DataError
from flushback.data.intervals import bar_hours

__all__ = ["realised_volatility", "bar_hours", "builtin_feed_columns", "validate_bars"]


def realised_volatility(close: pd.Series, lookback: int, periods_per_year: int) -> pd.Series:
    """Annualised std (ddof=1) of the last ``lookback`` log returns, known at each bar close."""
    logret = np.log(close.astype("float64")).diff()
    return logret.rolling(lookback, min_periods=lookback).std(ddof=1) * math.sqrt(
        periods_per_year
    )


def builtin_feed_columns(strategy_type: str, frame: pd.DataFrame, cfg: dict,
                         periods_per_year: int) -> dict:
    """The extra columns of a built-in strategy type (the classes' ``feed_columns``)."""
    if strategy_type == "contrarian":
        from flushback.strategies.config import validate_strategy_params
        from flushback.strategies.levels import level_columns

        cfg = validate_strategy_params(strategy_type, cfg)
        cols: dict = dict(level_columns(frame, cfg))
        if cfg["sizing"] == "volatility":
            cols["vol"] = realised_volatility(frame["close"], int(cfg["vol_lookback"]),
                                              periods_per_year)
        return cols
    if strategy_type == "fear_greed_accumulation" and "fng" in frame.columns:
        return {"fng": frame["fng"]}
    return {}


def validate_bars(frame: pd.DataFrame) -> None:
    """Refuse bars that must never reach backtrader (DataError naming the timestamps)."""
    idx = frame.index
    if not isinstance(idx, pd.DatetimeIndex) or idx.tz is None:
        raise DataError("bars need a tz-aware (UTC) DatetimeIndex of bar open times",
                        hint="load frames with flushback.data.load_frame")
    if not idx.is_monotonic_increasing or idx.has_duplicates:
        dup = idx[idx.duplicated()]
        raise DataError("bar timestamps are unsorted or duplicated", timestamps=list(dup),
                        hint="sort and de-duplicate the bars")
    missing = [c for c in ("open", "high", "low", "close") if c not in frame.columns]
    if missing:
        raise DataError(f"bars lack column(s) {', '.join(missing)}", column=missing[0])
    ohlc = frame[["open", "high", "low", "close"]].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(ohlc).all(axis=1) | (ohlc <= 0).any(axis=1)
    if bad.any():
        raise DataError("bars with missing, zero or negative prices", timestamps=list(idx[bad]),
                        hint="repair the source data; flushback never fills prices")
    hl = frame["high"].to_numpy() < frame["low"].to_numpy()
    if hl.any():
        raise DataError("bars with high < low", column="high", timestamps=list(idx[hl]))
