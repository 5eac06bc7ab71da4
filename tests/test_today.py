"""``flushback today``: signal states (yes / no / no data), point-in-time features, analogues."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.cli import main
from flushback.backtests.events.today import (
    analogue_features,
    nearest_setups,
    signal_states,
    standardise,
)
from flushback.signals import build_signal


def test_standardise_uses_only_values_up_to_each_day():
    x = [1.0, 2.0, 3.0, 4.0, np.nan, 6.0, 100.0]
    raw = pd.DataFrame({"a": x})
    z = standardise(raw, min_obs=2)["a"].tolist()
    assert math.isnan(z[0])  # one value: fewer than min_obs
    assert z[1] == pytest.approx((2 - 1.5) / statistics.stdev([1, 2]))
    assert z[3] == pytest.approx((4 - 2.5) / statistics.stdev([1, 2, 3, 4]))
    assert math.isnan(z[4])  # missing today stays missing
    hist = [1, 2, 3, 4, 6]
    assert z[5] == pytest.approx((6 - statistics.mean(hist)) / statistics.stdev(hist))
    # a later outlier never changes an earlier z (truncation)
    z_cut = standardise(raw.iloc[:6], min_obs=2)["a"].tolist()
    assert z_cut[:6] == pytest.approx(z[:6], nan_ok=True)


def test_nearest_setups_distance_missing_features_and_spacing():
    idx = pd.date_range("2024-01-01", periods=8, freq="1D", tz="UTC")
    z = pd.DataFrame({
        "a": [0.0, 1.0, 0.9, 5.0, 0.0, np.nan, 0.0, 1.0],
        "b": [0.0, 1.0, 1.0, 5.0, 3.0, 1.0, 0.0, 1.0],
        "c": [np.nan, 1.0, 1.2, 5.0, 0.0, 1.0, 0.0, np.nan],  # today (last) misses c
    }, index=idx)
    today = idx[-1]
    got = nearest_setups(z, today, k=3, exclude_days=2, min_gap_days=1, min_features=2)
    # candidates: days 0..5; compared on a and b (today has no c)
    a, b = z["a"].to_numpy(), z["b"].to_numpy()
    d = {i: math.sqrt(((a[i] - 1) ** 2 + (b[i] - 1) ** 2) / 2) for i in (0, 1, 2, 3, 4)}
    # day 5 has only b in common with today -> fewer than 2 features -> not a candidate
    expect = sorted(d, key=lambda i: d[i])[:3]
    assert list(got.index) == [idx[i] for i in expect]
    assert got["distance"].tolist() == pytest.approx([d[i] for i in expect])
    assert got["n_features"].tolist() == [2, 2, 2] and got["features"].iloc[0] == "a,b"
    # spacing: with 2 days between analogues, day 2 is dropped next to day 1
    spaced = nearest_setups(z, today, k=3, exclude_days=2, min_gap_days=2, min_features=2)
    assert idx[1] in spaced.index and idx[2] not in spaced.index
    # weights scale each squared difference (a weight of 0 drops the feature)
    w = nearest_setups(z, today, k=1, exclude_days=2, min_gap_days=1, min_features=1,
                       weights={"a": 0.0})
    assert w["features"].iloc[0] == "b" and w["distance"].iloc[0] == 0.0


def test_no_data_is_not_no():
    idx = pd.date_range("2024-01-01", periods=5, freq="1D", tz="UTC")
    frame = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0,
                          "fng": [50.0, 10.0, 50.0, 30.0, np.nan]}, index=idx)
    frame.attrs["interval"] = "1d"
    known = pd.DataFrame({"fng": idx}, index=idx)  # known at each bar's open, for the test
    sigs = {"fear": build_signal({"type": "extreme_fear", "threshold": 20})}
    states = {t: signal_states(sigs, frame, known, idx[t])[0] for t in range(5)}
    assert [states[t]["status"] for t in range(5)] == ["no", "yes", "no", "no", "no data"]
    last = states[4]["inputs"][0]
    assert last["value"] is None and "last 30 on 2024-01-04" in last["value_text"]
    assert last["age_hours"] == 48.0  # known 2024-01-04 00:00, bar closes 2024-01-06 00:00
    assert states[3]["last_fired"] == "2024-01-02T00:00:00Z"
    assert states[3]["bars_since_fired"] == 2


def test_a_composite_lists_its_legs_and_has_data_through_any():
    idx = pd.date_range("2024-01-01", periods=100, freq="1D", tz="UTC")
    frame = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0,
                          "fng": 10.0, "liq_long_usd": np.nan,
                          "liq_short_usd": np.nan}, index=idx)
    frame.attrs["interval"] = "1d"
    sig = build_signal({"type": "any", "of": [{"type": "extreme_fear"},
                                              {"type": "liquidation_spike"}]})
    rows = signal_states({"entry": sig}, frame, pd.DataFrame(index=idx), idx[-1])
    assert [(r["name"], r["status"]) for r in rows] == [
        ("entry", "yes"), ("entry.of.0", "yes"), ("entry.of.1", "no data")]
    # inside the composite's declared warm-up (its slowest leg: 90 bars) it cannot fire yet
    early = signal_states({"entry": sig}, frame, pd.DataFrame(index=idx), idx[50])
    assert early[0]["status"] == "warming up" and early[1]["status"] == "yes"


# ------------------------------------------------------------------------ real data
@pytest.mark.realdata
def test_today_2026_02_06_on_real_data(shared_data_dir, capsys):
    code = main(["--data-dir", str(shared_data_dir), "today", "--date", "2026-02-06",
                 "--format", "json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    doc = json.loads(out.out)
    assert doc["date"] == "2026-02-06T00:00:00Z"
    status = {s["name"]: s for s in doc["signals"]}
    # the flush signals that fired on the bar, and on the one before
    assert status["extreme_fear"]["status"] == "yes"
    assert status["extreme_fear"]["inputs"][0]["value"] == 9.0  # F&G 2026-02-06 = 9
    assert status["drawdown"]["status"] == "yes"
    assert status["capitulation"]["last_fired"] == "2026-02-05T00:00:00Z"
    # liquidation data stops at 2025-11-13: no data, not "no"
    liq = status["liquidation_spike"]
    assert liq["status"] == "no data"
    assert "2025-11-13" in liq["inputs"][0]["value_text"]
    assert liq["inputs"][0]["age_hours"] > 80 * 24
    # analogues: before the exclusion window, and at least two catalogued flushes
    days = [pd.Timestamp(a["date"]) for a in doc["analogues"]]
    assert len(days) == 5 and all(d <= pd.Timestamp("2026-01-07", tz="UTC") for d in days)
    assert sum(a["catalog_event"] is not None for a in doc["analogues"]) >= 2
    assert doc["features"]["fng"] == 9.0 and doc["features"]["liq_z"] is None
    assert "liquidation_spike" in doc["summary"] and "no data" in doc["summary"].lower()


@pytest.mark.realdata
def test_no_analogue_uses_data_after_its_date(shared_data_dir):
    """Features recomputed on the data known at each analogue's close equal those used."""
    from flushback.backtests.events.today import today

    res = today(date="2026-02-06", data_dir=shared_data_dir)
    for a in res.analogues:
        day = pd.Timestamp(a["date"])
        _, raw_cut, z_cut = analogue_features("BTC-USD", as_of=day + pd.Timedelta(days=1),
                                              data_dir=shared_data_dir)
        assert raw_cut.index[-1] == day  # nothing after the analogue's day was loaded
        for col in raw_cut.columns:
            for got, want in ((a["features"][col], raw_cut.at[day, col]),
                              (a["z"][col], z_cut.at[day, col])):
                if got is None:
                    assert math.isnan(want), (a["date"], col)
                else:
                    assert got == pytest.approx(want, rel=1e-12, abs=1e-15), (a["date"], col)
    # and today's own features are those known at the date
    _, raw_now, _ = analogue_features("BTC-USD", as_of="2026-02-07", data_dir=shared_data_dir)
    assert raw_now.index[-1] == pd.Timestamp("2026-02-06", tz="UTC")
    assert res.features["fng"] == raw_now["fng"].iloc[-1]


@pytest.mark.realdata
def test_today_writes_html_png_json(shared_data_dir, tmp_path, capsys):
    code = main(["--data-dir", str(shared_data_dir), "today", "fear_flush_btc_daily",
                 "--date", "2026-02-06", "--k", "3", "--out", str(tmp_path)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "no data" in out.out and "nearest historical setups" in out.out
    doc = json.loads((tmp_path / "today.json").read_text())
    names = [s["name"] for s in doc["signals"]]
    assert names[:2] == ["entry", "entry.of.0"] and "exit" in names
    assert len(doc["analogues"]) == 3
    assert (tmp_path / "today.png").read_bytes()[:4] == b"\x89PNG"
    assert "plotly" in (tmp_path / "today.html").read_text()


@pytest.mark.realdata
def test_signals_scan_says_no_data_where_liquidations_end(shared_data_dir, capsys):
    cfg = json.dumps({"type": "any", "of": [{"type": "liquidation_spike"},
                                            {"type": "oversold_rsi", "threshold": 25}]})
    argv = ["--data-dir", str(shared_data_dir), "signals", "scan", cfg, "--since", "2026-06-01"]
    assert main([*argv, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    by_day = {t["timestamp"][:10]: t["values"] for t in doc["triggers"]}
    assert "2026-06-03" in by_day  # RSI < 25 fired; liquidations end 2025-11-13
    assert by_day["2026-06-03"]["of.0:liquidation_spike"] is None  # unknown, not False
    assert by_day["2026-06-03"]["of.1:oversold_rsi"] is True
    assert main(argv) == 0
    assert "of.0:liquidation_spike=no data" in capsys.readouterr().out
