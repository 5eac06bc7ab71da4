"""Every shipped spec passes ``flushback audit`` on the real data in ../shared/data.

The look-ahead check runs the full pipeline (data layer -> signals -> runner) on raw data cut at
every sampled trade's entry/exit decision and fill bars and at sampled trigger and quiet bars;
the external timing figures are checked against what the data layer declares for Fear & Greed
(the value dated D describes the day ending D 00:00 and is known at D 01:00, docs/data.md).
"""

from __future__ import annotations

import json

import pytest

from flushback.backtests.audit.base import FAIL, PASS, SKIP
from flushback.backtests.audit.run import audit_spec
from flushback.backtests.run.spec import list_specs

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SHIPPED = list_specs()


def test_there_are_shipped_specs():
    assert {"fear_flush_btc_daily", "rsi4h_btc_hourly", "liquidation_spike_btc_daily",
            "fear_greed_accumulation_btc_daily"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spec_passes_the_audit(shared_data_dir, name):
    report = audit_spec(name, data_dir=shared_data_dir, trades=20, trigger_bars=3,
                        quiet_bars=6, seed=0)
    verdicts = {c.name: c.verdict for c in report.checks}
    assert report.passed, {c.name: (c.verdict, c.summary, [f.message for f in c.findings[:3]])
                           for c in report.checks}
    la = report.check("lookahead")
    assert la.verdict == PASS
    n_trades, checked = la.params["trades_total"], la.params["trades_checked"]
    assert n_trades > 0, "a shipped spec that never trades proves nothing"
    assert checked == min(n_trades, 20)
    assert la.params["truncated_runs"] >= 2 * checked
    spec = report.result.spec
    if spec.signals:
        assert verdicts["warmup"] == PASS
        assert {r["signal"] for r in report.check("warmup").rows} >= set(spec.signals)
    else:
        assert verdicts["warmup"] == SKIP
    timing = report.check("external_timing")
    assert timing.verdict == PASS
    rows = {r["column"]: r for r in timing.rows}
    if "fng" not in spec.data.externals:  # e.g. a basket's buy-and-hold reads prices only
        assert all(r["early_uses"] == 0 for r in rows.values())
        return
    assert "fng" in rows
    # F&G dated D: period end D 00:00, known D 01:00. Daily bar D closes D+1 00:00 (first use
    # 24 h after the period end); the 4h bar D 00:00 closes at 04:00 (4 h), the hourly at 01:00.
    expected = {"1d": 24.0, "4h": 4.0, "1h": 1.0}[spec.data.interval]
    assert rows["fng"]["lag_h_min"] == expected
    assert rows["fng"]["publication_lag_h"] == 1.0
    assert all(r["early_uses"] == 0 for r in rows.values())
    json.dumps(report.to_dict(), allow_nan=False)


def test_calendar_date_fng_join_is_caught_on_real_data(shared_data_dir, monkeypatch):
    """The same planted data-layer bias as in test_audit_spec, on the real 2022 BTC data."""
    import numpy as np
    import pandas as pd

    from flushback.data import assemble as load_mod

    original = load_mod.asof_join
    day = pd.Timedelta(days=1)

    def calendar_join(bar_open, bar_iv, ext, columns):
        if "fng" not in columns or ext is None or len(ext) == 0:
            return original(bar_open, bar_iv, ext, columns)
        rows = ext.set_index(pd.DatetimeIndex(ext["period_end"])).reindex(
            pd.DatetimeIndex(bar_open).floor("D") + day)
        nat = np.iinfo(np.int64).min
        ok = rows["fng"].notna().to_numpy()
        return ({"fng": rows["fng"].to_numpy(dtype="float64")},
                np.where(ok, pd.DatetimeIndex(rows["known_at"]).as_unit("ns").asi8, nat),
                np.where(ok, pd.DatetimeIndex(rows["period_end"]).as_unit("ns").asi8, nat))

    monkeypatch.setattr(load_mod, "asof_join", calendar_join)
    report = audit_spec("fear_flush_btc_daily", data_dir=shared_data_dir, since="2022-01-01",
                        until="2022-12-31", trades=20, trigger_bars=2, quiet_bars=4)
    assert report.check("external_timing").verdict == FAIL
    la = report.check("lookahead")
    assert la.verdict == FAIL
    f = next(x for x in la.findings if x.column == "fng")
    # real values: the full run shows on bar D the F&G value dated D+1
    fng = pd.read_csv(shared_data_dir / "sentiment" / "crypto_fear_greed.csv")
    by_date = pd.Series(fng["value"].to_numpy(dtype=float),
                        index=pd.DatetimeIndex(pd.to_datetime(fng["date"], utc=True)))
    assert f.full == by_date[f.bar + day]


def test_cli_audit_stores_the_audit_with_the_run(shared_data_dir, capsys):
    from flushback.backtests.cli import main
    from flushback.data.paths import runs_dir

    code = main(["--data-dir", str(shared_data_dir), "audit",
                 "fear_greed_accumulation_btc_daily"])
    out, _ = capsys.readouterr()
    assert code == 0, out
    assert out.count("PASS") >= 2 and "audit: PASS" in out
    reports = list(runs_dir().glob("*/report.json"))
    assert len(reports) == 1
    doc = json.loads(reports[0].read_text())
    assert doc["audit"]["verdict"] == "pass"
    assert doc["audit"]["run_id"] == doc["run_id"]
    # an audited run carries the same flush-event section as a plain backtest's
    rows = {r["event_id"]: r for r in doc["events"]["strategy"]}
    # the accumulation rule holds BTC through Feb 2026 (it bought every day of Feb 1-12)
    assert rows["2026-02-05-february-capitulation"]["action"] in ("entered", "in_position")
    html = reports[0].with_name("report.html")
    if html.exists():  # rendered by the report module
        assert "audit" in html.read_text().lower()
