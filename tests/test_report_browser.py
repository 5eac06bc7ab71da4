"""report.html in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright):
no JavaScript errors, no network request, every chart drawn with data points, the event zoom
moves every linked panel, the log button works, the trades table sorts. Screenshots are saved
under ``test-output/<test name>/`` in the repository (gitignored)."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import inspect_page, output_dir
from report_testkit import make_audit_section, make_optimization_section, make_report

from flushback.backtests.reports.html import render_report_html
from flushback.backtests.reports.tables import FlushEvent

pytestmark = pytest.mark.browser

EVENTS = [
    FlushEvent("ev-may", "planted May flush", pd.Timestamp("2021-05-19", tz="UTC"),
               pd.Timestamp("2021-05-19", tz="UTC")),
    FlushEvent("ev-jun", "planted June flush", pd.Timestamp("2022-06-13", tz="UTC"),
               pd.Timestamp("2022-06-18", tz="UTC")),
]

_AXES_JS = """() => { const gd = document.getElementById('price');
  const L = gd._fullLayout;
  return {x: L.xaxis.range, x2: L.xaxis2.range, x3: L.xaxis3.range, ytype: L.yaxis.type,
          y: L.yaxis.range}; }"""


def _pick_event(page, label: str) -> None:
    """Open the event dropdown above the price chart and click ``label``, as a user does."""
    page.locator("#price g.updatemenu-header-group").filter(has_text="full history").click()
    page.wait_for_timeout(300)
    page.locator("#price g.updatemenu-dropdown-button-group g.updatemenu-dropdown-button") \
        .filter(has_text=label).click()
    page.wait_for_timeout(400)


def _sort_descending(page, table_id: str, header: str, column: int) -> list[float]:
    """Click a table's column header twice, as a user does; the column's values in the
    order the rows now show."""
    th = page.locator(f"#{table_id} th").filter(has_text=header)
    th.click()
    th.click()
    return page.evaluate(f"""() => Array.from(
        document.querySelectorAll('#{table_id} tbody tr')).map(r =>
        parseFloat(r.cells[{column}].getAttribute('data-v')))""")


def test_report_html_renders_every_chart_without_js_errors(tmp_path):
    doc = make_report(
        5, optimization=make_optimization_section(2), audit=make_audit_section(),
    )
    html = tmp_path / "report.html"
    render_report_html(doc, html, events=EVENTS)
    shots = output_dir("test_report_html_renders_every_chart")
    seen: dict = {}

    def actions(page, report):
        seen["before"] = page.evaluate(_AXES_JS)
        # the event menu (a dropdown): pick the June 2022 flush
        _pick_event(page, EVENTS[1].label)
        seen["zoomed"] = page.evaluate(_AXES_JS)
        page.locator("#price").screenshot(path=str(shots / "price_zoomed_to_event.png"))
        # the scale buttons: log
        page.locator("#price g.updatemenu-header-group g.updatemenu-button") \
            .filter(has_text="log").first.click()
        page.wait_for_timeout(300)
        seen["log"] = page.evaluate(_AXES_JS)
        # sort the trades by return (descending after two clicks)
        seen["sorted"] = _sort_descending(page, "trades-table", "return", 10)

    rep = inspect_page(html, shots / "report.png", actions=actions)
    assert rep.errors == []
    assert rep.problems() == []
    ids = [c["id"] for c in rep.charts]
    assert ids == ["equity", "underwater", "monthly", "price", "opt-history", "opt-importances",
                   "opt-parallel", "opt-folds"]
    price = next(c for c in rep.charts if c["id"] == "price")
    n_bars = len(doc["series"]["timestamp"])
    by_name = {t["name"]: t["points"] for t in price["traces"]}
    assert by_name["BTC-USD close"] == n_bars
    assert by_name["entry"] == len(doc["trades"]) == by_name["exit"]
    assert by_name["signal: entry"] == len(doc["triggers"]["entry"])
    assert price["marks"]["points"] >= 2 * len(doc["trades"])
    # zooming to the June 2022 flush moved all three linked panels to the same window
    z = seen["zoomed"]
    lo, hi = pd.Timestamp(z["x"][0]), pd.Timestamp(z["x"][1])
    assert lo < pd.Timestamp("2022-06-13") < pd.Timestamp("2022-06-18") < hi
    assert hi - lo < pd.Timedelta(days=120)
    assert z["x"] == z["x2"] == z["x3"]
    assert seen["before"]["x"] != z["x"]
    assert seen["log"]["ytype"] == "log"
    sorted_returns = [v for v in seen["sorted"] if v == v]
    assert sorted_returns == sorted(sorted_returns, reverse=True)
    assert len(sorted_returns) == len(doc["trades"])
    assert (shots / "report.png").stat().st_size > 50_000


@pytest.mark.realdata
@pytest.mark.slow
def test_real_run_report_renders_in_chromium(shared_data_dir, tmp_path):
    from flushback.backtests.run.folders import write_run
    from flushback.backtests.run.runner import run_backtest
    from flushback.backtests.run.spec import load_spec

    result = run_backtest(load_spec("fear_flush_btc_daily"), data_dir=shared_data_dir)
    run = write_run(result, runs_dir=tmp_path / "runs")
    html = run / "report.html"
    assert html.is_file()  # every run renders its report by default
    shots = output_dir("test_real_run_report")
    rep = inspect_page(html, shots / "fear_flush_btc_daily.png")
    assert rep.errors == []
    assert rep.problems() == []
    ids = [c["id"] for c in rep.charts]
    assert ids[:4] == ["equity", "underwater", "monthly", "price"]
    price = next(c for c in rep.charts if c["id"] == "price")
    names = {t["name"] for t in price["traces"]}
    assert {"entry", "exit", "Fear & Greed", "longs liquidated"} <= names


def test_missing_chromium_skips_or_fails_under_ci(monkeypatch):
    import browser

    monkeypatch.setattr(browser, "chromium_executable", lambda: None)
    monkeypatch.delenv("FLUSHBACK_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium not found"):
        browser.require_browser()
    monkeypatch.setenv("FLUSHBACK_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="FLUSHBACK_REQUIRE_BROWSER=1"):
        browser.require_browser()


_METRICS_JS = """() => Array.from(document.querySelectorAll('#metrics-table tbody.metric-group'))
  .map(g => ({group: g.dataset.group,
              title: g.querySelector('tr.group th').textContent,
              rows: Array.from(g.querySelectorAll('tr[data-metric]')).map(r => ({
                key: r.dataset.metric,
                cells: Array.from(r.cells).map(c => c.textContent.trim()),
                explainHeight: r.querySelector('td.explain').getBoundingClientRect().height,
              }))}))"""

_LAYOUT_JS = """() => { const gd = document.getElementById('price');
  const L = gd._fullLayout;
  return {shapes: (L.shapes || []).map(s => ({y0: s.y0, y1: s.y1, yref: s.yref})),
          fngAxis: gd._fullData.find(t => t.name === 'Fear & Greed').yaxis}; }"""

_SCROLL_JS = """() => { const w = document.querySelector('#trades-table').closest('.wide');
  const before = w.scrollLeft; w.scrollLeft = 400;
  return {overflow: getComputedStyle(w).overflowX, scrollWidth: w.scrollWidth,
          clientWidth: w.clientWidth, moved: w.scrollLeft - before,
          pageWidth: document.documentElement.scrollWidth,
          viewport: window.innerWidth}; }"""


def test_grouped_metrics_with_explanations_and_every_chart_with_data(tmp_path):
    from flushback.backtests.reports.metric_view import METRICS

    doc = make_report(7, threshold=17.0, optimization=make_optimization_section(3),
                      audit=make_audit_section())
    # a run's exposure metrics (the synthetic run records only returns, risk and trades)
    doc["metrics"].update({"exposure": 0.25, "avg_holding_days": 12.5})
    doc["benchmark"]["metrics"]["exposure"] = 1.0
    html = tmp_path / "report.html"
    render_report_html(doc, html, events=EVENTS)
    seen: dict = {}

    def actions(page, report):
        seen["metrics"] = page.evaluate(_METRICS_JS)
        seen["layout"] = page.evaluate(_LAYOUT_JS)
        page.set_viewport_size({"width": 700, "height": 900})
        page.wait_for_timeout(200)
        seen["scroll"] = page.evaluate(_SCROLL_JS)

    rep = inspect_page(html, output_dir("test_grouped_metrics") / "report.png", actions=actions)
    assert rep.errors == []
    assert rep.problems() == []
    # every chart drawn, and every one of them carries data (a trace with points)
    assert len(rep.charts) == 8
    for chart in rep.charts:
        assert chart["plotted"], chart["id"]
        assert any(t["points"] > 0 for t in chart["traces"]), chart["id"]
        assert all(t["points"] > 0 for t in chart["traces"] if t["visible"] is True), chart["id"]
    # the metrics in four groups, each row: plain name, strategy, buy-and-hold, unit, and a
    # one-line explanation that is drawn on the page
    groups = seen["metrics"]
    assert [g["group"] for g in groups] == ["returns", "risk", "trades", "exposure"]
    assert [g["title"] for g in groups][:2] == ["Returns", "Risk"]
    shown = {r["key"]: r for g in groups for r in g["rows"]}
    for key in doc["metrics"]:
        if key in METRICS:
            row = shown[key]["cells"]
            assert row[0] == METRICS[key].name and row[3] == METRICS[key].unit
            assert row[4] == METRICS[key].explain and shown[key]["explainHeight"] > 5
    assert "sharpe" in shown and "total_return" in shown and "max_drawdown" in shown
    total = shown["total_return"]["cells"]
    want = doc["metrics"]["total_return"] * 100
    bench = doc["benchmark"]["metrics"]["total_return"] * 100
    assert total[1] == f"{want:+.2f} %" and total[2] == f"{bench:+.2f} %"
    assert shown["exposure"]["cells"][1:4] == ["25.00 %", "100.00 %", "%"]
    assert shown["avg_holding_days"]["cells"][1:4] == ["12.5", "–", "days"]
    # no metric is listed twice (durations in bars and in days are one line)
    keys = [r["key"] for g in groups for r in g["rows"]]
    assert len(keys) == len(set(keys))
    # the Fear & Greed guides sit at the spec's own threshold (17), not at 25/75
    lay = seen["layout"]
    fng_y = {s["y0"] for s in lay["shapes"] if s["yref"] == lay["fngAxis"]}
    assert fng_y == {17}
    # a wide table scrolls sideways inside its box; the page itself does not widen
    sc = seen["scroll"]
    assert sc["overflow"] == "auto" and sc["scrollWidth"] > sc["clientWidth"]
    assert sc["moved"] > 0


def test_cpcv_paths_table_renders_and_sorts(tmp_path):
    opt = make_optimization_section(4, n_folds=6)
    sharpes = [0.42, -0.31, 0.05]
    opt["cpcv"] = {
        "n_groups": 4, "n_test_groups": 2, "n_splits": 6, "n_paths": 3, "result_path": 1,
        "paths": [{"path": j + 1, "folds": folds,
                   "metrics": {"sharpe": s, "total_return": s / 2, "cagr": s / 10,
                               "max_drawdown": -0.3, "n_trades": 10 + j}}
                  for j, (folds, s) in enumerate(zip([[1, 1, 2, 3], [2, 4, 4, 5],
                                                      [3, 5, 6, 6]], sharpes, strict=True))],
        "summary": {"sharpe": {"mean": 0.0533, "std": 0.3663, "min": -0.31, "median": 0.05,
                               "max": 0.42},
                    "share_positive_sharpe": 2 / 3, "share_beating_benchmark": 0.0},
        "benchmark_metrics": {"total_return": 5.8},
    }
    for row, groups in zip(opt["is_vs_oos"], [[1, 2], [1, 3], [1, 4], [2, 3], [2, 4], [3, 4]],
                           strict=True):
        row["test_groups"] = groups
    html = tmp_path / "report.html"
    render_report_html(make_report(6, optimization=opt), html, events=EVENTS)
    seen: dict = {}

    def actions(page, report):
        seen["sharpe"] = _sort_descending(page, "cpcv-paths", "Sharpe", 4)
        seen["summary"] = page.locator("#cpcv-summary").inner_text()
        seen["folds"] = page.locator("#optimization").inner_text()

    rep = inspect_page(html, output_dir("test_cpcv_paths_table") / "report.png",
                       actions=actions)
    assert rep.errors == [] and rep.problems() == []
    assert seen["sharpe"] == sorted(sharpes, reverse=True)
    assert "3 out-of-sample backtest paths" in seen["summary"]
    assert "67 % of the paths have a positive Sharpe ratio" in seen["summary"]
    assert "Combinatorial purged k-fold splits" in seen["folds"]
    assert "groups 2 + 4" in seen["folds"]
