"""What a strategy did at each flush event (reads a backtest's trades; looks at outcomes).

For each catalog event (window ``start`` .. ``end``, known at the close of ``start``):

- ``entered``: the first trade whose entry fill lies after the start of the event day and no
  later than ``entry_window_days`` after the close of ``end`` (the strategy bought the flush);
  ``days_after_event`` counts from the first possible fill (the open after ``start``'s close,
  so 0 = the earliest an honest strategy can be in);
- ``in_position``: no such entry, but a trade entered at or before the event day's open was
  still open then (the strategy rode into the flush);
- ``none``: the strategy stayed out;
- ``no_data``: the event lies outside the run's bars.

The rows become the ``strategy`` part of the report's ``events`` section
(:class:`~flushback.backtests.events.study.EventsSection`) so ``compare`` can put strategies side
by side per event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from flushback.backtests.events import DEFAULT_DRAWS
from flushback.backtests.events.study import (
    EventsSection,
    StrategyEventRow,
    _f,
    events_from_catalog,
    run_event_study,
)
from flushback.backtests.run.timefmt import iso_z
from flushback.data.errors import DataError

__all__ = [
    "strategy_at_events",
    "strategy_events_frame",
    "events_section_for_run",
    "report_sections",
]

_DAY = pd.Timedelta(days=1)


def trades_at_event(
    trades: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, entry_window_days: int
) -> tuple[str, pd.DataFrame]:
    """The one rule for what a strategy did at a flush whose UTC days run ``start``..``end``
    (``trades`` sorted by ``entry_time``, tz-aware). Returns ``(action, rows)``:

    - ``"entered"``: trades entered after the event's first day opened and up to
      ``entry_window_days`` after its last day closed (a trade filled at the first day's open
      was decided before the flush and is "in position", not "entered"); ``rows`` = those trades;
    - ``"in_position"``: none entered, but a trade entered at or before the start was still
      open then; ``rows`` = the latest such trade;
    - ``"none"``: neither; ``rows`` empty.
    """
    limit = end + _DAY + pd.Timedelta(days=entry_window_days)
    entered = trades[(trades["entry_time"] > start) & (trades["entry_time"] <= limit)]
    if len(entered):
        return "entered", entered
    still_open = trades["exit_time"].isna() | (trades["exit_time"] > start)
    held = trades[(trades["entry_time"] <= start) & still_open]
    if len(held):
        return "in_position", held.tail(1)
    return "none", trades.iloc[0:0]


def _utc(x: Any) -> pd.Timestamp:
    t = pd.Timestamp(x)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def strategy_at_events(
    trades: pd.DataFrame,
    events: Iterable[Any],
    *,
    period: tuple[Any, Any] | None = None,
    entry_window_days: int = 7,
) -> list[StrategyEventRow]:
    """One :class:`StrategyEventRow` per catalog event (``FlushEvent``-like: id/name/start/end).

    ``trades``: a BacktestResult's trades (``entry_time``, ``entry_price``, ``exit_time``,
    ``exit_price``, ``pnl``, ``return_pct``, ``exit_reason``, ``trade_id``, ``signal_time``).
    ``period``: (first, last) bar-open time of the run; events outside it get ``no_data``.
    """
    need = ("entry_time", "entry_price", "exit_time", "exit_price", "pnl")
    missing = [c for c in need if c not in trades.columns]
    if missing:
        raise DataError(
            f"trades lack column(s) {', '.join(missing)}",
            column=missing[0],
            hint="pass BacktestResult.trades",
        )
    t = trades.copy()
    for c in ("entry_time", "exit_time", "signal_time"):
        if c in t.columns:
            t[c] = pd.to_datetime(t[c], utc=True)
    t = t.sort_values("entry_time", kind="stable")
    lo = hi = None
    if period is not None:
        lo, hi = _utc(period[0]), _utc(period[1])
    rows: list[StrategyEventRow] = []
    for ev in events:
        start = pd.Timestamp(ev.start, tz="UTC")
        end = pd.Timestamp(ev.end, tz="UTC")
        first_fill = start + _DAY
        base = {
            "event_id": ev.id,
            "event_name": ev.name,
            "event_day": iso_z(start),
        }
        if lo is not None and (start < lo or start > hi):
            rows.append(StrategyEventRow(action="no_data", **base))
            continue
        action, hit = trades_at_event(t, start, end, entry_window_days)
        if action == "none":
            rows.append(StrategyEventRow(action="none", **base))
            continue
        tr = hit.iloc[0]
        trade_id = tr.get("trade_id")
        rows.append(
            StrategyEventRow(
                action=action,
                trade_id=None if trade_id is None or pd.isna(trade_id) else int(trade_id),
                signal_time=iso_z(tr.get("signal_time")),
                entry_time=iso_z(tr["entry_time"]),
                entry_price=_f(tr["entry_price"]),
                days_after_event=_f((tr["entry_time"] - first_fill) / _DAY),
                exit_time=iso_z(tr["exit_time"]),
                exit_price=_f(tr["exit_price"]),
                exit_reason=None if pd.isna(tr.get("exit_reason", np.nan)) else str(
                    tr.get("exit_reason")
                ),
                pnl=_f(tr["pnl"]),
                return_pct=_f(tr.get("return_pct")),
                **base,
            )
        )
    return rows


def strategy_events_frame(rows: Sequence[StrategyEventRow]) -> pd.DataFrame:
    """The rows as a DataFrame (one row per event), e.g. for ``compare``."""
    return pd.DataFrame([r.model_dump() for r in rows])


def events_section_for_run(
    result: Any,
    *,
    catalog: Any = None,
    horizons: Sequence[int] = (7, 30, 90),
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
    study: bool = True,
    entry_window_days: int = 7,
) -> EventsSection:
    """The ``events`` report section of a backtest run: the catalog event study on the run's
    bars (when ``study``) plus what the strategy did at each event.

    Use: ``write_run(result, sections={"events": events_section_for_run(result).to_report()})``.
    """
    from flushback.data.flush_events import load_catalog

    cat = catalog if catalog is not None else load_catalog()
    frame = result.frame
    period = (frame.index[0], frame.index[-1])
    rows = strategy_at_events(
        result.trades, cat, period=period, entry_window_days=entry_window_days
    )
    st = None
    if study:
        inside = [e for e in cat if period[0] < pd.Timestamp(e.start, tz="UTC") < period[1]]
        if inside:
            st = run_event_study(
                frame, events_from_catalog(inside), horizons=horizons, draws=draws, seed=seed
            )
    return EventsSection.from_study(
        st,
        source="catalog",
        catalog_version=getattr(cat, "version", None),
        symbol=frame.attrs.get("symbol"),
        interval=frame.attrs.get("interval"),
        strategy=rows,
    )


def report_sections(result: Any, **kwargs: Any) -> dict[str, Any]:
    """``{"events": ...}`` ready for ``write_run(result, sections=report_sections(result))``."""
    return {"events": events_section_for_run(result, **kwargs).to_report()}
