"""Market structure (flushback.signals.structure): hand-built bar tables with the swings,
levels and gaps expected at each bar -- nothing before confirmation -- a brute-force second
implementation on random frames, and the planted "unconfirmed pivot" that the truncation
test and ``flushback audit`` must both catch.

Every expected number is worked out by hand in the comments (k = 2 bars on each side).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from flushback.signals import build_signal, get_signal, list_signals, temporary_registration
from flushback.signals.structure import (
    FIB_LEVELS,
    _StructureSignal,
    pivots,
    structure_table,
    structure_warmup,
)
from flushback.signals.testing import synthetic_frame

NAN = math.nan

# (open, high, low, close); k = 2
ROWS = [
    (20.0, 21.0, 19.0, 20.0),  # 0
    (20.0, 20.5, 18.0, 18.5),  # 1
    (18.5, 19.0, 16.0, 17.0),  # 2  swing LOW 16: < min(19, 18) and <= min(17, 19.6); conf. bar 4
    (17.0, 19.5, 17.0, 19.0),  # 3
    (19.8, 22.0, 19.6, 21.5),  # 4  bull gap [high2=19, low4=19.6]
    (21.5, 24.0, 21.0, 23.5),  # 5  bull gap [high3=19.5, low5=21]
    (23.5, 26.0, 23.0, 25.0),  # 6  swing HIGH 26: > max(22, 24), >= max(25.5, 22.8); conf. bar 8
    (25.0, 25.5, 22.0, 22.5),  # 7  bull gap [22, 23] of bar 6 filled (low 22 <= 22)
    (22.5, 22.8, 20.0, 20.5),  # 8  bear gap [high8=22.8, low6=23]
    (20.5, 21.0, 18.0, 18.5),  # 9  bear gap [21, low7=22]; bull gaps of 4 and 5 filled (low 18)
    (18.5, 19.0, 17.5, 18.0),  # 10 bear gap [19, low8=20]; swing LOW 17.5 (17.8, 19 after); conf 12
    (18.0, 20.0, 17.8, 19.5),  # 11 bear gap [19, 20] filled (high 20)
    (19.5, 23.5, 19.0, 23.0),  # 12 bear gaps [22.8, 23] and [21, 22] filled (high 23.5)
    (23.0, 23.2, 22.0, 22.5),  # 13 bull gap [high11=20, low13=22]; 23.5 (bar 12) not confirmed
]


def frame_of(rows, freq="4h"):
    idx = pd.date_range("2026-02-01", periods=len(rows), freq=freq, tz="UTC", name="timestamp")
    f = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=idx, dtype=float)
    f["volume"] = 1.0
    f.attrs["interval"] = freq
    return f


def col(tab, name):
    return tab[name].tolist()


def same(a, b):
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if isinstance(y, float) and math.isnan(y):
            assert x != x or x is None or pd.isna(x), (i, x, y)
        else:
            assert x == pytest.approx(y, abs=1e-12), (i, x, y)


@pytest.fixture(scope="module")
def tab():
    return structure_table(frame_of(ROWS), swing_bars=2, lookback=50, min_gap=0.0,
                           fill_ratio=1.0, tolerance=0.002)


def test_pivots_by_centre():
    f = frame_of(ROWS)
    hi, lo = pivots(f["high"].to_numpy(), f["low"].to_numpy(), 2)
    assert np.flatnonzero(hi).tolist() == [6]  # bar 12 (23.5) lacks its 2 bars after
    assert np.flatnonzero(lo).tolist() == [2, 10]


def test_swings_appear_only_when_confirmed(tab):
    # the high of bar 6 is known at bar 8's close, not at bar 6 or 7
    same(col(tab, "swing_high"), [NAN] * 8 + [26.0] * 6)
    idx = frame_of(ROWS).index
    assert tab["swing_high_at"].iloc[8] == idx[6] and pd.isna(tab["swing_high_at"].iloc[7])
    # the low of bar 2 from bar 4; the low of bar 10 from bar 12
    same(col(tab, "swing_low"), [NAN] * 4 + [16.0] * 8 + [17.5] * 2)
    assert tab["swing_low_at"].iloc[11] == idx[2] and tab["swing_low_at"].iloc[12] == idx[10]


def test_fibonacci_levels_of_the_last_confirmed_leg(tab):
    # leg: pivot low 16 (bar 2) -> swing high 26 (bar 6); level = 26 - x * 10
    same(col(tab, "leg_low"), [NAN] * 8 + [16.0] * 6)
    expected = {"fib_236": 23.64, "fib_382": 22.18, "fib_500": 21.0, "fib_618": 19.82,
                "fib_786": 18.14, "ext_1272": 13.28, "ext_1618": 9.82}
    for name, value in expected.items():
        same(col(tab, name), [NAN] * 8 + [value] * 6)
    assert set(FIB_LEVELS) < set(expected)


def test_drop_low_is_the_running_low_since_the_swing_high(tab):
    # min(low[6..t]): bar 8 -> min(23, 22, 20); bar 9 -> 18; bar 10 on -> 17.5
    same(col(tab, "drop_low"), [NAN] * 8 + [20.0, 18.0, 17.5, 17.5, 17.5, 17.5])


def test_fair_value_gaps_and_their_fill_state(tab):
    # nearest open bearish gap above the close (its bottom; top; creation bar)
    same(col(tab, "gap_above"), [NAN] * 8 + [22.8, 21.0, 19.0, 21.0, NAN, NAN])
    same(col(tab, "gap_above_top"), [NAN] * 8 + [23.0, 22.0, 20.0, 22.0, NAN, NAN])
    idx = frame_of(ROWS).index
    assert [tab["gap_above_at"].iloc[t] for t in (8, 9, 10, 11)] == [idx[8], idx[9], idx[10],
                                                                      idx[9]]
    # nearest open bullish gap below the close (its top; bottom)
    same(col(tab, "gap_below"), [NAN] * 4 + [19.6, 21.0, 23.0, 21.0, 19.6] + [NAN] * 4 + [22.0])
    same(col(tab, "gap_below_bottom"),
         [NAN] * 4 + [19.0, 19.5, 22.0, 19.5, 19.0] + [NAN] * 4 + [20.0])
    # open gaps: 4:{b4} 5:{b4,b5} 6:{b4,b5,b6} 7:{b4,b5} 8:+{s8} 9:{s8,s9} 10:+{s10}
    # 11:{s8,s9} 12:{} 13:{b13}
    same(col(tab, "gaps_open"), [0, 0, 0, 0, 1, 2, 3, 2, 3, 2, 3, 2, 0, 1])
    assert np.flatnonzero(tab["bull_gap_filled"]).tolist() == [7, 9]
    assert np.flatnonzero(tab["bear_gap_filled"]).tolist() == [11, 12]


def test_support_and_next_level_below(tab):
    # confirmed swing lows in the window: {16} from bar 4, {16, 17.5} from bar 12
    same(col(tab, "support_below"), [NAN] * 4 + [16.0] * 8 + [17.5] * 2)
    # bar 8 (close 20.5): fib 19.82 is the highest level below -> 19.82; bar 10 (close 18):
    # fib_786 = 18.14 is above, ext 13.28 below, swing low 16 -> 16; bar 12 (23): fib 22.18
    nxt = col(tab, "next_level_below")
    assert nxt[8] == pytest.approx(19.82) and nxt[10] == pytest.approx(16.0)
    assert nxt[12] == pytest.approx(22.18) and nxt[3] != nxt[3]


def test_equal_lows_form_a_liquidity_level():
    # two swing lows 10.00 (bar 2) and 10.01 (bar 6) within 0.2 %: one level at 10.00, n = 2;
    # a third at 11 (bar 10) is its own pivot but no level
    rows = [(12, 12.5, 11.5, 12), (12, 12.2, 11, 11.2), (11, 11.2, 10.0, 10.5),
            (10.5, 11.6, 10.4, 11.5), (11.5, 12, 11, 11.8), (11.8, 11.9, 10.5, 10.6),
            (10.6, 10.8, 10.01, 10.3), (10.3, 11.5, 10.2, 11.4), (11.4, 12.5, 11.3, 12.4),
            (12.4, 12.6, 11.5, 11.6), (11.6, 11.8, 11.0, 11.7), (11.7, 12.5, 11.6, 12.3),
            (12.3, 12.9, 11.8, 12.8), (12.8, 12.9, 9.9, 10.2)]
    tab = structure_table(frame_of(rows), 2, 50, tolerance=0.002)
    # the second low is confirmed at bar 8: the level exists from bar 8 on
    # (the pivot low 11.0 of bar 10, confirmed at 12, is more than 0.2 % away: no level)
    same(col(tab, "liq_below"), [NAN] * 8 + [10.0] * 6)
    same(col(tab, "liq_below_n"), [NAN] * 8 + [2.0] * 6)
    same(col(tab, "support_below"), [NAN] * 4 + [10.0] * 4 + [10.01] * 4 + [11.0, 10.01])
    # the sweep: bar 13's low 9.9 takes the level, but its close 10.2 is back above it
    sweep = build_signal({"type": "liquidity_sweep", "swing_bars": 2, "lookback": 10,
                          "tolerance": 0.002})
    f = frame_of(rows)
    assert sweep.warmup_for(pd.Timedelta(hours=4)) == 13
    trig = sweep.parts(f)["trigger"]
    assert trig.tolist() == [False] * 13 + [True]


def test_signals_on_the_hand_table():
    f = frame_of(ROWS)
    common = {"swing_bars": 2, "lookback": 10}
    # warm-up 10 + 2 + 1 = 13 bars: only bar 13 is past it on this table
    fib = build_signal({"type": "fib_retracement", "ratio": 0.618, **common})
    parts = fib.parts(f)
    # close <= 19.82 from bar 8 on: bars 9 (18.5), 10 (18), 11 (19.5)
    assert np.flatnonzero(parts["trigger"]).tolist() == [9, 10, 11]
    assert parts["level"].iloc[9] == pytest.approx(19.82)
    assert not fib.compute(f).any()  # all inside the warm-up
    brk = build_signal({"type": "swing_low_break", **common}).parts(f)
    assert not brk["trigger"].any()  # no close below 16 or 17.5
    gap = build_signal({"type": "gap_fill", "min_gap": 0.0, **common}).parts(f)
    assert np.flatnonzero(gap["trigger"]).tolist() == [7, 9]
    bear = build_signal({"type": "gap_fill", "direction": "bearish", "min_gap": 0.0,
                         **common}).parts(f)
    assert np.flatnonzero(bear["trigger"]).tolist() == [11, 12]


def test_swing_low_break_fires_on_the_first_close_below():
    rows = list(ROWS) + [(22.5, 22.6, 18.0, 18.2), (18.2, 18.4, 17.0, 17.2),
                         (17.2, 17.5, 16.5, 16.8)]
    brk = build_signal({"type": "swing_low_break", "swing_bars": 2, "lookback": 10})
    parts = brk.parts(frame_of(rows))
    # swing low 17.5 (bar 10, confirmed at 12): closes 18.2 (14), 17.2 (15) -> fires at 15 only
    assert np.flatnonzero(parts["trigger"]).tolist() == [15]
    assert parts["level"].iloc[15] == 17.5


# --------------------------------------------------------------------------- brute force
def brute(frame, k, lookback):
    """A second implementation: every bar recomputed from scratch from bars <= t only."""
    h, lo, c = (frame[x].to_numpy() for x in ("high", "low", "close"))
    n = len(c)
    rows = []
    for t in range(n):
        def is_pivot(arr, i, sign, t=t):
            if i - k < 0 or i + k > t:
                return False
            left = arr[i - k:i]
            right = arr[i + 1:i + k + 1]
            if sign > 0:
                return arr[i] > max(left) and arr[i] >= max(right)
            return arr[i] < min(left) and arr[i] <= min(right)

        centres = range(t - k, max(t - lookback, 0) - 1, -1)
        sh = next((i for i in centres if i >= t - lookback and is_pivot(h, i, 1)), None)
        sl = next((i for i in centres if i >= t - lookback and is_pivot(lo, i, -1)), None)
        leg = None
        if sh is not None:
            leg = next((i for i in range(sh - 1, t - lookback - 1, -1)
                        if i >= 0 and is_pivot(lo, i, -1)), None)
            if leg is not None and not lo[leg] < h[sh]:
                leg = None
        gaps_above, gaps_below = [], []
        for g in range(max(2, t - lookback), t + 1):
            if h[g] < lo[g - 2]:
                b, u = h[g], lo[g - 2]
                if not any(h[j] >= u for j in range(g + 1, t + 1)) and b > c[t]:
                    gaps_above.append(b)
            if lo[g] > h[g - 2]:
                b, u = h[g - 2], lo[g]
                if not any(lo[j] <= b for j in range(g + 1, t + 1)) and u < c[t]:
                    gaps_below.append(u)
        lows = sorted(lo[i] for i in range(max(0, t - lookback), t - k + 1)
                      if is_pivot(lo, i, -1))
        support = max((x for x in lows if x < c[t]), default=NAN)
        # equal lows: group the sorted lows where a gap of more than 0.2 % separates them
        groups, cur = [], []
        for x in lows:
            if cur and x > cur[-1] * 1.002:
                groups.append(cur)
                cur = []
            cur.append(x)
        groups.append(cur)
        liq = max((g[0] for g in groups if len(g) >= 2 and g[0] < c[t]), default=NAN)
        rows.append({
            "swing_high": h[sh] if sh is not None else NAN,
            "swing_low": lo[sl] if sl is not None else NAN,
            "leg_low": lo[leg] if leg is not None else NAN,
            "drop_low": min(lo[sh:t + 1]) if sh is not None else NAN,
            "gap_above": min(gaps_above, default=NAN),
            "gap_below": max(gaps_below, default=NAN),
            "support_below": support,
            "liq_below": liq,
        })
    return pd.DataFrame(rows, index=frame.index)


@pytest.mark.parametrize(("seed", "k", "lookback"), [(0, 3, 40), (1, 2, 25), (2, 5, 60),
                                                     (3, 1, 80), (4, 12, 10)])
def test_against_a_brute_force_recomputation(seed, k, lookback):
    f = synthetic_frame(260, "4h", seed=seed)
    got = structure_table(f, k, lookback, min_gap=0.0, fill_ratio=1.0)
    want = brute(f, k, lookback)
    w = structure_warmup(k, lookback)
    assert want["gap_above"].iloc[w:].notna().any()
    if k < lookback:  # (with k >= lookback no swing is ever inside the window)
        assert want[["swing_high", "leg_low", "support_below"]].iloc[w:].notna().any().all()
    for name in want.columns:
        pd.testing.assert_series_equal(got[name].iloc[w:], want[name].iloc[w:],
                                       check_names=False, obj=name)


def test_every_row_is_unchanged_when_later_bars_are_dropped():
    f = synthetic_frame(220, "1h", seed=4)
    full = structure_table(f, 3, 60)
    for cut in (70, 95, 130, 171, 219):
        part = structure_table(f.iloc[:cut], 3, 60)
        pd.testing.assert_frame_equal(full.iloc[:cut], part, obj=f"cut {cut}")


# --------------------------------------------------------------------------- planted bias
class UnconfirmedSwingLow(_StructureSignal):
    """PLANTED BIAS: "a swing low printed on this bar" -- the pivot used at its own bar, as a
    chart drawn with hindsight shows it (the test needs the k bars AFTER the bar)."""

    kind = "bool"
    param_specs = dict(get_signal("swing_low_break").param_specs)

    def parts(self, frame):
        k = self.params["swing_bars"]
        _, is_low = pivots(frame["high"].to_numpy(), frame["low"].to_numpy(), k)
        out = pd.DataFrame({"close": frame["close"], "low": frame["low"]})
        out["trigger"] = is_low
        return out


def test_structure_signals_are_registered():
    assert {"fib_retracement", "gap_fill", "swing_low_break",
            "liquidity_sweep"} <= set(list_signals())


def test_planted_unconfirmed_pivot_fails_the_truncation_test():
    from flushback.signals.testing import check_signal

    with temporary_registration("unconfirmed_swing_planted", UnconfirmedSwingLow):
        # a short window: most random cuts fall after the warm-up
        sig = get_signal("unconfirmed_swing_planted")(swing_bars=3, lookback=20)
        failures = check_signal(sig, "4h")
        assert "truncation_invariance" in failures, failures
        assert "look-ahead" in failures["truncation_invariance"]
        assert "alignment_dtype_name" not in failures
    assert "unconfirmed_swing_planted" not in list_signals()
    # the honest signal passes the same checks
    assert check_signal(get_signal("swing_low_break")(swing_bars=3, lookback=20), "4h") == {}


def test_planted_unconfirmed_pivot_is_caught_by_the_audit(tmp_path, capsys):
    from flushback.backtests.audit.base import FAIL, PASS
    from flushback.backtests.audit.run import audit_spec
    from flushback.backtests.cli import main
    from flushback.data.synthetic import write_sample_folder

    folder = write_sample_folder(tmp_path / "data", days=300, seed=11)
    text = """
name = "planted_structure"
cash = 10000.0

[data]
symbol = "BTC-USD"
interval = "1d"
externals = ["fng"]

[signals.entry]
type = "{kind}"
swing_bars = 3
lookback = 30

[strategy]
type = "contrarian"
hold_bars = 3

[costs]
commission = 0.001
slippage = 0.0
"""
    with temporary_registration("unconfirmed_swing_planted", UnconfirmedSwingLow):
        planted = tmp_path / "planted.toml"
        planted.write_text(text.format(kind="unconfirmed_swing_planted"), encoding="utf-8")
        report = audit_spec(str(planted), data_dir=folder, trades=20)
        la = report.check("lookahead")
        assert la.verdict == FAIL
        assert any(f.column == "entry" for f in la.findings)
        # and from the shell: `flushback audit` exits 6 on look-ahead
        code = main(["--data-dir", str(folder), "audit", str(planted), "--trades", "20"])
        out, err = capsys.readouterr()
        assert code == 6 and "FAIL" in out and "audit failed" in err
    honest = tmp_path / "honest.toml"
    honest.write_text(text.format(kind="swing_low_break"), encoding="utf-8")
    clean = audit_spec(str(honest), data_dir=folder, trades=20)
    assert clean.check("lookahead").verdict == PASS, clean.check("lookahead").summary
    assert clean.check("lookahead").params["trades_total"] > 0
