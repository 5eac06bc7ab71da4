"""``flushback events ...`` end to end; the 2026-02-05 numbers against a hand computation."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pytest

from flushback.backtests.cli import main


def _run(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_table_and_json(capsys):
    code, out, _ = _run(capsys, "events", "list", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert len(doc["events"]) >= 15
    assert all(f["source"] for e in doc["events"] for f in e["facts"])
    code, out, _ = _run(capsys, "events", "list")
    assert code == 0 and "2026-02-05" in out


def test_bad_catalog_and_flags_exit_with_codes(capsys, tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text('version = "1"\n[[events]]\nid = "x"\nname = "x"\nstrat = 2024-01-01\n')
    code, _, err = _run(capsys, "events", "list", "--catalog", str(bad))
    assert code == 3 and "did you mean 'start'" in err
    code, _, err = _run(capsys, "--data-dir", str(tmp_path), "events", "study", "--horizons", "7,x")
    assert code == 2 and "--horizons" in err


def _hand(shared_data_dir):
    """2026-02-05 outcomes from the price file with the csv module and plain arithmetic."""
    with (shared_data_dir / "prices" / "BTC-USD_1d.csv").open(newline="") as fh:
        rows = {r["timestamp"]: r for r in csv.DictReader(fh)}

    def px(day: dt.date, col: str) -> float:
        return float(rows[day.isoformat()][col])

    d = dt.date(2026, 2, 5)
    entry_day = d + dt.timedelta(days=1)
    entry = px(entry_day, "open")
    out = {"entry": entry}
    for h in (7, 30, 90):
        days = [entry_day + dt.timedelta(days=k) for k in range(h)]
        out[f"ret_{h}"] = px(days[-1], "close") / entry - 1
        out[f"mae_{h}"] = min(px(x, "low") for x in days) / entry - 1
        out[f"mfe_{h}"] = max(px(x, "high") for x in days) / entry - 1
    pre = px(d - dt.timedelta(days=1), "close")
    k = 0
    while px(d + dt.timedelta(days=k), "close") < pre:
        k += 1
    out["days_to_recover"] = k
    low90 = min(px(entry_day + dt.timedelta(days=j), "low") for j in range(90))
    out["drawdown_ahead"] = min(0.0, low90 / px(d, "close") - 1)
    return out


@pytest.mark.realdata
def test_study_catalog_btc_daily_matches_hand_computation(shared_data_dir, capsys):
    code, out, err = _run(
        capsys, "--data-dir", str(shared_data_dir), "events", "study", "--symbol", "BTC-USD",
        "--interval", "1d", "--horizons", "7,30,90", "--draws", "2000", "--seed", "1",
        "--format", "json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["horizons"] == [7, 30, 90]
    assert doc["baseline"]["draws"] == 2000 and doc["baseline"]["seed"] == 1
    for row in doc["summary"]:
        assert row["n_events"] >= 15
        for key in ("ret_mean", "ret_ci_lo", "ret_ci_hi", "ret_baseline", "ret_baseline_lo",
                    "ret_baseline_hi", "ret_p_value"):
            assert row[key] is not None, (row["horizon"], key)
        assert 0 < row["ret_p_value"] <= 1
        assert row["ret_ci_lo"] <= row["ret_mean"] <= row["ret_ci_hi"]
    feb = next(o for o in doc["outcomes"] if o["event_id"] == "2026-02-05-february-capitulation")
    hand = _hand(shared_data_dir)
    assert feb["entry_time"] == "2026-02-06T00:00:00Z"
    assert feb["entry_price"] == pytest.approx(hand["entry"], rel=1e-12)
    for h in (7, 30, 90):
        assert feb["returns"][str(h)] == pytest.approx(hand[f"ret_{h}"], rel=1e-9)
        assert feb["mae"][str(h)] == pytest.approx(hand[f"mae_{h}"], rel=1e-9)
        assert feb["mfe"][str(h)] == pytest.approx(hand[f"mfe_{h}"], rel=1e-9)
    assert feb["days_to_recover"] == hand["days_to_recover"]
    assert feb["drawdown_ahead"] == pytest.approx(hand["drawdown_ahead"], rel=1e-9)


@pytest.mark.realdata
def test_study_table_prints_baseline_intervals_pvalues(shared_data_dir, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")
    from flushback.backtests.cli import _common

    _common.console.width = 220
    code, out, err = _run(
        capsys, "--data-dir", str(shared_data_dir), "events", "study", "--horizons", "7,30,90",
        "--draws", "1000", "--no-per-event",
    )
    assert code == 0, err
    for needle in ("7d", "30d", "90d", "baseline", "95% CI", "p (2-sided)"):
        assert needle in out


@pytest.mark.realdata
def test_study_other_event_sources(shared_data_dir, capsys):
    for source in ("detected", "extreme_fear", '{"type": "capitulation", "k": 2.5}'):
        code, out, err = _run(
            capsys, "--data-dir", str(shared_data_dir), "events", "study", "--events", source,
            "--horizons", "7", "--draws", "500", "--match-volatility", "--format", "json",
        )
        assert code == 0, (source, err)
        doc = json.loads(out)
        assert doc["summary"][0]["n_events"] > 0
        assert doc["baseline"]["matched_on"] == "volatility_regime"
    code, _, err = _run(capsys, "--data-dir", str(shared_data_dir), "events", "study",
                        "--events", "extreme_feer")
    assert code == 2 and "extreme_fear" in err


@pytest.mark.realdata
@pytest.mark.slow
def test_strategy_command_writes_events_section(shared_data_dir, capsys, tmp_path):
    code, out, err = _run(
        capsys, "--data-dir", str(shared_data_dir), "events", "strategy", "fear_flush_btc_daily",
        "--draws", "300", "--write", "--runs-dir", str(tmp_path), "--format", "json",
    )
    assert code == 0, err
    doc = json.loads(out)
    assert {r["action"] for r in doc["strategy"]} <= {"entered", "in_position", "none", "no_data"}
    report = json.loads((tmp_path / doc["run_id"] / "report.json").read_text())
    assert report["events"]["strategy"] == doc["strategy"]
    assert [s["horizon"] for s in report["events"]["summary"]] == [7, 30, 90]
    # every 'entered' row is one of the run's trades in trades.csv, with the same numbers
    with (tmp_path / doc["run_id"] / "trades.csv").open(newline="") as fh:
        trades = {int(t["trade_id"]): t for t in csv.DictReader(fh)}
    entered = [r for r in doc["strategy"] if r["action"] == "entered"]
    assert entered
    for r in entered:
        t = trades[r["trade_id"]]
        assert float(t["entry_price"]) == pytest.approx(r["entry_price"])
        assert float(t["pnl"]) == pytest.approx(r["pnl"])
