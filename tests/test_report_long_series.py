"""Long per-bar series live in bars.parquet beside report.json and come back exactly on load."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.reports import long_series
from flushback.backtests.reports.schema import build_report, load_report_file, write_report_file
from flushback.data.errors import DataError


def _doc(n: int) -> dict:
    rng = np.random.default_rng(3)
    idx = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    close = 40_000 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    frame = pd.DataFrame({"open": close * 0.999, "high": close * 1.01, "low": close * 0.99,
                          "close": close, "fng": np.where(np.arange(n) % 7 == 0, np.nan, 30.0),
                          "level_stop": np.where(np.arange(n) % 50 < 10, close * 0.9, np.nan)},
                         index=idx)
    equity = pd.DataFrame({"equity": 10_000 * close / close[0],
                           "benchmark_equity": np.r_[np.nan, 10_000 * close[1:] / close[0]]},
                          index=idx)
    series = {"timestamp": idx, **{c: frame[c].tolist() for c in frame.columns}}
    series = {k: ([None if isinstance(v, float) and np.isnan(v) else v for v in vals]
                  if k != "timestamp" else vals) for k, vals in series.items()}
    return build_report(
        run_id="long", data={"symbol": "X", "interval": "1h", "start": idx[0], "end": idx[-1]},
        periods_per_year=8760, metrics={"sharpe": 0.5}, equity=equity, series=series,
        created_at=idx[0])


def test_a_long_report_keeps_its_series_beside_report_json_and_reads_back_exactly(tmp_path):
    doc = _doc(1500)
    path = write_report_file(doc, tmp_path / "report.json")
    raw = json.loads(path.read_text())
    assert raw["equity"] == [] and all(v == [] for v in raw["series"].values())
    ref = raw["long_series"]
    assert ref["file"] == "bars.parquet" and ref["bars"] == 1500
    assert (tmp_path / "bars.parquet").is_file()
    assert path.stat().st_size < 5_000  # the per-bar rows are no longer in report.json
    back = load_report_file(tmp_path).to_dict()
    assert back.pop("long_series") == ref
    # every value back exactly (None where the series had a gap), timestamps as written
    assert doc.pop("long_series") is None
    assert back == doc
    assert back["equity"] == doc["equity"] and back["series"] == doc["series"]
    assert back["equity"][0]["benchmark"] is None
    assert back["series"]["fng"][0] is None and back["series"]["fng"][1] == 30.0


def test_a_short_report_stays_inline(tmp_path):
    n = long_series.LONG_SERIES_BARS - 1
    path = write_report_file(_doc(n), tmp_path / "report.json")
    raw = json.loads(path.read_text())
    assert len(raw["equity"]) == n and raw["long_series"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_missing_or_changed_series_file_is_a_data_error(tmp_path):
    write_report_file(_doc(1200), tmp_path / "report.json")
    data = (tmp_path / "bars.parquet").read_bytes()
    (tmp_path / "bars.parquet").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(DataError, match="does not match the sha256"):
        load_report_file(tmp_path)
    (tmp_path / "bars.parquet").unlink()
    with pytest.raises(DataError, match="bars.parquet") as info:
        load_report_file(tmp_path)
    assert "whole run folder" in str(info.value)
