"""Resampling, gap filling, interval inference and the point-in-time as-of join."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flushback.data.datasets import DatasetSpec, spec_for
from flushback.data.errors import DataError
from flushback.data.frames import (
    asof_join,
    bar_interval,
    conform_external,
    fill_gaps,
    resample_bars,
    splice_externals,
)


def hourly(n: int, start: str = "2024-01-01") -> pd.DataFrame:
    idx = pd.date_range(start, periods=n, freq="1h", tz="UTC", name="timestamp")
    o = np.arange(1.0, n + 1)
    return pd.DataFrame({"open": o, "high": o + 0.5, "low": o - 0.5, "close": o + 0.25,
                         "volume": np.full(n, 2.0)}, index=idx)


def test_resample_1h_to_4h_hand_computed():
    out = resample_bars(hourly(8), "4h", source_interval="1h")
    assert list(out.index) == list(pd.to_datetime(["2024-01-01 00:00", "2024-01-01 04:00"],
                                                  utc=True))
    first = out.iloc[0]
    # hours 00..03 (opens 1,2,3,4): open 1, high 4.5, low 0.5, close 4.25, volume 8
    assert (first["open"], first["high"], first["low"], first["close"], first["volume"]) == (
        1.0, 4.5, 0.5, 4.25, 8.0)
    assert out.attrs["interval"] == "4h" and out.attrs["resampled_from"] == "1h"


def test_resample_is_right_closed_on_close_times_then_indexed_at_open():
    # the 1h bar opening 03:00 closes 04:00 -> belongs to the 4h bar (00:00, 04:00] = open 00:00
    out = resample_bars(hourly(4, "2024-01-01 00:00"), "4h", source_interval="1h")
    assert len(out) == 1 and out.index[0] == pd.Timestamp("2024-01-01", tz="UTC")


def test_resample_incomplete_bars_dropped_kept_or_refused():
    h = hourly(8).drop(pd.Timestamp("2024-01-01 05:00", tz="UTC"))
    out = resample_bars(h, "4h")
    assert len(out) == 1 and out.attrs["incomplete_dropped"] == 1
    kept = resample_bars(h, "4h", incomplete="keep")
    assert kept["complete"].tolist() == [True, False]
    assert kept.iloc[1]["volume"] == 6.0
    with pytest.raises(DataError, match="1 incomplete 4h bar") as ei:
        resample_bars(h, "4h", incomplete="raise")
    assert ei.value.timestamps == [pd.Timestamp("2024-01-01 04:00", tz="UTC")]


def test_resample_24h_to_daily_matches_groupby_by_date():
    h = hourly(72, "2024-03-01")
    out = resample_bars(h, "1d")
    by_day = h.groupby(h.index.floor("1D")).agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    pd.testing.assert_frame_equal(out, by_day, check_names=False, check_freq=False,
                                  check_index_type=False)


def test_resample_refuses_non_multiple():
    with pytest.raises(DataError, match="cannot resample"):
        resample_bars(hourly(8).iloc[::4], "1h", source_interval="4h")


def test_fill_gaps_flags_filled_bars_and_never_invents_prices():
    h = hourly(5).drop(pd.to_datetime(["2024-01-01 02:00", "2024-01-01 03:00"], utc=True))
    out = fill_gaps(h, "1h")
    assert out["filled"].tolist() == [False, False, True, True, False]
    prev_close = h.loc["2024-01-01 01:00", "close"]
    assert (out.loc[out["filled"], ["open", "high", "low", "close"]] == prev_close).all().all()
    assert (out.loc[out["filled"], "volume"] == 0).all()
    assert out.attrs["filled_bars"] == 2


def test_bar_interval_from_attrs_or_inferred():
    h = hourly(10)
    assert bar_interval(h) == pd.Timedelta(hours=1)
    h.attrs["interval"] = "4h"
    assert bar_interval(h) == pd.Timedelta(hours=4)
    with pytest.raises(DataError):
        bar_interval(hourly(1))


def _liq4h(starts: list[str], longs: list[float]) -> pd.DataFrame:
    idx = pd.DatetimeIndex(pd.to_datetime(starts, utc=True), name="timestamp")
    f = pd.DataFrame({"liq_long_usd": longs, "liq_short_usd": [1.0] * len(longs),
                      "liq_regime": ["binance_throttled"] * len(longs)}, index=idx)
    f["period_end"] = idx + pd.Timedelta(hours=4)
    f["known_at"] = f["period_end"]
    return f


def test_finer_liquidations_are_summed_per_bar_only_when_complete():
    spec = spec_for("liquidations/coinglass_binance_BTC_4h")
    day1 = [f"2024-01-01 {h:02d}:00" for h in range(0, 24, 4)]
    day2 = [f"2024-01-02 {h:02d}:00" for h in range(0, 20, 4)]  # one bucket missing
    ext = _liq4h(day1 + day2, [1, 2, 3, 4, 5, 6] + [10] * 5)
    out = conform_external(ext, spec, pd.Timedelta(days=1))
    assert len(out) == 1 and out["liq_long_usd"].iloc[0] == 21.0
    assert out["known_at"].iloc[0] == pd.Timestamp("2024-01-02", tz="UTC")


def test_empty_finer_external_gives_an_empty_conformed_frame_and_an_all_nan_column():
    spec = spec_for("liquidations/coinglass_binance_BTC_4h")
    ext = _liq4h([], [])
    out = conform_external(ext, spec, pd.Timedelta(days=1))
    assert len(out) == 0
    assert isinstance(out.index, pd.DatetimeIndex) and str(out.index.tz) == "UTC"
    assert {"liq_long_usd", "liq_short_usd", "period_end", "known_at"} <= set(out.columns)
    assert str(out["known_at"].dtype).startswith("datetime64") and out.index.name == "timestamp"
    bars = pd.date_range("2024-01-01", periods=3, freq="1D", tz="UTC")
    joined = splice_externals([(spec, out)], {spec.id: spec.staleness})
    vals, known, pend = asof_join(bars, pd.Timedelta(days=1), joined,
                                  ["liq_long_usd", "liq_short_usd", "liq_regime"])
    assert np.isnan(vals["liq_long_usd"]).all() and np.isnan(vals["liq_short_usd"]).all()
    assert pd.isna(vals["liq_regime"]).all()
    assert (known == np.iinfo(np.int64).min).all() and (pend == np.iinfo(np.int64).min).all()


def test_splice_prefers_first_dataset_and_fills_outside_its_range():
    a = _liq4h(["2024-01-02 00:00"], [5.0])
    idx = pd.DatetimeIndex(pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
                           name="timestamp")
    b = pd.DataFrame({"liq_long_usd": [1.0, 2.0, 3.0], "liq_short_usd": 1.0,
                      "liq_regime": "binance_throttled"}, index=idx)
    b["period_end"] = idx + pd.Timedelta(days=1)
    b["known_at"] = b["period_end"]
    sa, sb = spec_for("liquidations/coinglass_binance_BTC_4h"), spec_for(
        "liquidations/coinglass_binance_BTC_1d")
    out = splice_externals([(sa, a), (sb, b)], {sa.id: pd.Timedelta(hours=4),
                                               sb.id: pd.Timedelta(days=1)})
    # the 1d row of 2024-01-02 overlaps the 4h bucket -> dropped; 01-01 and 01-03 kept
    assert out["liq_long_usd"].tolist() == [1.0, 5.0, 3.0]


# ----------------------------------------------------------- property: no look-ahead

SPEC = DatasetSpec("t/x", "fng", "test", "x", "1h", "fng")


@settings(max_examples=150, deadline=None)
@given(
    ext_hours=st.lists(st.integers(0, 200), min_size=1, max_size=40, unique=True),
    lag_min=st.integers(0, 180),
    bar_hours=st.sampled_from([1, 4, 24]),
    n_bars=st.integers(1, 60),
    stale_h=st.integers(0, 100),
)
def test_asof_join_never_uses_a_value_before_its_known_at(ext_hours, lag_min, bar_hours, n_bars,
                                                          stale_h):
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    ends = pd.DatetimeIndex(sorted(t0 + pd.Timedelta(hours=h) for h in ext_hours))
    ext = pd.DataFrame({"fng": np.arange(len(ends), dtype=float)}, index=ends)
    ext["period_end"] = ends
    ext["known_at"] = ends + pd.Timedelta(minutes=lag_min)
    ext["_staleness"] = pd.Timedelta(hours=stale_h).value
    iv = pd.Timedelta(hours=bar_hours)
    bars = pd.date_range(t0, periods=n_bars, freq=iv)
    vals, known, _ = asof_join(bars, iv, ext, ["fng"])
    close = bars + iv
    known_idx = pd.to_datetime(known, utc=True)
    for i in range(n_bars):
        usable = ext[ext["known_at"] <= close[i]]
        if np.isnan(vals["fng"][i]):
            # NaN only when nothing is known yet or the newest known value is too old
            assert usable.empty or (close[i] - usable["known_at"].iloc[-1]
                                    > pd.Timedelta(hours=stale_h))
            assert pd.isna(known_idx[i])
        else:
            assert known_idx[i] <= close[i]  # never before it was known
            # and it is the newest value known at the bar's close
            assert vals["fng"][i] == usable["fng"].iloc[-1]
            assert close[i] - known_idx[i] <= pd.Timedelta(hours=stale_h)
