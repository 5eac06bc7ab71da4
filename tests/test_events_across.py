"""``events study --symbols``: the same catalogued days on BTC, ETH and SOL, each asset against
BTC event by event, checked against the CSVs and a separate paired computation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

pytestmark = pytest.mark.realdata

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


@pytest.fixture(scope="module")
def across(shared_data_dir):
    from flushback.backtests.api import study_events_across

    return study_events_across("catalog", symbols=SYMBOLS, horizons=[7, 30], draws=500,
                               data_dir=shared_data_dir)


def test_per_event_returns_from_the_csvs(across, shared_data_dir):
    # ret_h = close[e + h - 1] / open[e] - 1, e = the day after the event day
    for sym in ("ETHUSDT", "SOLUSDT"):
        px = pd.read_csv(shared_data_dir / "prices" / f"{sym}_1d.csv", index_col=0,
                         parse_dates=True)
        e = px.index.get_loc(pd.Timestamp("2026-02-06"))
        want = px["close"].iloc[e + 6] / px["open"].iloc[e] - 1
        got = across.returns(7)[sym]["2026-02-05-february-capitulation"]
        assert got == pytest.approx(want, rel=1e-12)
    # SOL had not listed at the COVID crash: no outcome for it, one for ETH
    assert "2020-03-12-covid-crash" not in across.returns(7)["SOLUSDT"]
    assert "2020-03-12-covid-crash" in across.returns(7)["ETHUSDT"]


def test_each_asset_is_its_own_single_study(across, shared_data_dir):
    from flushback.backtests.api import study_events

    one = study_events("catalog", symbol="ETHUSDT", horizons=[7, 30], draws=500,
                       data_dir=shared_data_dir)
    assert one.to_report()["summary"] == across.sections["ETHUSDT"].to_report()["summary"]


def test_paired_rows_match_a_separate_computation(across):
    for h in (7, 30):
        rets = across.returns(h)
        for sym in ("ETHUSDT", "SOLUSDT"):
            common = sorted(set(rets[sym]) & set(rets["BTCUSDT"]))
            d = np.array([rets[sym][e] - rets["BTCUSDT"][e] for e in common])
            row = next(p for p in across.paired if p.symbol == sym and p.horizon == h)
            assert row.reference == "BTCUSDT" and row.n_events == len(common)
            assert row.mean_diff == pytest.approx(d.mean(), rel=1e-12)
            assert row.n_better == int((d > 0).sum())
            assert row.wilcoxon_p == pytest.approx(stats.wilcoxon(d).pvalue, rel=1e-9)
    assert next(p for p in across.paired if p.symbol == "SOLUSDT").n_events == 17


def test_cli_symbols_table_and_json(shared_data_dir, capsys, monkeypatch):
    from flushback.backtests.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    args = ["--data-dir", str(shared_data_dir), "events", "study", "--symbols",
            "BTCUSDT,ETHUSDT,SOLUSDT", "--horizons", "7,30", "--draws", "300"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for needle in ("event study across assets", "ETHUSDT - BTCUSDT", "SOLUSDT - BTCUSDT",
                   "2026-02-05-february-capitulation", "SOLUSDT 30d"):
        assert needle in out, needle
    assert main([*args, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["reference"] == "BTCUSDT" and set(doc["studies"]) == set(SYMBOLS)
    assert {(p["symbol"], p["horizon"]) for p in doc["paired"]} == {
        ("ETHUSDT", 7), ("SOLUSDT", 7), ("ETHUSDT", 30), ("SOLUSDT", 30)}
    assert main(["--data-dir", str(shared_data_dir), "events", "study", "--symbols",
                 "BTCUSDT"]) == 2  # one symbol is not a comparison: a typed error
