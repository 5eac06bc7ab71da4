"""Flush detector: planted flushes on a synthetic frame, clustering, scoring, real-data recall."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.events.detector import (
    cluster_triggers,
    detect_flushes,
    score_detection,
)
from flushback.data.errors import ConfigError, DataError


def _synthetic() -> pd.DataFrame:
    """400 days: liquidation data for the first 200 (spikes at 120, 122, 170; a price crash
    without a liquidation spike at 150); no liquidation data after, a capitulation at 300."""
    rng = np.random.default_rng(0)
    n = 400
    lr = rng.normal(0, 0.01, n)
    vol = rng.uniform(0.9e9, 1.1e9, n)
    spread = np.full(n, 0.01)
    for d in (150, 300):
        lr[d] = -0.20
        vol[d] = 4e9
        spread[d] = 0.12
    close = 30_000 * np.exp(np.cumsum(lr))
    open_ = np.concatenate([[30_000.0], close[:-1]])
    idx = pd.date_range("2021-01-01", periods=n, freq="D", tz="UTC", name="timestamp")
    long_usd = rng.uniform(8e6, 12e6, n)
    short_usd = rng.uniform(8e6, 12e6, n)
    for d in (120, 122, 170):
        long_usd[d] = 5e8
    long_usd[200:] = np.nan
    short_usd[200:] = np.nan
    fng = np.full(n, 50.0)
    fng[118:125] = 8.0
    f = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spread / 2),
            "low": np.minimum(open_, close) * (1 - spread / 2),
            "close": close,
            "volume": vol,
            "fng": fng,
            "liq_long_usd": long_usd,
            "liq_short_usd": short_usd,
        },
        index=idx,
    )
    f.attrs.update(interval="1d", symbol="SYN")
    return f


def test_detects_planted_flushes_and_clusters_them():
    f = _synthetic()
    det = detect_flushes(f, cluster_days=7)
    firsts = [e.first for e in det.events]
    assert firsts == [f.index[120], f.index[170], f.index[300]]
    first = det.events[0]
    assert first.last == f.index[122] and first.n_triggers == 2
    assert first.sources == ("liquidation_spike",)
    assert det.events[2].sources == ("capitulation",)
    # the price crash at 150 sits where liquidation data exists: the proxy is not used there
    assert not det.triggers["trigger"].iloc[150]
    union = detect_flushes(f, cluster_days=7, mode="union")
    assert f.index[150] in [e.first for e in union.events]
    # with cluster_days=1 the spikes two days apart are separate events
    assert len(detect_flushes(f, cluster_days=1).events) == 4


def test_fear_gate_keeps_only_fearful_triggers():
    f = _synthetic()
    det = detect_flushes(f, fear=10, fear_window_days=3)
    assert [e.first for e in det.events] == [f.index[120]]
    with pytest.raises(DataError):
        detect_flushes(f.drop(columns="fng"), fear=10)
    with pytest.raises(ConfigError):
        detect_flushes(f, mode="both")


def test_fear_gate_window_uses_the_bar_interval_not_the_first_gap():
    # fear fired exactly 3 days before the 120 spike; a missing bar at the very start must not
    # shrink the 3-day gate window (it would if the bar length were read off the first gap)
    f = _synthetic()
    f["fng"] = 50.0
    f.iloc[117, f.columns.get_loc("fng")] = 5.0
    gapped = f.drop(index=f.index[1])
    gapped.attrs.update(f.attrs)
    for frame in (f, gapped):
        det = detect_flushes(frame, fear=10, fear_window_days=3)
        assert det.triggers["fear_gate"].loc[f.index[120]]
        assert not det.triggers["fear_gate"].loc[f.index[121]]
        assert [e.first for e in det.events] == [f.index[120]]


def test_study_events_known_at_close_of_first_trigger():
    f = _synthetic()
    evs = detect_flushes(f).study_events("1d")
    assert evs[0].known_at == f.index[121]


def test_cluster_triggers_by_hand():
    idx = pd.date_range("2024-01-01", periods=20, freq="D", tz="UTC")
    s = pd.Series(False, index=idx)
    s.iloc[[1, 3, 10, 11, 19]] = True
    ev = cluster_triggers(s, 2)
    assert [(e.first.day, e.last.day, e.n_triggers) for e in ev] == [
        (2, 4, 2), (11, 12, 2), (20, 20, 1)
    ]
    assert len(cluster_triggers(s, 0)) == 5
    with pytest.raises(ConfigError):
        cluster_triggers(s, -1)


def _cat(*days):
    return [
        SimpleNamespace(id=f"c{i}", name=f"c{i}", start=dt.date.fromisoformat(a),
                        end=dt.date.fromisoformat(b))
        for i, (a, b) in enumerate(days)
    ]


def test_score_found_missed_extra_recall():
    idx = pd.date_range("2024-01-01", periods=60, freq="D", tz="UTC")
    s = pd.Series(False, index=idx)
    s.iloc[[4, 30, 50]] = True  # 01-05, 01-31, 02-20
    det = cluster_triggers(s, 3)
    cat = _cat(("2024-01-02", "2024-01-02"), ("2024-01-20", "2024-01-21"),
               ("2024-02-18", "2024-02-19"), ("2025-01-01", "2025-01-01"))
    score = score_detection(det, cat, period=(idx[0], idx[-1]), tolerance_days=3)
    assert [m.event_id for m in score.found] == ["c0", "c2"]  # 01-05 within 01-02+3 days
    assert [m.event_id for m in score.missed] == ["c1"]
    assert score.extra == ["2024-01-31"]
    assert score.n_catalog == 3  # the 2025 event is outside the period
    assert score.recall == pytest.approx(2 / 3)
    assert score.precision == pytest.approx(2 / 3)
    strict = score_detection(det, cat, period=(idx[0], idx[-1]), tolerance_days=2)
    assert [m.event_id for m in strict.found] == ["c2"]


@pytest.mark.realdata
def test_detect_on_btc_daily_reports_recall(shared_data_dir, capsys):
    from flushback.backtests.cli import main

    code = main(["--data-dir", str(shared_data_dir), "events", "detect", "--symbol", "BTC-USD",
                 "--interval", "1d", "--format", "json"])
    assert code == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    score = doc["score"]
    assert score["n_catalog"] >= 15
    assert score["recall"] == pytest.approx(len(score["found"]) / score["n_catalog"])
    found = {m["event_id"] for m in score["found"]}
    # flushes with an unmistakable footprint in the data must be found
    assert {"2021-04-18-easter-crash", "2022-06-13-celsius-3ac", "2024-08-05-yen-carry-unwind",
            "2025-10-10-tariff-flash-crash", "2026-02-05-february-capitulation"} <= found
    assert score["recall"] >= 0.6
    code = main(["--data-dir", str(shared_data_dir), "events", "detect"])
    assert code == 0
    assert "recall" in capsys.readouterr().out


def test_proxy_covers_the_liquidation_warm_up():
    """Liquidation data starting at bar 100 cannot be scored for its first 14 days (z-score
    baseline): a crash at bar 105 is left to the capitulation proxy."""
    f = _synthetic()
    f.loc[f.index[:100], ["liq_long_usd", "liq_short_usd"]] = np.nan
    lr = np.log(f["close"]).diff().fillna(0).to_numpy().copy()
    lr[105] = -0.20
    close = 30_000 * np.exp(np.cumsum(lr))
    open_ = np.concatenate([[30_000.0], close[:-1]])
    f["close"], f["open"] = close, open_
    f["high"] = np.maximum(open_, close) * 1.005
    f["low"] = np.minimum(open_, close) * 0.995
    f.loc[f.index[105], ["volume", "high", "low"]] = [4e9, open_[105] * 1.06, close[105] * 0.94]
    det = detect_flushes(f)
    assert not det.triggers["liquidation_data"].iloc[105]
    assert det.triggers["liquidation_data"].iloc[130]
    hit = [e for e in det.events if e.first == f.index[105]]
    assert hit and hit[0].sources == ("capitulation",)
