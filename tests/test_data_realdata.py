"""Real data (../shared/data through the ``shared_data_dir`` fixture): import all of it, check
coverage against PROVENANCE.md and known values from the news and the source files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.cli import main
from flushback.data import load_frame
from flushback.data.assemble import FolderRepository
from flushback.data.datasets import parse_interval
from flushback.data.store import Store

pytestmark = pytest.mark.realdata

# dataset id -> (rows, first, last, gaps) as documented in PROVENANCE.md
COVERAGE = {
    "prices/BTC-USD_1d": (4279, "2014-09-17", "2026-06-04", 0),
    "prices/ETH-USD_1d": (3130, "2017-11-09", "2026-06-04", 0),
    "prices/BTCUSDT_1d": (3183, "2017-08-17", "2026-05-04", 0),
    "prices/ETHUSDT_1d": (3183, "2017-08-17", "2026-05-04", 0),
    "prices/SOLUSDT_1d": (2043, "2020-08-11", "2026-03-15", 0),
    "prices/BTCUSDT_4h": (18781, "2017-08-17T04:00", "2026-03-15T20:00", 16),
    "prices/BTCUSDT_1h": (46629, "2020-10-07T18:00", "2026-02-02T10:00", 20),
    "prices/BTCUSDT_1h_2017-2020_cryptodatadownload": (27538, "2017-08-17T04:00",
                                                       "2020-10-07T17:00", 4),
    "prices/BTC-USD_1h": (17451, "2024-05-07T00:00", "2026-05-05T10:00", 32),
    "prices/ETH-USD_1h": (17448, "2024-05-07T00:00", "2026-05-05T10:00", 35),
    "sentiment/crypto_fear_greed": (3121, "2018-02-01", "2026-08-22", 4),
    "liquidations/coinglass_binance_BTC_1d": (1787, "2020-12-23", "2025-11-13", 0),
    "liquidations/coinglass_binance_ETH_1d": (1787, "2020-12-23", "2025-11-13", 0),
    "liquidations/coinglass_binance_SOL_1d": (1787, "2020-12-23", "2025-11-13", 0),
    "liquidations/coinglass_binance_BTC_4h": (2195, "2024-11-13T20:00", "2025-11-14T12:00", 0),
    "liquidations/coinglass_binance_ETH_4h": (2195, "2024-11-13T20:00", "2025-11-14T12:00", 0),
    "liquidations/coinglass_binance_SOL_4h": (2195, "2024-11-13T20:00", "2025-11-14T12:00", 0),
    "liquidations/coinalyze_btc_perps_1d": (993, "2022-01-02", "2024-09-20", 0),
    "derivatives/binance_btcusdt_funding_1d": (2348, "2019-09-10", "2026-02-12", 0),
    "derivatives/coinglass_binance_btcusdt_funding_1d": (1869, "2020-03-30", "2025-05-11", 0),
    "derivatives/coinglass_binance_btcusdt_funding_8h": (1076, "2024-11-21T00:00",
                                                         "2025-11-14T08:00", 0),
    "derivatives/coinglass_btc_funding_oiweighted_1d": (1868, "2020-03-31", "2025-05-11", 0),
    "derivatives/coinglass_btc_funding_oiweighted_4h": (2195, "2024-11-13T20:00",
                                                        "2025-11-14T12:00", 0),
    "derivatives/coinglass_btc_open_interest_aggregated_4h": (2147, "2024-11-21T20:00",
                                                              "2025-11-14T12:00", 0),
    "derivatives/coinalyze_btc_perps_funding_1d": (993, "2022-01-02", "2024-09-20", 0),
    "derivatives/coinalyze_btc_perps_open_interest_1d": (993, "2022-01-02", "2024-09-20", 0),
    # the perpetuals, 2026 funding/OI and three-exchange liquidations (PROVENANCE.md figures)
    "prices/BTCUSDT-PERP_1h": (36471, "2020-10-23T08:00", "2026-03-19T18:00", 10892),
    "prices/ETHUSDT-PERP_1h": (36471, "2020-10-23T08:00", "2026-03-19T18:00", 10892),
    "prices/SOLUSDT-PERP_1h": (36471, "2020-10-23T08:00", "2026-03-19T19:00", 10893),
    "prices/BTCUSDT-PERP_4h": (11840, "2020-10-23T08:00", "2026-03-19T12:00", 0),
    "prices/ETHUSDT-PERP_4h": (11840, "2020-10-23T08:00", "2026-03-19T12:00", 0),
    "prices/SOLUSDT-PERP_4h": (11841, "2020-10-23T08:00", "2026-03-19T16:00", 0),
    **{f"derivatives/binance_{c}usdt_funding_8h": (200, "2026-01-12T16:00", "2026-03-20", 0)
       for c in ("btc", "eth", "sol")},
    **{f"derivatives/binance_{c}usdt_open_interest_4h": (168, "2026-02-20T04:00", "2026-03-20", 0)
       for c in ("btc", "eth", "sol")},
    **{f"liquidations/coinglass_binance-okx-bybit_{c}_1d": (1720, "2020-12-23", "2025-09-07", 0)
       for c in ("BTC", "ETH", "SOL")},
}


def _z(s: str) -> str:
    return pd.Timestamp(s, tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.slow
def test_import_all_shared_data_then_list_coverage_then_noop(shared_data_dir, capsys):
    assert main(["data", "import", str(shared_data_dir), "--format", "json"]) == 0
    imported = json.loads(capsys.readouterr().out)["datasets"]
    assert {d["status"] for d in imported} == {"new"}
    assert main(["data", "list", "--format", "json"]) == 0
    listed = {d["id"]: d for d in json.loads(capsys.readouterr().out)["datasets"]}
    assert set(listed) == set(COVERAGE)
    for did, (rows, first, last, gaps) in COVERAGE.items():
        d = listed[did]
        assert (d["rows"], d["first"], d["last"], d["gaps"]) == (rows, _z(first), _z(last),
                                                                  gaps), did
        assert len(d["fingerprint"]) == 64
    assert main(["data", "import", str(shared_data_dir), "--format", "json"]) == 0
    again = json.loads(capsys.readouterr().out)["datasets"]
    assert {d["status"] for d in again} == {"unchanged"}
    assert {d["id"]: d["fingerprint"] for d in again} == {
        k: v["fingerprint"] for k, v in listed.items()}
    # the folder and the store agree on every fingerprint
    repo = FolderRepository(shared_data_dir)
    for did in ("prices/BTC-USD_1d", "sentiment/crypto_fear_greed"):
        assert repo.read(did)[1].fingerprint == Store().info(did).fingerprint
    assert main(["data", "validate"]) == 0


def test_validate_shared_folder_passes(shared_data_dir, capsys):
    assert main(["data", "validate", str(shared_data_dir)]) == 0


@pytest.mark.parametrize("symbol,interval", [
    ("BTC-USD", "1d"), ("BTC-USD", "1h"), ("BTCUSDT", "1d"), ("BTCUSDT", "4h"),
    ("BTCUSDT", "1h"), ("ETH-USD", "1d"), ("ETHUSDT", "1d"), ("SOLUSDT", "1d"),
])
def test_every_default_symbol_loads_point_in_time(shared_data_dir, symbol, interval):
    af = load_frame(symbol, interval, data_dir=shared_data_dir)
    f = af.frame
    assert f.attrs == {**f.attrs, "symbol": symbol, "interval": interval}
    assert f.index.is_monotonic_increasing and f.index.is_unique
    assert f.loc["2018-02-03":, "fng"].notna().mean() > 0.9
    assert f["liq_long_usd"].notna().sum() > 300
    iv = parse_interval(interval)
    for col in af.known_at.columns:
        k = af.known_at[col]
        ok = k.notna().to_numpy()
        assert (k[ok] <= (f.index + iv)[ok]).all(), col
        assert (f[col].notna().to_numpy() == ok).all(), col


def test_known_values_eth_sol_and_regime_break(shared_data_dir):
    eth = load_frame("ETH-USD", "1d", data_dir=shared_data_dir).frame
    assert eth.loc["2026-02-05", "close"] == pytest.approx(1821.68, abs=0.01)
    assert eth.loc["2025-10-10", "liq_long_usd"] == pytest.approx(249.0e6, rel=1e-3)
    assert np.isnan(eth.loc["2025-10-10", "funding_rate"])  # ETH funding starts 2026-01-12
    sol = load_frame("SOLUSDT", "1d", data_dir=shared_data_dir).frame
    assert sol.loc["2025-10-10", "liq_short_usd"] == pytest.approx(136.2e6, rel=1e-3)
    btc = load_frame("BTCUSDT", "1d", data_dir=shared_data_dir).frame
    assert btc.loc["2026-02-05", "close"] == pytest.approx(62909.86)
    regimes = btc["liq_regime"].dropna()
    assert (regimes[:"2021-04-26"] == "binance_full").all()
    assert (regimes["2021-04-27":] == "binance_throttled").all()
    assert btc.loc["2021-04-18", "liq_long_usd"] == pytest.approx(1433.6e6, rel=1e-3)


def test_fng_never_uses_next_days_value_and_goes_stale(shared_data_dir):
    af = load_frame("BTC-USD", "1d", data_dir=shared_data_dir, externals=("fng",))
    f = af.frame
    raw = pd.read_csv(shared_data_dir / "sentiment" / "crypto_fear_greed.csv",
                      parse_dates=["date"]).set_index("date")["value"]
    # for every bar with a value, it equals the value dated that same day, or (if that day
    # is missing at alternative.me) the previous day's, never a later one
    for day in ("2020-03-12", "2022-06-18", "2024-08-05", "2026-02-06", "2026-02-07"):
        assert f.loc[day, "fng"] == raw[pd.Timestamp(day)]
    # 2018-04-14..16 are missing at the source: 04-14 carries 04-13 (47 h old), then NaN
    assert f.loc["2018-04-14", "fng"] == raw[pd.Timestamp("2018-04-13")]
    assert np.isnan(f.loc["2018-04-15", "fng"]) and np.isnan(f.loc["2018-04-16", "fng"])
    assert f.loc["2018-04-17", "fng"] == raw[pd.Timestamp("2018-04-17")]


def test_btc_usd_4h_resampled_from_hourly_matches_real_daily_structure(shared_data_dir):
    af = load_frame("BTC-USD", "4h", data_dir=shared_data_dir, externals=None)
    f = af.frame
    assert f.attrs["resampled_from"] == "1h"
    h = load_frame("BTC-USD", "1h", data_dir=shared_data_dir, externals=None).frame
    day = h.loc["2026-02-06 00:00":"2026-02-06 03:00"]
    assert f.loc["2026-02-06 00:00", "low"] == day["low"].min()
    assert f.loc["2026-02-06 00:00", "close"] == day["close"].iloc[-1]


def test_real_gaps_counted_and_only_filled_on_request_flagged(shared_data_dir):
    raw = load_frame("BTCUSDT", "4h", data_dir=shared_data_dir, externals=None).frame
    assert raw.attrs["gaps"] == 16 and "filled" not in raw.columns
    filled = load_frame("BTCUSDT", "4h", data_dir=shared_data_dir, externals=None,
                        fill_gaps=True).frame
    assert len(filled) == len(raw) + 16 and int(filled["filled"].sum()) == 16
    # the Binance outage 2018-02-08T04:00 -> 2018-02-09T04:00 (7 bars) is flagged, flat
    outage = filled.loc["2018-02-08 04:00":"2018-02-09 04:00"]
    assert outage["filled"].sum() == 7
    assert (outage.loc[outage["filled"], "volume"] == 0).all()
    pd.testing.assert_frame_equal(filled.loc[~filled["filled"], raw.columns], raw,
                                  check_freq=False)


@pytest.mark.slow
def test_perp_spec_over_feb_2026_joins_8h_funding_and_names_its_sources(shared_data_dir,
                                                                          capsys):
    """BTCUSDT-PERP 4h over Feb 2026: the 8h settlements are joined as of their settlement
    time (PROVENANCE.md: 2026-02-06 00:00 / 08:00 / 16:00 = -0.000016 / -0.000137 /
    -0.000135), the run pays them, and report.json names every external's source."""
    from flushback.backtests.run.runner import prepare

    prepared = prepare("fear_flush_perp_btc_4h", data_dir=shared_data_dir,
                       since="2026-02-01", until="2026-02-28")
    f = prepared.frame
    # a 4h bar uses the last settlement known by its close
    assert f.loc["2026-02-05T20:00Z", "funding_rate"] == pytest.approx(-0.000016, abs=5e-7)
    assert f.loc["2026-02-06T00:00Z", "funding_rate"] == pytest.approx(-0.000016, abs=5e-7)
    assert f.loc["2026-02-06T04:00Z", "funding_rate"] == pytest.approx(-0.000137, abs=5e-7)
    assert f.loc["2026-02-06T12:00Z", "funding_rate"] == pytest.approx(-0.000135, abs=5e-7)
    # perp prices, not spot: the 2026-02-06 00:00 bar holds the perp's 59,800 low
    assert f.loc["2026-02-06T00:00Z", "low"] == pytest.approx(59800.0)
    assert f.loc["2026-02-05", "liq_long_usd"].isna().all()  # no liquidation data in 2026
    code = main(["--data-dir", str(shared_data_dir), "backtest", "fear_flush_perp_btc_4h",
                 "--set", "data.start=2026-02-01", "--set", "data.end=2026-02-28",
                 "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    report = json.loads((Path(out["run_dir"]) / "report.json").read_text())
    src = report["data"]["sources"]
    raw = src["derivatives/binance_btcusdt_funding_8h"]
    assert (raw["kind"], raw["named_source"], raw["priority"]) == ("funding", "binance", 0)
    assert raw["columns"] == ["funding_rate"] and raw["bars_supplied"] > 0
    daily = src["derivatives/binance_btcusdt_funding_1d"]
    assert (daily["named_source"], daily["priority"]) == ("binance", 1)
    liq = [v for v in src.values() if v.get("kind") == "liquidations"]
    assert {v["id"] for v in liq} == {"liquidations/coinglass_binance_BTC_4h",
                                       "liquidations/coinglass_binance_BTC_1d"}
    assert {(v["named_source"], v["venue"]) for v in liq} == {("binance", "binance")}
    assert report["data"]["symbol"] == "BTCUSDT-PERP"
    assert report["config"]["costs"]["funding"] is True


def test_three_exchange_liquidations_are_a_separate_source(shared_data_dir):
    """Choosing the aggregate never mixes it with the Binance-only series: the column holds
    the aggregate's values (PROVENANCE.md spot check) and its own regime names."""
    agg = load_frame("BTCUSDT", "1d", data_dir=shared_data_dir,
                     sources={"liquidations": "binance-okx-bybit"})
    f = agg.frame
    assert f.loc["2021-05-19", "liq_long_usd"] == pytest.approx(1386.0e6, rel=1e-3)
    assert f.loc["2024-08-05", "liq_short_usd"] == pytest.approx(108.5e6, rel=1e-3)
    assert set(f["liq_regime"].dropna().unique()) == {"binance_okx_bybit_full",
                                                       "binance_okx_bybit_throttled"}
    assert f.loc["2025-09-08":, "liq_long_usd"].isna().all()  # ends 2025-09-07, no fill-in
    assert [d["id"] for d in agg.sources["liquidations"]["datasets"]] == [
        "liquidations/coinglass_binance-okx-bybit_BTC_1d"]
    eth_perp = load_frame("ETHUSDT-PERP", "4h", data_dir=shared_data_dir,
                          start="2026-02-20", end="2026-03-01")
    assert eth_perp.frame["oi_usd"].isna().all()  # ETH's default OI source: none for ETH
    assert eth_perp.frame["funding_rate"].notna().all()  # ETH 8h funding, joined by coin
