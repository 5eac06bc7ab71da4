"""Trades are counted by round trip: a position opened or closed in legs is one trade.

Golden numbers computed by hand on two positions (0.1 % commission, no slippage):

- trade 1: 2 units bought at 100 (entry fees 0.2). Leg A sells 1 at 120 (exit fee 0.12):
  pnl = 20 - 0.1 - 0.12 = 19.78. Leg B sells 1 at 70 (exit fee 0.07): pnl = -30 - 0.1 - 0.07
  = -30.17. The round trip: pnl = -10.39 over a basis of 200.2 -> return -10.39 / 200.2.
- trade 2: 1 unit bought at 50 (fee 0.05), sold at 60 (fee 0.06): pnl = 9.89, return
  9.89 / 50.05.

Counted by legs that would be 3 trades, 2 winners (win rate 2/3, profit factor 29.67 / 30.17);
by round trip it is 2 trades, one winner (win rate 1/2, profit factor 9.89 / 10.39).
"""

from __future__ import annotations

import pandas as pd
import pytest

from flushback.backtests.run import metrics as M

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def _legs() -> pd.DataFrame:
    d = pd.Timedelta(days=1)
    return pd.DataFrame({
        "trade_id": [1, 1, 2],
        "signal_time": [T0, T0, T0 + 9 * d],
        "entry_time": [T0 + d, T0 + d, T0 + 10 * d],
        "entry_price": [100.0, 100.0, 50.0],
        "exit_time": [T0 + 3 * d, T0 + 5 * d, T0 + 12 * d],
        "exit_price": [120.0, 70.0, 60.0],
        "size": [1.0, 1.0, 1.0],
        "entry_fee": [0.1, 0.1, 0.05],
        "exit_fee": [0.12, 0.07, 0.06],
        "funding": [0.0, 0.0, 0.0],
        "pnl": [19.78, -30.17, 9.89],
        "return_pct": [19.78 / 100.1, -30.17 / 100.1, 9.89 / 50.05],
        "bars_held": [2, 4, 2],
        "exit_reason": ["greed_sell", "stop_loss", "time"],
        "tranches": [1, 1, 1],
        "mae": [-0.01, -0.31, -0.02],
        "mfe": [0.21, 0.21, 0.2],
    })


def test_round_trips_fold_the_legs_of_one_position():
    rt = M.round_trips(_legs())
    assert list(rt["trade_id"]) == [1, 2]
    assert list(rt["legs"]) == [2, 1]
    one = rt.iloc[0]
    assert one["pnl"] == pytest.approx(-10.39, abs=1e-12)
    assert one["return_pct"] == pytest.approx(-10.39 / 200.2, rel=1e-12)
    assert one["size"] == 2.0 and one["entry_price"] == 100.0
    assert one["exit_price"] == pytest.approx((120 + 70) / 2)
    assert one["entry_time"] == T0 + pd.Timedelta(days=1)
    assert one["exit_time"] == T0 + pd.Timedelta(days=5)  # the last leg closes the trade
    assert one["exit_reason"] == "stop_loss" and one["bars_held"] == 4
    assert one["entry_fee"] == pytest.approx(0.2) and one["exit_fee"] == pytest.approx(0.19)
    assert one["mae"] == pytest.approx(-0.31) and one["mfe"] == pytest.approx(0.21)
    two = rt.iloc[1]
    assert two["pnl"] == pytest.approx(9.89) and two["return_pct"] == pytest.approx(9.89 / 50.05)


def test_trade_metrics_count_round_trips_not_legs():
    m = M.trade_metrics(_legs(), 365)
    assert m["n_trades"] == 2 and m["n_legs"] == 3
    assert m["win_rate"] == 0.5
    assert m["profit_factor"] == pytest.approx(9.89 / 10.39)
    assert m["expectancy"] == pytest.approx((-10.39 + 9.89) / 2)
    assert m["expectancy_pct"] == pytest.approx((-10.39 / 200.2 + 9.89 / 50.05) / 2)
    assert m["avg_loss_pct"] == pytest.approx(-10.39 / 200.2)
    assert m["worst_trade"] == pytest.approx(-10.39 / 200.2)
    assert m["avg_bars_held"] == 3.0  # (4 + 2) / 2


def test_many_winning_partial_sells_and_a_losing_close_are_one_losing_trade():
    # the shape of an accumulation rule: 5 partial sells at a profit, then the rest at a loss
    legs = pd.DataFrame({
        "trade_id": [7] * 6,
        "pnl": [1.0, 1.0, 1.0, 1.0, 1.0, -20.0],
        "return_pct": [0.1] * 5 + [-0.25],
        "size": [0.1] * 5 + [0.8],
        "entry_price": [100.0] * 6,
        "entry_fee": [0.0] * 6,
    })
    m = M.trade_metrics(legs, 365)
    assert m["n_trades"] == 1 and m["n_legs"] == 6
    assert m["win_rate"] == 0.0 and m["profit_factor"] == 0.0
    assert m["expectancy"] == pytest.approx(-15.0)
    assert m["expectancy_pct"] == pytest.approx(-15.0 / 130.0)


def test_rows_without_trade_id_are_each_a_trade():
    legs = _legs().drop(columns="trade_id")
    assert M.trade_metrics(legs, 365)["n_trades"] == 3
    assert len(M.round_trips(None)) == 0


def test_round_trip_excursions_are_against_its_mean_entry_price():
    # leg 1 sold at an average cost of 100 (lowest price so far 80: MAE -20 %, highest 130);
    # more bought, leg 2 sold at an average cost of 120 (lowest 60: MAE -50 %, highest 150).
    # The round trip's entry price is (1 * 100 + 1 * 120) / 2 = 110: MAE 60 / 110 - 1,
    # MFE 150 / 110 - 1.
    legs = pd.DataFrame({
        "trade_id": [3, 3], "size": [1.0, 1.0], "entry_price": [100.0, 120.0],
        "entry_fee": [0.0, 0.0], "pnl": [5.0, -10.0], "return_pct": [0.05, -10 / 120],
        "mae": [-0.2, -0.5], "mfe": [0.3, 0.25],
    })
    rt = M.round_trips(legs).iloc[0]
    assert rt["entry_price"] == 110.0
    assert rt["mae"] == pytest.approx(60 / 110 - 1, rel=1e-12)
    assert rt["mfe"] == pytest.approx(150 / 110 - 1, rel=1e-12)
