"""How a number, a percentage or a time reads on a report page: the formatting shared by
``report.html``, the Markdown summary, ``compare`` and the CLI tables. Pure functions of a
value; no HTML is built here (escaping is the templates' job)."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

__all__ = ["esc", "fmt", "pct", "fmt_metric", "sort_value", "naive_utc", "PERCENT_KEYS", "words",
           "fmt_time", "benchmark_label"]

# Fractions shown as percentages (units as documented in flushback.backtests.run.metrics).
PERCENT_KEYS = frozenset({
    "total_return", "cagr", "volatility", "max_drawdown", "exposure", "win_rate", "avg_win_pct",
    "avg_loss_pct", "expectancy_pct", "best_trade", "worst_trade", "avg_mae", "worst_mae",
    "avg_mfe", "best_mfe", "return_pct", "mae", "mfe", "trade_return", "strategy_return",
    "benchmark_return",
})

UNSIGNED_PERCENT_KEYS = frozenset({"volatility", "exposure", "win_rate"})


def esc(value: Any) -> str:
    """``value`` as HTML text (None -> empty)."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """A number for people: ints as ints, floats with ``digits`` significant digits (thousands
    separated), timestamps as ``YYYY-MM-DD[ HH:MM]``, missing values as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, pd.Timestamp):
        if value is pd.NaT:
            return "–"
        return value.strftime("%Y-%m-%d %H:%M" if (value.hour or value.minute) else "%Y-%m-%d")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if value == 0:
            return "0"
        if abs(value) >= 10 ** digits:
            return f"{value:,.0f}"
        return f"{value:,.{max(digits - 1 - int(math.floor(math.log10(abs(value)))), 0)}f}"
    if value is pd.NaT:
        return "–"
    return str(value)


def pct(value: Any, digits: int = 2, signed: bool = True) -> str:
    """A fraction as a percentage (``0.125`` -> ``+12.50 %``); missing -> en dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value) * 100:{'+' if signed else ''}.{digits}f} %"


def fmt_metric(key: str, value: Any) -> str:
    """``fmt`` that shows the fraction-valued metrics as percentages."""
    if key in PERCENT_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
        return pct(value, signed=key not in UNSIGNED_PERCENT_KEYS)
    return fmt(value)


def sort_value(value: Any) -> str:
    """The text a sortable table sorts a cell by (numbers as their repr, times as ns)."""
    if value is None:
        return ""
    if isinstance(value, pd.Timestamp):
        return "" if value is pd.NaT else str(value.value)
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return "" if isinstance(value, float) and not math.isfinite(value) else repr(value)
    return str(value)


def naive_utc(stamps: Iterable[Any]) -> pd.DatetimeIndex:
    """UTC timestamps without zone for plotly.js (which has no time zones); axes say UTC."""
    idx = pd.DatetimeIndex(pd.to_datetime(list(stamps), utc=True))
    return idx.tz_localize(None)


def words(value: Any) -> str:
    """An identifier as words (``stop_loss`` -> ``stop loss``); anything else as ``fmt``."""
    return value.replace("_", " ") if isinstance(value, str) else fmt(value)


def fmt_time(value: Any) -> str:
    """An ISO 8601 UTC time (``2026-02-06T00:00:00Z``) as ``2026-02-06`` or
    ``2026-02-06 13:00``; missing -> en dash."""
    if not value:
        return "–"
    return fmt(pd.Timestamp(value))


def benchmark_label(name: str) -> str:
    """The benchmark's name for people (``buy_and_hold`` -> ``buy-and-hold``)."""
    return "buy-and-hold" if name == "buy_and_hold" else name.replace("_", " ")
