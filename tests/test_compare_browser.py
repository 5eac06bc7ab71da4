"""The compare page in real headless Chromium: no JavaScript errors, no network request, every
chart (overlaid equity, strategy x event matrix) drawn with data points. Screenshot under
``test-output/test_compare_page_renders/`` in the repository (gitignored)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import inspect_page, output_dir
from report_testkit import make_report

from flushback.backtests.reports.compare import compare_reports, render_compare_html
from flushback.backtests.reports.schema import validate_report

pytestmark = pytest.mark.browser


def test_compare_page_renders(tmp_path):
    reps = [validate_report(make_report(4, hold=h, threshold=t, spec_name=n))
            for h, t, n in ((10, 20, "fear10"), (5, 25, "fear5"), (20, 15, "fear20"))]
    comp = compare_reports(reps, n_resamples=300)
    html = tmp_path / "compare.html"
    render_compare_html(comp, html)
    rep = inspect_page(html, output_dir("test_compare_page_renders") / "compare.png")
    assert rep.errors == []
    assert rep.problems() == []
    assert [c["id"] for c in rep.charts] == ["compare-equity", "compare-events"]
    eq = rep.charts[0]
    assert [t["name"] for t in eq["traces"]] == ["fear10", "fear5", "fear20",
                                                 "buy_and_hold (BTC-USD)"]
    assert all(t["points"] == len(reps[0].equity) for t in eq["traces"])
    ev = rep.charts[1]
    # one heatmap cell per (strategy incl. benchmark, event) with an outcome
    expected = int(comp.event_returns.notna().sum().sum())
    assert ev["traces"][0]["points"] == expected > 0
