"""Every validation rule on small frames built here: typed error naming column and timestamps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flushback.data.datasets import spec_for
from flushback.data.errors import DataError, StaleDataError
from flushback.data.validate import find_gaps, validate_bars, validate_external


def bars(n: int = 5, freq: str = "1D", start: str = "2024-01-01") -> pd.DataFrame:
    idx = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="timestamp")
    close = np.arange(100.0, 100.0 + n)
    return pd.DataFrame({"open": close - 0.5, "high": close + 1, "low": close - 1,
                         "close": close, "volume": np.ones(n)}, index=idx)


def err(frame, **kw) -> DataError:
    with pytest.raises(DataError) as ei:
        validate_bars(frame, file="f.csv", **kw)
    assert ei.value.file == "f.csv"
    return ei.value


def test_clean_bars_pass_and_report_coverage():
    r = validate_bars(bars(), interval="1d", file="f.csv")
    assert r.rows == 5 and r.gaps == 0 and r.first == pd.Timestamp("2024-01-01", tz="UTC")


def test_empty():
    assert "empty data" in err(bars().iloc[:0]).message


def test_naive_index():
    e = err(bars().tz_localize(None))
    assert "naive" in e.message and e.column == "timestamp"


def test_non_utc_index():
    e = err(bars().tz_convert("Europe/Berlin"))
    assert "not UTC" in e.message


def test_duplicated_timestamps():
    b = bars()
    b = pd.concat([b, b.iloc[[2]]]).sort_index()
    e = err(b)
    assert "duplicated" in e.message and e.timestamps == [pd.Timestamp("2024-01-03", tz="UTC")]


def test_unsorted_timestamps():
    b = bars().iloc[[0, 2, 1, 3, 4]]
    e = err(b)
    assert "unsorted" in e.message and e.timestamps == [pd.Timestamp("2024-01-02", tz="UTC")]


def test_off_grid_timestamps():
    b = bars(3, "4h")
    b.index = b.index + pd.Timedelta(hours=1)
    e = err(b, interval="4h")
    assert "grid" in e.message and e.timestamps[0] == pd.Timestamp("2024-01-01 01:00", tz="UTC")


@pytest.mark.parametrize("col", ["open", "high", "low", "close"])
def test_nan_in_ohlc(col):
    b = bars()
    b.iloc[3, b.columns.get_loc(col)] = np.nan
    e = err(b)
    assert "NaN" in e.message and e.column == col
    assert e.timestamps == [pd.Timestamp("2024-01-04", tz="UTC")]


@pytest.mark.parametrize("value", [0.0, -5.0])
def test_zero_or_negative_prices(value):
    b = bars()
    b.loc[b.index[1], ["open", "low", "close"]] = value
    e = err(b)
    assert "zero or negative" in e.message and e.column == "open"
    assert e.timestamps == [pd.Timestamp("2024-01-02", tz="UTC")]


def test_negative_volume():
    b = bars()
    b.loc[b.index[4], "volume"] = -1
    assert err(b).column == "volume"


def test_high_below_low():
    b = bars()
    b.loc[b.index[2], "high"] = b.loc[b.index[2], "low"] - 1
    e = err(b)
    assert "high < low" in e.message and e.column == "high"
    assert e.timestamps == [pd.Timestamp("2024-01-03", tz="UTC")]


def test_close_outside_range():
    b = bars()
    b.loc[b.index[0], "close"] = 1000.0
    e = err(b)
    assert "close outside [low, high]" in e.message and e.column == "close"


def test_open_outside_range():
    b = bars()
    b.loc[b.index[0], "open"] = 1.0
    assert err(b).column == "open"


def test_missing_columns():
    assert err(bars().drop(columns=["low"])).column == "low"


def test_gaps_are_counted_and_tolerated_up_to_max_gap():
    b = bars(10).drop(pd.to_datetime(["2024-01-04", "2024-01-05"], utc=True))
    r = validate_bars(b, interval="1d", file="f.csv")
    assert r.gaps == 2 and len(r.gap_spans) == 1 and r.gap_spans[0][2] == 2
    assert "2 missing bar(s) in 1 gap(s)" in r.warnings[0]
    # beyond the tolerance: an error with the count and the missing timestamps
    e = err(b, interval="1d", max_gap=pd.Timedelta(days=1))
    assert "2 missing 1d bar(s)" in e.message
    assert e.timestamps == list(pd.to_datetime(["2024-01-04", "2024-01-05"], utc=True))
    # strict: any gap is an error
    assert "gaps" in err(b, interval="1d", strict=True).message


def test_default_tolerance_refuses_a_week_long_hole():
    b = bars(20).drop(pd.date_range("2024-01-05", periods=7, freq="1D", tz="UTC"))
    assert "exceeds" in err(b, interval="1d").message


def test_find_gaps_hand_computed():
    idx = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 05:00"], utc=True)
    assert find_gaps(pd.DatetimeIndex(idx), pd.Timedelta(hours=1)) == [
        (idx[1], idx[2], 3)]


def ext_fng(days: list[str], values: list[float]) -> pd.DataFrame:
    idx = pd.DatetimeIndex(pd.to_datetime(days, utc=True), name="timestamp")
    f = pd.DataFrame({"fng": values}, index=idx)
    f["period_end"] = idx
    f["known_at"] = idx + pd.Timedelta(hours=1)
    return f


def test_external_nan_and_negative_values():
    spec = spec_for("sentiment/crypto_fear_greed")
    with pytest.raises(DataError, match="missing \\(NaN\\)") as ei:
        validate_external(ext_fng(["2024-01-01", "2024-01-02"], [1, np.nan]), spec, file="x")
    assert ei.value.column == "fng"
    liq = spec_for("liquidations/coinglass_binance_BTC_1d")
    idx = pd.DatetimeIndex(pd.to_datetime(["2024-01-01"], utc=True), name="timestamp")
    f = pd.DataFrame({"liq_long_usd": [-1.0], "liq_short_usd": [1.0],
                      "liq_regime": ["binance_throttled"]}, index=idx)
    f["period_end"] = idx + pd.Timedelta(days=1)
    f["known_at"] = f["period_end"]
    with pytest.raises(DataError, match="negative") as ei:
        validate_external(f, liq, file="x")
    assert ei.value.column == "liq_long_usd"


def test_external_known_before_period_end_refused():
    f = ext_fng(["2024-01-01"], [5])
    f["known_at"] = f["period_end"] - pd.Timedelta(hours=1)
    with pytest.raises(DataError, match="known_at before"):
        validate_external(f, spec_for("sentiment/crypto_fear_greed"), file="x")


def test_stale_external_spans_warned_or_refused_when_strict():
    spec = spec_for("sentiment/crypto_fear_greed")  # max staleness 48 h
    f = ext_fng(["2024-01-01", "2024-01-02", "2024-01-06"], [1, 2, 3])
    r = validate_external(f, spec, file="fng.csv")
    assert r.gaps == 3 and any("staleness" in w for w in r.warnings)
    with pytest.raises(StaleDataError) as ei:
        validate_external(f, spec, file="fng.csv", strict=True)
    assert ei.value.column == "fng" and ei.value.file == "fng.csv"
    assert ei.value.timestamps[0] == pd.Timestamp("2024-01-03", tz="UTC")
    # a single missing day is within 48 h: no staleness warning
    r = validate_external(ext_fng(["2024-01-01", "2024-01-03"], [1, 2]), spec, file="x")
    assert r.gaps == 1 and not any("staleness" in w for w in r.warnings)
