"""What a strategy did at each event: hand-made trades, and a real run written with the section."""

from __future__ import annotations

import datetime as dt
import json
from types import SimpleNamespace

import pandas as pd
import pytest

from flushback.backtests.events.strategy import (
    events_section_for_run,
    strategy_at_events,
    strategy_events_frame,
)
from flushback.backtests.events.study import EventsSection
from flushback.data.errors import DataError


def _ev(eid, start, end=None):
    s = dt.date.fromisoformat(start)
    return SimpleNamespace(id=eid, name=eid.upper(), start=s,
                           end=dt.date.fromisoformat(end) if end else s)


def _trades():
    t = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    return pd.DataFrame(
        {
            "trade_id": [1, 2, 3],
            "signal_time": [t("2024-01-01"), t("2024-02-10"), t("2024-03-20")],
            "entry_time": [t("2024-01-02"), t("2024-02-11"), t("2024-03-21")],
            "entry_price": [100.0, 80.0, 90.0],
            "exit_time": [t("2024-01-20"), t("2024-03-01"), t("2024-04-15")],
            "exit_price": [90.0, 96.0, 99.0],
            "pnl": [-10.0, 16.0, 9.0],
            "return_pct": [-0.1, 0.2, 0.1],
            "exit_reason": ["stop_loss", "take_profit", "time"],
        }
    )


def test_actions_by_hand():
    events = [
        _ev("held", "2024-01-10"),  # trade 1 open since 01-02: rode into it
        _ev("bought", "2024-02-08", "2024-02-09"),  # trade 2 enters 02-11, first fill 02-09
        _ev("missed", "2024-03-05"),  # trade 3 enters 03-21: beyond 7 days
        _ev("outside", "2023-06-01"),
    ]
    rows = strategy_at_events(
        _trades(), events, period=("2023-12-01", "2024-06-01"), entry_window_days=7
    )
    by = {r.event_id: r for r in rows}
    assert by["held"].action == "in_position" and by["held"].trade_id == 1
    assert by["held"].days_after_event == -9  # 01-02 is 9 days before the first fill (01-11)
    b = by["bought"]
    assert (b.action, b.trade_id, b.entry_price, b.exit_price, b.pnl) == (
        "entered", 2, 80.0, 96.0, 16.0
    )
    assert b.entry_time == "2024-02-11T00:00:00Z" and b.days_after_event == 2
    assert b.exit_reason == "take_profit" and b.return_pct == 0.2
    assert by["missed"].action == "none" and by["missed"].pnl is None
    assert by["outside"].action == "no_data"
    wider = strategy_at_events(_trades(), [events[2]], entry_window_days=16)
    assert wider[0].action == "entered" and wider[0].trade_id == 3
    frame = strategy_events_frame(rows)
    assert list(frame["action"]) == ["in_position", "entered", "none", "no_data"]


def test_missing_trade_columns_raise():
    with pytest.raises(DataError, match="pnl"):
        strategy_at_events(_trades().drop(columns="pnl"), [_ev("x", "2024-01-10")])


def test_empty_trades_mean_none():
    rows = strategy_at_events(_trades().iloc[0:0], [_ev("x", "2024-01-10")])
    assert rows[0].action == "none"


@pytest.mark.realdata
@pytest.mark.slow
def test_real_run_report_has_events_section(shared_data_dir, tmp_path):
    from flushback.backtests.run.folders import load_report, write_run
    from flushback.backtests.run.runner import run_backtest
    from flushback.backtests.run.spec import load_spec

    result = run_backtest(load_spec("fear_flush_btc_daily"), data_dir=shared_data_dir)
    section = events_section_for_run(result, draws=300, seed=0)
    path = write_run(result, runs_dir=tmp_path, sections={"events": section.to_report()})
    doc = json.loads((path / "report.json").read_text())
    events = EventsSection.model_validate(doc["events"])
    assert [s.horizon for s in events.summary] == [7, 30, 90]
    assert len(events.strategy) >= 15
    # each 'entered' row is one of the run's trades, with the same numbers
    trades = result.trades.set_index("trade_id")
    entered = [r for r in events.strategy if r.action == "entered"]
    assert entered
    for r in entered:
        tr = trades.loc[r.trade_id]
        assert r.entry_price == pytest.approx(tr["entry_price"])
        assert r.pnl == pytest.approx(tr["pnl"])
        assert pd.Timestamp(r.entry_time) > pd.Timestamp(r.event_day)
    rep = load_report(path)
    got = rep["events"] if isinstance(rep, dict) else rep.events.model_dump()
    assert got["schema_id"] == "flushback.events/1"
