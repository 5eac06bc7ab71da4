"""The typed events, optimization and audit sections of report.json: readers get named,
typed fields; a section reads back exactly as its writer wrote it (no field invented, none
dropped, extra fields kept)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from report_testkit import make_audit_section, make_optimization_section, make_report

from flushback.backtests.reports.schema import validate_report
from flushback.backtests.reports.schema_sections import (
    AuditSection,
    EventsSection,
    OptimizationSection,
)


def _events_section() -> dict:
    """An events section as flushback.backtests.events.study.EventsSection writes it."""
    from flushback.backtests.events.study import (
        EventsSection as Written,
    )
    from flushback.backtests.events.study import (
        events_from_catalog,
        run_event_study,
    )

    idx = pd.date_range("2021-01-01", periods=400, freq="D", tz="UTC")
    close = pd.Series(range(100, 500), index=idx, dtype="float64")
    frame = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99,
                          "close": close}, index=idx)
    frame.attrs["interval"] = "1d"
    ev = type("Ev", (), {"id": "x", "name": "planted", "start": "2021-06-01",
                         "end": "2021-06-01"})
    study = run_event_study(frame, events_from_catalog([ev]), horizons=(7, 30), draws=50,
                            seed=0)
    return Written.from_study(study, symbol="X", interval="1d").to_report()


def test_every_section_reads_back_exactly_as_written():
    opt, audit, events = make_optimization_section(2), make_audit_section(), _events_section()
    events["written_by_a_newer_flushback"] = {"kept": True}  # an extra field survives
    doc = make_report(1, optimization=opt, audit=audit)
    doc["events"] = events
    rep = validate_report(doc)
    assert isinstance(rep.optimization, OptimizationSection)
    assert isinstance(rep.audit, AuditSection) and isinstance(rep.events, EventsSection)
    out = rep.to_dict()
    assert out["optimization"] == opt and out["audit"] == audit and out["events"] == events


def test_readers_get_named_typed_fields():
    opt = make_optimization_section(2)
    sec = validate_report(make_report(1, optimization=opt)).optimization
    assert sec.objective_label == "max_sharpe" and sec.objective == "sharpe"
    assert not sec.minimize
    assert sec.dsr_value == opt["dsr"]["dsr"] and sec.pbo_value == opt["pbo"]["pbo"]
    assert [f.fold for f in sec.is_vs_oos] == [f["fold"] for f in opt["is_vs_oos"]]
    done = [t for t in opt["trials"] if t["values"]]
    assert [t.value for t in sec.trials if t.value is not None] == \
        [t["values"][0] for t in done]
    events = validate_report({**make_report(1), "events": _events_section()}).events
    assert events.draws == 50 and [s.horizon for s in events.summary] == [7, 30]
    audit = validate_report(make_report(1, audit=make_audit_section())).audit
    assert audit.passed is True and audit.checks[0].name
