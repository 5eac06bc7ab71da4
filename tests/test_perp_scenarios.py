"""Perpetual scenario tables: leverage, liquidations, shorts and funding, to the cent.

Each table is a handful of bars with the expected trade written out by hand below it (the
arithmetic is in the test, from the rules of docs/strategies.md, never from an engine run).
Every scenario runs on BOTH engines (backtrader, the reference, and the fast kernel), which
must agree with the hand numbers and with each other.

The margin model (flushback.strategies.margin): a tranche of ``f`` of the equity commits
``alloc = f * equity`` as margin + entry fee, so ``size = alloc * (1 - 1e-12) / (price *
(1/L + c))``; a long's liquidation price is ``entry * (1 - 1/L) / (1 - m)``; a liquidation
fills at that price, its fee is the commission there, and the margin is lost.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_fast_parity import assert_same

from flushback.strategies.adapter import run_engine
from flushback.strategies.config import validate_strategy_params
from flushback.strategies.contrarian import ContrarianStrategy
from flushback.strategies.fast import run_fast

CASH = 1000.0
SAFETY = 1.0 - 1e-12


def table(rows, freq="4h", **cols):
    idx = pd.date_range("2026-02-02", periods=len(rows), freq=freq, tz="UTC", name="timestamp")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=idx, dtype=float)
    frame["volume"] = 1.0
    frame.attrs["interval"] = freq
    return frame, pd.DataFrame(cols, index=idx)


def run_both(frame, extra, *, commission, funding=False, **cfg):
    params = validate_strategy_params("contrarian", cfg)
    kw = dict(cash=CASH, commission=commission, slippage=0.0, funding=funding,
              strategy_params={"cfg": params})
    ref = run_engine(ContrarianStrategy, frame, extra, **kw)
    fast = run_fast("contrarian", frame, extra, **kw)
    assert_same(ref, fast)
    return ref


def cents(x: float) -> float:
    return round(x + 0.0, 2)


# --- a 3x long liquidated on a flush candle ------------------------------------------------

FLUSH = [
    (100, 101, 99, 100),  # 0: entry signal at the close
    (100, 102, 97, 98),   # 1: filled at the open 100
    (97, 97, 55, 70),     # 2: the flush candle: the low 55 crosses the liquidation price
    (70, 75, 69, 74),     # 3: flat again
]


def hand_3x_long(c: float, m: float):
    """The 3x long of FLUSH, by hand: entry 100, leverage 3, commission c, maintenance m."""
    lev = 3.0
    size = CASH * SAFETY / (100.0 * (1.0 / lev + c))   # 29.910269 at c = 0.001
    margin = size * 100.0 / lev                           # 997.009 (margin + fee = 1000)
    entry_fee = size * 100.0 * c                          # 2.991
    liq = 100.0 * (1.0 - 1.0 / lev) / (1.0 - m)           # 66.934404 at m = 0.004
    exit_fee = size * liq * c                             # 2.002
    # the margin is lost: the price loss size * (100 - liq) = 988.37 plus the fee (990.37)
    # is less than the margin, so the rest of it goes to the exchange too
    loss = max(margin, size * (100.0 - liq) + exit_fee)
    return size, margin, entry_fee, liq, exit_fee, -loss - entry_fee


def test_3x_long_is_liquidated_on_the_flush_candle():
    frame, extra = table(FLUSH, entry=[1, 0, 0, 0])
    size, margin, entry_fee, liq, exit_fee, pnl = hand_3x_long(0.001, 0.004)
    assert cents(liq) == 66.93 and cents(margin) == 997.01 and cents(entry_fee) == 2.99
    assert cents(exit_fee) == 2.00 and cents(pnl) == -1000.00
    r = run_both(frame, extra, commission=0.001, leverage=3.0, maintenance_margin=0.004)
    assert len(r.trades) == 1
    t = r.trades.iloc[0]
    assert t["exit_reason"] == "liquidation"
    assert t["entry_time"] == frame.index[1] and t["exit_time"] == frame.index[2]
    assert t["entry_price"] == pytest.approx(100.0, abs=1e-9)
    assert t["exit_price"] == pytest.approx(liq, rel=1e-12)
    assert t["size"] == pytest.approx(size, rel=1e-12)
    assert cents(t["entry_fee"]) == cents(entry_fee)
    assert cents(t["exit_fee"]) == cents(exit_fee)
    assert cents(t["pnl"]) == cents(pnl)
    # equity: bar 1 = 1000 - fee + size * (98 - 100); after the liquidation nothing is left
    eq = r.equity["equity"]
    assert cents(eq.iloc[1]) == cents(CASH - entry_fee + size * (98.0 - 100.0))  # 937.19
    assert cents(eq.iloc[2]) == 0.00 and cents(eq.iloc[3]) == 0.00
    assert r.equity["position"].iloc[2] == 0.0
    # the fill table shows the liquidation at its price with its fee
    fill = r.fills.iloc[-1]
    assert fill["reason"] == "liquidation" and fill["size"] == pytest.approx(-size)
    assert cents(fill["fee"]) == cents(exit_fee)


def test_1x_long_on_the_same_candle_is_not_liquidated():
    """The default (1x long) has no liquidation price: the flush is a 30 % mark-down."""
    frame, extra = table(FLUSH, entry=[1, 0, 0, 0])
    r = run_both(frame, extra, commission=0.001)
    size = CASH * SAFETY / (100.0 * 1.001)
    assert list(r.trades["exit_reason"]) == ["end_of_data"]
    assert cents(r.equity["equity"].iloc[2]) == cents(CASH - size * 0.1 + size * (70 - 100))


# --- a stop the same bar would have hit after the liquidation -------------------------------

def test_liquidation_comes_before_a_stop_on_the_same_bar():
    """3x long with a 40 % stop (60, below the liquidation price 66.93, the misconfiguration
    freqtrade's docs warn about): the flush bar reaches both; the liquidation wins."""
    frame, extra = table(FLUSH, entry=[1, 0, 0, 0])
    size, margin, entry_fee, liq, exit_fee, pnl = hand_3x_long(0.001, 0.004)
    # what the stop would have given: sold at 60, losing size * 40 + fees = 1201.20 > margin
    stop_pnl = size * (60.0 - 100.0) - entry_fee - size * 60.0 * 0.001
    assert cents(stop_pnl) == -1201.20
    for mode in ("intrabar", "close"):
        r = run_both(frame, extra, commission=0.001, leverage=3.0,
                     maintenance_margin=0.004, stop_loss=0.4, exit_mode=mode)
        t = r.trades.iloc[0]
        assert t["exit_reason"] == "liquidation", mode
        assert t["exit_time"] == frame.index[2]
        assert t["exit_price"] == pytest.approx(liq, rel=1e-12)
        assert cents(t["pnl"]) == cents(pnl) == -1000.00


def test_liquidation_also_beats_a_stop_above_it_on_the_same_bar():
    """The pessimistic reading of one OHLC bar: a 20 % stop (80) that the flush bar also
    touches does not save the position; the liquidation on that bar comes first."""
    frame, extra = table(FLUSH, entry=[1, 0, 0, 0])
    *_, liq, _, pnl = hand_3x_long(0.001, 0.004)
    r = run_both(frame, extra, commission=0.001, leverage=3.0, maintenance_margin=0.004,
                 stop_loss=0.2, exit_mode="intrabar")
    t = r.trades.iloc[0]
    assert t["exit_reason"] == "liquidation" and cents(t["pnl"]) == cents(pnl)


def test_a_stop_on_a_bar_before_the_liquidation_bar_fills():
    """With the stop hit one bar earlier the stop exits and nothing is liquidated."""
    rows = [(100, 101, 99, 100), (100, 101, 79, 85), (84, 85, 55, 70), (70, 75, 69, 74)]
    frame, extra = table(rows, entry=[1, 0, 0, 0])
    size = CASH * SAFETY / (100.0 * (1.0 / 3.0 + 0.001))
    r = run_both(frame, extra, commission=0.001, leverage=3.0, maintenance_margin=0.004,
                 stop_loss=0.2, exit_mode="intrabar")
    t = r.trades.iloc[0]
    assert t["exit_reason"] == "stop_loss" and t["exit_time"] == frame.index[1]
    # sold at the stop 80: pnl = size * (80 - 100) - fees (2.99 + 2.39)
    assert cents(t["pnl"]) == cents(size * -20.0 - size * 100.0 * 0.001 - size * 80.0 * 0.001)
    assert cents(r.equity["equity"].iloc[-1]) == cents(CASH + t["pnl"])


# --- a short that pays, then receives funding -----------------------------------------------

def test_short_pays_then_receives_funding_at_the_settlements():
    """2x short, 8h settlements on 4h bars: the bar whose close is a settlement carries its
    rate (NaN on the others). A negative rate is paid by shorts, a positive one received."""
    rows = [
        (100, 101, 99, 100),  # 0 (00:00): entry signal
        (100, 102, 99, 101),  # 1 (04:00): short at the open 100; closes at 08:00: settlement
        (101, 101, 97, 99),   # 2 (08:00): no settlement at its close (12:00)
        (99, 100, 97, 98),    # 3 (12:00): closes at 16:00: settlement; exit signal
        (97, 98, 96, 97),     # 4 (16:00): covered at the open 97
    ]
    nan = float("nan")
    frame, extra = table(rows, entry=[1, 0, 0, 0, 0], exit=[0, 0, 0, 1, 0],
                         funding_rate=[nan, -0.0001, nan, 0.0003, nan])
    c, lev = 0.0005, 2.0
    size = CASH * SAFETY / (100.0 * (1.0 / lev + c))     # 19.980020
    entry_fee = size * 100.0 * c                          # 0.999
    paid = size * 101.0 * 0.0001                          # the short pays 0.2018
    received = size * 98.0 * 0.0003                       # and receives 0.5874
    exit_fee = size * 97.0 * c                            # 0.9690
    pnl = size * (100.0 - 97.0) - entry_fee - exit_fee - (paid - received)
    assert (cents(size * 100), cents(paid), cents(received)) == (1998.0, 0.20, 0.59)
    assert cents(pnl) == 58.36
    r = run_both(frame, extra, commission=c, funding="settlements", side="short",
                 leverage=lev)
    t = r.trades.iloc[0]
    assert t["exit_reason"] == "exit_signal" and t["exit_time"] == frame.index[4]
    assert t["size"] == pytest.approx(size, rel=1e-12)
    assert cents(t["funding"]) == cents(paid - received) == -0.39
    assert cents(t["pnl"]) == cents(pnl)
    eq = r.equity["equity"]
    assert cents(eq.iloc[1]) == cents(CASH - entry_fee - size * 1.0 - paid)      # 978.82
    assert cents(eq.iloc[2]) == cents(CASH - entry_fee + size * 1.0 - paid)      # 1018.78
    assert cents(eq.iloc[3]) == cents(CASH - entry_fee + size * 2.0 - paid + received)
    assert cents(eq.iloc[4]) == cents(CASH + pnl)
    assert r.equity["position"].iloc[1] == pytest.approx(-size)


def test_accrued_funding_is_charged_every_bar_with_the_short_sign():
    """funding = True keeps the per-bar accrual (rate * bar_hours / 8) and a short receives
    a positive rate."""
    rows = [(100, 101, 99, 100), (100, 101, 99, 100), (100, 101, 99, 100), (100, 101, 99, 100)]
    frame, extra = table(rows, entry=[1, 0, 0, 0], funding_rate=[0.0001] * 4)
    size = CASH * SAFETY / (100.0 * (1.0 + 0.0))
    r = run_both(frame, extra, commission=0.0, funding=True, side="short")
    t = r.trades.iloc[0]
    # held over the closes of bars 1..3: 3 * size * 100 * 0.0001 * 4 / 8 received
    assert cents(t["funding"]) == cents(-3 * size * 100.0 * 0.0001 * 0.5) == -0.15
    assert cents(r.equity["equity"].iloc[-1]) == 1000.15


# --- shorts: the mirrored exits and a short liquidation -------------------------------------

def test_short_stop_loss_take_profit_and_liquidation():
    c = 0.001
    # a 10x short: liquidation at 100 * 1.1 / 1.004 = 109.56; a squeeze to 112 liquidates it
    rows = [(100, 101, 99, 100), (100, 103, 99, 102), (102, 112, 101, 108), (108, 109, 107, 108)]
    frame, extra = table(rows, entry=[1, 0, 0, 0])
    size = CASH * SAFETY / (100.0 * (0.1 + c))
    liq = 100.0 * (1.0 + 0.1) / (1.0 + 0.004)
    fee = size * liq * c
    loss = max(size * 100.0 * 0.1, size * (liq - 100.0) + fee)
    r = run_both(frame, extra, commission=c, side="short", leverage=10.0,
                 maintenance_margin=0.004)
    t = r.trades.iloc[0]
    assert cents(liq) == 109.56
    assert t["exit_reason"] == "liquidation" and t["exit_time"] == frame.index[2]
    assert cents(t["pnl"]) == cents(-loss - size * 100.0 * c) == -1000.00
    # 1x short, close-based 5 % stop: close 106 >= 105 -> covered at the next open 107
    rows = [(100, 101, 99, 100), (100, 103, 99, 102), (102, 107, 101, 106), (107, 108, 106, 107)]
    frame, extra = table(rows, entry=[1, 0, 0, 0])
    size = CASH * SAFETY / (100.0 * (1.0 + c))
    r = run_both(frame, extra, commission=c, side="short", stop_loss=0.05)
    t = r.trades.iloc[0]
    assert t["exit_reason"] == "stop_loss" and t["exit_price"] == 107.0
    assert cents(t["pnl"]) == cents(size * (100 - 107) - size * 100 * c - size * 107 * c)
    # intrabar 4 % take-profit: a buy limit at 96, touched by the low of bar 2
    rows = [(100, 101, 99, 100), (100, 101, 98, 99), (99, 99, 95, 97), (97, 98, 96, 97)]
    frame, extra = table(rows, entry=[1, 0, 0, 0])
    r = run_both(frame, extra, commission=c, side="short", take_profit=0.04,
                 exit_mode="intrabar")
    t = r.trades.iloc[0]
    assert t["exit_reason"] == "take_profit" and t["exit_price"] == pytest.approx(96.0)
    assert cents(t["pnl"]) == cents(size * (100 - 96) - size * 100 * c - size * 96 * c)
