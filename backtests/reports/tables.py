"""Tables derived from a report for display and comparison (pure pandas, no plotting).

Everything here reads a validated :class:`~flushback.backtests.reports.schema.Report`: drawdowns,
monthly returns, the flush-event list a report is judged on, and each strategy's outcome at
each flush event. The event outcomes look FORWARD from the event date (they are evaluation
results, not inputs to any signal), hence the ``forward`` in their names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flushback.backtests.events.strategy import trades_at_event
from flushback.backtests.reports.schema import Report

__all__ = [
    "FlushEvent",
    "drawdown",
    "monthly_returns",
    "period_returns",
    "flush_events_for",
    "forward_event_outcomes",
    "ENTRY_WINDOW_DAYS",
    "HORIZON_DAYS",
]

#: a trade "belongs" to a flush when it was entered from the day before the event's start to
#: this many days after the event's end
ENTRY_WINDOW_DAYS = 7
#: the strategy's and buy-and-hold's outcome at a flush: equity change from the last bar
#: before the event's start to this many days after the event's end
HORIZON_DAYS = 30


@dataclass(frozen=True)
class FlushEvent:
    """A flush event as the reports use it: an id, a name and a UTC window (start <= end)."""

    event_id: str
    name: str
    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def label(self) -> str:
        day = self.start.strftime("%Y-%m-%d")
        return f"{day} {self.name}" if self.name and self.name != day else day


# --------------------------------------------------------------------------- curves
def drawdown(values: pd.Series) -> pd.Series:
    """Drawdown from the running peak, as a fraction (0 at a peak, -0.25 = 25 % below)."""
    v = pd.to_numeric(values, errors="coerce").astype("float64")
    peak = v.cummax()
    return v / peak - 1.0


def monthly_returns(equity: pd.Series) -> pd.DataFrame:
    """Calendar-month returns (fractions) as a year x month table (columns 1..12).

    The first month's return is measured from the curve's first value, every later month from
    the previous month's last value. Months without data are NaN.
    """
    v = pd.to_numeric(equity, errors="coerce").dropna()
    if v.empty:
        return pd.DataFrame(columns=range(1, 13), dtype="float64")
    idx = v.index.tz_convert("UTC") if v.index.tz is not None else v.index
    v = pd.Series(v.to_numpy(), index=idx)
    month_end = v.groupby([idx.year, idx.month]).last()
    prev = month_end.shift(1)
    prev.iloc[0] = v.iloc[0]
    rets = month_end / prev - 1.0
    table = rets.unstack(level=1)
    table = table.reindex(columns=range(1, 13))
    table.index.name = "year"
    table.columns.name = "month"
    return table.astype("float64")


def period_returns(equity: pd.Series) -> pd.Series:
    """Simple bar-to-bar returns of an equity curve (first bar dropped)."""
    v = pd.to_numeric(equity, errors="coerce").astype("float64")
    return v.pct_change().iloc[1:].replace([np.inf, -np.inf], np.nan).dropna()


# --------------------------------------------------------------------------- events
def _as_utc(value: Any) -> pd.Timestamp | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        return None
    if ts is pd.NaT:
        return None
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


_START_KEYS = (
    "start", "window_start", "date", "event_date", "event_day", "day", "timestamp", "time",
)
_END_KEYS = ("end", "window_end", "date_end", "end_date")
_NAME_KEYS = ("name", "event_name", "title", "label", "event")
_ID_KEYS = ("event_id", "id", "slug", "key")


def _event_from_mapping(row: Mapping[str, Any]) -> FlushEvent | None:
    start = next((_as_utc(row[k]) for k in _START_KEYS if row.get(k) is not None), None)
    if start is None:
        return None
    end = next((_as_utc(row[k]) for k in _END_KEYS if row.get(k) is not None), None) or start
    name = next((str(row[k]) for k in _NAME_KEYS if row.get(k) not in (None, "")), "")
    ident = next((str(row[k]) for k in _ID_KEYS if row.get(k) not in (None, "")), "")
    if not ident:
        ident = start.strftime("%Y-%m-%d")
    return FlushEvent(ident, name or ident, start, max(start, end))


def _events_from_rows(rows: Iterable[Any]) -> list[FlushEvent]:
    out = []
    for row in rows:
        if isinstance(row, Mapping):
            ev = _event_from_mapping(row)
        else:  # a dataclass / object from the catalog module
            attrs = {
                k: getattr(row, k)
                for k in (*_START_KEYS, *_END_KEYS, *_NAME_KEYS, *_ID_KEYS)
                if hasattr(row, k)
            }
            ev = _event_from_mapping(attrs)
        if ev is not None:
            out.append(ev)
    return out


def catalog_events() -> list[FlushEvent]:
    """The shipped flush-event catalog (``flushback.data.flush_events``) as report events."""
    from flushback.data.flush_events import load_catalog

    return _dedupe(_events_from_rows(load_catalog().events))


def report_section_events(report: Report) -> list[FlushEvent]:
    """Events listed in a report's ``events`` section (its outcomes, else its strategy rows)."""
    section = report.events
    if section is None:
        return []
    for rows in (section.outcomes, section.strategy or []):
        found = _events_from_rows([r.model_dump() for r in rows])
        if found:
            return _dedupe(found)
    return []


def _dedupe(events: list[FlushEvent]) -> list[FlushEvent]:
    seen: dict[tuple[str, pd.Timestamp], FlushEvent] = {}
    for ev in events:
        seen.setdefault((ev.event_id, ev.start), ev)
    return sorted(seen.values(), key=lambda e: (e.start, e.event_id))


def flush_events_for(report: Report, *, within_data: bool = True) -> list[FlushEvent]:
    """The flush events a report is judged on: the catalog when it is installed, else the
    report's own events section. With ``within_data``, only events inside the data window."""
    events = catalog_events() or report_section_events(report)
    if within_data:
        start = pd.Timestamp(report.data.start)
        end = pd.Timestamp(report.data.end)
        events = [e for e in events if e.end >= start and e.start <= end]
    return events


def _value_at_or_before(curve: pd.Series, when: pd.Timestamp) -> tuple[pd.Timestamp, float] | None:
    sub = curve.loc[:when].dropna()
    if sub.empty:
        return None
    return sub.index[-1], float(sub.iloc[-1])


def forward_event_outcomes(
    report: Report,
    events: list[FlushEvent] | None = None,
    *,
    entry_window_days: int = ENTRY_WINDOW_DAYS,
    horizon_days: int = HORIZON_DAYS,
) -> pd.DataFrame:
    """What the strategy did at each flush event, and what it earned after it (FORWARD-looking:
    evaluation only).

    One row per event with: ``event_id, name, start, entered``, ``action`` ("entered", "in
    position" or "none", by the one rule the run's ``events`` section uses too:
    :func:`flushback.backtests.events.strategy.trades_at_event`), that trade's (the first
    entered, else the open one)
    ``entry_time, entry_price, exit_time, exit_price, trade_return`` (``return_pct`` as the
    report holds it), ``n_trades``, and ``strategy_return`` / ``benchmark_return``: the equity
    change (fraction) from the last bar at or before the day before the event's start to the last
    bar at or before ``horizon_days`` after its end (or the curve's last bar when the data ends
    sooner; ``horizon_end`` says which bar was used). NaN when the curve does not cover the
    event.
    """
    if events is None:
        events = flush_events_for(report)
    eq = report.equity_frame()
    trades = report.trades_frame()
    rows = []
    for ev in events:
        lo = ev.start - pd.Timedelta(days=1)
        hi = ev.end + pd.Timedelta(days=horizon_days)
        row: dict[str, Any] = {
            "event_id": ev.event_id,
            "name": ev.name,
            "start": ev.start,
            "entered": False,
            "action": "none",
            "n_trades": 0,
            "entry_time": pd.NaT,
            "entry_price": np.nan,
            "exit_time": pd.NaT,
            "exit_price": np.nan,
            "trade_return": np.nan,
            "strategy_return": np.nan,
            "benchmark_return": np.nan,
            "horizon_end": pd.NaT,
        }
        if not trades.empty and "entry_time" in trades:
            action, hit = trades_at_event(trades.sort_values("entry_time", kind="stable"),
                                          ev.start, ev.end, entry_window_days)
            row["action"] = action.replace("_", " ")
            if not hit.empty:
                first = hit.iloc[0]
                row.update(
                    entered=row["action"] == "entered",
                    n_trades=len(hit),
                    entry_time=first["entry_time"],
                    entry_price=first.get("entry_price", np.nan),
                    exit_time=first.get("exit_time", pd.NaT),
                    exit_price=first.get("exit_price", np.nan),
                    trade_return=first.get("return_pct", np.nan),
                )
        if not eq.empty and eq.index[0] <= lo and eq.index[-1] >= ev.end:
            row["horizon_end"] = b_at = min(hi, eq.index[-1])
            for col, key in (("equity", "strategy_return"), ("benchmark", "benchmark_return")):
                if col not in eq:
                    continue
                a = _value_at_or_before(eq[col], lo)
                b = _value_at_or_before(eq[col], b_at)
                if a and b and a[1] != 0:
                    row[key] = b[1] / a[1] - 1.0
        rows.append(row)
    columns = [
        "event_id", "name", "start", "entered", "action", "n_trades", "entry_time", "entry_price",
        "exit_time", "exit_price", "trade_return", "strategy_return", "benchmark_return",
        "horizon_end",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    for col in ("entry_price", "exit_price", "trade_return", "strategy_return", "benchmark_return"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame
