"""Bar intervals and durations: the one home of flushback's time arithmetic.

It owns the supported bar intervals (:data:`INTERVALS`), parsing an interval or a duration
(``"1h"``, ``"4h"``, ``"1d"``, ``"48h"``), their short labels, a frame's bar interval and bar
length in hours, and the annualisation a bar interval implies (:func:`periods_per_year`: crypto
trades around the clock, so 365 daily bars, 2190 4-hour bars and 8760 hourly bars make a year;
never 252). It sits in the bottom layer (``flushback.data``) so that signals, strategies and
backtests all use these and none keeps its own copy.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd

from flushback.data.errors import ConfigError, DataError

__all__ = [
    "INTERVALS",
    "bar_hours",
    "bar_interval",
    "bars_for",
    "days_to_bars",
    "duration",
    "fmt_td",
    "frame_step",
    "hours",
    "interval_name",
    "nonnegative_duration",
    "ns_values",
    "parse_interval",
    "periods_per_year",
    "td_label",
]

INTERVALS: dict[str, pd.Timedelta] = {
    "1h": pd.Timedelta(hours=1),
    "4h": pd.Timedelta(hours=4),
    "8h": pd.Timedelta(hours=8),
    "1d": pd.Timedelta(days=1),
}

_HOUR = pd.Timedelta(hours=1)
_YEAR_HOURS = 8760.0  # 365 days of 24 hours


def parse_interval(interval: str | pd.Timedelta, *, file: str | None = None) -> pd.Timedelta:
    """``"1h" | "4h" | "8h" | "1d"`` (or a Timedelta) -> Timedelta; anything else is a DataError."""
    if isinstance(interval, pd.Timedelta):
        return interval
    key = str(interval).strip().lower()
    if key in INTERVALS:
        return INTERVALS[key]
    raise DataError(
        f"unknown interval {interval!r}",
        file=file,
        hint=f"use one of {', '.join(INTERVALS)}",
    )


def interval_name(td: pd.Timedelta) -> str | None:
    """The name of a supported interval (``"4h"``), or None when ``td`` is not one."""
    return next((name for name, value in INTERVALS.items() if value == td), None)


def duration(text: Any) -> pd.Timedelta:
    """``"1h"``, ``"4h"``, ``"24h"``, ``"1d"``, ``"30min"`` (or a timedelta) as a Timedelta;
    ConfigError otherwise."""
    if isinstance(text, pd.Timedelta | dt.timedelta | np.timedelta64):
        return pd.Timedelta(text)
    t = str(text).strip().lower()
    try:
        if t.endswith("d") and t[:-1].isdigit():
            return pd.Timedelta(days=int(t[:-1]))
        if t.endswith("h") and t[:-1].isdigit():
            return pd.Timedelta(hours=int(t[:-1]))
        if t.endswith("min") and t[:-3].isdigit():
            return pd.Timedelta(minutes=int(t[:-3]))
    except ValueError:  # pragma: no cover
        pass
    raise ConfigError(f"{text!r} is not a duration", hint="use e.g. 1h, 4h, 24h or 1d")


def nonnegative_duration(value: Any, what: str) -> pd.Timedelta:
    """A duration setting (``"48h"``, a Timedelta) that must be >= 0; ConfigError otherwise."""
    try:
        td = pd.Timedelta(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{what} = {value!r} is not a duration",
                          hint="use e.g. '0h', '12h', '48h' or '1d'") from None
    if td < pd.Timedelta(0):
        raise ConfigError(f"{what} = {value!r} is negative",
                          hint="a value cannot be known before its period ends: use >= 0")
    return td


def fmt_td(td: pd.Timedelta) -> str:
    """A duration as a short string in seconds, minutes or hours: 0s, 1h, 48h, 90min."""
    secs = int(pd.Timedelta(td).total_seconds())
    if secs == 0:
        return "0s"
    if secs % 3600 == 0:
        return f"{secs // 3600}h"
    if secs % 60 == 0:
        return f"{secs // 60}min"
    return f"{secs}s"


def td_label(td: pd.Timedelta) -> str:
    """A duration in whole days (``"2d"``) or hours (``"4h"``) where it is one, for messages."""
    if td % pd.Timedelta(days=1) == pd.Timedelta(0):
        return f"{td.days}d"
    if td % _HOUR == pd.Timedelta(0):
        return f"{int(td / _HOUR)}h"
    return str(td)


def bars_for(span: pd.Timedelta | str, interval: pd.Timedelta, *, what: str = "window") -> int:
    """How many bars of ``interval`` make ``duration``; ConfigError unless it is a whole number."""
    span = duration(span)
    ratio = span / interval
    if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
        raise ConfigError(
            f"{what} {td_label(span)} is not a whole number of {td_label(interval)} bars",
            hint=f"use a {what} that is a multiple of the bar interval {td_label(interval)}",
        )
    return int(round(ratio))


def days_to_bars(days: int, interval: pd.Timedelta) -> int:
    """Bars of ``interval`` that cover ``days`` days, rounded up, at least 1."""
    return max(1, math.ceil(pd.Timedelta(days=days) / interval))


def hours(td: pd.Timedelta) -> float:
    """A duration in hours."""
    return pd.Timedelta(td).total_seconds() / 3600.0


def ns_values(times: Any) -> np.ndarray:
    """int64 nanoseconds since the epoch, whatever the resolution (pandas 3 defaults to us)."""
    return pd.DatetimeIndex(times).as_unit("ns").asi8


def bar_interval(frame: pd.DataFrame) -> pd.Timedelta:
    """The frame's bar interval: ``frame.attrs["interval"]`` or, failing that, the most common
    spacing of its index."""
    iv = frame.attrs.get("interval")
    if iv:
        return parse_interval(iv)
    idx = pd.DatetimeIndex(frame.index)
    if len(idx) < 2:
        raise DataError("cannot infer the bar interval from fewer than two bars",
                        column="timestamp", hint='set frame.attrs["interval"] (e.g. "1d")')
    diffs = np.diff(ns_values(idx))
    diffs = diffs[diffs > 0]
    if len(diffs) == 0:
        raise DataError("cannot infer the bar interval: timestamps do not increase",
                        column="timestamp", hint="sort and de-duplicate the index")
    values, counts = np.unique(diffs, return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]), unit="ns")


def frame_step(frame: pd.DataFrame) -> pd.Timedelta:
    """Like :func:`bar_interval`, but the declared interval may be any duration (``"7h"``), not
    only one the data layer loads: for studies over frames a user built."""
    iv = frame.attrs.get("interval")
    return duration(iv) if iv else bar_interval(frame)


def bar_hours(frame: pd.DataFrame) -> float:
    """The bar length in hours: the declared interval (else the most common spacing); a lone
    bar without a declared interval counts as a day."""
    if frame.attrs.get("interval") or len(frame.index) > 1:
        return hours(bar_interval(frame))
    return 24.0


def periods_per_year(interval: str | pd.Timedelta) -> int:
    """Bars per year for ``interval`` (``"1d"`` -> 365, ``"4h"`` -> 2190, ``"1h"`` -> 8760):
    crypto trades around the clock."""
    try:
        td = duration(interval)
    except ConfigError:  # another pandas spelling ("2 days", "90T")
        td = pd.Timedelta(interval)
    return int(round(_YEAR_HOURS / hours(td)))
