"""Level exits of the contrarian strategy, as scenario tables with the expected trades.

Pinned (docs/strategies.md, "Level exits"): the level tested against bar t's close is the
``level_tp`` / ``level_sl`` value of the entry SIGNAL bar (``level_update = "fixed"``) or of
bar t-1 (``"moving"``); the exit fills at the next open; a NaN level never exits; priority
stop_loss > trailing_stop > level_stop > take_profit > level_take_profit > exit_signal > time.

The first tests hand the level columns to the engine directly (the rule alone); the last ones
compute them from bars with ``flushback.strategies.levels.level_columns`` (the structure
worked out by hand in tests/test_signals_structure.py, extended here).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushback.strategies.contrarian import ContrarianStrategy
from flushback.strategies.levels import level_columns, levels_in_force
from tests.test_signals_structure import ROWS, frame_of
from tests.test_strategies_scenarios import ENTRY_FEE, SIZE, bars, check_trade, contrarian

NAN = math.nan
# bars 0..5: signal at 0, fill at the open of 1 (100)
TP_ROWS = [
    (100, 101, 99, 100),  # 0: entry signal; level_tp 110
    (100, 104, 99, 103),  # 1: fill 100; close 103 < 110 (fixed) and < level_tp[0] 110 (moving)
    (103, 109, 102, 108),  # 2: fixed 110: no; moving level_tp[1] = 106: 108 >= 106 -> exit
    (108, 112, 107, 111),  # 3: fixed: 111 >= 110 -> exit; (moving: exit fill at this open, 108)
    (112, 113, 111, 112),  # 4: fixed: exit fill at the open 112
    (112, 113, 111, 112),
]
SL_ROWS = [
    (100, 101, 99, 100),  # 0: entry signal; level_sl 95
    (100, 101, 97, 98),  # 1: fill 100; 98 > 95
    (98, 99, 96, 96.5),  # 2: fixed 95: no; moving level_sl[1] = 97: 96.5 <= 97 -> exit
    (96, 97, 94, 94.5),  # 3: fixed: 94.5 <= 95 -> exit; (moving: fill at this open, 96)
    (94, 95, 93, 94),  # 4: fixed: fill at the open 94
    (94, 95, 93, 94),
]


@pytest.mark.parametrize(("update", "exit_bar", "exit_price", "pnl"), [
    # fixed, level_tp[0] = 110: pnl = 9.99000999 * (112 - 100) - 0.999001 - 1.118881 = 117.76
    ("fixed", 4, 112.0, 117.76),
    # moving, level_tp[1] = 106 at bar 2: pnl = 9.99000999 * 8 - 0.999001 - 1.078921 = 77.84
    ("moving", 3, 108.0, 77.84),
])
def test_level_take_profit_fixed_and_moving(update, exit_bar, exit_price, pnl):
    frame, extra = bars(TP_ROWS, entry=[1, 0, 0, 0, 0, 0],
                        level_tp=[110, 106, 120, 120, 120, 120])
    r = contrarian(frame, extra, level_take_profit="retracement", level_update=update)
    assert len(r.trades) == 1
    check_trade(r.trades.iloc[0], entry_bar=1, exit_bar=exit_bar, entry_price=100,
                exit_price=exit_price, size=SIZE, entry_fee=ENTRY_FEE,
                exit_fee=SIZE * exit_price * 0.001, pnl=pnl, reason="level_take_profit",
                frame=frame)


def test_moving_level_is_never_the_same_bars():
    # level_tp[2] = 108 equals bar 2's close: a same-bar reading would exit at bar 3's open;
    # the rule tests bar 2's close against level_tp[1] = 120 and bar 3's (111) against 108
    frame, extra = bars(TP_ROWS, entry=[1, 0, 0, 0, 0, 0],
                        level_tp=[120, 120, 108, 130, 130, 130])
    r = contrarian(frame, extra, level_take_profit="gap", level_update="moving")
    check_trade(r.trades.iloc[0], entry_bar=1, exit_bar=4, entry_price=100, exit_price=112,
                size=SIZE, entry_fee=ENTRY_FEE, exit_fee=SIZE * 112 * 0.001, pnl=117.76,
                reason="level_take_profit", frame=frame)


@pytest.mark.parametrize(("update", "exit_bar", "exit_price", "pnl"), [
    # fixed: pnl = 9.99000999 * (94 - 100) - 0.999001 - 0.939061 = -61.88
    ("fixed", 4, 94.0, -61.88),
    # moving: pnl = 9.99000999 * (96 - 100) - 0.999001 - 0.959041 = -41.92
    ("moving", 3, 96.0, -41.92),
])
def test_level_stop_fixed_and_moving(update, exit_bar, exit_price, pnl):
    frame, extra = bars(SL_ROWS, entry=[1, 0, 0, 0, 0, 0],
                        level_sl=[95, 97, 99, 101, 101, 101])
    r = contrarian(frame, extra, level_stop="next_level", level_update=update)
    check_trade(r.trades.iloc[0], entry_bar=1, exit_bar=exit_bar, entry_price=100,
                exit_price=exit_price, size=SIZE, entry_fee=ENTRY_FEE,
                exit_fee=SIZE * exit_price * 0.001, pnl=pnl, reason="level_stop", frame=frame)


def test_a_nan_level_never_exits():
    # fixed: the signal bar has no level -> no level exit for the whole trade
    frame, extra = bars(TP_ROWS, entry=[1, 0, 0, 0, 0, 0],
                        level_tp=[NAN, 101, 101, 101, 101, 101],
                        level_sl=[NAN, 200, 200, 200, 200, 200])
    r = contrarian(frame, extra, level_take_profit="swing_high", level_stop="swing_low")
    t = r.trades.iloc[0]
    assert t["exit_reason"] == "end_of_data" and t["exit_price"] == 112.0
    # moving: NaN on bars 0-2, then 101 from bar 3 -> bar 4's close (112) exits at bar 5's open
    frame, extra = bars(TP_ROWS, entry=[1, 0, 0, 0, 0, 0],
                        level_tp=[NAN, NAN, NAN, 101, NAN, NAN])
    r = contrarian(frame, extra, level_take_profit="swing_high", level_update="moving")
    t = r.trades.iloc[0]
    assert t["exit_reason"] == "level_take_profit" and t["exit_time"] == frame.index[5]


def test_a_target_at_or_below_the_entry_price_is_ignored():
    # moving: level_tp[1] = 99 < the entry fill 100: bar 2's close 108 does not exit on it;
    # level_tp[2] = 104 > 100: bar 3's close 111 exits at bar 4's open 112
    frame, extra = bars(TP_ROWS, entry=[1, 0, 0, 0, 0, 0],
                        level_tp=[120, 99, 104, 104, 104, 104])
    r = contrarian(frame, extra, level_take_profit="retracement", level_update="moving")
    check_trade(r.trades.iloc[0], entry_bar=1, exit_bar=4, entry_price=100, exit_price=112,
                size=SIZE, entry_fee=ENTRY_FEE, exit_fee=SIZE * 112 * 0.001, pnl=117.76,
                reason="level_take_profit", frame=frame)
    # fixed at 100 (= the entry price): never a target
    frame, extra = bars(TP_ROWS, entry=[1, 0, 0, 0, 0, 0], level_tp=[100.0] * 6)
    r = contrarian(frame, extra, level_take_profit="retracement")
    assert r.trades.iloc[0]["exit_reason"] == "end_of_data"


def test_priority_stop_loss_then_level_stop_then_take_profits():
    # bar 2 closes at 108: take_profit 5 % (105) AND level_tp 101 AND level_sl 200 all hold
    frame, extra = bars(TP_ROWS, entry=[1, 0, 0, 0, 0, 0],
                        level_tp=[101] * 6, level_sl=[200] * 6)
    r = contrarian(frame, extra, take_profit=0.05, level_take_profit="swing_high",
                   level_stop="swing_low")
    assert r.trades.iloc[0]["exit_reason"] == "level_stop"
    assert r.trades.iloc[0]["exit_time"] == frame.index[2]  # bar 1's close 103 <= 200
    r = contrarian(frame, extra[["entry", "level_tp"]].assign(level_sl=NAN), take_profit=0.05,
                   level_take_profit="swing_high", level_stop="swing_low")
    # bar 1: close 103 >= level 101 but < 105: level take-profit; the % rule would wait
    assert r.trades.iloc[0]["exit_reason"] == "level_take_profit"
    r = contrarian(frame, extra[["entry"]].assign(level_tp=103.0, level_sl=NAN),
                   take_profit=0.03, level_take_profit="swing_high", level_stop="swing_low")
    assert r.trades.iloc[0]["exit_reason"] == "take_profit"  # both hold at 103: % rule first
    r = contrarian(frame, extra, stop_loss=0.001, level_take_profit="swing_high",
                   level_stop="swing_low")
    assert r.trades.iloc[0]["exit_reason"] == "level_stop"  # 103 > 99.9: stop_loss not hit


def test_level_exits_stay_close_based_in_intrabar_mode():
    # bar 2's HIGH (109) crosses 106 but only the close is tested: exit at bar 3's open
    frame, extra = bars(TP_ROWS, entry=[1, 0, 0, 0, 0, 0], level_tp=[106] * 6)
    r = contrarian(frame, extra, level_take_profit="gap", exit_mode="intrabar")
    t = r.trades.iloc[0]
    assert t["exit_reason"] == "level_take_profit"
    assert t["exit_time"] == frame.index[3] and t["exit_price"] == 108.0


# --------------------------------------------------------------------------- from bars
FLUSH_ROWS = list(ROWS) + [
    (22.5, 22.6, 18.0, 18.2),  # 14: entry signal. swing high 23.5 (bar 12, confirmed now)
    (18.3, 19.0, 17.8, 18.9),  # 15: fill at 18.3; bear gap [19.0, low13=22] created
    (18.9, 21.0, 18.7, 20.9),  # 16: close 20.9 >= 20.75 (fixed) / 20.65 (moving) -> exit
    (21.0, 21.5, 20.5, 21.2),  # 17: exit fill at the open 21.0
]
CFG = {"swing_bars": 2, "swing_lookback": 10}  # warm-up 10 + 2 = 12 bars


def test_level_columns_from_the_hand_table():
    f = frame_of(FLUSH_ROWS)
    cols = level_columns(f, {**CFG, "level_take_profit": "retracement",
                             "level_retracement": 0.5, "level_stop": "next_level"})
    tp, sl = cols["level_tp"], cols["level_sl"]
    assert tp.iloc[:12].isna().all() and sl.iloc[:12].isna().all()
    # bar 12: H = 26 (bar 6), drop low 17.5 -> 17.5 + 0.5 * 8.5 = 21.75
    assert tp.iloc[12] == pytest.approx(21.75)
    # bar 14: H = 23.5 (bar 12, confirmed at 14), drop low min(19, 22, 18) = 18 -> 20.75
    assert tp.iloc[14] == pytest.approx(20.75)
    # bar 15: drop low 17.8 -> 17.8 + 0.5 * 5.7 = 20.65
    assert tp.iloc[15] == pytest.approx(20.65)
    # bar 14 stop: swing low 17.5 (bar 10) vs the leg's levels 23.5 - x * 6 below 18.2
    # (1.272 -> 15.868): next level 17.5
    assert sl.iloc[14] == pytest.approx(17.5)
    gap = level_columns(f, {**CFG, "level_take_profit": "gap"})["level_tp"]
    assert np.isnan(gap.iloc[14]) and gap.iloc[15] == pytest.approx(19.0)
    swing = level_columns(f, {**CFG, "level_take_profit": "swing_high",
                              "level_stop": "swing_low", "level_stop_buffer": 0.01})
    assert swing["level_tp"].iloc[14] == 23.5
    assert swing["level_sl"].iloc[14] == pytest.approx(17.5 * 0.99)
    assert level_columns(f, {}) == {}


def _flush_run(rows=FLUSH_ROWS, **cfg):
    f = frame_of(rows)
    entry = [0] * len(rows)
    entry[14] = 1
    params = {**CFG, **cfg}
    extra = pd.DataFrame({"entry": entry, **ContrarianStrategy.feed_columns(f, params, 2190)},
                         index=f.index)
    return f, extra, contrarian(f, extra, **params)


@pytest.mark.parametrize("update", ["fixed", "moving"])
def test_retracement_take_profit_on_the_flush(update):
    f, extra, r = _flush_run(level_take_profit="retracement", level_retracement=0.5,
                             level_stop="next_level", level_update=update)
    size = 1000 / (18.3 * 1.001)  # 54.59021852
    # pnl = 54.59021852 * (21.0 - 18.3) - 0.999001 - 1.146395 = 145.25
    check_trade(r.trades.iloc[0], entry_bar=15, exit_bar=17, entry_price=18.3, exit_price=21.0,
                size=size, entry_fee=size * 18.3 * 0.001, exit_fee=size * 21.0 * 0.001,
                pnl=145.25, reason="level_take_profit", frame=f)
    # the levels in force, as the report's chart shows them
    force = levels_in_force(extra[["level_tp", "level_sl"]], r.trades, update)
    want = [20.75, 20.75] if update == "fixed" else [20.75, 20.65]
    assert force["level_tp"].iloc[15:17].tolist() == pytest.approx(want)
    assert force["level_tp"].drop(f.index[15:17]).isna().all()
    assert force["level_sl"].iloc[15] == pytest.approx(17.5)


def test_gap_take_profit_fixed_has_no_level_moving_finds_the_new_gap():
    f, _, r = _flush_run(level_take_profit="gap", level_update="fixed")
    assert r.trades.iloc[0]["exit_reason"] == "end_of_data"  # no open gap above at bar 14
    f, _, r = _flush_run(level_take_profit="gap", level_update="moving")
    t = r.trades.iloc[0]
    # bar 16's close 20.9 >= the gap of bar 15 (bottom 19.0): exit at bar 17's open 21.0
    assert t["exit_reason"] == "level_take_profit" and t["exit_time"] == f.index[17]
    assert t["exit_price"] == 21.0


def test_swing_high_take_profit_on_the_flush():
    rows = FLUSH_ROWS[:15] + [
        (18.3, 19.0, 17.8, 18.9),  # 15: fill at 18.3
        (18.9, 23.8, 18.7, 23.6),  # 16: close 23.6 >= the swing high 23.5 (bar 12) -> exit
        (23.7, 24.0, 23.0, 23.5),  # 17: exit fill at the open 23.7
    ]
    f, _, r = _flush_run(rows, level_take_profit="swing_high")
    size = 1000 / (18.3 * 1.001)
    # pnl = 54.59021852 * (23.7 - 18.3) - 0.999001 - 1.293788 = 292.49
    check_trade(r.trades.iloc[0], entry_bar=15, exit_bar=17, entry_price=18.3, exit_price=23.7,
                size=size, entry_fee=size * 18.3 * 0.001, exit_fee=size * 23.7 * 0.001,
                pnl=292.49, reason="level_take_profit", frame=f)


@pytest.mark.parametrize(("kind", "buffer"), [("next_level", 0.0), ("swing_low", 0.01)])
def test_level_stop_on_the_flush(kind, buffer):
    rows = FLUSH_ROWS[:15] + [
        (18.3, 18.4, 17.0, 17.1),  # 15: fill 18.3; close 17.1 <= 17.5 (next level: the swing
        #                            low of bar 10) and <= 17.5 * 0.99 = 17.325 -> stop
        (17.0, 17.2, 16.5, 16.8),  # 16: exit fill at the open 17.0
        (16.8, 17.0, 16.0, 16.2),
    ]
    f, _, r = _flush_run(rows, level_stop=kind, level_stop_buffer=buffer)
    size = 1000 / (18.3 * 1.001)
    # pnl = 54.59021852 * (17.0 - 18.3) - 0.999001 - 0.928034 = -72.89
    check_trade(r.trades.iloc[0], entry_bar=15, exit_bar=16, entry_price=18.3, exit_price=17.0,
                size=size, entry_fee=size * 18.3 * 0.001, exit_fee=size * 17.0 * 0.001,
                pnl=-72.89, reason="level_stop", frame=f)


# --------------------------------------------------------------------------- report chart
def test_report_chart_draws_the_levels_in_force_during_each_trade():
    from flushback.backtests.reports.html import build_report_html
    from flushback.backtests.run.folders import report_dict
    from flushback.backtests.run.runner import prepare_frame, run_backtest
    from flushback.backtests.run.spec import load_spec
    from flushback.signals.testing import synthetic_frame

    frame = synthetic_frame(700, "4h", seed=3)
    spec = load_spec({
        "data": {"symbol": "BTC-USD", "interval": "4h", "externals": []},
        "signals": {"entry": {"type": "drawdown", "threshold": 0.06, "lookback": 30}},
        "strategy": {"type": "contrarian", "level_take_profit": "retracement",
                     "level_retracement": 0.5, "level_stop": "next_level", "hold_bars": 40,
                     "swing_bars": 2, "swing_lookback": 60},
        "costs": {"commission": 0.001, "slippage": 0.0},
    }, env=False)
    result = run_backtest(spec, prepared=prepare_frame(spec, frame))
    trades = result.trades
    assert len(trades) >= 3 and "level_take_profit" in set(trades["exit_reason"])
    doc = report_dict(result)
    series = pd.DataFrame(doc["series"])
    tp = series["level_take_profit"].astype("float64").to_numpy()
    # independently: the signal bar's level on the bars from the entry fill to the bar
    # before the exit fill, NaN elsewhere
    levels = result.levels["level_tp"].to_numpy()
    idx = result.frame.index
    want = np.full(len(idx), np.nan)
    for _, t in trades.iterrows():
        e, x, s = (idx.get_loc(t[c]) for c in ("entry_time", "exit_time", "signal_time"))
        if levels[s] > t["entry_price"]:  # a target at or below the entry is no target
            want[e:x if t["exit_reason"] != "end_of_data" else x + 1] = levels[s]
    np.testing.assert_array_equal(tp, want)
    assert np.isfinite(want).any()
    # a take-profit exit: the close before the exit fill reached the level in force
    for _, t in trades[trades["exit_reason"] == "level_take_profit"].iterrows():
        x = idx.get_loc(t["exit_time"])
        assert result.frame["close"].iloc[x - 1] >= tp[x - 1] > t["entry_price"]
    html, _ = build_report_html(doc)
    sys.path.insert(0, str(Path(__file__).parent))
    from report_testkit import unpack_page

    names = [t.get("name") for t in unpack_page(html)[1]["figures"]["price"]["data"]]
    assert "level take-profit" in names and "level stop" in names
