"""Prices from Yahoo Finance through yfinance (daily and hourly bars).

Handled here, at the boundary:

- yfinance >= 0.2.48 returns MultiIndex columns ``(Price, Ticker)``: flattened to one ticker;
- ``auto_adjust`` is passed explicitly (False: raw OHLC; crypto pairs have no splits or
  dividends, and the adjusted close would silently differ from the exchange close otherwise);
- empty frames (yfinance swallows network errors and returns an empty frame) become
  :class:`SourceUnavailable` with the error yfinance recorded, never an empty dataset;
- HTTP 429 (``YFRateLimitError`` or a recorded "Too Many Requests") and timeouts are retried a
  bounded number of times with exponential backoff;
- Yahoo serves hourly bars for the last 730 days only: an older ``start`` is clamped (and
  reported in ``attrs["clamped_start"]``);
- the last bar is dropped when it is still open (its close is in the future);
- yfinance's own printing and warnings are captured so the CLI shows one line.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from flushback.data.errors import DataError, SourceUnavailable
from flushback.data.intervals import (
    INTERVALS,
)

__all__ = ["MAX_INTRADAY_DAYS", "YahooSource", "normalize_yf_frame"]

MAX_INTRADAY_DAYS = 730
_YF_INTERVAL = {"1d": "1d", "1h": "1h"}


def normalize_yf_frame(df: pd.DataFrame, symbol: str, interval: str) -> pd.DataFrame:
    """A yfinance frame (flat or MultiIndex columns) -> canonical bars (UTC open index)."""
    if isinstance(df.columns, pd.MultiIndex):
        levels = [list(df.columns.get_level_values(i)) for i in range(df.columns.nlevels)]
        tick_level = next((i for i, lv in enumerate(levels) if symbol in lv), None)
        if tick_level is not None:
            df = df.xs(symbol, axis=1, level=tick_level)
        else:
            df = df.droplevel(list(range(1, df.columns.nlevels)), axis=1)
    cols = {str(c).strip().lower().replace(" ", "_"): c for c in df.columns}
    missing = [c for c in ("open", "high", "low", "close") if c not in cols]
    if missing:
        raise DataError(f"yfinance frame lacks {missing}", file=f"yfinance:{symbol}",
                        column=missing[0], hint="yfinance may have changed its output")
    out = pd.DataFrame(
        {c: pd.to_numeric(df[cols[c]], errors="coerce").astype("float64")
         for c in ("open", "high", "low", "close")}
    )
    out["volume"] = (pd.to_numeric(df[cols["volume"]], errors="coerce").astype("float64")
                     if "volume" in cols else np.nan)
    idx = pd.DatetimeIndex(df.index)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    if interval == "1d":
        idx = idx.normalize()
    out.index = idx.as_unit("ns").rename("timestamp")
    out = out[~out.index.duplicated(keep="last")].sort_index()
    return out.dropna(subset=["open", "high", "low", "close"], how="all")


def _utc(ts: Any) -> pd.Timestamp | None:
    if ts is None:
        return None
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


class YahooSource:
    """``fetch_bars(symbol, interval, start, end)``; ``download`` defaults to yfinance's."""

    name = "yfinance"

    def __init__(self, download: Callable[..., Any] | None = None, *, retries: int = 3,
                 backoff: float = 2.0, sleep: Callable[[float], None] = time.sleep,
                 now: Callable[[], pd.Timestamp] | None = None) -> None:
        self._download = download
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.now = now or (lambda: pd.Timestamp.now(tz="UTC"))

    def _call(self, symbol: str, **kw: Any) -> tuple[pd.DataFrame | None, str]:
        """One yfinance call with its noise captured; returns (frame, recorded error)."""
        download = self._download
        if download is None:
            import yfinance as yf

            download = yf.download
        # yfinance logs failures (it does not raise them): collect its records instead of
        # letting them reach the terminal.
        records: list[str] = []

        class _Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                records.append(record.getMessage())

        yflog = logging.getLogger("yfinance")
        saved = (yflog.level, yflog.propagate, list(yflog.handlers))
        handler = _Collect(level=logging.ERROR)
        yflog.handlers = [handler]
        yflog.propagate = False
        yflog.setLevel(logging.ERROR)
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf), \
                    warnings.catch_warnings():
                warnings.simplefilter("ignore")
                df = download(symbol, **kw)
        finally:
            yflog.setLevel(saved[0])
            yflog.propagate = saved[1]
            yflog.handlers = saved[2]
        err = " ".join(r.strip() for r in records if symbol in r or "Error" in r)
        return df, err

    def fetch_bars(self, symbol: str, interval: str = "1d", start: Any = None,
                   end: Any = None) -> pd.DataFrame:
        if interval not in _YF_INTERVAL:
            raise DataError(f"unknown interval {interval!r} for yfinance",
                            hint="yfinance serves 1d and 1h here (resample for 4h)")
        now = self.now()
        t0 = _utc(start)
        clamped = None
        if interval != "1d":
            floor = (now - pd.Timedelta(days=MAX_INTRADAY_DAYS - 1)).normalize()
            if t0 is None or t0 < floor:
                clamped, t0 = t0, floor
        elif t0 is None:
            t0 = pd.Timestamp("2014-09-17", tz="UTC")
        kw = dict(start=t0.strftime("%Y-%m-%d"), interval=_YF_INTERVAL[interval],
                  auto_adjust=False, progress=False, threads=False, multi_level_index=True)
        if end is not None:
            kw["end"] = pd.Timestamp(end).strftime("%Y-%m-%d")
        last_err = ""
        for attempt in range(self.retries + 1):
            try:
                df, err = self._call(symbol, **kw)
            except Exception as exc:  # yfinance raises YFRateLimitError and network errors
                df, err = None, f"{type(exc).__name__}: {exc}"
            retryable = any(s in err for s in ("RateLimit", "Too Many Requests", "429",
                                               "Timeout", "timed out"))
            if df is not None and len(df) > 0:
                break
            last_err = err or "no rows"
            if not retryable or attempt == self.retries:
                break
            self.sleep(self.backoff * (2**attempt))
        else:  # pragma: no cover
            df = None
        if df is None or len(df) == 0:
            short = last_err.split(". ")[0].strip()[:160]
            raise SourceUnavailable(
                f"yfinance returned no {interval} data for {symbol} ({short})",
                file=f"yfinance:{symbol}",
                hint="check the symbol and the network, or use --offline / --data-dir",
            )
        bars = normalize_yf_frame(df, symbol, interval)
        period = INTERVALS[interval]
        if len(bars) and bars.index[-1] + period > now:
            bars = bars.iloc[:-1]  # still-open bar
        if len(bars) == 0:
            raise SourceUnavailable(f"yfinance returned only an unfinished {interval} bar for "
                                    f"{symbol}", file=f"yfinance:{symbol}", hint="retry later")
        bars.attrs["source"] = self.name
        if interval != "1d" and (clamped is None or clamped < t0):
            bars.attrs["clamped_start"] = str(t0)
        return bars
