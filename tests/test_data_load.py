"""load_frame: point-in-time assembly, on small hand-written folders and on the real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushback.data import load_frame
from flushback.data.errors import ConfigError, DataError
from flushback.data.frames import bar_interval
from flushback.data.synthetic import write_sample_folder

UTC = "UTC"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.strip() + "\n")
    return path


def _tiny_folder(root: Path) -> Path:
    """Four daily bars, F&G, 1d and 4h liquidations, funding in fraction and percent."""
    _write(root / "prices/BTC-USD_1d.csv", """
timestamp,open,high,low,close,volume
2024-01-01,100,110,90,105,1
2024-01-02,105,120,100,118,2
2024-01-03,118,119,80,85,3
2024-01-04,85,95,84,94,4
""")
    _write(root / "sentiment/crypto_fear_greed.csv", """
date,value,classification
2024-01-01,50,Neutral
2024-01-02,40,Fear
2024-01-03,10,Extreme Fear
2024-01-04,20,Extreme Fear
2024-01-05,99,Extreme Greed
""")
    _write(root / "liquidations/coinglass_binance_BTC_1d.csv", """
timestamp,long_usd,short_usd,source_interval,exchange,binance_feed
2024-01-02,1000,10,1d,Binance,throttled
2024-01-03,5000,50,1d,Binance,throttled
""")
    _write(root / "derivatives/coinglass_binance_btcusdt_funding_8h.csv", """
timestamp,funding_pct_open,funding_pct_high,funding_pct_low,funding_pct_close
2024-01-02T00:00:00Z,0.01,0.01,0.01,0.01
2024-01-02T08:00:00Z,0.01,0.01,0.01,-0.03
2024-01-02T16:00:00Z,0.01,0.01,0.01,0.05
""")
    return root


def test_daily_bar_uses_fng_dated_same_day_never_next(tmp_path):
    af = load_frame("BTC-USD", "1d", data_dir=_tiny_folder(tmp_path),
                    externals=("fng", "liquidations"))
    f = af.frame
    # Bar D closes at D+1 00:00; the value dated D+1 is published at D+1 00:00 + 1h lag.
    assert f["fng"].tolist() == [50.0, 40.0, 10.0, 20.0]
    assert (af.known_at["fng"] == f.index + pd.Timedelta(hours=1)).all()
    assert (af.period_end["fng"] == f.index).all()


def test_liquidation_bucket_appears_on_its_own_daily_bar_not_earlier(tmp_path):
    af = load_frame("BTC-USD", "1d", data_dir=_tiny_folder(tmp_path),
                    externals=("liquidations",))
    f = af.frame
    assert np.isnan(f.loc["2024-01-01", "liq_long_usd"])
    assert f.loc["2024-01-02", "liq_long_usd"] == 1000.0
    assert f.loc["2024-01-03", "liq_long_usd"] == 5000.0
    assert f.loc["2024-01-03", "liq_short_usd"] == 50.0
    assert f.loc["2024-01-03", "liq_regime"] == "binance_throttled"
    # The day after the last bucket: the bucket is over, no next one -> stale -> NaN.
    assert np.isnan(f.loc["2024-01-04", "liq_long_usd"])
    assert pd.isna(af.known_at.loc["2024-01-04", "liq_long_usd"])
    assert af.known_at.loc["2024-01-02", "liq_long_usd"] == pd.Timestamp("2024-01-03", tz=UTC)


def test_funding_percent_file_is_converted_to_fraction_and_averaged(tmp_path):
    af = load_frame("BTC-USD", "1d", data_dir=_tiny_folder(tmp_path),
                    externals={"funding": "derivatives/coinglass_binance_btcusdt_funding_8h"})
    f = af.frame
    # Three 8h buckets of 2024-01-02 -> mean of (0.01, -0.03, 0.05) % = 0.01 % = 1e-4.
    assert f.loc["2024-01-02", "funding_rate"] == pytest.approx(1e-4)
    assert np.isnan(f.loc["2024-01-01", "funding_rate"])
    assert np.isnan(f.loc["2024-01-03", "funding_rate"])  # older than one period -> stale


def test_max_staleness_makes_old_values_nan(tmp_path):
    root = _tiny_folder(tmp_path)
    af = load_frame("BTC-USD", "1d", data_dir=root, externals=("fng",), max_staleness="12h")
    assert af.frame["fng"].isna().all()  # age at every daily close is 23 h > 12 h
    af = load_frame("BTC-USD", "1d", data_dir=root, externals=("fng",),
                    max_staleness={"fng": "23h"})
    assert af.frame["fng"].notna().all()


def test_attrs_interval_fingerprints_and_start_end(tmp_path):
    root = _tiny_folder(tmp_path)
    af = load_frame("BTC-USD", "1d", data_dir=root, start="2024-01-02", end="2024-01-03")
    assert list(af.frame.index) == [pd.Timestamp("2024-01-02", tz=UTC),
                                    pd.Timestamp("2024-01-03", tz=UTC)]
    assert af.frame.attrs["interval"] == "1d" and af.frame.attrs["symbol"] == "BTC-USD"
    assert bar_interval(af.frame) == pd.Timedelta(days=1)
    assert set(af.fingerprints) >= {"prices/BTC-USD_1d", "sentiment/crypto_fear_greed"}
    assert all(len(v) == 64 for v in af.fingerprints.values())
    assert af.frame.index.name == "timestamp" and str(af.frame.index.tz) == "UTC"
    for col in ("open", "high", "low", "close", "volume", "fng", "funding_rate", "oi_usd"):
        assert af.frame[col].dtype == "float64"


def test_unknown_symbol_interval_external_are_typed_errors(tmp_path):
    root = _tiny_folder(tmp_path)
    with pytest.raises(DataError, match="unknown symbol 'BTC-USDD'.*did you mean 'BTC-USD'"):
        load_frame("BTC-USDD", "1d", data_dir=root)
    with pytest.raises(DataError, match="unknown interval"):
        load_frame("BTC-USD", "15m", data_dir=root)
    with pytest.raises(DataError, match="no 4h bars"):
        load_frame("BTC-USD", "4h", data_dir=root)
    with pytest.raises(ConfigError, match="did you mean 'funding'"):
        load_frame("BTC-USD", "1d", data_dir=root, externals=("fundng",))
    with pytest.raises(DataError, match="not found"):
        oi = "derivatives/coinglass_btc_open_interest_aggregated_4h"
        load_frame("BTC-USD", "1d", data_dir=root, externals={"open_interest": oi})


def test_intraday_bars_from_sample_folder_respect_known_at(tmp_path):
    root = write_sample_folder(tmp_path, days=20)
    af = load_frame("BTC-USD", "1h", data_dir=root)
    close = af.frame.index + pd.Timedelta(hours=1)
    for col in af.known_at.columns:
        k = af.known_at[col]
        assert (k[k.notna()] <= close[k.notna()]).all()
        assert (af.frame[col].isna() == k.isna()).all()
    # 4h bars derived from 1h when no 4h file exists.
    af4 = load_frame("BTC-USD", "4h", data_dir=root, externals=None)
    assert af4.frame.attrs["resampled_from"] == "1h"
    assert len(af4.frame) == 20 * 6


def test_frame_via_env_variable(tmp_path, monkeypatch):
    root = _tiny_folder(tmp_path)
    monkeypatch.setenv("FLUSHBACK_DATA_DIR", str(root))
    af = load_frame("BTC-USD", "1d", externals=None)
    assert af.frame["close"].tolist() == [105.0, 118.0, 85.0, 94.0]


# ---------------------------------------------------------------- real data

@pytest.mark.realdata
def test_real_known_values_btc_daily(shared_data_dir):
    af = load_frame("BTC-USD", "1d", data_dir=shared_data_dir)
    f = af.frame
    assert f.loc["2026-02-05", "close"] == pytest.approx(62702.10, abs=0.01)
    assert f.loc["2026-02-06", "fng"] == 9.0
    assert f.loc["2026-02-02", "fng"] == 14.0
    assert f.loc["2025-10-10", "liq_long_usd"] == pytest.approx(286.4e6, rel=1e-3)
    assert f.loc["2025-10-10", "liq_short_usd"] == pytest.approx(117.3e6, rel=1e-3)
    assert f.loc["2025-10-09", "liq_long_usd"] < 50e6  # not the flush value a day early
    assert f.loc["2021-04-26", "liq_regime"] == "binance_full"
    assert f.loc["2021-04-27", "liq_regime"] == "binance_throttled"
    assert f.loc["2020-03-13", "funding_rate"] == pytest.approx(-0.001272, abs=1e-6)
    assert f.loc["2026-02-06", "funding_rate"] == pytest.approx(-0.000096, abs=1e-6)
    close = f.index + pd.Timedelta(days=1)
    for col in af.known_at.columns:
        k = af.known_at[col]
        assert (k[k.notna()] <= close[k.notna()]).all(), col


@pytest.mark.realdata
def test_real_hourly_btcusdt_uses_4h_liquidations(shared_data_dir):
    af = load_frame("BTCUSDT", "1h", data_dir=shared_data_dir)
    f = af.frame
    # The 2025-10-10T20:00Z bucket (long $235.6M) is known at 2025-10-11 00:00: it shows on
    # the 23:00 bar (closing at midnight), not on the 20:00-22:00 bars.
    assert f.loc["2025-10-10 23:00", "liq_long_usd"] == pytest.approx(235.6e6, rel=1e-3)
    assert f.loc["2025-10-10 22:00", "liq_long_usd"] < 100e6
    assert f.attrs["gaps"] == 20
    assert f.loc["2026-02-02 00:00", "close"] == pytest.approx(77672.61)


def test_explicit_external_entirely_stale_is_a_stale_data_error(tmp_path):
    from flushback.data.errors import StaleDataError

    root = _tiny_folder(tmp_path)
    with pytest.raises(StaleDataError) as ei:
        load_frame("BTC-USD", "1d", data_dir=root, start="2024-01-04",
                   externals={"liquidations": "liquidations/coinglass_binance_BTC_1d"})
    e = ei.value
    assert e.column == "liq_long_usd" and e.file.endswith("coinglass_binance_BTC_1d.csv")
    assert "2024-01-04" in str(e) and "covers" in str(e)
    # the default (implicit) request just yields NaN, and says what was missing
    af = load_frame("BTC-USD", "1d", data_dir=root, start="2024-01-04")
    assert af.frame["liq_long_usd"].isna().all()
    missing = af.frame.attrs["missing_externals"]
    # the tiny folder has neither default funding nor any open-interest file
    assert set(missing) == {"funding", "open_interest"}
    assert "derivatives/binance_btcusdt_funding_1d not available" in missing["funding"]
    full = load_frame("BTC-USD", "1d", data_dir=write_sample_folder(tmp_path / "s", days=5))
    assert "missing_externals" not in full.frame.attrs  # OI from its second default dataset


def _liq4h_from_jan3(root: Path) -> str:
    """A 4h liquidation file (finer than the daily bars) that begins on 2024-01-03."""
    rows = "\n".join(f"2024-01-03T{h:02d}:00:00Z,{h + 1}00,1,Binance,throttled,BTC"
                     for h in range(0, 24, 4))
    _write(root / "liquidations/coinglass_binance_BTC_4h.csv",
           "timestamp,long_usd,short_usd,exchange,binance_feed,symbol_scope\n" + rows)
    return "liquidations/coinglass_binance_BTC_4h"


def test_as_of_reads_bars_closed_and_externals_known_by_the_cut(tmp_path):
    from flushback.data import load_dataset

    root = _tiny_folder(tmp_path)
    cut = pd.Timestamp("2024-01-03T00:30:00Z")
    af = load_frame("BTC-USD", "1d", data_dir=root, externals=("fng", "liquidations"),
                    as_of=cut)
    # bars 01-01 and 01-02 closed by 01-03 00:30; 01-03 closes at 01-04 00:00
    assert list(af.frame.index) == list(pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True))
    assert af.frame["fng"].tolist() == [50.0, 40.0]
    assert af.frame["liq_long_usd"].tolist()[1] == 1000.0  # the 01-02 bucket, known at 01-03
    # raw rows: F&G dated 01-03 is published at 01-03 01:00, after the cut
    fng, _ = load_dataset("sentiment/crypto_fear_greed", data_dir=root, as_of=cut)
    assert list(fng.index) == list(pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True))
    assert (fng["known_at"] <= cut).all()
    liq, _ = load_dataset("liquidations/coinglass_binance_BTC_1d", data_dir=root, as_of=cut)
    assert list(liq.index) == [pd.Timestamp("2024-01-02", tz=UTC)]
    full = load_frame("BTC-USD", "1d", data_dir=root, externals=("fng",))
    assert len(full.frame) == 4 and full.frame["fng"].tolist()[:2] == [50.0, 40.0]
    # before the first bar closed there is nothing to assemble
    with pytest.raises(DataError, match="no 1d bars .* closed by as_of=2024-01-01 23:00"):
        load_frame("BTC-USD", "1d", data_dir=root, as_of="2024-01-01T23:00:00Z")


def test_as_of_before_an_explicit_finer_external_begins_gives_nan_not_an_error(tmp_path):
    from flushback.data.errors import StaleDataError

    root = _tiny_folder(tmp_path)
    did = _liq4h_from_jan3(root)
    full = load_frame("BTC-USD", "1d", data_dir=root, externals={"liquidations": did})
    # six complete 4h buckets of 01-03 summed on the 01-03 bar: 100+500+...+2100
    assert full.frame.loc["2024-01-03", "liq_long_usd"] == 6600.0
    # at a cut before the dataset's first value the column is NaN, as it was then
    af = load_frame("BTC-USD", "1d", data_dir=root, externals={"liquidations": did},
                    as_of="2024-01-03T00:00:00Z")
    assert len(af.frame) == 2
    assert af.frame["liq_long_usd"].isna().all() and af.known_at["liq_long_usd"].isna().all()
    assert "nothing known by 2024-01-03" in af.frame.attrs["missing_externals"]["liquidations"]
    # without a cut, an explicit dataset with no fresh value in the window is still refused
    with pytest.raises(StaleDataError):
        load_frame("BTC-USD", "1d", data_dir=root, externals={"liquidations": did},
                   end="2024-01-02")

