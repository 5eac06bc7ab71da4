"""Golden values: hand calculations on tiny frames, written out step by step and independent of
the implementation (exact rational arithmetic with ``fractions.Fraction`` where it helps)."""

from __future__ import annotations

import math
from fractions import Fraction as Fr

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flushback.signals import build_signal
from flushback.signals.rsi import rsi_on_timeframe, rsi_values, rsi_warmup

CLOSES = [44, 45, 44, 46, 47, 46, 48, 49, 48, 47, 49, 50, 51, 50, 52, 51, 53, 54, 52, 55]


def frame_of(interval: str = "1d", start: str = "2024-01-01", **cols) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    idx = pd.date_range(start, periods=n, freq={"1d": "1D", "1h": "1h", "4h": "4h"}[interval],
                        tz="UTC", name="timestamp")
    df = pd.DataFrame({k: np.asarray(v, dtype=object if k == "liq_regime" else "float64")
                       for k, v in cols.items()}, index=idx)
    df.attrs["interval"] = interval
    return df


def fired(series: pd.Series) -> list[int]:
    return [i for i, v in enumerate(series.to_numpy()) if v]


# --- RSI: a 20-bar frame against a hand calculation ------------------------------------------


def hand_rsi_wilder_20() -> list[float | None]:
    """Wilder RSI(14) of CLOSES, by hand.

    changes d_1..d_19 = +1 -1 +2 +1 -1 +2 +1 -1 -1 +2 +1 +1 -1 +2 | -1 +2 +1 -2 +3
    first 14: gains sum to 13 (1+2+1+2+1+2+1+1+2), losses to 5 (1+1+1+1+1)
    bar 14 (seed): G = 13/14, L = 5/14, RSI = 100 * 13 / 18 = 72.2222...
    bar 15 (d=-1): G = (13/14 * 13 + 0) / 14 = 169/196, L = (5/14 * 13 + 1) / 14 = 79/196,
                   RSI = 100 * 169 / 248 = 68.1451...
    then the same recursion G_t = (G_{t-1} * 13 + g_t) / 14 for bars 16..19.
    """
    d = [CLOSES[i] - CLOSES[i - 1] for i in range(1, 20)]
    assert d == [1, -1, 2, 1, -1, 2, 1, -1, -1, 2, 1, 1, -1, 2, -1, 2, 1, -2, 3]
    g = [Fr(max(x, 0)) for x in d]
    lo = [Fr(max(-x, 0)) for x in d]
    G, L = sum(g[:14]) / 14, sum(lo[:14]) / 14
    assert (G, L) == (Fr(13, 14), Fr(5, 14))
    out: list[float | None] = [None] * 14
    out.append(float(100 * G / (G + L)))
    assert out[14] == pytest.approx(100 * 13 / 18, abs=1e-12)
    for t in range(15, 20):
        G = (G * 13 + g[t - 1]) / 14
        L = (L * 13 + lo[t - 1]) / 14
        if t == 15:
            assert (G, L) == (Fr(169, 196), Fr(79, 196))
        out.append(float(100 * G / (G + L)))
    assert out[15] == pytest.approx(100 * 169 / 248, abs=1e-12)
    return out


def test_wilder_rsi_20_bars_matches_hand_calculation():
    expected = hand_rsi_wilder_20()
    got = rsi_values(pd.Series(CLOSES, dtype="float64"), 14, "wilder").tolist()
    for t in range(20):
        if expected[t] is None:
            assert math.isnan(got[t]), t
        else:
            assert abs(got[t] - expected[t]) < 1e-9, (t, got[t], expected[t])


def test_cutler_and_ema_rsi_20_bars_match_hand_calculation():
    d = [CLOSES[i] - CLOSES[i - 1] for i in range(1, 20)]
    g = [Fr(max(x, 0)) for x in d]
    lo = [Fr(max(-x, 0)) for x in d]
    cut = rsi_values(pd.Series(CLOSES, dtype="float64"), 14, "cutler")
    for t in range(14, 20):  # simple means of the last 14 changes d_{t-13}..d_t
        G, L = sum(g[t - 14:t]) / 14, sum(lo[t - 14:t]) / 14
        assert abs(cut.iloc[t] - float(100 * G / (G + L))) < 1e-9
    # bar 19: changes d_6..d_19 -> gains 2+1+2+1+1+2+2+1+3 = 15, losses 1+1+1+1+2 = 6
    assert abs(cut.iloc[19] - 100 * 15 / 21) < 1e-9
    ema = rsi_values(pd.Series(CLOSES, dtype="float64"), 14, "ema")
    a = Fr(2, 15)
    G, L = Fr(13, 14), Fr(5, 14)
    for t in range(15, 20):
        G, L = G + (g[t - 1] - G) * a, L + (lo[t - 1] - L) * a
    assert abs(ema.iloc[19] - float(100 * G / (G + L))) < 1e-9


def test_rsi_flat_stretch_is_50_and_one_sided_is_0_or_100():
    flat = rsi_values(pd.Series([10.0] * 30), 14, "wilder")
    assert (flat.iloc[14:] == 50.0).all()
    up = rsi_values(pd.Series(np.arange(30, dtype="float64")), 14, "wilder")
    down = rsi_values(pd.Series(-np.arange(30, dtype="float64")), 14, "cutler")
    assert (up.iloc[14:] == 100.0).all() and (down.iloc[14:] == 0.0).all()


def test_rsi_warmup_declared_about_200_bars_for_wilder_14():
    assert rsi_warmup(14, "wilder") == 14 + 1 + math.ceil(math.log(1e-6) / math.log(13 / 14))
    assert 195 <= rsi_warmup(14, "wilder") <= 205
    assert rsi_warmup(14, "cutler") == 15


def test_oversold_rsi_signal_on_the_20_bar_frame_with_cutler():
    # Cutler RSI(14): warm-up 15 bars; RSI at bars 15..19 by hand (sums of the last 14 changes)
    f = frame_of(close=CLOSES)
    sig = build_signal({"type": "rsi", "period": 14, "smoothing": "cutler"})
    out = sig.compute(f)
    assert out.iloc[:15].isna().all()
    # bar 15: d_2..d_15: gains 2+1+2+1+2+1+1+2 = 12, losses 1+1+1+1+1+1 = 6 -> 66.67
    assert abs(out.iloc[15] - 100 * 12 / 18) < 1e-9
    ob = build_signal({"type": "overbought_rsi", "smoothing": "cutler", "threshold": 68})
    # bars 15..19 RSI: 66.67 (12/18), 73.68 (14/19), 72.22 (13/18), 63.16 (12/19), 71.43 (15/21)
    assert fired(ob.compute(f)) == [16, 17, 19]
    # mirrored closes (100 - close) mirror the RSI: 33.33, 26.32, 27.78, 36.84, 28.57
    mirrored = frame_of(close=[100 - c for c in CLOSES])
    os_ = build_signal({"type": "oversold_rsi", "smoothing": "cutler", "threshold": 33})
    assert fired(os_.compute(mirrored)) == [16, 17, 19]


def test_higher_timeframe_rsi_only_after_the_4h_bar_closed():
    # 1h bars; 4h closes are every 4th bar's close. RSI(2, cutler) on 4h closes, by hand.
    closes_4h = [10, 12, 11, 13, 9]
    hourly = []
    for c in closes_4h:
        hourly += [c + 0.5, c - 0.5, c + 0.25, c]  # the 4th hour closes the 4h bar
    f = frame_of("1h", close=hourly)
    got = rsi_on_timeframe(f, 2, "cutler", "4h")
    # 4h changes: +2, -1, +2, -4. RSI(2) at 4h bar 2: G=(2+0)/2, L=(0+1)/2 -> 66.67;
    # bar 3: G=(0+2)/2=1, L=0.5 -> 66.67; bar 4: G=(2+0)/2=1, L=(0+4)/2=2 -> 33.33
    exp_4h = {2: 100 * 1 / 1.5, 3: 100 * 1 / 1.5, 4: 100 * 1 / 3}
    for h in range(len(hourly)):
        k = (h + 1) // 4 - 1  # last 4h bar whose close is known at the close of hour h
        want = exp_4h.get(k, np.nan)
        if np.isnan(want):
            assert np.isnan(got.iloc[h]), h
        else:
            assert abs(got.iloc[h] - want) < 1e-9, (h, got.iloc[h], want)
    # an incomplete last 4h group is not used: drop the final hour
    short = rsi_on_timeframe(f.iloc[:-1], 2, "cutler", "4h")
    assert abs(short.iloc[-1] - exp_4h[3]) < 1e-9


# --- Fear & Greed ---------------------------------------------------------------------------

FNG = [30, 12, 10, 9, 15, 8, 8, 25, 10, np.nan, 5]


def test_extreme_fear_threshold_streak_and_fall():
    f = frame_of(fng=FNG)
    assert fired(build_signal({"type": "extreme_fear", "threshold": 10}).compute(f)) == [
        2, 3, 5, 6, 8, 10]
    # two days in a row at/below 10: bar 3 (10, 9) and bar 6 (8, 8); NaN at 9 breaks a streak
    two = build_signal({"type": "extreme_fear", "threshold": 10, "consecutive_days": 2})
    assert fired(two.compute(f)) == [3, 6]
    # fall of >= 15 points from the high of the previous 3 days (window of 4 values incl. t):
    # bar 3: max(30,12,10,9) - 9 = 21 ok; bar 5: max(10,9,15,8) - 8 = 7 no;
    # bar 6: max(9,15,8,8) - 8 = 7 no; bar 8: max(8,8,25,10) - 10 = 15 ok
    fall = build_signal({"type": "extreme_fear", "threshold": 10, "fall_points": 15,
                         "move_window_days": 3})
    assert fired(fall.compute(f)) == [3, 8]


def test_extreme_greed_mirror():
    f = frame_of(fng=[50, 85, 79, 90, 91, 60, np.nan, 95])
    assert fired(build_signal({"type": "extreme_greed", "threshold": 80}).compute(f)) == [
        1, 3, 4, 7]
    two = build_signal({"type": "extreme_greed", "threshold": 80, "consecutive_days": 2})
    assert fired(two.compute(f)) == [4]


def test_extreme_fear_consecutive_days_on_hourly_bars_counts_days():
    # 1h bars, daily F&G repeated per hour: 2 days in a row = 25 hourly bars at/below threshold
    fng = [20.0] * 24 + [9.0] * 24 + [8.0] * 24
    f = frame_of("1h", fng=fng)
    got = fired(build_signal({"type": "extreme_fear", "threshold": 10,
                              "consecutive_days": 2}).compute(f))
    assert got == list(range(24 + 24, 72))


# --- liquidation spike ----------------------------------------------------------------------


def _liq_frame(y, regimes, short=None):
    long_usd = np.expm1(np.asarray(y, dtype="float64"))
    return frame_of(liq_long_usd=long_usd,
                    liq_short_usd=short if short is not None else np.full(len(y), 1.0),
                    liq_regime=regimes)


def test_liquidation_spike_regime_aware_robust_z():
    # log1p(long) = y. Full-regime days 7,6,7,6,7; throttled days 1,2,3,2,1; then a 6.
    y = [7, 6, 7, 6, 7, 1, 2, 3, 2, 1, 6]
    reg = ["binance_full"] * 5 + ["binance_throttled"] * 6
    f = _liq_frame(y, reg)
    cfg = {"type": "liquidation_spike", "lookback_days": 14, "min_days": 3, "k": 2.5}
    # warm-up = lookback (14 bars): extend the history so bar 10 is past it
    pre = _liq_frame([6, 7] * 7, ["binance_full"] * 14)
    both = pd.concat([pre, f])
    both.index = pd.date_range("2024-01-01", periods=len(both), freq="1D", tz="UTC",
                               name="timestamp")
    both.attrs["interval"] = "1d"
    aware = build_signal(cfg)
    ex = aware.explain(both)
    # regime-aware baseline at the spike = throttled days [1,2,3,2,1]: median 2, MAD 1
    assert abs(ex["z"].iloc[-1] - (6 - 2) / 1.4826) < 1e-9
    assert fired(aware.compute(both)) == [len(both) - 1]
    blind = build_signal({**cfg, "regime_aware": False})
    exb = blind.explain(both)
    # blind baseline = the 14 values before the spike: 6,7,6,7, 7,6,7,6,7, 1,2,3,2,1
    base = [6, 7, 6, 7] + [7, 6, 7, 6, 7, 1, 2, 3, 2, 1]
    med = float(np.median(base))
    mad = float(np.median(np.abs(np.array(base) - med)))
    assert abs(exb["z"].iloc[-1] - (6 - med) / (1.4826 * mad)) < 1e-9
    assert fired(blind.compute(both)) == []


def test_liquidation_spike_absolute_and_share():
    long_usd = [10e6, 50e6, 150e6, 90e6, 200e6]
    short_usd = [10e6, 10e6, 50e6, 10e6, 200e6]
    f = frame_of(liq_long_usd=long_usd, liq_short_usd=short_usd,
                 liq_regime=["binance_throttled"] * 5)
    usd = build_signal({"type": "liquidation_spike", "method": "absolute",
                        "usd_threshold": 1e8})
    assert fired(usd.compute(f)) == [2, 4]
    # long share: 0.5, 0.833, 0.75, 0.9, 0.5
    share = build_signal({"type": "liquidation_spike", "method": "absolute",
                          "measure": "long_share", "share_threshold": 0.8})
    assert fired(share.compute(f)) == [1, 3]
    both = build_signal({"type": "liquidation_spike", "method": "absolute",
                         "usd_threshold": 1e8, "min_long_share": 0.7})
    assert fired(both.compute(f)) == [2]
    only_full = build_signal({"type": "liquidation_spike", "method": "absolute",
                              "usd_threshold": 1e8, "regime": "binance_full"})
    assert fired(only_full.compute(f)) == []


def test_liquidation_window_counts_a_repeated_bucket_once():
    # 1h bars carrying a 4h source: each bucket value repeats on 4 bars; a 4h window = 1 bucket
    vals = [1e6] * 4 + [2e6] * 4 + [3e6] * 4
    f = frame_of("1h", liq_long_usd=vals, liq_short_usd=[0.0] * 12,
                 liq_regime=["binance_throttled"] * 12)
    ex = build_signal({"type": "liquidation_spike", "window": "4h", "method": "absolute",
                       "usd_threshold": 1e6}).explain(f)
    assert ex["long_usd"].iloc[3:].tolist() == [1e6, 2e6, 2e6, 2e6, 2e6, 3e6, 3e6, 3e6, 3e6]


# --- capitulation, drawdown, funding, open interest ------------------------------------------


def _cap_frame(crash_volume: float) -> pd.DataFrame:
    # 11 quiet bars alternating 100/101 (returns +-ln 1.01), volume 100, range 2; then a crash
    closes = [100.0, 101.0] * 6 + [88.0]
    highs = [c + 1 for c in closes[:-1]] + [101.0]
    lows = [c - 1 for c in closes[:-1]] + [86.0]
    vols = [100.0] * 12 + [crash_volume]
    return frame_of(open=closes, high=highs, low=lows, close=closes, volume=vols)


def test_capitulation_by_hand():
    f = _cap_frame(300.0)
    sig = build_signal({"type": "capitulation", "lookback": 10, "k": 2, "volume_mult": 1.5,
                        "range_mult": 1.5})
    ex = sig.explain(f)
    # the 10 returns before bar 12 alternate -ln1.01, +ln1.01: sample sd = ln1.01*sqrt(10/9)
    sd = math.log(1.01) * math.sqrt(10 / 9)
    r = math.log(88 / 101)
    assert abs(ex["sigmas"].iloc[12] - r / sd) < 1e-9
    assert abs(ex["volume_x"].iloc[12] - 3.0) < 1e-12
    # range (101 - 86) / 101 vs the median of the earlier ranges 2/100 and 2/101
    med_range = float(np.median([2 / 101, 2 / 100] * 5))
    assert abs(ex["range_x"].iloc[12] - (15 / 101) / med_range) < 1e-9
    assert fired(sig.compute(f)) == [12]
    # same crash without the volume: not a capitulation
    assert fired(sig.compute(_cap_frame(120.0))) == []


def test_drawdown():
    high = [100, 110, 105, 100, 90, 80, 85, 120]
    close = [100, 108, 100, 95, 85, 78, 84, 119]
    f = frame_of(high=high, close=close)
    sig = build_signal({"type": "drawdown", "lookback": 3, "threshold": 0.2})
    # window highs from bar 2: 110,110,105,100,90,120 -> dd: 100/110-1=-.09, 95/110-1=-.136,
    # 85/105-1=-.19, 78/100-1=-.22, 84/90-1=-.067, 119/120-1
    assert fired(sig.compute(f)) == [5]


def test_funding_flip_level_and_cross():
    fr = [1e-4, -5e-5, -2e-4, -3e-4, 1e-4, -1e-4, np.nan, -2e-4]
    f = frame_of(funding_rate=fr)
    assert fired(build_signal({"type": "funding_flip"}).compute(f)) == [2, 3, 5, 7]
    cross = build_signal({"type": "funding_flip", "cross": True})
    assert fired(cross.compute(f)) == [2, 5]


def test_oi_flush():
    oi = [100, 102, 101, 95, 90, 92, 80, 81]
    f = frame_of(oi_usd=oi)
    sig = build_signal({"type": "oi_flush", "lookback": 2, "threshold": 0.1})
    # ref = max of the 2 previous: bar2 102, bar3 102 (-6.9%), bar4 101 (-10.9%), bar5 95,
    # bar6 92 (-13.0%), bar7 92 (-12.0%)
    assert fired(sig.compute(f)) == [4, 6, 7]


# --- composition ----------------------------------------------------------------------------

# A = funding_flip (funding <= -1e-4), B = extreme_fear (fng <= 10)
A = [0, 1, 0, 0, 1, 1, 0, 0, 0, 1]
B = [0, 0, 1, 0, 1, 0, 0, 0, 1, 0]


def _ab_frame():
    return frame_of(funding_rate=[-2e-4 if a else 1e-4 for a in A],
                    fng=[5.0 if b else 50.0 for b in B])


def _ab(kind, **kw):
    return build_signal({"type": kind, **kw,
                         "of": [{"type": "funding_flip"}, {"type": "extreme_fear"}]})


def test_all_any_k_of_n_by_hand():
    f = _ab_frame()
    assert fired(_ab("all").compute(f)) == [4]
    # window 2: A within {t-1,t} and B within {t-1,t}: t=2 (A1,B2), 4, 5 (A5,B4), 9 (A9,B8)
    assert fired(_ab("all", window=2).compute(f)) == [2, 4, 5, 9]
    assert fired(_ab("any").compute(f)) == [1, 2, 4, 5, 8, 9]
    assert fired(_ab("k_of_n", k=2, window=2).compute(f)) == [2, 4, 5, 9]
    assert fired(_ab("k_of_n", k=1, window=1).compute(f)) == [1, 2, 4, 5, 8, 9]


def test_not_cooldown_first_of_cluster_by_hand():
    f = _ab_frame()
    neg = build_signal({"type": "not", "of": [{"type": "funding_flip"}]})
    assert fired(neg.compute(f)) == [0, 2, 3, 6, 7, 8]
    cool = build_signal({"type": "cooldown", "bars": 3, "of": [{"type": "funding_flip"}]})
    # A fires at 1,4,5,9: 1 kept; 4 is 3 bars later -> suppressed (needs > 3); 5 kept; 9 kept
    assert fired(cool.compute(f)) == [1, 5, 9]
    first = build_signal({"type": "first_of_cluster", "gap": 2,
                          "of": [{"type": "funding_flip"}]})
    # warm-up = gap: bar 1 is masked; 4: no A at 2,3 -> kept; 5: A at 4 -> dropped; 9 kept
    assert fired(first.compute(f)) == [4, 9]


def test_not_is_false_where_child_inputs_are_missing():
    f = frame_of(fng=[50.0, np.nan, 5.0])
    neg = build_signal({"type": "not", "of": [{"type": "extreme_fear"}]})
    assert fired(neg.compute(f)) == [0]


# --- properties on arbitrary inputs ---------------------------------------------------------

_prices = st.lists(
    st.one_of(st.floats(1.0, 1e6, allow_nan=False), st.sampled_from([100.0])),
    min_size=1, max_size=80,
)


@settings(max_examples=60, deadline=None)
@given(closes=_prices, period=st.integers(2, 20),
       smoothing=st.sampled_from(["wilder", "cutler", "ema"]))
def test_rsi_is_bounded_and_silent_on_any_prices(closes, period, smoothing):
    """Any price path, including long flat stretches: RSI in [0, 100] (or NaN while warming
    up), never a division-by-zero warning (pytest turns warnings into failures here)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = rsi_values(pd.Series(closes, dtype="float64"), period, smoothing)
    vals = out.to_numpy()
    assert np.isnan(vals[: min(period, len(vals))]).all()
    ok = vals[~np.isnan(vals)]
    assert ((ok >= 0) & (ok <= 100)).all()
    if len(closes) > period and len(set(closes)) == 1:
        assert (ok == 50.0).all()


def test_liquidation_zscore_is_silent_when_the_baseline_is_flat():
    # MAD = 0 (a constant baseline): the z-score is undefined, so no trigger, no warning
    f = frame_of(liq_long_usd=[5e6] * 20 + [9e9], liq_short_usd=[1.0] * 21,
                 liq_regime=["binance_throttled"] * 21)
    sig = build_signal({"type": "liquidation_spike", "lookback_days": 14, "min_days": 3})
    assert np.isnan(sig.explain(f)["z"].iloc[-1])
    assert not sig.compute(f).any()


def test_liquidation_regime_baseline_excludes_windows_straddling_the_break():
    # 4h bars, 24h window (6 bars): after the regime break at bar 100 the window sums of bars
    # 100..104 still hold full-regime buckets; they must not enter the new regime's baseline.
    rng = np.random.default_rng(7)
    n, brk, w, lb = 300, 100, 6, 14 * 6
    long_usd = np.r_[rng.uniform(1e9, 2e9, brk), rng.uniform(1e6, 1e7, n - brk)]
    reg = ["binance_full"] * brk + ["binance_throttled"] * (n - brk)
    f = frame_of("4h", liq_long_usd=long_usd, liq_short_usd=np.full(n, 1.0), liq_regime=reg)
    ex = build_signal({"type": "liquidation_spike", "lookback_days": 14, "min_days": 3,
                       "k": 2.5}).explain(f)
    sums = pd.Series(long_usd).rolling(w).sum().to_numpy()
    for t in range(brk + 40, n, 7):
        base = np.log1p(sums[max(brk + w - 1, t - lb):t])  # clean windows only
        med = float(np.median(base))
        mad = float(np.median(np.abs(base - med)))
        assert ex["z"].iloc[t] == pytest.approx((np.log1p(sums[t]) - med) / (1.4826 * mad),
                                                rel=1e-9)
