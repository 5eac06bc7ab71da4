"""The portfolio rules (flushback.strategies.portfolio) by hand on tiny baskets, in both engines,
and the two engines against each other on random baskets (trades exactly, equity to 1e-9)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flushback.data.errors import ConfigError
from flushback.strategies.parity import compare_frames
from flushback.strategies.portfolio import (
    PortfolioConfig,
    PortfolioInputs,
    portfolio_inputs,
    run_portfolio_fast,
)
from flushback.strategies.portfolio_bt import run_portfolio_backtrader

NAN = float("nan")
SAFE = 1.0 - 1e-12
ENGINES = {"fast": run_portfolio_fast, "backtrader": run_portfolio_backtrader}


def _inputs(opens, closes, *, entry, exit_=None, rsi=None, vol=None, symbols=None):
    o = np.asarray(opens, dtype="float64").T
    c = np.asarray(closes, dtype="float64").T
    n_bars, n = c.shape
    idx = pd.date_range("2026-02-01", periods=n_bars, freq="1D", tz="UTC", name="timestamp")
    rsi = np.full((n_bars, n), 50.0) if rsi is None else np.asarray(rsi, dtype="float64").T
    vol = np.full((n_bars, n), 0.5) if vol is None else np.asarray(vol, dtype="float64").T
    ex = np.zeros(n_bars, dtype=bool) if exit_ is None else np.asarray(exit_, dtype=bool)
    return PortfolioInputs(index=idx, symbols=symbols or [f"A{i}" for i in range(n)], open=o,
                           high=np.fmax(o, c) + 1.0, low=np.fmin(o, c) - 1.0, close=c,
                           entry=np.asarray(entry, dtype=bool), exit=ex, rsi=rsi, vol=vol)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_two_assets_by_hand(engine):
    # A: bars 0..4; B starts at bar 1. Entry decided at bar 1's close; B (RSI 20) ranks before
    # A (RSI 25). Equal weights of 2 slots: 0.5 of the equity each, valued at bar 2's open.
    inp = _inputs(
        opens=[[100, 100, 110, 120, 90], [NAN, 50, 40, 44, 46]],
        closes=[[100, 105, 115, 100, 95], [NAN, 48, 41, 45, 47]],
        entry=[False, True, False, False, False],
        rsi=[[50, 25, 50, 50, 50], [NAN, 20, 50, 50, 50]],
    )
    cfg = PortfolioConfig(max_positions=2, take_profit=0.05, hold_bars=2)
    c = 0.001
    res = ENGINES[engine](inp, cfg, cash=1000.0, commission=c)
    t = res.trades
    # sizes: 500 * (1 - 1e-12) / (price * 1.001); B is bought first, then A with what is left
    size_b = 500 * SAFE / (40 * (1 + c))
    est = 1000 - size_b * 40 * (1 + c)
    size_a = min(500, est) * SAFE / (110 * (1 + c))
    assert list(t["symbol"]) == ["A1", "A0"]  # trade ids in fill order: B first
    assert t["size"].tolist() == pytest.approx([size_b, size_a], rel=1e-15)
    # bar 2 close: B 41 < 42; bar 3 close: B 45 >= 40 * 1.05 -> take profit; A held 2 bars
    # (2 and 3) -> time. Prices to 1e-9: the broker records value / size.
    assert t["exit_reason"].tolist() == ["take_profit", "time"]
    assert t["exit_price"].tolist() == pytest.approx([46.0, 90.0], abs=1e-9)
    assert t["entry_time"].dt.day.tolist() == [3, 3]
    assert t["exit_time"].dt.day.tolist() == [5, 5]
    pnl_b = size_b * (46 - 40) - size_b * 40 * c - size_b * 46 * c
    pnl_a = size_a * (90 - 110) - size_a * 110 * c - size_a * 90 * c
    assert t["pnl"].tolist() == pytest.approx([pnl_b, pnl_a], abs=1e-9)
    assert t["bars_held"].tolist() == [2, 2]
    # excursions from the entry bar through the bar before the exit, with the exit price
    # A: lows 109 and 99, exit 90
    assert t["mae"].iloc[1] == pytest.approx(90 / 110 - 1)
    assert t["mfe"].iloc[0] == pytest.approx((46) / 40 - 1)  # the highs 42 and 46, the exit 46
    eq = res.equity
    assert eq["equity"].iloc[:2].tolist() == [1000.0, 1000.0]
    cash_after = 1000 - size_b * 40 * (1 + c) - size_a * 110 * (1 + c)
    assert eq["cash"].iloc[2] == pytest.approx(cash_after, abs=1e-9)
    assert eq["equity"].iloc[2] == pytest.approx(cash_after + size_b * 41 + size_a * 115,
                                                 abs=1e-9)
    assert eq["positions"].tolist() == [0, 0, 2, 2, 0]
    assert eq["equity"].iloc[-1] == pytest.approx(1000 + pnl_a + pnl_b, abs=1e-9)
    assert t["pnl"].sum() == pytest.approx(eq["equity"].iloc[-1] - 1000, abs=1e-9)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_missing_bars_cancel_entries_and_delay_exits(engine):
    # Entry at bar 0 for both; B has no bar 1, so its entry is skipped; A's exit signal at
    # bar 2 fills at A's next bar (bar 4: bar 3 is missing).
    inp = _inputs(
        opens=[[10, 10, 11, NAN, 13], [20, NAN, 20, 20, 20]],
        closes=[[10, 11, 12, NAN, 13], [20, NAN, 20, 20, 20]],
        entry=[True, False, False, False, False],
        exit_=[False, False, True, False, False],
    )
    res = ENGINES[engine](inp, PortfolioConfig(max_positions=2), cash=100.0)
    t = res.trades
    assert t["symbol"].tolist() == ["A0"]
    assert t["size"].iloc[0] == pytest.approx(50 * SAFE / 10, rel=1e-15)
    assert t["exit_reason"].iloc[0] == "exit_signal"
    assert t["exit_price"].iloc[0] == pytest.approx(13, abs=1e-9)
    assert t["exit_time"].iloc[0].day == 5
    # bar 3: A has no bar, its position is valued at its last close (12)
    assert res.equity["equity"].iloc[3] == pytest.approx(100 - 50 * SAFE + 5 * SAFE * 12)


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_inverse_vol_and_signal_weights_by_hand(engine):
    opens = [[10, 10, 10], [10, 10, 10], [10, 10, 10]]
    rsi = [[30, 30, 30], [20, 20, 20], [40, 40, 40]]
    vol = [[0.2, 0.2, 0.2], [0.4, 0.4, 0.4], [NAN, NAN, NAN]]
    inp = _inputs(opens, opens, entry=[True, False, False], rsi=rsi, vol=vol)
    # 3 slots, 2 eligible for inverse_vol (the third has no volatility): they share 2/3 of
    # the equity as 1/0.2 : 1/0.4 = 2 : 1
    res = ENGINES[engine](inp, PortfolioConfig(max_positions=3, allocation="inverse_vol"),
                          cash=900.0)
    w = dict(zip(res.trades["symbol"], res.trades["weight"], strict=True))
    assert w == pytest.approx({"A0": 4 / 9, "A1": 2 / 9})
    # signal strength 100 - RSI: 70, 80, 60 over all three slots
    res = ENGINES[engine](inp, PortfolioConfig(max_positions=3, allocation="signal"),
                          cash=900.0)
    w = dict(zip(res.trades["symbol"], res.trades["weight"], strict=True))
    assert w == pytest.approx({"A1": 80 / 210, "A0": 70 / 210, "A2": 60 / 210})
    assert res.trades["symbol"].tolist() == ["A1", "A0", "A2"]  # most oversold first


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_rebalancing_by_hand(engine):
    # A doubles while B stays flat; every 2 bars the positions go back to half the equity each
    inp = _inputs(opens=[[10, 10, 20, 20], [10, 10, 10, 10]],
                  closes=[[10, 20, 20, 20], [10, 10, 10, 10]],
                  entry=[True, False, False, False], rsi=[[30] * 4, [20] * 4])
    cfg = PortfolioConfig(max_positions=2, rebalance_bars=2, rebalance_band=0.01)
    res = ENGINES[engine](inp, cfg, cash=1000.0)
    t = res.trades
    # bar 1: B then A bought with 500 each (50 units); bar 1's close is a rebalancing close
    # (the 2nd bar); at bar 2's open the equity is 1,500: A holds 1,000 (target 750) -> sell
    # 12.5 units at 20; B holds 500 -> buy 250 / 10 = 25 units
    legs = t[t["exit_reason"] == "rebalance"]
    assert legs["symbol"].tolist() == ["A0"]
    assert legs["size"].iloc[0] == pytest.approx(12.5, rel=1e-9)
    assert legs["pnl"].iloc[0] == pytest.approx(12.5 * (20 - 10), rel=1e-9)
    ends = t[t["exit_reason"] == "end_of_data"].set_index("symbol")
    assert ends.loc["A0", "size"] == pytest.approx(37.5, rel=1e-9)
    assert ends.loc["A1", "size"] == pytest.approx(75.0, rel=1e-9)
    assert ends.loc["A1", "entry_price"] == pytest.approx(10.0, rel=1e-12)
    # A's legs share its trade id: one round trip with two legs
    assert t.loc[t["symbol"] == "A0", "trade_id"].nunique() == 1
    assert res.equity["equity"].iloc[-1] == pytest.approx(1500.0, rel=1e-9)
    # bar 3's close (the 4th bar) is the last: no rebalancing after it; a wide band: none
    wide = ENGINES[engine](inp, PortfolioConfig(max_positions=2, rebalance_bars=2,
                                                rebalance_band=0.2), cash=1000.0)
    assert not (wide.trades["exit_reason"] == "rebalance").any()


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_rank_by_order_buys_in_the_baskets_order_without_an_rsi(engine):
    px = [[10, 10, 10, 10], [10, 10, 10, 10], [10, 10, 10, 10]]
    inp = _inputs(px, px, entry=[True, True, True, False], rsi=[[NAN] * 4] * 3)
    res = ENGINES[engine](inp, PortfolioConfig(max_positions=2, rank_by="order"), cash=100.0)
    assert res.trades["symbol"].tolist() == ["A0", "A1"]
    assert res.equity["positions"].tolist() == [0, 2, 2, 2]
    # ranked by RSI, nothing is a candidate without one
    assert ENGINES[engine](inp, PortfolioConfig(max_positions=2), cash=100.0).trades.empty


def test_config_errors_name_the_parameter():
    with pytest.raises(ConfigError, match="allocation"):
        PortfolioConfig(allocation="momentum")
    with pytest.raises(ConfigError, match="max_positions"):
        PortfolioConfig(max_positions=0)
    with pytest.raises(ConfigError, match="did you mean 'stop_loss'"):
        PortfolioConfig.from_mapping({"stoploss": 0.1})


# --- the two engines on random baskets --------------------------------------------------------


def _random_basket(seed: int, n_bars: int, n_assets: int, holes: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=n_bars, freq="1D", tz="UTC", name="timestamp")
    cols: dict[str, np.ndarray] = {}
    names = [f"S{i}" for i in range(n_assets)]
    for j, name in enumerate(names):
        ret = rng.normal(0, 0.04, n_bars)
        close = 100 * np.exp(np.cumsum(ret))
        open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.01, n_bars))
        high = np.fmax(open_, close) * (1 + rng.uniform(0, 0.03, n_bars))
        low = np.fmin(open_, close) * (1 - rng.uniform(0, 0.03, n_bars))
        block = {"open": open_, "high": high, "low": low, "close": close,
                 "volume": np.ones(n_bars)}
        missing = np.zeros(n_bars, dtype=bool)
        if holes and j:
            missing[: rng.integers(0, n_bars // 3)] = True  # a late start
            missing[rng.integers(0, n_bars, 3)] = True  # holes
        for f, v in block.items():
            cols[f"{f}@{name}"] = np.where(missing, np.nan, v)
    frame = pd.DataFrame(cols, index=idx)
    frame.attrs = {"interval": "1d", "symbol": names[0], "basket": names}
    return frame


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31), n_assets=st.integers(2, 4), holes=st.booleans(),
       max_positions=st.integers(1, 4), allocation=st.sampled_from(["equal", "inverse_vol",
                                                                     "signal"]),
       rank_by=st.sampled_from(["rsi", "order"]),
       rebalance_bars=st.sampled_from([0, 0, 3, 7]),
       rebalance_band=st.sampled_from([0.0, 0.01, 0.05]),
       fraction=st.floats(0.1, 1.0), stop_loss=st.sampled_from([0.0, 0.05, 0.15]),
       take_profit=st.sampled_from([0.0, 0.08, 0.3]), hold_bars=st.integers(0, 12),
       commission=st.sampled_from([0.0, 0.001]), slippage=st.sampled_from([0.0, 0.0005]),
       p_entry=st.floats(0.02, 0.4), p_exit=st.floats(0.0, 0.1))
def test_engines_agree_on_random_baskets(seed, n_assets, holes, max_positions, allocation,
                                         rank_by, rebalance_bars, rebalance_band, fraction,
                                         stop_loss, take_profit, hold_bars, commission,
                                         slippage, p_entry, p_exit):
    frame = _random_basket(seed, 80, n_assets, holes)
    rng = np.random.default_rng(seed + 1)
    entry = pd.Series(rng.random(len(frame)) < p_entry, index=frame.index)
    exit_ = pd.Series(rng.random(len(frame)) < p_exit, index=frame.index)
    cfg = PortfolioConfig(max_positions=max_positions, allocation=allocation, rank_by=rank_by,
                          fraction=fraction, rsi_period=3, vol_lookback=5,
                          stop_loss=stop_loss, take_profit=take_profit, hold_bars=hold_bars,
                          rebalance_bars=rebalance_bars, rebalance_band=rebalance_band)
    inp = portfolio_inputs(frame, entry, exit_, cfg)
    inp.rsi = np.where(np.isnan(inp.close) | (rng.random(inp.close.shape) < 0.1), np.nan,
                       rng.uniform(5, 95, inp.close.shape))
    kw = {"cash": 10_000.0, "commission": commission, "slippage": slippage}
    ref = run_portfolio_backtrader(inp, cfg, **kw)
    fast = run_portfolio_fast(inp, cfg, **kw)
    rep = compare_frames(ref.trades, fast.trades, ref.equity["equity"], fast.equity["equity"])
    assert rep.ok, rep.describe()
    assert (ref.trades["symbol"].tolist() == fast.trades["symbol"].tolist())
    assert ref.trades["weight"].tolist() == fast.trades["weight"].tolist()
    pd.testing.assert_frame_equal(ref.equity[["positions"]], fast.equity[["positions"]])
    # accounting: the trades' P&L is the equity's change
    assert fast.trades["pnl"].sum() == pytest.approx(fast.equity["equity"].iloc[-1] - 10_000,
                                                     abs=1e-6)


def test_report_schema_types_the_portfolio_section():
    from flushback.backtests.reports.schema import build_report

    base = dict(run_id="r", data={"symbol": "A0", "interval": "1d", "start": "2026-01-01",
                                  "end": "2026-01-02"}, periods_per_year=365, metrics={})
    assert "portfolio" not in build_report(**base)  # single-asset reports are unchanged
    section = {"assets": [{"symbol": "A0", "first_bar": "2026-01-01", "trades": 1,
                           "win_rate": 1.0, "pnl": 5.0, "contribution": 0.05, "exposure": 0.5,
                           "asset_return": 0.1}], "correlation": {"A0": {"A0": 1.0}}}
    assert build_report(**base, portfolio=section)["portfolio"]["assets"][0]["pnl"] == 5.0
    bad = {**section, "assets": [{**section["assets"][0], "exposure": 1.5}]}
    with pytest.raises(Exception, match="exposure"):
        build_report(**base, portfolio=bad)


def test_a_named_universe_is_the_basket():
    from flushback.backtests.run.spec import parse_spec
    from flushback.data.basket import basket_members

    spec = parse_spec({"data": {"symbol": "BTCUSDT", "basket": "majors"},
                       "signals": {"entry": {"type": "breadth_oversold"}},
                       "portfolio": {"max_positions": 2}})
    assert spec.data.basket == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    assert basket_members(spec.data.symbol, spec.data.basket) == ["BTCUSDT", "ETHUSDT",
                                                                   "SOLUSDT"]
    assert basket_members("ETHUSDT", ["BTCUSDT"]) == ["ETHUSDT", "BTCUSDT"]
    with pytest.raises(ConfigError, match="did you mean 'majors'"):
        parse_spec({"data": {"symbol": "BTCUSDT", "basket": "majros"}})
    with pytest.raises(ConfigError, match="data.basket"):  # a portfolio needs other assets
        parse_spec({"signals": {"entry": {"type": "extreme_fear"}}, "portfolio": {}})
    with pytest.raises(ConfigError, match="not both"):
        parse_spec({"data": {"symbol": "BTCUSDT", "basket": "majors"},
                    "signals": {"entry": {"type": "extreme_fear"}}, "portfolio": {},
                    "strategy": {"type": "contrarian", "hold_bars": 5}})


def test_data_symbols_names_the_universe():
    from flushback.backtests.run.spec import parse_spec

    spec = parse_spec({"data": {"symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT"]},
                       "signals": {"entry": {"type": "breadth_oversold"}},
                       "portfolio": {"max_positions": 2}})
    assert spec.data.symbol == "BTCUSDT"
    assert spec.data.basket == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    eth = parse_spec({"data": {"symbols": "majors", "symbol": "ETHUSDT"},
                      "signals": {"entry": {"type": "extreme_fear"}}})
    assert (eth.data.symbol, eth.data.basket) == ("ETHUSDT", ("BTCUSDT", "ETHUSDT", "SOLUSDT"))
    assert parse_spec(eth.to_dict()) == eth  # round trip through the report's config
    with pytest.raises(ConfigError, match="not one of data.symbols"):
        parse_spec({"data": {"symbols": ["ETHUSDT", "SOLUSDT"], "symbol": "BTCUSDT"}})
    with pytest.raises(ConfigError, match="use one"):
        parse_spec({"data": {"symbols": ["ETHUSDT"], "basket": ["SOLUSDT"]}})
