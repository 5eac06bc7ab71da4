"""`flushback compare`: metrics table, event matrix, pairwise Sharpe difference with a bootstrap
interval, paired tests on per-event returns, and the refusal of mismatched runs."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
from report_testkit import make_report, unpack_page

from flushback.backtests.cli import main
from flushback.backtests.reports import compare as cmp
from flushback.backtests.reports.schema import validate_report, write_report_file
from flushback.backtests.reports.tables import forward_event_outcomes
from flushback.data.errors import ConfigError, DataError


def _three():
    return [validate_report(make_report(7, hold=h, threshold=t, spec_name=name))
            for h, t, name in ((10, 20, "fear10"), (5, 25, "fear5"), (20, 15, "fear20"))]


def _hand_sharpe(r: np.ndarray, ppy: int) -> float:
    m = sum(r) / len(r)
    var = sum((x - m) ** 2 for x in r) / (len(r) - 1)
    return m / math.sqrt(var) * math.sqrt(ppy)


def test_sharpe_difference_against_a_hand_computation_and_a_numpy_bootstrap():
    rng = np.random.default_rng(11)
    idx = pd.date_range("2024-01-01", periods=400, freq="D", tz="UTC")
    a = pd.Series(rng.normal(0.002, 0.02, 400), index=idx)
    b = pd.Series(0.5 * a.to_numpy() + rng.normal(0.0, 0.015, 400), index=idx)
    b = b.iloc[50:]  # only the shared bars count
    sd = cmp.sharpe_difference(a, b, 365, n_resamples=3000, seed=3)
    shared = a.iloc[50:].to_numpy()
    assert sd["n_bars"] == 350
    assert sd["sharpe_a"] == pytest.approx(_hand_sharpe(shared, 365), rel=1e-12)
    assert sd["sharpe_b"] == pytest.approx(_hand_sharpe(b.to_numpy(), 365), rel=1e-12)
    assert sd["sharpe_diff"] == pytest.approx(sd["sharpe_a"] - sd["sharpe_b"], rel=1e-12)
    assert sd["ci_low"] < sd["sharpe_diff"] < sd["ci_high"]
    # a second implementation: paired percentile bootstrap with a plain numpy loop
    boot_rng = np.random.default_rng(99)
    bb = b.to_numpy()
    diffs = []
    for _ in range(3000):
        i = boot_rng.integers(0, len(bb), len(bb))
        diffs.append(_hand_sharpe(shared[i], 365) - _hand_sharpe(bb[i], 365))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    width = hi - lo
    assert abs(sd["ci_low"] - lo) < 0.1 * width and abs(sd["ci_high"] - hi) < 0.1 * width
    # seeded: the same seed gives the same interval
    again = cmp.sharpe_difference(a, b, 365, n_resamples=3000, seed=3)
    assert again == sd


def test_paired_event_tests_by_hand():
    a = [0.05, 0.10, 0.02, 0.07, 0.04]
    b = [0.01, 0.03, 0.00, 0.01, 0.02]
    n, mean, wil, tt, note = cmp.paired_event_test(a, b)
    d = np.subtract(a, b)
    assert n == 5 and mean == pytest.approx(d.mean())
    # all five differences positive: exact two-sided signed-rank p = 2 / 2**5
    assert wil == pytest.approx(2 / 32)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(5))
    assert tt == pytest.approx(2 * stats.t.sf(abs(t), 4))
    # NaN events are dropped pairwise; identical outcomes give p = 1 with a note
    n, *_ = cmp.paired_event_test([0.1, np.nan, 0.2], [0.1, 0.3, np.nan])
    assert n == 1
    n, mean, wil, tt, note = cmp.paired_event_test([0.0, 0.1], [0.0, 0.1])
    assert (wil, tt, note) == (1.0, 1.0, "identical per-event returns")


def test_compare_reports_tables_match_the_reports():
    reps = _three()
    comp = cmp.compare_reports(reps, n_resamples=500)
    assert comp.labels == ["fear10", "fear5", "fear20"]
    assert list(comp.metrics.columns) == ["fear10", "fear5", "fear20",
                                          "buy_and_hold (BTC-USD)"]
    for lab, rep in zip(comp.labels, reps, strict=True):
        assert comp.metrics.loc["sharpe", lab] == rep.metrics["sharpe"]
        assert comp.metrics.loc["total_return", lab] == rep.metrics["total_return"]
        # equity rebased to 1 at the start
        assert comp.equity[lab].iloc[0] == pytest.approx(1.0)
        assert comp.equity[lab].iloc[-1] == pytest.approx(1 + rep.metrics["total_return"])
        out = forward_event_outcomes(rep, comp.events)
        assert np.allclose(comp.event_returns[lab].to_numpy(), out["strategy_return"],
                           equal_nan=True)
        assert comp.event_entered[lab].tolist() == out["entered"].tolist()
    assert comp.metrics.loc["sharpe", "buy_and_hold (BTC-USD)"] == \
        reps[0].benchmark.metrics["sharpe"]
    assert [(p.a, p.b) for p in comp.pairs] == [("fear10", "fear5"), ("fear10", "fear20"),
                                                ("fear5", "fear20")]
    p = comp.pairs[0]
    assert p.sharpe_a == pytest.approx(reps[0].metrics["sharpe"], rel=1e-9)
    assert p.n_events == len(comp.events) > 0
    assert json.loads(json.dumps(comp.to_dict(), allow_nan=False))["pairs"][0]["a"] == "fear10"


def test_mismatched_runs_are_refused_saying_what_differs():
    a = validate_report(make_report(1, spec_name="btc"))
    b = validate_report(make_report(1, spec_name="eth", symbol="ETH-USD"))
    c = validate_report(make_report(1, spec_name="later", start="2021-02-01"))
    with pytest.raises(ConfigError) as info:
        cmp.compare_reports([a, b])
    msg = str(info.value)
    assert "symbol differs (btc: BTC-USD, eth: ETH-USD)" in msg and "--allow-mismatch" in msg
    with pytest.raises(ConfigError) as info:
        cmp.compare_reports([a, c])
    msg = str(info.value)
    assert "start differs (btc: 2021-01-01T00:00:00Z, later: 2021-02-01T00:00:00Z)" in msg
    assert "end differs" in msg and "symbol" not in msg.split("--")[0].replace("symbol,", "")
    comp = cmp.compare_reports([a, c], allow_mismatch=True, n_resamples=200)
    shared = {p.timestamp for p in a.equity} & {p.timestamp for p in c.equity}
    # returns on the shared bars: the first shared bar has no return in the later run
    assert comp.mismatches and comp.pairs[0].n_bars == len(shared) - 1
    assert "bars both runs cover" in comp.pairs[0].note


def test_unknown_metric_gets_a_did_you_mean():
    with pytest.raises(ConfigError, match="unknown metric.*sharp.*did you mean sharp -> sharpe"):
        cmp.compare_reports(_three()[:2], metrics=["sharp"])


def test_cli_compare_terminal_json_html_and_refusal(tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    for rep in _three():
        write_report_file(rep, runs / rep.run_id / "report.json")
    other = validate_report(make_report(7, spec_name="eth", symbol="ETH-USD"))
    write_report_file(other, runs / "eth-run" / "report.json")
    monkeypatch.setenv("FLUSHBACK_RUNS_DIR", str(runs))
    monkeypatch.setenv("COLUMNS", "200")
    ids = [r.run_id for r in _three()]
    out_html = tmp_path / "compare.html"
    assert main(["compare", *ids, "--html", str(out_html), "--resamples", "300"]) == 0
    out = capsys.readouterr()
    for needle in ("Metrics", "fear10", "fear20", "Flush events", "Pairs", "Wilcoxon p"):
        assert needle in out.out, needle
    assert f"wrote {out_html}" in out.err
    text = out_html.read_text(encoding="utf-8")
    assert list(unpack_page(text)[1]["figures"]) == ["compare-equity", "compare-events"]
    assert "fear5" in text
    assert main(["compare", ids[0], ids[1], "--format", "json", "-m", "sharpe",
                 "--resamples", "200"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc["metrics"]["fear10"]) == ["sharpe"]
    assert main(["compare", ids[0], "eth-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: runs cover different data")
    assert "symbol differs (fear10: BTC-USD, eth: ETH-USD)" in err
    assert main(["compare", ids[0], "eth-run", "--allow-mismatch", "--resamples", "200"]) == 0
    assert "warning: runs cover different data" in capsys.readouterr().out


def test_run_references_resolve_and_ambiguity_is_reported(tmp_path):
    runs = tmp_path / "runs"
    src = Path(__file__).parent / "golden" / "report_v1_0.json"
    for rid in ("abc111", "abc222"):
        (runs / rid).mkdir(parents=True)
        shutil.copy(src, runs / rid / "report.json")
    assert cmp.resolve_report_path("abc1", runs) == runs / "abc111" / "report.json"
    assert cmp.resolve_report_path(runs / "abc222", runs) == runs / "abc222" / "report.json"
    assert cmp.resolve_report_path(src, runs) == src
    with pytest.raises(ConfigError, match="ambiguous: abc111, abc222"):
        cmp.resolve_report_path("abc", runs)
    with pytest.raises(DataError, match="no run or report 'zzz'"):
        cmp.resolve_report_path("zzz", runs)
    with pytest.raises(ConfigError, match="at least two"):
        cmp.compare_reports(cmp.load_reports(["abc111"], runs))
