"""``flushback study``: per-day and per-cluster statistics, buckets, files, CLI, real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.cli import main
from flushback.backtests.events.signal_study import parse_buckets, resolve_target, study
from flushback.data.errors import ConfigError, DataError

UTC = "UTC"


def _frame(closes: list[float], fng: list[float] | None = None) -> pd.DataFrame:
    """Bars whose open is the previous close (first open = first close)."""
    idx = pd.date_range("2024-01-01", periods=len(closes), freq="1D", tz=UTC)
    c = np.asarray(closes, dtype=float)
    o = np.concatenate([[c[0]], c[:-1]])
    f = pd.DataFrame({"open": o, "high": np.maximum(o, c) * 1.01,
                      "low": np.minimum(o, c) * 0.99, "close": c, "volume": 1.0}, index=idx)
    if fng is not None:
        f["fng"] = np.asarray(fng, dtype=float)
    f.attrs["interval"] = "1d"
    f.attrs["symbol"] = "TEST"
    return f


def test_parse_buckets_labels_and_errors():
    b = parse_buckets("fng:0,25,45,55,76,101")
    assert b.column == "fng" and b.edges == (0, 25, 45, 55, 76, 101)
    assert b.labels() == ["fng 0-24", "fng 25-44", "fng 45-54", "fng 55-75", "fng 76-100"]
    got = b.assign(pd.Series([0, 24.9, 25, 54, 55, 75, 76, 100, np.nan, 101]))
    assert [x if isinstance(x, str) else None for x in got] == [
        "fng 0-24", "fng 0-24", "fng 25-44", "fng 45-54", "fng 55-75", "fng 55-75",
        "fng 76-100", "fng 76-100", None, None]
    for bad in ("fng", "fng:1", "fng:5,3", "fng:a,b"):
        with pytest.raises(ConfigError):
            parse_buckets(bad)


def test_per_day_and_per_cluster_by_hand():
    # closes: 100 for 3 bars, then a ramp; fng marks two adjacent days and one far day
    closes = [100, 100, 100, 110, 121, 100, 90, 99, 100, 100, 100, 100, 100]
    fng = [50, 10, 10, 50, 50, 50, 50, 10, 50, 50, 50, 50, 50]
    f = _frame(closes, fng)
    st = study(f, {"type": "extreme_fear", "threshold": 20}, horizons=(1, 2), draws=200)
    t = st.table.set_index("horizon")
    # triggers on bars 1, 2, 7 -> entries at the opens of bars 2, 3, 8 (= closes 1, 2, 7)
    # h=1: ret = close[e] / open[e] - 1 -> bar2: 100/100-1=0; bar3: 110/100-1=.1; bar8: 100/99-1
    r1 = [0.0, 0.1, 100 / 99 - 1]
    assert t.loc[1, "per_day_n"] == 3
    assert t.loc[1, "per_day_mean"] == pytest.approx(np.mean(r1))
    assert t.loc[1, "per_day_median"] == pytest.approx(np.median(r1))
    assert t.loc[1, "per_day_win_rate"] == pytest.approx(2 / 3)
    # h=1: entries 2 and 3 are 1 bar apart, not < 1 -> three clusters, same as per day
    assert t.loc[1, "per_cluster_n"] == 3
    assert t.loc[1, "per_cluster_mean"] == pytest.approx(np.mean(r1))
    # h=2: ret = close[e+1] / open[e] - 1 -> bar2: 110/100-1; bar3: 121/100-1; bar8: 100/99-1
    r2 = [0.1, 0.21, 100 / 99 - 1]
    assert t.loc[2, "per_day_mean"] == pytest.approx(np.mean(r2))
    # entries 2 and 3 overlap at h=2 -> clusters {2,3} and {8}
    assert t.loc[2, "per_cluster_n"] == 2
    assert t.loc[2, "per_cluster_mean"] == pytest.approx(np.mean([(0.1 + 0.21) / 2, r2[2]]))
    assert t.loc[2, "per_cluster_median"] == pytest.approx(np.median([(0.1 + 0.21) / 2, r2[2]]))
    # worst drawdown ahead: lowest low within 2 bars after entry vs the trigger bar's close
    lows = f["low"].to_numpy()
    c = f["close"].to_numpy()
    dd = [min(0, lows[2:4].min() / c[1] - 1), min(0, lows[3:5].min() / c[2] - 1),
          min(0, lows[8:10].min() / c[7] - 1)]
    assert t.loc[2, "drawdown_ahead_worst"] == pytest.approx(min(dd))
    assert 0 <= t.loc[2, "p_value"] <= 1 and t.loc[2, "baseline_mean"] is not None


def test_buckets_group_every_bar_and_the_all_bars_row_is_untested():
    rng = np.random.default_rng(3)
    closes = list(100 * np.exp(np.cumsum(rng.normal(0, 0.02, 200))))
    fng = list(rng.integers(0, 100, 200).astype(float))
    f = _frame(closes, fng)
    st = study(f, None, buckets="fng:0,50,101", horizons=(3,), draws=100)
    t = st.table.set_index("group")
    ret = f["close"].shift(-3) / f["open"].shift(-1) - 1
    low = f["fng"] < 50
    for g, m in (("fng 0-49", low), ("fng 50-100", ~low), ("all bars", low | ~low)):
        assert t.loc[g, "per_day_n"] == ret[m].notna().sum()
        assert t.loc[g, "per_day_mean"] == pytest.approx(ret[m].mean())
    assert pd.isna(t.loc["all bars", "p_value"]) and pd.isna(t.loc["all bars", "per_cluster_n"])
    assert st.settings["buckets"]["labels"] == ["fng 0-49", "fng 50-100"]


def test_errors_name_what_to_do():
    f = _frame([100.0] * 20)
    with pytest.raises(DataError, match="no column 'fng'"):
        study(f, None, buckets="fng:0,50,101")
    with pytest.raises(ConfigError, match="float strength"):
        study(f, "rsi")
    with pytest.raises(ConfigError, match="nothing to study"):
        study(f)
    with pytest.raises(ConfigError, match="did you mean 'extreme_fear'"):
        resolve_target("extreme_feer")
    assert resolve_target("every-bar") == (None, None)
    cfg, spec = resolve_target("liquidation_spike_btc_daily")
    assert cfg["type"] == "liquidation_spike" and spec.name == "liquidation_spike_btc_daily"


def test_write_files_json_csv_html_png(tmp_path):
    rng = np.random.default_rng(5)
    f = _frame(list(100 * np.exp(np.cumsum(rng.normal(0, 0.02, 120)))),
               list(rng.integers(0, 100, 120).astype(float)))
    st = study(f, {"type": "extreme_fear", "threshold": 30}, horizons=(1, 7), draws=100)
    paths = st.write(tmp_path)
    doc = json.loads(paths["json"].read_text())
    assert doc["schema_id"] == "flushback.study/1"
    assert len(doc["days"]) == len(st.days)
    table = pd.read_csv(paths["table_csv"])
    assert table["per_day_mean"].tolist() == pytest.approx(st.table["per_day_mean"].tolist())
    days = pd.read_csv(paths["days_csv"])
    assert days["ret_7"].dropna().mean() == pytest.approx(
        st.table.set_index("horizon").loc[7, "per_day_mean"])
    html = paths["html"].read_text()
    assert "per-day mean" in html and "per-cluster mean" in html and "plotly" in html
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------ real data
def _independent_bucket_table(data: Path, horizon: int) -> pd.DataFrame:
    """Per-day forward returns by Fear & Greed bucket from the CSV files, with plain pandas.

    Point-in-time rule (docs/data.md): the value dated D is published at D 00:00 UTC; the daily
    bar D uses it, and a missing day falls back to D-1's value (still within the 48 h
    staleness limit) but never to D-2's. Entry: the open of bar D+1; the h-day return is
    close[D+h] / open[D+1] - 1.
    """
    px = pd.read_csv(data / "prices" / "BTC-USD_1d.csv", parse_dates=["timestamp"])
    px = px.set_index("timestamp").sort_index()
    fg = pd.read_csv(data / "sentiment" / "crypto_fear_greed.csv", parse_dates=["date"])
    fg = fg.set_index("date")["value"].astype(float)
    fng = fg.reindex(px.index).ffill(limit=1)
    ret = px["close"].shift(-horizon) / px["open"].shift(-1) - 1
    window = (px.index >= "2018-02-01") & (px.index <= "2026-06-04")
    bucket = pd.cut(fng, bins=[0, 25, 45, 55, 76, 101], right=False,
                    labels=["fng 0-24", "fng 25-44", "fng 45-54", "fng 55-75", "fng 76-100"])
    df = pd.DataFrame({"ret": ret, "bucket": bucket})[window].dropna()
    return df


@pytest.mark.realdata
def test_fear_greed_bucket_table_matches_a_separate_pandas_computation(shared_data_dir, capsys):
    code = main(["--data-dir", str(shared_data_dir), "study", "--buckets",
                 "fng:0,25,45,55,76,101", "--horizons", "7,90", "--start", "2018-02-01",
                 "--end", "2026-06-04", "--draws", "2000", "--format", "json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    doc = json.loads(out.out)
    rows = {(r["group"], r["horizon"]): r for r in doc["table"]}
    for h in (7, 90):
        df = _independent_bucket_table(shared_data_dir, h)
        by = df.groupby("bucket", observed=True)["ret"]
        for label, mean in by.mean().items():
            r = rows[(label, h)]
            assert r["per_day_n"] == by.size()[label], (label, h)
            assert r["per_day_mean"] == pytest.approx(mean, rel=1e-12, abs=1e-15), (label, h)
            assert r["per_day_median"] == pytest.approx(by.median()[label], abs=1e-15)
            assert r["per_day_win_rate"] == pytest.approx((by.apply(lambda s: (s > 0).mean()))
                                                          [label])
        # per-cluster mean, independently: entries fewer than h bars apart share a cluster
        sub = df[df["bucket"] == "fng 0-24"]
        px_idx = pd.read_csv(shared_data_dir / "prices" / "BTC-USD_1d.csv",
                             parse_dates=["timestamp"])["timestamp"]
        where = px_idx.searchsorted(sub.index.to_numpy())
        cluster = np.concatenate([[0], np.cumsum(np.diff(where) >= h)])
        cl_mean = sub["ret"].groupby(cluster).mean().mean()
        r = rows[("fng 0-24", h)]
        assert r["per_cluster_n"] == cluster.max() + 1
        assert r["per_cluster_mean"] == pytest.approx(cl_mean, rel=1e-12)
    all_7 = rows[("all bars", 7)]
    assert all_7["per_day_n"] == len(_independent_bucket_table(shared_data_dir, 7))


@pytest.mark.realdata
def test_cli_prints_per_day_and_per_cluster_means_labelled(shared_data_dir, capsys, tmp_path):
    code = main(["--data-dir", str(shared_data_dir), "study", "fear_flush_btc_daily",
                 "--horizons", "7,30", "--draws", "500", "--out", str(tmp_path / "s")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "per-day mean" in out.out and "per-cluster mean" in out.out
    assert "days (n)" in out.out and "clusters (n)" in out.out
    assert (tmp_path / "s" / "study.png").is_file()
    doc = json.loads((tmp_path / "s" / "study.json").read_text())
    assert doc["settings"]["signal"]["type"] == "all"
    # F&G starts 2018-02-01; `all` over a 2-bar window is valid one bar later
    assert doc["settings"]["signal_valid_from"].startswith("2018-02-02")
    assert doc["settings"]["period_start"].startswith("2018-02-02")


@pytest.mark.realdata
def test_events_study_prints_the_per_event_mean_next_to_the_per_cluster_one(shared_data_dir,
                                                                            capsys):
    from flushback.data import load_frame

    code = main(["--data-dir", str(shared_data_dir), "events", "study", "--events",
                 "extreme_fear", "--horizons", "7", "--no-per-event", "--draws", "200"])
    out = capsys.readouterr().out
    assert code == 0
    assert "per-event mean" in out and "per-cluster mean" in out
    frame = load_frame("BTC-USD", "1d", data_dir=shared_data_dir).frame
    fired = frame["fng"] <= 10  # extreme_fear's default threshold, F&G at the bar's close
    ret = frame["close"].shift(-7) / frame["open"].shift(-1) - 1
    per_event = ret[fired].dropna().mean()
    row = next(line for line in out.splitlines() if line.strip().startswith("│      7d"))
    assert f"{per_event * 100:+.1f}%" in row


def test_a_signal_with_buckets_groups_only_its_trigger_bars():
    rng = np.random.default_rng(9)
    n = 300
    f = _frame(list(100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))),
               list(rng.integers(0, 100, n).astype(float)))
    f["funding_rate"] = rng.normal(0, 1e-4, n)
    st = study(f, {"type": "extreme_fear", "threshold": 40}, buckets="funding:-1,0,1",
               horizons=(5,), draws=100)
    t = st.table.set_index("group")
    assert "all bars" not in t.index  # with a signal there is no unconditional row
    ret = f["close"].shift(-5) / f["open"].shift(-1) - 1
    fired = f["fng"] <= 40
    for label, m in (("funding_rate [-1, 0)", f["funding_rate"] < 0),
                     ("funding_rate [0, 1)", f["funding_rate"] >= 0)):
        assert t.loc[label, "per_day_n"] == ret[fired & m].notna().sum()
        assert t.loc[label, "per_day_mean"] == pytest.approx(ret[fired & m].mean())
