"""report.html and the Markdown summary, rendered from report.json (no browser here; see
test_report_browser.py for the rendering in Chromium)."""

from __future__ import annotations

import html
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from report_testkit import (
    make_audit_section,
    make_optimization_section,
    make_report,
    strip_embedded,
    unpack_page,
)

from flushback.backtests.cli import main
from flushback.backtests.reports import html as rh
from flushback.backtests.reports.metric_view import DSR_PLAIN, PBO_PLAIN
from flushback.backtests.reports.schema import load_report_file, validate_report
from flushback.backtests.reports.tables import (
    FlushEvent,
    drawdown,
    forward_event_outcomes,
    monthly_returns,
)

GOLDEN = Path(__file__).parent / "golden"
FEB5 = FlushEvent("2026-02-05-x", "February capitulation", pd.Timestamp("2026-02-05", tz="UTC"),
                  pd.Timestamp("2026-02-06", tz="UTC"))


@pytest.fixture(scope="module")
def golden():
    return load_report_file(GOLDEN / "report_v1_0.json")


@pytest.fixture(scope="module")
def synthetic():
    return validate_report(make_report(
        3, optimization=make_optimization_section(1), audit=make_audit_section(),
    ))


def test_page_is_self_contained_with_plotly_embedded_once(synthetic):
    from plotly.offline import get_plotlyjs

    text, figs = rh.build_report_html(synthetic)
    bundle, charts = unpack_page(text)
    assert bundle == get_plotlyjs()  # the whole bundle, once, compressed
    assert list(charts["figures"]) == figs
    for div_id in figs:
        assert text.count(f'<div id="{div_id}" class="plotly-graph-div"') == 1
    ours = strip_embedded(text)
    assert len(ours) < 100_000
    assert not re.search(r"<script[^>]+src=", ours) and not re.search(r"<link[^>]+href=", ours)
    assert "cdn.plot.ly" not in ours and "https://" not in ours
    assert set(figs) == {"equity", "underwater", "monthly", "price", "opt-history",
                         "opt-importances", "opt-parallel", "opt-folds"}
    for needle in (synthetic.run_id, synthetic.flushback_version, "prices/BTC-USD_1d",
                   "ab" * 32, "Deflated Sharpe Ratio", "Probability of Backtest Overfitting",
                   "Bias audit", 'id="trades-table"', 'id="events-table"'):
        assert needle in text, needle


def test_equity_and_underwater_figures_carry_the_report_curves(golden):
    eq = [p.equity for p in golden.equity]
    bench = [p.benchmark for p in golden.equity]
    fig = rh.fig_equity(golden)
    assert list(fig.data[0].y) == eq and list(fig.data[1].y) == bench
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["linear", "log"]
    uw = rh.fig_underwater(golden)
    # hand-computed: 10000, 10000, 9800 (-2 %), 10200 (new peak), 10500
    assert np.allclose(list(uw.data[0].y), [0, 0, -2.0, 0, 0])
    # benchmark: 10000, 9000 (-10 %), 8700 (-13 %), 8900 (-11 %), 9000 (-10 %)
    assert np.allclose(list(uw.data[1].y), [0, -10.0, -13.0, -11.0, -10.0])


def test_equity_figures_are_left_out_without_equity_values(golden):
    doc = golden.to_dict()
    for equity in ([], [dict(p, equity=None) for p in doc["equity"]]):
        rep = validate_report(dict(doc, equity=equity))
        assert rh.fig_equity(rep) is None and rh.fig_underwater(rep) is None
        assert rh.fig_monthly(rep) is None
    assert rh.fig_equity(golden) is not None and rh.fig_monthly(golden) is not None


def test_monthly_returns_by_hand():
    idx = pd.to_datetime(["2024-01-01", "2024-01-31", "2024-02-15", "2024-02-29",
                          "2024-04-10"], utc=True)
    eq = pd.Series([100.0, 110.0, 99.0, 121.0, 133.1], index=idx)
    table = monthly_returns(eq)
    assert table.loc[2024, 1] == pytest.approx(0.10)   # 100 -> 110
    assert table.loc[2024, 2] == pytest.approx(0.10)   # 110 -> 121
    assert np.isnan(table.loc[2024, 3])                # no data in March
    assert table.loc[2024, 4] == pytest.approx(0.10)   # 121 -> 133.1
    dd = drawdown(pd.Series([1.0, 2.0, 1.0, 3.0]))
    assert dd.tolist() == [0.0, 0.0, -0.5, 0.0]


def test_price_chart_marks_triggers_entries_exits_and_links_the_panels(golden):
    fig = rh.fig_price(golden, [FEB5])
    names = [t.name for t in fig.data]
    assert names[:4] == ["BTC-USD close", "signal: entry", "entry", "exit"]
    trig = fig.data[1]
    assert [str(x)[:10] for x in trig.x] == ["2026-02-05"] and list(trig.y) == [63000.0]
    entry, exit_ = fig.data[2], fig.data[3]
    assert list(entry.y) == [62000.0] and str(entry.x[0])[:10] == "2026-02-06"
    assert list(exit_.y) == [65100.0] and str(exit_.x[0])[:10] == "2026-02-08"
    assert "Fear & Greed" in names and "longs liquidated" in names
    # three panels on one shared (linked) time axis
    # (make_subplots links every x axis to the bottom one, "x3")
    groups = {fig.layout.xaxis.matches, fig.layout.xaxis2.matches, fig.layout.xaxis3.matches
              or "x3"}
    assert groups == {"x3"}
    fng = fig.data[names.index("Fear & Greed")]
    assert list(fng.yaxis for _ in [0]) == ["y2"]
    liq = fig.data[names.index("longs liquidated")]
    assert liq.yaxis == "y3" and liq.y[1] == pytest.approx(2100.0)  # $M
    scale, zoom = fig.layout.updatemenus
    assert [b.label for b in scale.buttons] == ["linear", "log"]
    assert scale.buttons[1].args[0]["yaxis.type"] == "log"
    labels = [b.label for b in zoom.buttons]
    assert labels == ["full history", FEB5.label]
    args = zoom.buttons[1].args[0]
    lo, hi = (pd.Timestamp(x) for x in args["xaxis.range"])
    assert lo < pd.Timestamp("2026-02-05") and hi > pd.Timestamp("2026-02-06")
    ylo, yhi = args["yaxis.range"]
    assert ylo < 60000.0 and yhi > 73500.0  # the window's low and high fit


def test_forward_event_outcomes_by_hand(golden):
    out = forward_event_outcomes(golden, [FEB5])
    row = out.iloc[0]
    assert bool(row["entered"]) and row["n_trades"] == 1
    assert row["entry_price"] == 62000.0 and row["trade_return"] == pytest.approx(0.0478)
    # equity from the last bar at/before 2026-02-04 (10000) to the data end (10500)
    assert row["strategy_return"] == pytest.approx(0.05)
    assert row["benchmark_return"] == pytest.approx(-0.10)
    assert row["horizon_end"] == pd.Timestamp("2026-02-08", tz="UTC")
    early = FlushEvent("old", "before the data", pd.Timestamp("2026-01-01", tz="UTC"),
                       pd.Timestamp("2026-01-01", tz="UTC"))
    row = forward_event_outcomes(golden, [early]).iloc[0]
    assert not row["entered"] and np.isnan(row["strategy_return"])


def test_event_action_in_position_when_a_trade_was_already_open(golden):
    feb7 = FlushEvent("feb7", "later", pd.Timestamp("2026-02-07", tz="UTC"),
                      pd.Timestamp("2026-02-07", tz="UTC"))
    feb9 = FlushEvent("feb9", "after", pd.Timestamp("2026-02-09", tz="UTC"),
                      pd.Timestamp("2026-02-09", tz="UTC"))
    doc = golden.to_dict()
    doc["trades"][0]["entry_time"] = "2026-02-06T00:00:00Z"
    out = forward_event_outcomes(validate_report(doc), [FEB5, feb7, feb9])
    # the trade (entered at the 02-06 open, after the flush's first day closed; exited 02-08)
    # is entered at FEB5; at feb7 it was already open; by feb9 it is closed
    assert out["action"].tolist() == ["entered", "in position", "none"]
    assert out["entered"].tolist() == [True, False, False]
    # filled at the event day's own open, it was decided the day before: in position, the
    # same rule as the run's events section
    doc["trades"][0]["entry_time"] = "2026-02-05T00:00:00Z"
    again = forward_event_outcomes(validate_report(doc), [FEB5])
    assert again["action"].tolist() == ["in position"]
    from flushback.backtests.events.strategy import strategy_at_events

    trades = validate_report(doc).trades_frame()
    cat_ev = type("Ev", (), {"id": "x", "name": "x", "start": "2026-02-05", "end": "2026-02-06"})
    assert [r.action for r in strategy_at_events(trades, [cat_ev])] == ["in_position"]
    assert out["entry_price"].iloc[1] == 62000.0 and np.isnan(out["entry_price"].iloc[2])


def test_trades_table_is_sortable_with_raw_sort_keys(synthetic):
    text, _ = rh.build_report_html(synthetic)
    table = text[text.index('id="trades-table"'):]
    table = table[: table.index("</table>")]
    assert table.count("<tr>") == len(synthetic.trades) + 1
    assert 'class="sortable"' in text[text.index('id="trades-table"') - 40:]
    first = synthetic.trades[0]
    assert f'data-v="{first.pnl!r}"' in table


def test_optimization_and_audit_sections(synthetic):
    opt = synthetic.optimization.model_dump()
    hist = rh.fig_opt_history(opt)
    # one (trials, best-so-far) pair per fold; failed trials are left out
    assert [t.name for t in hist.data] == [f"{kind} (fold {f})" for f in (1, 2, 3)
                                           for kind in ("trial", "best so far")]
    for f in (1, 2, 3):
        vals = [t["values"][0] for t in opt["trials"] if t["fold"] == f and t["values"]]
        assert list(hist.data[2 * (f - 1)].y) == vals
        assert list(hist.data[2 * (f - 1) + 1].y) == list(np.maximum.accumulate(vals))
    imp = rh.fig_opt_importances(opt)
    assert dict(zip(imp.data[0].y, imp.data[0].x, strict=True)) == opt["param_importances"]
    par = rh.fig_opt_parallel(opt)
    labels = [d.label for d in par.data[0].dimensions]
    assert labels == ["signals.entry.threshold", "strategy.hold_bars", "strategy.mode", "sharpe"]
    assert list(par.data[0].dimensions[2].ticktext) == ["a", "b"]
    fold3 = [t["values"][0] for t in opt["trials"] if t["fold"] == 3 and t["values"]]
    assert list(par.data[0].dimensions[3].values) == fold3  # the fold that chose the params
    folds = rh.fig_opt_folds(opt)
    assert list(folds.data[0].y) == [f["in_sample"]["sharpe"] for f in opt["is_vs_oos"]]
    assert list(folds.data[1].y) == [f["out_of_sample"]["sharpe"] for f in opt["is_vs_oos"]]
    text, _ = rh.build_report_html(synthetic)
    assert "Deflated Sharpe Ratio (DSR): 0.8100" in text
    assert "Probability of Backtest Overfitting (PBO): 0.2300" in text
    plain = html.unescape(text)
    assert rh.DSR_SENTENCE in plain and rh.PBO_SENTENCE in plain
    assert DSR_PLAIN in plain and PBO_PLAIN in plain
    assert "2021-01-01 → 2021-04-01" in text  # fold 1's training window
    assert "Verdict: <span class=\"good\">pass" in text
    assert "3 truncated re-runs" in text and "Look-ahead: 1 rows" in text
    failed = synthetic.to_dict()
    failed["audit"] = make_audit_section(passed=False)
    text, _ = rh.build_report_html(failed)
    assert "Verdict: <span class=\"bad\">fail" in text and "Look-ahead: findings" in text
    md = rh.render_report_markdown(synthetic)
    assert "Deflated Sharpe Ratio: 0.8100" in md and "| 1 | 1.300 | 0.6500 |" in md


def test_minimal_report_renders_only_charts_with_data(golden):
    doc = golden.to_dict()
    doc["series"] = {k: v for k, v in doc["series"].items() if k in
                     ("timestamp", "open", "high", "low", "close")}
    doc["trades"] = []
    doc["triggers"] = {}
    text, figs = rh.build_report_html(doc, events=[])
    assert figs == ["equity", "underwater", "monthly", "price"]
    fig = rh.fig_price(validate_report(doc), [])
    assert [t.name for t in fig.data] == ["BTC-USD close"]
    assert "no closed trades" in text


def test_markdown_summary(golden):
    md = rh.render_report_markdown(golden, events=[FEB5])
    assert md.startswith("## flushback report: golden_fear_flush\n")
    assert "`golden0000000001`" in md
    assert "| total_return | +5.00 % | -10.00 % |" in md
    assert "| sharpe | 1.500 | -2.000 |" in md
    assert "| 1 | 2026-02-06 | 62,000 | 2026-02-08 | 65,100 | +4.78 % | time |" in md
    assert "| 2026-02-05 February capitulation | entered | 2026-02-06 | +4.78 % | +5.00 % |" \
        " -10.00 % |" in md


def test_cli_report_html_md_and_runs_list(tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    run = runs / "golden0000000001"
    run.mkdir(parents=True)
    shutil.copy(GOLDEN / "report_v1_0.json", run / "report.json")
    monkeypatch.setenv("FLUSHBACK_RUNS_DIR", str(runs))
    assert main(["report", "golden00", "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## flushback report: golden_fear_flush")
    assert main(["report", "golden0000000001"]) == 0
    assert f"-> {run / 'report.html'}" in capsys.readouterr().out
    html = (run / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "golden0000000001" in html
    assert main(["runs", "list", "--format", "json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [r["run_id"] for r in listing["runs"]] == ["golden0000000001"]
    assert listing["runs"][0]["total_return"] == 0.05
    assert main(["runs", "list"]) == 0
    assert "golden0000000001" in capsys.readouterr().out
    assert main(["report", "nosuchrun"]) == 3
    err = capsys.readouterr().err
    assert "no run or report 'nosuchrun'" in err and "runs list" in err


def test_crowded_signal_starts_hidden_on_the_price_chart(synthetic):
    doc = synthetic.to_dict()
    doc["triggers"]["exit"] = list(doc["series"]["timestamp"])  # "on" at every bar
    fig = rh.fig_price(validate_report(doc), [])
    by_name = {t.name: t for t in fig.data}
    assert by_name["signal: entry"].visible is True
    hidden = by_name["signal: exit (click to show)"]
    assert hidden.visible == "legendonly" and len(hidden.x) == len(doc["series"]["timestamp"])
