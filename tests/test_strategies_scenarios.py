"""Scenario tests in the freqtrade style: tiny hand-written bar tables with the expected trades.

Conventions pinned here (see flushback.strategies.adapter):
- a decision on bar t (its close) fills at the OPEN of bar t+1 (no cheat-on-close);
- commission is a FRACTION of notional per side (0.001 = 0.1 %);
- slippage moves the fill: buys at open*(1+s), sells at open*(1-s);
- sizes are fractional: all-in with 1000 cash at 100 and 0.1 % commission buys
  1000 / (100 * 1.001) = 9.99000999 BTC.

Every expected number below was computed by hand (the arithmetic is in the comments).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from flushback.strategies.adapter import FractionCommission, run_engine
from flushback.strategies.benchmarks import BuyAndHold, FearGreedAccumulation
from flushback.strategies.config import validate_strategy_params
from flushback.strategies.contrarian import ContrarianStrategy, realised_volatility

CASH = 1000.0
SIZE = 1000 / (100 * 1.001)  # all-in at an open of 100 with 0.1 % commission
ENTRY_FEE = SIZE * 100 * 0.001  # 0.999001


def bars(rows, **extra_cols):
    """rows: (open, high, low, close) per bar; extra columns as lists (entry, exit, fng...)."""
    idx = pd.date_range("2024-01-01", periods=len(rows), freq="D", tz="UTC", name="timestamp")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=idx, dtype=float)
    frame["volume"] = 1.0
    frame.attrs["interval"] = "1d"
    extra = pd.DataFrame({k: v for k, v in extra_cols.items()}, index=idx)
    return frame, extra


def contrarian(frame, extra, commission=0.001, slippage=0.0, **cfg):
    params = validate_strategy_params("contrarian", cfg)
    return run_engine(ContrarianStrategy, frame, extra, cash=CASH, commission=commission,
                      slippage=slippage, strategy_params={"cfg": params})


def check_trade(t, *, entry_bar, exit_bar, entry_price, exit_price, size, entry_fee, exit_fee,
                pnl, reason, frame):
    idx = frame.index
    assert t["entry_time"] == idx[entry_bar]
    assert t["exit_time"] == idx[exit_bar]
    assert t["entry_price"] == pytest.approx(entry_price, abs=1e-9)
    assert t["exit_price"] == pytest.approx(exit_price, abs=1e-9)
    assert t["size"] == pytest.approx(size, rel=1e-9)
    assert round(t["entry_fee"], 2) == round(entry_fee, 2)
    assert round(t["exit_fee"], 2) == round(exit_fee, 2)
    assert round(t["pnl"], 2) == pnl
    assert t["exit_reason"] == reason
    assert t["bars_held"] == exit_bar - entry_bar


def test_commission_is_a_fraction_per_side():
    info = FractionCommission(commission=0.001)
    # 2 BTC at 50,000: notional 100,000; 0.1 % = 100.00 (not 0.001 % = 1.00)
    assert info.getcommission(2.0, 50_000.0) == pytest.approx(100.0)
    assert info.getcommission(-2.0, 50_000.0) == pytest.approx(100.0)


def test_time_exit_fills_next_open():
    frame, extra = bars(
        [
            (100, 101, 99, 100),  # 0: entry signal at the close
            (100, 102, 98, 101),  # 1: filled at the open 100 (held 1)
            (101, 103, 100, 102),  # 2: held 2 bars -> hold_bars=2 reached at the close
            (104, 105, 103, 104),  # 3: exit at the open 104
            (104, 106, 103, 105),
        ],
        entry=[1, 0, 0, 0, 0],
    )
    r = contrarian(frame, extra, hold_bars=2)
    assert len(r.trades) == 1
    t = r.trades.iloc[0]
    # pnl = 9.99000999 * (104 - 100) - 0.999001 - 1.038961 = 37.92
    check_trade(t, entry_bar=1, exit_bar=3, entry_price=100, exit_price=104, size=SIZE,
                entry_fee=ENTRY_FEE, exit_fee=SIZE * 104 * 0.001, pnl=37.92, reason="time",
                frame=frame)
    assert t["signal_time"] == frame.index[0]
    # MAE/MFE vs the entry price: lowest low 98 (bar 1), highest 104 (the exit open)
    assert t["mae"] == pytest.approx(-0.02)
    assert t["mfe"] == pytest.approx(0.04)
    # the equity curve: flat cash, then marked at each close, then cash after the exit
    eq = r.equity["equity"].to_numpy()
    assert eq[0] == pytest.approx(1000.0)
    assert eq[1] == pytest.approx(1000 - ENTRY_FEE - SIZE * 100 + SIZE * 101, rel=1e-12)
    assert eq[3] == pytest.approx(1000 + 37.922077922, abs=1e-6)
    assert eq[4] == eq[3]  # flat after the exit


def test_take_profit():
    frame, extra = bars(
        [
            (100, 101, 99, 100),  # 0: entry signal
            (100, 105, 99, 105),  # 1: fill at 100; close 105 < 110
            (106, 112, 105, 111),  # 2: close 111 >= 100 * 1.10 -> take profit
            (112, 113, 111, 112),  # 3: exit at the open 112
        ],
        entry=[1, 0, 0, 0],
    )
    r = contrarian(frame, extra, take_profit=0.10)
    # pnl = 9.99000999 * 12 - 0.999001 - 1.118881 = 117.76
    check_trade(r.trades.iloc[0], entry_bar=1, exit_bar=3, entry_price=100, exit_price=112,
                size=SIZE, entry_fee=ENTRY_FEE, exit_fee=SIZE * 112 * 0.001, pnl=117.76,
                reason="take_profit", frame=frame)


def test_stop_loss_is_close_based_and_fills_at_next_open():
    frame, extra = bars(
        [
            (100, 101, 99, 100),  # 0: entry signal
            (100, 101, 94, 98),  # 1: fill at 100; the LOW pierces 95 but the close 98 > 95
            (97, 98, 93, 94),  # 2: close 94 <= 95 -> stop
            (92, 93, 90, 91),  # 3: exit at the open 92 (gap below the stop)
        ],
        entry=[1, 0, 0, 0],
    )
    r = contrarian(frame, extra, stop_loss=0.05)
    # pnl = 9.99000999 * (92 - 100) - 0.999001 - 0.919081 = -81.84
    check_trade(r.trades.iloc[0], entry_bar=1, exit_bar=3, entry_price=100, exit_price=92,
                size=SIZE, entry_fee=ENTRY_FEE, exit_fee=SIZE * 92 * 0.001, pnl=-81.84,
                reason="stop_loss", frame=frame)
    assert r.trades.iloc[0]["mae"] == pytest.approx(-0.08)  # exit 92 is below the low 93


def test_trailing_stop_follows_the_highest_close():
    frame, extra = bars(
        [
            (100, 101, 99, 100),  # 0: entry signal
            (100, 111, 99, 110),  # 1: fill 100; peak close 110
            (110, 121, 109, 120),  # 2: peak close 120 (stop now 108)
            (119, 120, 106, 107),  # 3: close 107 <= 108 -> trailing stop
            (106, 107, 105, 106),  # 4: exit at the open 106
        ],
        entry=[1, 0, 0, 0, 0],
    )
    r = contrarian(frame, extra, trailing_stop=0.10)
    # pnl = 9.99000999 * 6 - 0.999001 - 1.058941 = 57.88
    check_trade(r.trades.iloc[0], entry_bar=1, exit_bar=4, entry_price=100, exit_price=106,
                size=SIZE, entry_fee=ENTRY_FEE, exit_fee=SIZE * 106 * 0.001, pnl=57.88,
                reason="trailing_stop", frame=frame)
    assert r.trades.iloc[0]["mfe"] == pytest.approx(0.21)  # high 121


def test_exit_signal():
    frame, extra = bars(
        [
            (100, 101, 99, 100),  # 0: entry
            (100, 102, 99, 101),  # 1: fill 100
            (101, 104, 100, 103),  # 2: exit signal at the close
            (103, 104, 102, 103),  # 3: exit at the open 103
        ],
        entry=[1, 0, 0, 0],
        exit=[0, 0, 1, 0],
    )
    r = contrarian(frame, extra)
    # pnl = 9.99000999 * 3 - 0.999001 - 1.028971 = 27.94
    check_trade(r.trades.iloc[0], entry_bar=1, exit_bar=3, entry_price=100, exit_price=103,
                size=SIZE, entry_fee=ENTRY_FEE, exit_fee=SIZE * 103 * 0.001, pnl=27.94,
                reason="exit_signal", frame=frame)
    # exit_on_signal=false ignores it: the position is marked at the last close instead
    r2 = contrarian(frame, extra, exit_on_signal=False)
    t = r2.trades.iloc[0]
    assert t["exit_reason"] == "end_of_data" and t["exit_fee"] == 0.0
    assert t["exit_price"] == 103.0 and round(t["pnl"], 2) == round(SIZE * 3 - ENTRY_FEE, 2)


def test_exit_rule_priority_stop_before_exit_signal():
    frame, extra = bars(
        [(100, 101, 99, 100), (100, 101, 89, 90), (91, 92, 90, 91)],
        entry=[1, 0, 0],
        exit=[0, 1, 0],
    )
    r = contrarian(frame, extra, stop_loss=0.05)
    assert r.trades.iloc[0]["exit_reason"] == "stop_loss"


def test_cooldown_blocks_reentry():
    # hold 1 bar; entry triggers on bars 0, 2, 3, 4; cooldown 2 bars after the exit fill
    frame, extra = bars(
        [
            (100, 101, 99, 100),  # 0: signal
            (100, 101, 99, 100),  # 1: fill; held 1 -> exit
            (100, 101, 99, 100),  # 2: exit fill; signal blocked (0 bars since exit)
            (100, 101, 99, 100),  # 3: signal blocked (1 bar since exit)
            (100, 101, 99, 100),  # 4: signal allowed (2 bars)
            (100, 101, 99, 100),  # 5: fill
            (100, 101, 99, 100),  # 6: exit fill
        ],
        entry=[1, 0, 1, 1, 1, 0, 0],
    )
    r = contrarian(frame, extra, hold_bars=1, cooldown_bars=2)
    assert list(r.trades["entry_time"]) == [frame.index[1], frame.index[5]]
    assert list(r.trades["exit_time"]) == [frame.index[2], frame.index[6]]
    # without the cooldown the bar-2 signal re-enters at bar 3
    r0 = contrarian(frame, extra, hold_bars=1, cooldown_bars=0)
    assert list(r0.trades["entry_time"])[:2] == [frame.index[1], frame.index[3]]
    # flat prices: every trade loses exactly its two fees
    first = r.trades.iloc[0]
    assert round(first["pnl"], 2) == round(-(first["entry_fee"] + first["exit_fee"]), 2) == -2.0


def test_fractional_sizing_with_slippage():
    frame, extra = bars(
        [
            (100, 101, 99, 100),  # 0: signal
            (100, 102, 99, 101),  # 1: buy at 100 * 1.01 = 101 with 25 % of equity
            (101, 111, 100, 110),  # 2: exit signal
            (110, 111, 108, 109),  # 3: sell at 110 * 0.99 = 108.9
        ],
        entry=[1, 0, 0, 0],
        exit=[0, 0, 1, 0],
    )
    r = contrarian(frame, extra, commission=0.002, slippage=0.01, fraction=0.25)
    t = r.trades.iloc[0]
    # size = 250 / (101 * 1.002) = 2.47030691 BTC (a fraction of a coin)
    size = 250 / (101 * 1.002)
    assert size == pytest.approx(2.470306911, rel=1e-9)
    # entry fee 2.4703 * 101 * 0.002 = 0.50; exit fee 2.4703 * 108.9 * 0.002 = 0.54
    # pnl = 2.4703 * (108.9 - 101) - 0.499002 - 0.538033 = 18.48
    check_trade(t, entry_bar=1, exit_bar=3, entry_price=101.0, exit_price=108.9, size=size,
                entry_fee=0.50, exit_fee=0.54, pnl=18.48, reason="exit_signal", frame=frame)
    # return_pct = pnl / (size * entry + entry fee) = 18.478390 / 250.0 (the allocation)
    assert t["return_pct"] == pytest.approx(18.47838975514319 / 250.0, rel=1e-9)
    assert r.equity["equity"].iloc[-1] == pytest.approx(1018.48, abs=0.005)
    assert r.equity["cash"].iloc[1] == pytest.approx(750.0, abs=1e-6)


def test_scale_in_two_tranches():
    frame, extra = bars(
        [
            (100, 101, 99, 100),  # 0: signal -> tranche 1 (50 % of equity)
            (100, 121, 99, 120),  # 1: fill 1 at 100; signal again -> tranche 2
            (120, 121, 119, 120),  # 2: fill 2 at 120 (50 % of equity at the open, capped by cash)
            (120, 121, 119, 120),  # 3: held 3 bars from the first fill -> time exit
            (130, 131, 129, 130),  # 4: exit at 130
        ],
        entry=[1, 1, 0, 0, 0],
    )
    r = contrarian(frame, extra, commission=0.0, max_tranches=2, hold_bars=3)
    assert len(r.trades) == 1
    t = r.trades.iloc[0]
    # tranche 1: 500 / 100 = 5 BTC; equity at bar-2 open = 500 + 5 * 120 = 1100 -> 50 % = 550,
    # capped by the cash 500 -> 500 / 120 = 4.1667 BTC. Average price 1000 / 9.1667 = 109.09
    size = 5 + 500 / 120
    assert t["size"] == pytest.approx(size)
    assert t["tranches"] == 2
    assert t["entry_price"] == pytest.approx(1000 / size)
    assert t["entry_time"] == frame.index[1] and t["exit_time"] == frame.index[4]
    assert round(t["pnl"], 2) == round(size * 130 - 1000, 2) == 191.67
    assert t["exit_reason"] == "time"


def test_volatility_target_sizing():
    frame, extra = bars(
        [(100, 101, 99, 100), (100, 101, 99, 100), (100, 101, 99, 100)],
        entry=[1, 0, 0],
        vol=[0.8, 0.8, 0.8],  # realised vol supplied as a feed line
    )
    params = validate_strategy_params(
        "contrarian", {"sizing": "volatility", "vol_target": 0.4, "fraction": 1.0}
    )
    r = run_engine(ContrarianStrategy, frame, extra, cash=CASH, commission=0.0,
                   strategy_params={"cfg": params})
    # fraction = min(1, 0.4 / 0.8) = 0.5 -> 500 / 100 = 5 BTC
    assert r.trades.iloc[0]["size"] == pytest.approx(5.0)


def test_realised_volatility_by_hand():
    close = pd.Series([100.0, 110.0, 99.0, 108.9])
    vol = realised_volatility(close, 3, 365)
    r = np.log([1.1, 0.9, 1.1])
    expected = math.sqrt(((r - r.mean()) ** 2).sum() / 2) * math.sqrt(365)
    assert math.isnan(vol.iloc[2]) and vol.iloc[3] == pytest.approx(expected)


def test_buy_and_hold_marks_the_open_position_at_the_end():
    frame, extra = bars([(100, 101, 99, 100), (100, 101, 99, 100), (110, 121, 109, 120)])
    r = run_engine(BuyAndHold, frame, extra, cash=CASH, commission=0.001,
                   strategy_params={"cfg": {"fraction": 1.0}})
    t = r.trades.iloc[0]
    # bought at bar 1 open 100; marked at the last close 120 without an exit fee
    assert t["exit_reason"] == "end_of_data" and t["exit_fee"] == 0.0
    assert round(t["pnl"], 2) == round(SIZE * 20 - ENTRY_FEE, 2) == 198.8
    assert r.equity["equity"].iloc[-1] - CASH == pytest.approx(t["pnl"], abs=1e-9)


def test_fear_greed_accumulation():
    frame, extra = bars(
        [
            (100, 101, 99, 100),  # 0: F&G 15 -> buy 10 % of cash at bar 1
            (100, 101, 99, 100),  # 1: fill 100 * ... ; F&G 10 -> buy 10 % of cash again
            (80, 81, 79, 80),  # 2: fill at 80; F&G 50 nothing
            (100, 101, 99, 100),  # 3: F&G 85 -> sell 10 % of the position
            (120, 121, 119, 120),  # 4: sell at 120
            (120, 121, 119, 120),  # 5: F&G missing -> nothing
        ],
        fng=[15, 10, 50, 85, 60, np.nan],
    )
    cfg = validate_strategy_params("fear_greed_accumulation", {})
    r = run_engine(FearGreedAccumulation, frame, extra, cash=CASH, commission=0.0,
                   strategy_params={"cfg": cfg})
    # buy 1: 100 / 100 = 1 BTC; buy 2: 90 / 80 = 1.125 BTC; avg cost 190 / 2.125 = 89.41
    # sell 10 % = 0.2125 BTC at 120: pnl = 0.2125 * (120 - 89.4118) = 6.50
    sells = r.trades[r.trades["exit_reason"] == "greed_sell"]
    assert len(sells) == 1
    t = sells.iloc[0]
    assert t["size"] == pytest.approx(0.2125)
    assert t["entry_price"] == pytest.approx(190 / 2.125)
    assert round(t["pnl"], 2) == 6.5
    assert t["exit_time"] == frame.index[4] and t["entry_time"] == frame.index[1]
    assert r.equity["position"].iloc[-1] == pytest.approx(2.125 * 0.9)
    assert r.equity["cash"].iloc[-1] == pytest.approx(810 + 0.2125 * 120)


def test_funding_cost_on_long_positions():
    frame, extra = bars(
        [(100, 101, 99, 100), (100, 101, 99, 100), (100, 101, 99, 100), (100, 101, 99, 100)],
        entry=[1, 0, 0, 0],
        exit=[0, 0, 1, 0],
        funding_rate=[0.0001, 0.0001, -0.0002, 0.0001],
    )
    params = validate_strategy_params("contrarian", {})
    r = run_engine(ContrarianStrategy, frame, extra, cash=CASH, commission=0.0, funding=True,
                   strategy_params={"cfg": params})
    t = r.trades.iloc[0]
    # 10 BTC held over the closes of bars 1 and 2 (daily bars = 3 funding periods of 8 h):
    # 10 * 100 * 0.0001 * 3 = 0.30 paid, then 10 * 100 * -0.0002 * 3 = -0.60 received
    assert t["funding"] == pytest.approx(0.30 - 0.60)
    assert round(t["pnl"], 2) == 0.30
    assert r.equity["equity"].iloc[-1] == pytest.approx(1000.30)


def test_no_cheat_on_close_signal_on_last_bar_never_fills():
    frame, extra = bars([(100, 101, 99, 100), (100, 101, 99, 100)], entry=[0, 1])
    r = contrarian(frame, extra)
    assert r.trades.empty and (r.equity["position"] == 0).all()


# --- exit_mode = "intrabar": stop / trailing / take-profit as resting orders -------------


def test_intrabar_stop_guards_the_entry_bar():
    frame, extra = bars(
        [
            (100, 101, 99, 100),  # 0: signal
            (100, 101, 94, 99),  # 1: fill at the open 100; the low 94 trades through 95
            (99, 100, 98, 99),
        ],
        entry=[1, 0, 0],
    )
    r = contrarian(frame, extra, stop_loss=0.05, exit_mode="intrabar")
    # stopped INSIDE bar 1 at 95: pnl = 9.99000999 * (95 - 100) - 0.999001 - 0.949051 = -51.90
    check_trade(r.trades.iloc[0], entry_bar=1, exit_bar=1, entry_price=100, exit_price=95,
                size=SIZE, entry_fee=ENTRY_FEE, exit_fee=SIZE * 95 * 0.001, pnl=-51.90,
                reason="stop_loss", frame=frame)
    assert r.equity["position"].iloc[1] == 0.0
    # the close-based mode holds on: the close 99 is above the stop
    assert contrarian(frame, extra, stop_loss=0.05).trades.iloc[0]["exit_reason"] == (
        "end_of_data")


def test_intrabar_stop_gap_fills_at_the_open_with_slippage():
    frame, extra = bars(
        [
            (100, 101, 99, 100),  # 0: signal
            (100, 101, 96, 97),  # 1: fill at 100 * 1.01 = 101; stop = 101 * 0.95 = 95.95
            (92, 93, 90, 91),  # 2: opens below the stop -> filled at 92 * 0.99 = 91.08
        ],
        entry=[1, 0, 0],
    )
    r = contrarian(frame, extra, slippage=0.01, stop_loss=0.05, exit_mode="intrabar")
    t = r.trades.iloc[0]
    size = 1000 / (101 * 1.001)
    # pnl = size * (91.08 - 101) - size*101*0.001 - size*91.08*0.001 = -100.02
    assert t["exit_price"] == pytest.approx(91.08)
    assert round(t["pnl"], 2) == round(size * (91.08 - 101) - size * 101e-3 - size * 91.08e-3,
                                       2) == -100.02
    assert t["exit_time"] == frame.index[2] and t["exit_reason"] == "stop_loss"


def test_intrabar_take_profit_fills_at_the_limit():
    frame, extra = bars(
        [
            (100, 101, 99, 100),  # 0: signal
            (100, 105, 99, 104),  # 1: fill 100; limit 110 not reached
            (104, 112, 103, 105),  # 2: the high 112 reaches 110 -> sold at 110
            (105, 106, 104, 105),
        ],
        entry=[1, 0, 0, 0],
    )
    r = contrarian(frame, extra, take_profit=0.10, stop_loss=0.5, exit_mode="intrabar")
    # pnl = 9.99000999 * 10 - 0.999001 - 1.098901 = 97.80
    check_trade(r.trades.iloc[0], entry_bar=1, exit_bar=2, entry_price=100, exit_price=110,
                size=SIZE, entry_fee=ENTRY_FEE, exit_fee=SIZE * 110 * 0.001, pnl=97.80,
                reason="take_profit", frame=frame)


def test_intrabar_bar_touching_stop_and_target_is_read_as_stopped():
    frame, extra = bars(
        [(100, 101, 99, 100), (100, 101, 99, 100), (100, 115, 90, 100)],
        entry=[1, 0, 0],
    )
    r = contrarian(frame, extra, take_profit=0.10, stop_loss=0.05, exit_mode="intrabar")
    t = r.trades.iloc[0]
    assert t["exit_reason"] == "stop_loss" and t["exit_price"] == pytest.approx(95)


def test_intrabar_trailing_stop():
    frame, extra = bars(
        [
            (100, 101, 99, 100),  # 0: signal
            (100, 111, 99, 110),  # 1: fill 100; peak close 110 -> stop 99 from bar 2
            (110, 121, 109, 120),  # 2: peak close 120 -> stop 108 from bar 3
            (119, 120, 105, 107),  # 3: the low 105 trades through 108 -> sold at 108
            (106, 107, 105, 106),
        ],
        entry=[1, 0, 0, 0, 0],
    )
    r = contrarian(frame, extra, trailing_stop=0.10, exit_mode="intrabar")
    # pnl = 9.99000999 * 8 - 0.999001 - 1.078921 = 77.84
    check_trade(r.trades.iloc[0], entry_bar=1, exit_bar=3, entry_price=100, exit_price=108,
                size=SIZE, entry_fee=ENTRY_FEE, exit_fee=SIZE * 108 * 0.001, pnl=77.84,
                reason="trailing_stop", frame=frame)
    assert r.equity["equity"].iloc[-1] == pytest.approx(1000 + 77.84215784, abs=1e-6)


def test_intrabar_scale_in_replaces_the_resting_stop():
    # The stop placed at the close of bar 1 (for tranche 1) is replaced at the open of bar 2
    # by one for both tranches; only that one may fill (the replaced order never sells).
    frame, extra = bars(
        [
            (100, 101, 99, 100),  # 0: signal -> tranche 1
            (100, 101, 99, 100),  # 1: fill 5 BTC at 100; signal again -> tranche 2
            (100, 101, 89, 95),  # 2: fill ~5 BTC at 100; the low 89 trades through 90
            (95, 96, 94, 95),
        ],
        entry=[1, 1, 0, 0],
    )
    r = contrarian(frame, extra, commission=0.0, max_tranches=2, stop_loss=0.10,
                   exit_mode="intrabar")
    assert len(r.trades) == 1
    t = r.trades.iloc[0]
    # tranche 2: equity at the bar-2 open 500 + 5 * 100 = 1000 -> 50 % = 500 = the cash:
    # 500 * (1 - 1e-12) / 100 BTC; the stop at 100 * 0.9 = 90 sells both tranches
    size = 5 * (1 - 1e-12) + 500 * (1 - 1e-12) / 100
    assert t["size"] == pytest.approx(size, rel=1e-12) and t["tranches"] == 2
    assert t["exit_price"] == 90.0 and t["exit_reason"] == "stop_loss"
    assert t["exit_time"] == frame.index[2]
    assert round(t["pnl"], 2) == -100.0
    assert (r.equity["position"].iloc[2:] == 0.0).all()
