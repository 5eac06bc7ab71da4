"""Golden tests: every metric against numbers computed by hand on a tiny equity curve.

Equity E = [100, 110, 99, 108.9, 108.9], returns r = [+0.10, -0.10, +0.10, 0.00].
mean(r) = 0.025; deviations 0.075, -0.125, 0.075, -0.025 -> sum of squares 0.0275,
std(ddof=1) = sqrt(0.0275 / 3) = 0.0957427. Downside: min(r, 0) = [0, -0.1, 0, 0] ->
sqrt(0.01 / 4) = 0.05. Running peak [100, 110, 110, 110, 110] -> drawdowns
[0, 0, -0.1, -0.01, -0.01]: max drawdown -10 %, 3 bars underwater.
With periods_per_year = 4 (4 bars = one year) the annualisation is easy to follow by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.run import metrics as M

EQ = [100.0, 110.0, 99.0, 108.9, 108.9]
SD = math.sqrt(0.0275 / 3)


def test_total_return():
    assert M.total_return(EQ) == pytest.approx(0.089)


def test_cagr():
    assert M.cagr(EQ, 4) == pytest.approx(0.089)  # exactly one year
    assert M.cagr(EQ, 2) == pytest.approx(1.089**0.5 - 1)  # two years: sqrt(1.089) - 1
    assert M.cagr(EQ, 365) == pytest.approx(1.089 ** (365 / 4) - 1)


def test_volatility():
    assert M.volatility(EQ, 4) == pytest.approx(SD * 2)  # 0.191485
    assert M.volatility(EQ, 4) == pytest.approx(0.19148542, abs=1e-8)


def test_sharpe_and_its_annualisation():
    assert M.sharpe(EQ, 4) == pytest.approx(0.025 / SD * 2)  # 0.522233
    assert M.sharpe(EQ, 4) == pytest.approx(0.52223297, abs=1e-8)
    # 365 daily vs 8760 hourly periods: the ratio is sqrt(24), never a 252-day guess
    assert M.sharpe(EQ, 8760) / M.sharpe(EQ, 365) == pytest.approx(math.sqrt(24))


def test_sortino():
    assert M.sortino(EQ, 4) == pytest.approx(0.025 / 0.05 * 2) == 1.0


def test_max_drawdown_and_duration():
    assert M.max_drawdown(EQ) == pytest.approx(-0.1)
    assert M.max_drawdown_duration(EQ) == 3
    assert M.max_drawdown_duration([1, 2, 1, 2, 3, 2, 1, 1.5, 3.1]) == 3
    assert M.max_drawdown_duration([1, 2, 3]) == 0


def test_calmar():
    assert M.calmar(EQ, 4) == pytest.approx(0.089 / 0.1)


def test_exposure():
    assert M.exposure([0, 1.5, 0.25, 0, 0]) == pytest.approx(0.4)


def _trades():
    return pd.DataFrame(
        {
            "pnl": [10.0, -5.0, 20.0, -5.0],
            "return_pct": [0.10, -0.05, 0.20, -0.05],
            "bars_held": [2, 4, 6, 8],
            "mae": [-0.02, -0.10, -0.05, -0.03],
            "mfe": [0.10, 0.01, 0.25, 0.04],
        }
    )


def test_trade_metrics_by_hand():
    m = M.trade_metrics(_trades(), 365)
    assert m["n_trades"] == 4
    assert m["win_rate"] == 0.5
    assert m["avg_win"] == 15.0 and m["avg_loss"] == -5.0
    assert m["avg_win_pct"] == pytest.approx(0.15) and m["avg_loss_pct"] == pytest.approx(-0.05)
    assert m["profit_factor"] == pytest.approx(30 / 10)
    assert m["expectancy"] == 5.0 and m["expectancy_pct"] == pytest.approx(0.05)
    assert m["best_trade"] == 0.2 and m["worst_trade"] == -0.05
    assert m["avg_bars_held"] == 5.0 and m["avg_holding_days"] == 5.0
    assert m["avg_mae"] == pytest.approx(-0.05) and m["worst_mae"] == -0.10
    assert m["avg_mfe"] == pytest.approx(0.10) and m["best_mfe"] == 0.25
    # hourly bars: 5 bars = 5/24 days
    assert M.trade_metrics(_trades(), 8760)["avg_holding_days"] == pytest.approx(5 / 24)


def test_undefined_values_are_none_not_nan():
    flat = [100.0] * 5
    m = M.compute_metrics(pd.Series(flat), None, 365)
    assert m["sharpe"] is None and m["sortino"] is None and m["calmar"] is None
    assert m["n_trades"] == 0 and m["win_rate"] is None and m["max_drawdown"] == 0.0
    wins_only = _trades().iloc[[0, 2]]
    assert M.trade_metrics(wins_only, 365)["profit_factor"] is None


def test_compute_metrics_collects_everything():
    idx = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    m = M.compute_metrics(pd.Series(EQ, index=idx), _trades(), 4,
                          position=pd.Series([0, 1, 1, 0, 0], index=idx))
    assert m["total_return"] == pytest.approx(0.089)
    assert m["sharpe"] == pytest.approx(0.52223297, abs=1e-8)
    assert m["max_drawdown_duration_days"] == pytest.approx(3 * 365 / 4)
    assert m["exposure"] == pytest.approx(0.4)
    assert m["years"] == 1.0 and m["n_bars"] == 5
    assert m["profit_factor"] == pytest.approx(3.0)
    for v in m.values():
        assert v is None or not (isinstance(v, float) and not np.isfinite(v))


def test_exposure_from_trades_when_no_position_given():
    idx = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    trades = _trades().iloc[:1].assign(entry_time=[idx[1]], exit_time=[idx[3]])
    m = M.compute_metrics(pd.Series(EQ, index=idx), trades, 4)
    assert m["exposure"] == pytest.approx(2 / 5)  # bars 1 and 2 held


def test_periods_per_year_for():
    assert M.periods_per_year_for("1d") == 365
    assert M.periods_per_year_for("1h") == 8760
    assert M.periods_per_year_for("4h") == 2190


def test_periods_per_year_must_be_explicit():
    with pytest.raises(ValueError):
        M.compute_metrics(pd.Series(EQ), None, 0)


def test_exposure_counts_the_last_bar_of_a_position_open_at_the_end():
    idx = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    # entry filled at bar 2, still open at the end: marked at bar 4 (exit_time = last bar)
    trades = _trades().iloc[:1].assign(entry_time=[idx[2]], exit_time=[idx[4]],
                                       exit_reason=["end_of_data"])
    m = M.compute_metrics(pd.Series(EQ, index=idx), trades, 4)
    position = pd.Series([0, 0, 1, 1, 1], index=idx)  # units held at each close
    assert m["exposure"] == pytest.approx(3 / 5) == M.exposure(position)


def test_exposure_is_unknown_without_positions_or_trades():
    m = M.compute_metrics(pd.Series(EQ), None, 4)
    assert m["exposure"] is None
    no_trades = _trades().iloc[0:0]
    assert M.compute_metrics(pd.Series(EQ), no_trades, 4)["exposure"] == 0.0
