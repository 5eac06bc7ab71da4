"""Every file parser on small CSVs written here (shapes of ../shared/data)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from flushback.data.datasets import spec_for
from flushback.data.errors import DataError
from flushback.data.parsers import PARSERS, parse_file, parse_timestamps, read_csv

T = pd.Timestamp


def utc(s: str) -> pd.Timestamp:
    return pd.Timestamp(s, tz="UTC")


def parse(text: str, dataset_id: str, tmp_path, **kw):
    path = tmp_path / (dataset_id.replace("/", "__") + ".csv")
    path.write_text(text.strip() + "\n")
    return parse_file(path, spec_for(dataset_id), **kw)


def test_bars_daily_dates_are_utc_bar_opens(tmp_path):
    f = parse("""
timestamp,open,high,low,close,volume
2024-01-01,1,2,0.5,1.5,10
2024-01-02,1.5,3,1,2.5,20
""", "prices/BTC-USD_1d", tmp_path)
    assert list(f.index) == [utc("2024-01-01"), utc("2024-01-02")]
    assert f.index.name == "timestamp"
    assert f["close"].tolist() == [1.5, 2.5]
    assert all(f[c].dtype == "float64" for c in ("open", "high", "low", "close", "volume"))


def test_bars_yahoo_export_columns_are_case_insensitive_and_quality_flag_kept(tmp_path):
    f = parse("""
Date,Open,High,Low,Close,Adj Close,Volume,quality_flag
2024-01-01T00:00:00Z,1,2,0.5,1.5,1.5,10,ok
2024-01-01T01:00:00Z,1.5,3,1,2.5,2.5,20,incomplete_4h_bucket
""", "prices/BTCUSDT_1h", tmp_path)
    assert f.index[1] == utc("2024-01-01 01:00")
    assert f["quality_flag"].tolist() == ["ok", "incomplete_4h_bucket"]


def test_bars_offsets_are_converted_to_utc():
    df = pd.DataFrame({"timestamp": ["2024-01-01T02:00:00+02:00"], "open": ["1"],
                       "high": ["1"], "low": ["1"], "close": ["1"], "volume": ["1"]})
    f = PARSERS["bars"](df, None, file="x.csv")
    assert f.index[0] == utc("2024-01-01 00:00")


def test_unix_seconds_and_milliseconds():
    idx = parse_timestamps(pd.Series(["1704067200", "1704070800"]), file="x")
    assert idx[1] == utc("2024-01-01 01:00")
    idx = parse_timestamps(pd.Series(["1704067200000"]), file="x")
    assert idx[0] == utc("2024-01-01")


def test_naive_intraday_timestamps_refused_unless_assume_utc(tmp_path):
    text = """
timestamp,open,high,low,close,volume
2024-01-01 00:00:00,1,2,0.5,1.5,10
"""
    with pytest.raises(DataError) as ei:
        parse(text, "prices/BTC-USD_1h", tmp_path)
    e = ei.value
    assert e.column == "timestamp" and "naive" in e.message
    assert e.file.endswith(".csv") and "2024-01-01 00:00:00" in str(e)
    f = parse(text, "prices/BTC-USD_1h", tmp_path, assume_utc=True)
    assert f.index[0] == utc("2024-01-01")


def test_mixed_naive_and_aware_timestamps_refused(tmp_path):
    with pytest.raises(DataError, match="naive and timezone-aware timestamps are mixed") as ei:
        parse("""
timestamp,open,high,low,close,volume
2024-01-01T00:00:00Z,1,2,0.5,1.5,10
2024-01-01T01:00:00,1,2,0.5,1.5,10
""", "prices/BTC-USD_1h", tmp_path)
    assert "2024-01-01T01:00:00" in str(ei.value)


def test_unparseable_and_empty_timestamps(tmp_path):
    with pytest.raises(DataError, match="unparseable timestamps") as ei:
        parse("""
timestamp,open,high,low,close,volume
2024-13-45,1,2,0.5,1.5,10
""", "prices/BTC-USD_1d", tmp_path)
    assert "2024-13-45" in str(ei.value)
    with pytest.raises(DataError, match="empty timestamp"):
        parse("""
timestamp,open,high,low,close,volume
,1,2,0.5,1.5,10
""", "prices/BTC-USD_1d", tmp_path)


def test_malformed_empty_and_headerless_csv(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text('timestamp,open,high,low,close,volume\n2024-01-01,1,2,0.5,1.5,10,99,98\n')
    with pytest.raises(DataError, match="malformed CSV") as ei:
        read_csv(p)
    assert ei.value.file == str(p)
    p.write_text("")
    with pytest.raises(DataError, match="empty file"):
        read_csv(p)
    p.write_text("timestamp,open,high,low,close,volume\n")
    with pytest.raises(DataError, match="empty data"):
        read_csv(p)
    with pytest.raises(DataError, match="file not found"):
        read_csv(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="malformed CSV"):
        read_csv(io.BytesIO(b'a,b\n"unterminated,1\n'), file="buf")


def test_missing_columns_and_non_numeric_values(tmp_path):
    with pytest.raises(DataError, match=r"missing required column\(s\) \['low'\]") as ei:
        parse("timestamp,open,high,close\n2024-01-01,1,2,1\n", "prices/BTC-USD_1d", tmp_path)
    assert ei.value.column == "low"
    with pytest.raises(DataError, match="missing required column 'timestamp'"):
        parse("when,open,high,low,close\n2024-01-01,1,2,1,1\n", "prices/BTC-USD_1d", tmp_path)
    with pytest.raises(DataError, match="non-numeric") as ei:
        parse("timestamp,open,high,low,close,volume\n2024-01-01,1,2,abc,1,1\n",
              "prices/BTC-USD_1d", tmp_path)
    assert ei.value.column == "low" and ei.value.timestamps == [utc("2024-01-01")]


def test_fear_greed_known_at_is_publication_plus_lag(tmp_path):
    f = parse("""
date,value,classification
2024-01-01,30,Fear
2024-01-02,9,Extreme Fear
""", "sentiment/crypto_fear_greed", tmp_path)
    assert f["fng"].tolist() == [30.0, 9.0]
    # dated D: describes the day ending D 00:00, known at D 01:00 (declared 1 h lag)
    assert f["period_end"].iloc[1] == utc("2024-01-02")
    assert f["known_at"].iloc[1] == utc("2024-01-02 01:00")
    with pytest.raises(DataError, match="outside 0..100"):
        parse("date,value\n2024-01-01,101\n", "sentiment/crypto_fear_greed", tmp_path)


def test_coinglass_liquidations_regime_from_binance_feed(tmp_path):
    f = parse("""
timestamp,long_usd,short_usd,source_interval,exchange,binance_feed
2021-04-26,100,10,1d,Binance,full
2021-04-27,20,2,1d,Binance,throttled
""", "liquidations/coinglass_binance_BTC_1d", tmp_path)
    assert f["liq_long_usd"].tolist() == [100.0, 20.0]
    assert f["liq_short_usd"].tolist() == [10.0, 2.0]
    assert f["liq_regime"].tolist() == ["binance_full", "binance_throttled"]
    assert f["known_at"].tolist() == [utc("2021-04-27"), utc("2021-04-28")]
    with pytest.raises(DataError, match="unknown binance_feed") as ei:
        parse("timestamp,long_usd,short_usd,binance_feed\n2021-04-27,1,1,partial\n",
              "liquidations/coinglass_binance_BTC_1d", tmp_path)
    assert ei.value.column == "binance_feed"


def test_coinglass_liquidations_4h_without_feed_column_uses_break_date(tmp_path):
    f = parse("""
timestamp,long_usd,short_usd
2021-04-26T20:00:00Z,1,1
2021-04-27T00:00:00Z,2,2
""", "liquidations/coinglass_binance_BTC_4h", tmp_path)
    assert f["liq_regime"].tolist() == ["binance_full", "binance_throttled"]
    assert f["known_at"].iloc[0] == utc("2021-04-27 00:00")


def test_coinalyze_liquidations(tmp_path):
    f = parse("""
timestamp,long_usd,short_usd,n_markets_reporting,binance_btcusd_long_usd
2022-01-02,15.5,17.25,12,3
""", "liquidations/coinalyze_btc_perps_1d", tmp_path)
    assert f["liq_long_usd"].iloc[0] == 15.5 and f["liq_short_usd"].iloc[0] == 17.25
    assert f["liq_regime"].iloc[0] == "coinalyze_multi"


def test_funding_fraction_file_and_percent_detection(tmp_path):
    f = parse("""
timestamp,funding_rate_mean_8h_fraction,funding_rate_mean_abs_8h_fraction
2020-03-13,-0.001272,0.001272
""", "derivatives/binance_btcusdt_funding_1d", tmp_path)
    assert f["funding_rate"].iloc[0] == -0.001272
    assert f["known_at"].iloc[0] == utc("2020-03-14")
    with pytest.raises(DataError, match="looks like it is in percent") as ei:
        parse("timestamp,funding_rate_mean_8h_fraction\n2020-03-13,-0.1272\n",
              "derivatives/binance_btcusdt_funding_1d", tmp_path)
    assert ei.value.timestamps == [utc("2020-03-13")]


def test_coinglass_funding_percent_becomes_fraction(tmp_path):
    f = parse("""
timestamp,funding_pct_open,funding_pct_high,funding_pct_low,funding_pct_close
2025-10-10T16:00:00Z,0.01,0.01,-0.03,-0.0213
""", "derivatives/coinglass_binance_btcusdt_funding_8h", tmp_path)
    assert f["funding_rate"].iloc[0] == pytest.approx(-0.000213)
    assert f["known_at"].iloc[0] == utc("2025-10-11 00:00")


def test_coinalyze_funding_picks_binance_btcusdt_in_percent(tmp_path):
    f = parse("""
timestamp,okx_btcusdc_funding_pct,binance_btcusdt_funding_pct
2022-11-09,0.5,-0.033
""", "derivatives/coinalyze_btc_perps_funding_1d", tmp_path)
    assert f["funding_rate"].iloc[0] == pytest.approx(-0.00033)


def test_open_interest_coinglass_close_and_coinalyze_sum(tmp_path):
    f = parse("""
timestamp,oi_usd_open,oi_usd_high,oi_usd_low,oi_usd_close
2025-10-10T20:00:00Z,8.577e10,8.6e10,6.982e10,7.051e10
""", "derivatives/coinglass_btc_open_interest_aggregated_4h", tmp_path)
    assert f["oi_usd"].iloc[0] == 7.051e10
    assert f["known_at"].iloc[0] == utc("2025-10-11 00:00")
    f = parse("""
timestamp,a_oi_usd,b_oi_usd,c_oi_usd
2022-01-02,100,50,
2022-01-03,,,
""", "derivatives/coinalyze_btc_perps_open_interest_1d", tmp_path)
    assert f["oi_usd"].iloc[0] == 150.0 and f["n_markets_reporting"].iloc[0] == 2
    assert np.isnan(f["oi_usd"].iloc[1])
    # markets joining or going quiet do not move the level: it follows the markets that
    # reported on both days (hand computation below)
    f = parse("""
timestamp,a_oi_usd,b_oi_usd,c_oi_usd
2022-01-02,100,50,
2022-01-03,110,55,1000
2022-01-04,121,,1100
2022-01-05,,,
2022-01-06,10,20,30
""", "derivatives/coinalyze_btc_perps_open_interest_1d", tmp_path)
    assert f["oi_usd_reported_sum"].tolist()[:3] == [150.0, 1165.0, 1221.0]
    expected = [150.0, 150.0 * 165 / 150, 165.0 * (121 + 1100) / (110 + 1000)]
    assert f["oi_usd"].tolist()[:3] == pytest.approx(expected, rel=1e-12)
    assert np.isnan(f["oi_usd"].iloc[3]) and f["oi_usd"].iloc[4] == 60.0  # restart
