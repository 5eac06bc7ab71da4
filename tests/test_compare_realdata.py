"""`flushback compare` of three shipped specs on the real data in ../shared/data: the terminal
tables, the HTML page (also opened in Chromium when it is installed), and the refusal of a pair
of runs over different data windows."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import inspect_page, output_dir
from report_testkit import unpack_page

from flushback.backtests.cli import main

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SPECS = ("fear_flush_btc_daily", "liquidation_spike_btc_daily",
         "fear_greed_accumulation_btc_daily")
SINCE = "2021-01-01"  # liquidation data starts in Dec 2020: one window for all three


@pytest.fixture(scope="module")
def real_runs(shared_data_dir, tmp_path_factory):
    from flushback.backtests.run.folders import write_run
    from flushback.backtests.run.runner import run_backtest
    from flushback.backtests.run.spec import load_spec

    runs = tmp_path_factory.mktemp("real_runs")
    ids = {}
    for name in SPECS:
        res = run_backtest(load_spec(name), data_dir=shared_data_dir, since=SINCE)
        ids[name] = write_run(res, runs_dir=runs).name
    full = run_backtest(load_spec("fear_flush_btc_daily"), data_dir=shared_data_dir)
    ids["full_window"] = write_run(full, runs_dir=runs).name
    return runs, ids


def test_compare_three_shipped_specs_terminal_and_html(real_runs, capsys, monkeypatch):
    runs, ids = real_runs
    monkeypatch.setenv("COLUMNS", "220")
    html = runs / "compare.html"
    code = main(["compare", *(ids[s] for s in SPECS), "--runs-dir", str(runs),
                 "--html", str(html)])
    out = capsys.readouterr()
    assert code == 0, out.err
    for name in SPECS:
        assert name in out.out
    for needle in ("Metrics", "sharpe", "max_drawdown", "buy_and_hold (BTC-USD)",
                   "2022-11-08-ftx-collapse", "2026-02-05-february-capitulation",
                   "Pairs", "Wilcoxon p"):
        assert needle in out.out, needle
    text = html.read_text(encoding="utf-8")
    assert list(unpack_page(text)[1]["figures"]) == ["compare-equity", "compare-events"]
    for name in SPECS:
        assert name in text


@pytest.mark.browser
def test_compare_page_of_real_runs_in_chromium(real_runs):
    runs, ids = real_runs
    html = runs / "compare_browser.html"
    assert main(["compare", *(ids[s] for s in SPECS), "--runs-dir", str(runs),
                 "--html", str(html)]) == 0
    rep = inspect_page(html, output_dir("test_compare_realdata") / "compare_three_specs.png")
    assert rep.errors == [] and rep.problems() == []
    assert [c["id"] for c in rep.charts] == ["compare-equity", "compare-events"]


def test_compare_refuses_runs_over_different_windows(real_runs, capsys):
    runs, ids = real_runs
    code = main(["compare", ids["full_window"], ids["fear_flush_btc_daily"],
                 "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: runs cover different data, their numbers are not comparable")
    assert f"start differs (fear_flush_btc_daily [{ids['full_window'][:8]}]: 2018-" in err
    assert f"{SINCE}T00:00:00Z)" in err
    assert "--allow-mismatch" in err
