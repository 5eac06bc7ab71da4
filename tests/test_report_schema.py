"""Golden tests of report.json's schema: the current version, its JSON Schema, and an older
(0.9) report that still loads through the explicit migration."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.reports import schema as rs
from flushback.data.errors import DataError

GOLDEN = Path(__file__).parent / "golden"


def _golden(name: str) -> dict:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))


def test_current_version_is_1_2_and_older_ones_are_migratable():
    assert rs.SCHEMA_VERSION == "1.2"
    assert rs.SUPPORTED_VERSIONS == ("0.9", "1.0", "1.1", "1.2")
    assert rs.MIGRATIONS["0.9"][1] == "1.0" and rs.MIGRATIONS["1.0"][1] == "1.1"
    assert rs.MIGRATIONS["1.1"][1] == "1.2"


def test_golden_1_0_report_migrates_to_1_1_with_no_warmup_recorded():
    doc = _golden("report_v1_0.json")
    rep = rs.load_report_file(GOLDEN / "report_v1_0.json")
    assert rep.schema_version == "1.2" and rep.warmup is None
    assert rep.to_dict() == {**doc, "schema_version": "1.2", "warmup": None,
                             "long_series": None}
    assert doc == _golden("report_v1_0.json")  # the migration did not mutate its input


def test_golden_1_1_report_loads_and_round_trips_unchanged():
    doc = _golden("report_v1_1.json")
    rep = rs.load_report_file(GOLDEN / "report_v1_1.json")
    assert rep.schema_version == "1.2"
    assert rep.warmup["inside_window"] is True
    assert rep.warmup["first_valid_bar"] == "2026-02-06T00:00:00Z"
    assert rep.run_id == "golden0000000001"
    assert rep.trades[0].pnl == pytest.approx(475.664)
    assert rep.trades[0].entry_time == "2026-02-06T00:00:00Z"
    assert rep.series.fng[3] is None
    assert rep.metrics["profit_factor"] is None
    # the canonical form is the golden file itself: nothing added, dropped or reformatted
    # (1.1 -> 1.2 changes only the version; its series were inline)
    assert rep.to_dict() == {**doc, "schema_version": "1.2", "long_series": None}


def test_json_schema_matches_golden():
    """A change to the models changes report.json's contract: bump SCHEMA_VERSION, add a
    migration from the old version, and regenerate tests/golden/report_schema_v1_2.json."""
    golden = _golden("report_schema_v1_2.json")
    current = json.loads(json.dumps(rs.report_json_schema(), sort_keys=True))
    assert current == golden, (
        "report.json's schema changed without a version bump: bump SCHEMA_VERSION, add a "
        "migration and a new golden file"
    )
    required = set(golden["required"])
    assert {"flushback_version", "run_id", "created_at", "data", "periods_per_year"} <= required
    props = set(golden["properties"])
    assert {"schema_version", "kind", "spec_name", "config", "metrics", "benchmark", "trades",
            "equity", "series", "triggers", "events", "optimization", "audit", "warmup"} <= props


def test_older_0_9_report_still_loads_through_the_migration():
    old = _golden("report_v0_9.json")
    rep = rs.load_report_file(GOLDEN / "report_v0_9.json")
    assert rep.schema_version == "1.2"
    assert rep.benchmark.name == "buy_and_hold"
    assert rep.benchmark.metrics == old["benchmark_metrics"]
    assert rep.metrics == old["metrics"]
    assert rep.periods_per_year == 365
    assert "periods_per_year" not in rep.config and rep.config["cash"] == 10000.0
    assert [p.benchmark for p in rep.equity] == [p["benchmark_equity"] for p in old["equity"]]
    assert [p.equity for p in rep.equity] == [p["equity"] for p in old["equity"]]
    # offsets and plain dates are normalized to UTC 'Z' strings
    assert rep.created_at == "2026-01-15T08:00:00Z"
    assert rep.data.start == "2026-01-01T00:00:00Z"
    assert rep.series.timestamp == [] and rep.triggers == {}
    assert rep.trades[0].exit_price == 102.0
    # the migration did not mutate its input
    assert old == _golden("report_v0_9.json")
    # a migrated report written again is a valid 1.0 document
    assert rs.validate_report(rep.to_dict()).to_dict() == rep.to_dict()


def test_0_9_without_periods_per_year_is_refused_not_guessed():
    old = _golden("report_v0_9.json")
    old["config"].pop("periods_per_year")
    with pytest.raises(DataError, match="periods_per_year"):
        rs.validate_report(old)


@pytest.mark.parametrize(
    ("version", "words"), [("2.0", "upgrade flushback"), ("0.5", "unknown"), ("x", "unknown")]
)
def test_unknown_or_newer_versions_are_refused(version, words):
    doc = _golden("report_v1_0.json")
    doc["schema_version"] = version
    with pytest.raises(DataError) as info:
        rs.validate_report(doc, file="runs/x/report.json")
    text = str(info.value)
    assert words in text and "runs/x/report.json" in text and "1.2" in text


def test_missing_version_and_non_object_refused():
    doc = _golden("report_v1_0.json")
    doc.pop("schema_version")
    with pytest.raises(DataError, match="no schema_version"):
        rs.validate_report(doc)
    with pytest.raises(DataError, match="JSON object"):
        rs.migrate_report([1, 2])  # type: ignore[arg-type]


def test_nan_inf_and_numpy_values_become_plain_json():
    doc = _golden("report_v1_0.json")
    doc["metrics"] = {"sharpe": np.float64("nan"), "profit_factor": float("inf"),
                      "n_trades": np.int64(3), "flag": np.bool_(True)}
    doc["series"]["close"][1] = float("nan")
    out = rs.validate_report(doc).to_dict()
    assert out["metrics"] == {"sharpe": None, "profit_factor": None, "n_trades": 3, "flag": True}
    assert out["series"]["close"][1] is None
    text = json.dumps(out, allow_nan=False)  # raises if any NaN/inf survived
    assert "NaN" not in text and "Infinity" not in text


def test_timestamps_naive_refused_offsets_converted():
    assert rs.iso_utc("2026-02-05T02:00:00+02:00") == "2026-02-05T00:00:00Z"
    assert rs.iso_utc(pd.Timestamp("2026-02-05 13:00", tz="Europe/Paris")) == \
        "2026-02-05T12:00:00Z"
    assert rs.iso_utc("2026-02-05") == "2026-02-05T00:00:00Z"
    assert rs.iso_utc(np.datetime64("2026-02-05T01:02:03")) == "2026-02-05T01:02:03Z"
    for naive in ("2026-02-05T00:00:00", pd.Timestamp("2026-02-05 00:00")):
        with pytest.raises(ValueError, match="naive"):
            rs.iso_utc(naive)
    doc = _golden("report_v1_0.json")
    doc["trades"][0]["entry_time"] = "2026-02-06T00:00:00"
    with pytest.raises(DataError, match=r"trades\.0\.entry_time.*naive"):
        rs.validate_report(doc)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["series"]["close"].pop(), r"series\.close has 4 values but series\."),
        (lambda d: d["equity"].reverse(), "equity timestamps must be strictly increasing"),
        (lambda d: d.__setitem__("sharp", 1), "sharp"),
        (lambda d: d["data"].__setitem__("end", "2020-01-01"), "before data.start"),
        (lambda d: d.__setitem__("kind", "live"), "kind"),
        (lambda d: d.__setitem__("periods_per_year", 0), "periods_per_year"),
        (lambda d: d["trades"][0].pop("entry_price"), r"trades\.0\.entry_price"),
    ],
)
def test_invalid_documents_are_refused_naming_the_field(mutate, message):
    doc = _golden("report_v1_0.json")
    mutate(doc)
    with pytest.raises(DataError, match=message):
        rs.validate_report(doc)


def test_extra_trade_and_series_columns_are_kept():
    doc = _golden("report_v1_0.json")
    doc["trades"][0]["funding"] = -1.25
    doc["series"]["funding_rate"] = [0.0001, -0.0002, None, 0.0, 0.0001]
    rep = rs.validate_report(doc)
    assert rep.to_dict()["trades"][0]["funding"] == -1.25
    assert rep.series.column("funding_rate")[1] == -0.0002
    assert rep.series_frame()["funding_rate"].iloc[1] == -0.0002
    doc["series"]["funding_rate"] = [0.0]
    with pytest.raises(DataError, match="series.funding_rate has 1 values"):
        rs.validate_report(doc)


def test_build_report_from_frames_matches_the_frames():
    idx = pd.date_range("2024-03-01", periods=4, freq="D", tz="UTC", name="timestamp")
    frame = pd.DataFrame({"open": [1.0, 2, 3, 4], "high": [2.0, 3, 4, 5], "low": [0.5, 1, 2, 3],
                          "close": [1.5, 2.5, np.nan, 4.5], "fng": [10.0, 20, 30, 40]},
                         index=idx)
    equity = pd.DataFrame({"equity": [100.0, 101.5, 99.25, 103.0],
                           "benchmark_equity": [100.0, 100.0, 100.0, 100.0],
                           "cash": [100.0, 0, 0, 103]}, index=idx)
    trades = pd.DataFrame({"trade_id": [1], "entry_time": [idx[1]], "entry_price": [2.0],
                           "exit_time": [idx[3]], "exit_price": [4.0], "size": [np.float64(0.5)],
                           "pnl": [1.0], "return_pct": [1.0], "bars_held": [np.int64(2)]})
    signals = pd.DataFrame({"entry": [False, True, False, True], "rsi": [np.nan, 1.0, 2, 3]},
                           index=idx)
    doc = rs.build_report(
        run_id="r1", data={"symbol": "X", "interval": "1d", "start": idx[0], "end": idx[-1]},
        periods_per_year=365, metrics={"sharpe": np.float64(0.5)}, trades=trades,
        equity=equity, series=frame, triggers=signals, created_at=idx[0],
    )
    assert doc["schema_version"] == "1.2"
    assert [p["equity"] for p in doc["equity"]] == equity["equity"].tolist()
    assert [p["benchmark"] for p in doc["equity"]] == [100.0] * 4
    assert doc["series"]["close"] == [1.5, 2.5, None, 4.5]
    assert doc["series"]["timestamp"][0] == "2024-03-01T00:00:00Z"
    # bool columns become trigger lists; float strength columns are not triggers
    assert doc["triggers"] == {"entry": ["2024-03-02T00:00:00Z", "2024-03-04T00:00:00Z"]}
    assert doc["trades"][0]["bars_held"] == 2 and doc["trades"][0]["size"] == 0.5
    assert doc["trades"][0]["exit_time"] == "2024-03-04T00:00:00Z"
    back = rs.validate_report(doc)
    pd.testing.assert_series_equal(back.equity_frame()["equity"], equity["equity"],
                                   check_names=False, check_index_type=False,
                                   check_freq=False)
    assert back.equity_frame().index.equals(idx.as_unit("ns")) or \
        list(back.equity_frame().index) == list(idx)


def test_write_is_atomic_readable_and_loads_from_a_run_folder(tmp_path):
    doc = {**_golden("report_v1_1.json"), "schema_version": "1.2", "long_series": None}
    run = tmp_path / "runs" / "golden0000000001"
    path = rs.write_report_file(doc, run / "report.json")
    assert sorted(p.name for p in run.iterdir()) == ["report.json"]  # no temp file left
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode & stat.S_IRUSR and mode == (0o666 & ~_umask())
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == doc
    assert rs.load_report_file(run).to_dict() == doc
    # a failing write leaves the previous file intact
    bad = dict(doc, periods_per_year=-1)
    with pytest.raises(DataError):
        rs.write_report_file(bad, path)
    assert json.loads(path.read_text(encoding="utf-8")) == doc


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_damaged_or_missing_report_gives_a_located_error(tmp_path):
    p = tmp_path / "report.json"
    p.write_text('{"schema_version": "1.0",\n "run_id": ', encoding="utf-8")
    with pytest.raises(DataError, match=r"not valid JSON \(line 2"):
        rs.load_report_file(p)
    with pytest.raises(DataError, match="report not found"):
        rs.load_report_file(tmp_path / "nope")


def test_report_frames_are_utc_and_numeric():
    rep = rs.load_report_file(GOLDEN / "report_v1_0.json")
    eq = rep.equity_frame()
    assert str(eq.index.tz) == "UTC" and eq["benchmark"].iloc[2] == 8700.0
    s = rep.series_frame()
    assert math.isnan(s["fng"].iloc[3]) and s["liq_long_usd"].iloc[1] == 2.1e9
    t = rep.trades_frame()
    assert t["entry_time"].iloc[0] == pd.Timestamp("2026-02-06", tz="UTC")


def test_warnings_are_written_only_when_there_are_some():
    base = dict(run_id="r", data={"symbol": "A", "interval": "1d", "start": "2026-01-01",
                                  "end": "2026-01-02"}, periods_per_year=365, metrics={})
    assert "warnings" not in rs.build_report(**base)
    assert rs.build_report(**base, warnings=["mind the leverage"])["warnings"] == [
        "mind the leverage"]
