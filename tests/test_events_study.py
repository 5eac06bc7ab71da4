"""Event study: hand-computed outcomes, clustering, and known-answer statistical tests."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.events.study import (
    EventsSection,
    StudyEvent,
    events_from_triggers,
    forward_outcomes,
    run_event_study,
)
from flushback.data.errors import ConfigError, DataError

DAY = pd.Timedelta(days=1)


def _tiny() -> pd.DataFrame:
    idx = pd.date_range("2024-01-01", periods=8, freq="D", tz="UTC", name="timestamp")
    f = pd.DataFrame(
        {
            "open": [100, 101, 95, 80, 82, 90, 88, 99],
            "high": [102, 103, 96, 85, 91, 94, 100, 101],
            "low": [99, 94, 79, 76, 81, 86, 87, 97],
            "close": [101, 95, 80, 82, 90, 88, 99, 100],
        },
        index=idx,
        dtype="float64",
    )
    f.attrs["interval"] = "1d"
    return f


def _day_event(day: str, eid: str = "e") -> StudyEvent:
    d = pd.Timestamp(day, tz="UTC")
    return StudyEvent(id=eid, name=eid, day_start=d, known_at=d + DAY)


def test_forward_outcomes_by_hand():
    # event dated 2024-01-03 (close 80): known at its close, entry = open of 2024-01-04 = 80
    out = forward_outcomes(_tiny(), [_day_event("2024-01-03")], horizons=(1, 3))
    r = out.iloc[0]
    assert r.status == "ok"
    assert r.entry_time == pd.Timestamp("2024-01-04", tz="UTC")
    assert r.entry_price == 80
    assert r.event_close == 80
    assert r.pre_event_close == 95  # close of 2024-01-02
    assert r.ret_1 == pytest.approx(82 / 80 - 1)
    assert r.mae_1 == pytest.approx(76 / 80 - 1)
    assert r.mfe_1 == pytest.approx(85 / 80 - 1)
    # 3 days: bars 01-04, 01-05, 01-06 -> exit at close of 01-06 (88)
    assert r.ret_3 == pytest.approx(88 / 80 - 1)
    assert r.mae_3 == pytest.approx(76 / 80 - 1)
    assert r.mfe_3 == pytest.approx(94 / 80 - 1)
    assert r.exit_time_3 == pd.Timestamp("2024-01-07", tz="UTC")
    # first close >= 95 after the event: 01-07 (99), closing at 01-08 00:00 -> 4 days after known
    assert r.days_to_recover == 4
    # lowest low over the longest horizon (3 bars) after known: 76 vs event close 80
    assert r.drawdown_ahead == pytest.approx(76 / 80 - 1)
    assert r.days_to_low == 1


def test_horizon_past_data_is_nan_and_missing_entry_flagged():
    out = forward_outcomes(
        _tiny(), [_day_event("2024-01-06", "late"), _day_event("2024-01-08", "end")], (1, 3)
    )
    late, end = out.iloc[0], out.iloc[1]
    assert late.ret_1 == pytest.approx(99 / 88 - 1)  # entry 01-07 open 88, close 99
    assert np.isnan(late.ret_3)
    assert end.status == "no entry bar in data"


def test_intraday_trigger_known_at_bar_close():
    f = _tiny()
    f.attrs["interval"] = "1d"
    ev = events_from_triggers(pd.DatetimeIndex([f.index[2]]), "1d")
    out = forward_outcomes(f, ev, (1,))
    assert out.iloc[0].entry_time == f.index[3]


def test_bad_inputs_raise_typed_errors():
    f = _tiny()
    with pytest.raises(ConfigError):
        forward_outcomes(f, [_day_event("2024-01-03")], (0,))
    with pytest.raises(DataError):
        forward_outcomes(f.drop(columns="low"), [_day_event("2024-01-03")], (1,))
    naive = f.copy()
    naive.index = naive.index.tz_localize(None)
    with pytest.raises(DataError):
        forward_outcomes(naive, [_day_event("2024-01-03")], (1,))
    with pytest.raises(ConfigError):
        run_event_study(f, [_day_event("2024-01-03")], horizons=(1,), draws=0)


def random_walk(seed: int, n: int = 2500, vol: float = 0.03) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lr = rng.normal(0.0, vol, n)
    close = 100 * np.exp(np.cumsum(lr))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0, vol / 2, n))
    idx = pd.date_range("2018-01-01", periods=n, freq="D", tz="UTC", name="timestamp")
    f = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1 + wick),
            "low": np.minimum(open_, close) * (1 - wick),
            "close": close,
        },
        index=idx,
    )
    f.attrs["interval"] = "1d"
    return f


def _planted(seed: int, n_events: int = 15, rebound: float = 0.12):
    """Random walk with planted flushes (-15 % day) followed by a planted 7-day rebound."""
    rng = np.random.default_rng(seed)
    n = 2500
    lr = rng.normal(0.0, 0.03, n)
    days = np.sort(rng.choice(np.arange(200, n - 200, 40), n_events, replace=False))
    for d in days:
        lr[d] = np.log(0.85)
        lr[d + 1 : d + 8] += np.log(1 + rebound) / 7
    close = 100 * np.exp(np.cumsum(lr))
    open_ = np.concatenate([[100.0], close[:-1]])
    idx = pd.date_range("2018-01-01", periods=n, freq="D", tz="UTC", name="timestamp")
    f = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.005,
            "low": np.minimum(open_, close) * 0.995,
            "close": close,
        },
        index=idx,
    )
    f.attrs["interval"] = "1d"
    return f, events_from_triggers(idx[days], "1d", prefix="planted")


@pytest.mark.parametrize("match", [False, True])
def test_planted_rebounds_are_significant(match):
    f, events = _planted(7)
    st = run_event_study(
        f, events, horizons=(7,), draws=4000, seed=1, match_volatility=match
    )
    row = st.summary.set_index("horizon").loc[7]
    assert row.n_clusters == 15
    assert row.ret_mean > 0.08
    assert row.ret_p_greater < 0.001
    assert row.ret_p_value < 0.01
    assert row.ret_ci_lo > row.ret_baseline_hi  # intervals separate


def test_baseline_matches_a_second_implementation():
    """The null mean equals the plain mean of h-day returns over the period (loop version)."""
    f = random_walk(3)
    days = f.index[[300, 700, 1100, 1500, 1900]]
    st = run_event_study(f, events_from_triggers(days, "1d"), horizons=(7,), draws=20000, seed=2)
    row = st.summary.iloc[0]
    o, c = f["open"].to_numpy(), f["close"].to_numpy()
    lo, hi = 301, 1901  # entry positions of the first and last event
    plain = [c[p + 6] / o[p] - 1 for p in range(lo, hi + 1)]
    assert row.ret_baseline == pytest.approx(np.mean(plain), abs=0.002)
    # the band of the mean of 5 draws has the width implied by the per-day spread
    sd = np.std(plain) / np.sqrt(5)
    assert (row.ret_baseline_hi - row.ret_baseline_lo) == pytest.approx(2 * 1.96 * sd, rel=0.1)
    # the event mean itself, by hand
    ev_pos = [301, 701, 1101, 1501, 1901]
    assert row.ret_mean == pytest.approx(np.mean([c[p + 6] / o[p] - 1 for p in ev_pos]))


def test_overlapping_events_are_clustered():
    f = random_walk(4)
    days = f.index[[500, 502, 504, 900]]
    st = run_event_study(f, events_from_triggers(days, "1d"), horizons=(1, 3, 7), draws=500)
    s = st.summary.set_index("horizon")
    assert s.loc[1, "n_clusters"] == 4  # 2 bars apart >= 1: separate
    assert s.loc[3, "n_clusters"] == 2  # 2 < 3: 500/502/504 chain into one cluster
    assert s.loc[7, "n_clusters"] == 2
    # cluster value = mean of members; study mean = mean over clusters (not over events)
    o, c = f["open"].to_numpy(), f["close"].to_numpy()
    r = {p: c[p + 7 + 1 - 1] / o[p + 1] - 1 for p in (500, 502, 504, 900)}
    expect = (np.mean([r[500], r[502], r[504]]) + r[900]) / 2
    assert s.loc[7, "ret_mean"] == pytest.approx(expect)
    first = run_event_study(
        f, events_from_triggers(days, "1d"), horizons=(7,), draws=500, cluster="first"
    )
    assert first.summary.iloc[0].ret_mean == pytest.approx((r[500] + r[900]) / 2)


def test_seeded_and_deterministic():
    f, events = _planted(11)
    a = run_event_study(f, events, horizons=(3, 7), draws=1000, seed=5)
    b = run_event_study(f, events, horizons=(3, 7), draws=1000, seed=5)
    c = run_event_study(f, events, horizons=(3, 7), draws=1000, seed=6)
    pd.testing.assert_frame_equal(a.summary, b.summary)
    assert not a.summary["ret_baseline_lo"].equals(c.summary["ret_baseline_lo"])


def test_period_accepts_date_strings_as_utc():
    f, events = _planted(11)
    start, end = f.index[30], f.index[-40]
    kw = dict(horizons=(3,), draws=500, seed=2)
    aware = run_event_study(f, events, period=(start, end), **kw)
    naive = run_event_study(
        f, events, period=(start.strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d")), **kw
    )
    assert naive.settings["period_start"] == start
    assert naive.settings["period_end"] == end
    pd.testing.assert_frame_equal(naive.summary, aware.summary)


def _false_positive_rate(n_seeds: int, alpha: float = 0.05, horizon: int = 7) -> float:
    rejections = 0
    for seed in range(n_seeds):
        f = random_walk(1000 + seed, n=1500)
        rng = np.random.default_rng(seed)
        days = f.index[np.sort(rng.choice(np.arange(50, 1400), 12, replace=False))]
        st = run_event_study(
            f, events_from_triggers(days, "1d"), horizons=(horizon,), draws=1000, seed=seed,
            period=(f.index[1], f.index[-1]), alpha=alpha,
        )
        rejections += st.summary.iloc[0].ret_p_value < alpha
    return rejections / n_seeds


@pytest.mark.slow
def test_random_events_in_random_walk_reject_at_about_alpha():
    """200 seeds: the two-sided test at alpha=0.05 should reject ~5 % of the time.

    Binomial(200, 0.05) has sd ~1.5 %; accept 1 %..10 %.
    """
    rate = _false_positive_rate(200)
    assert 0.01 <= rate <= 0.10, rate


def test_section_is_json_ready_and_validates():
    f, events = _planted(3)
    st = run_event_study(f, events, horizons=(1, 7), draws=500, seed=0)
    sec = st.to_section(symbol="SYN", interval="1d", source="planted")
    doc = sec.to_report()
    text = json.dumps(doc, allow_nan=False)
    back = EventsSection.model_validate(json.loads(text))
    assert back.summary[1].horizon == 7
    assert back.baseline["draws"] == 500
    assert back.outcomes[0].entry_time.endswith("Z")
    with pytest.raises(ValueError):
        EventsSection.model_validate({**doc, "unknown": 1})


def test_hourly_bars_catalog_day_event():
    """On 1h bars a day event D enters at the D+1 00:00 bar's open; 1 day = 24 bars."""
    idx = pd.date_range("2024-03-01", periods=24 * 6, freq="h", tz="UTC", name="timestamp")
    price = 100 + np.arange(len(idx), dtype=float)
    f = pd.DataFrame(
        {"open": price, "high": price + 0.5, "low": price - 0.5, "close": price + 0.25},
        index=idx,
    )
    f.attrs["interval"] = "1h"
    out = forward_outcomes(f, [_day_event("2024-03-02")], (1, 2))
    r = out.iloc[0]
    e = 48  # 2024-03-03 00:00
    assert r.entry_time == idx[e] and r.entry_price == price[e]
    assert r.event_close == price[e - 1] + 0.25  # the 23:00 bar of the event day
    assert r.pre_event_close == price[23] + 0.25  # last bar closing at 2024-03-02 00:00
    assert r.ret_1 == pytest.approx((price[e + 23] + 0.25) / price[e] - 1)
    assert r.mae_2 == pytest.approx((price[e] - 0.5) / price[e] - 1)
    with pytest.raises(ConfigError):
        f4 = f.copy()
        f4.attrs["interval"] = "7h"
        forward_outcomes(f4, [_day_event("2024-03-02")], (1,))


def test_volatility_matching_draws_from_the_event_regime():
    """Calm first half (1 % vol, no drift), wild second half (3 % vol, +2 %/day drift). Events
    in the wild half beat an unmatched baseline, but not a volatility-matched one."""
    rng = np.random.default_rng(21)
    n = 2000
    lr = np.concatenate([rng.normal(0, 0.01, n // 2), rng.normal(0.02, 0.03, n // 2)])
    close = 100 * np.exp(np.cumsum(lr))
    open_ = np.concatenate([[100.0], close[:-1]])
    idx = pd.date_range("2015-01-01", periods=n, freq="D", tz="UTC", name="timestamp")
    f = pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close), "low": np.minimum(open_, close),
         "close": close},
        index=idx,
    )
    f.attrs["interval"] = "1d"
    days = idx[np.sort(rng.choice(np.arange(n // 2 + 100, n - 50), 20, replace=False))]
    kw = dict(horizons=(7,), draws=3000, seed=0, period=(idx[40], idx[-1]))
    plain = run_event_study(f, events_from_triggers(days, "1d"), **kw).summary.iloc[0]
    matched = run_event_study(
        f, events_from_triggers(days, "1d"), match_volatility=True, **kw
    ).summary.iloc[0]
    wild = f.iloc[n // 2 + 31 : -7]
    wild_mean = np.mean(wild["close"].to_numpy()[6:] / wild["open"].to_numpy()[:-6] - 1)
    assert plain.ret_p_greater < 0.01
    assert matched.ret_p_greater > 0.05
    assert matched.ret_baseline > plain.ret_baseline
    # tercile matching: closer to the wild half's mean (buckets mix at the tercile edges)
    assert abs(matched.ret_baseline - wild_mean) < 0.5 * abs(plain.ret_baseline - wild_mean)


def test_baseline_placements_never_overlap_and_are_uniform():
    """Two single-day clusters, entries 0..5, at least 2 bars apart: brute force lists the 20
    valid ordered placements; the sampler must hit each about 1/20 of the time, nothing else."""
    from collections import Counter

    from flushback.backtests.events.study import _place_clusters

    valid = {(a, b) for a in range(6) for b in range(6) if abs(a - b) >= 2}
    assert len(valid) == 20
    draws = 40_000
    starts = _place_clusters([0, 0], 0, 5, 2, draws, np.random.default_rng(0))
    seen = Counter(map(tuple, starts.tolist()))
    assert set(seen) == valid
    sd = np.sqrt(draws * (1 / 20) * (19 / 20))
    assert all(abs(c - draws / 20) < 5 * sd for c in seen.values())
    # a cluster spanning 3 bars (members at +0 and +3) and a single day, hb = 2, in 0..9
    starts = _place_clusters([3, 0], 0, 9, 2, 5000, np.random.default_rng(1))
    a, b = starts[:, 0], starts[:, 1]
    assert np.all((b >= a + 3 + 2) | (a >= b + 2))
    assert np.all((a >= 0) & (a + 3 <= 9) & (b >= 0) & (b <= 9))


def test_matched_baseline_placements_never_overlap_and_keep_the_regime():
    from flushback.backtests.events.study import _place_clusters

    bucket = np.tile([0, 1, 2], 40)  # regimes alternate day by day
    starts = _place_clusters([2, 0, 0], 0, 119, 7, 3000, np.random.default_rng(2),
                             buckets=[1, 2, 2], vol_bucket=bucket)
    spans = np.array([2, 0, 0])
    for i in range(3):
        assert np.all(bucket[starts[:, i]] == [1, 2, 2][i])
        for j in range(3):
            if i != j:
                apart = (starts[:, j] >= starts[:, i] + spans[i] + 7) | (
                    starts[:, i] >= starts[:, j] + spans[j] + 7)
                assert apart.all()


def test_clusters_that_cannot_fit_without_overlap_are_refused():
    from flushback.backtests.events.study import _place_clusters

    with pytest.raises(DataError, match="do not fit without overlap"):
        _place_clusters([0, 0, 0], 0, 10, 6, 10, np.random.default_rng(0))
