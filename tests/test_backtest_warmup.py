"""Warm-up honesty: the first bar at which every signal is valid, in the terminal and the report."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from flushback.backtests.cli import main
from flushback.backtests.run.runner import prepare_frame, run_backtest
from flushback.backtests.run.spec import load_spec
from flushback.backtests.run.warmup import warmup_report
from flushback.data.synthetic import synthetic_bars, write_sample_folder
from flushback.signals import build_signal

DAY = pd.Timedelta(days=1)
# Wilder RSI(14): 14 + 1 + ceil(ln(1e-6) / ln(13/14)) bars (the seed's weight below 1e-6)
RSI14_WARMUP = 14 + 1 + math.ceil(math.log(1e-6) / math.log(13 / 14))


def _bars(n: int = 600, fng_from: int | None = None) -> pd.DataFrame:
    bars = synthetic_bars(periods=n, seed=11)
    bars.attrs["interval"] = "1d"
    fng = np.random.default_rng(1).integers(5, 95, n).astype("float64")
    if fng_from is not None:
        fng[:fng_from] = np.nan
    bars["fng"] = fng
    return bars


def test_rsi_warmup_constant_is_what_the_signal_masks():
    assert RSI14_WARMUP == 202
    bars = _bars()
    rsi = build_signal({"type": "rsi"}).compute(bars)
    assert int(np.flatnonzero(rsi.notna().to_numpy())[0]) == RSI14_WARMUP


def test_window_two_weeks_after_the_data_is_flagged_with_the_first_valid_bar():
    bars = _bars()
    spec = load_spec({
        "name": "rsi_early_window",
        "data": {"symbol": "BTC-USD", "interval": "1d", "externals": ["fng"]},
        "signals": {"entry": {"type": "oversold_rsi", "threshold": 35.0}},
        "strategy": {"type": "contrarian", "hold_bars": 5},
    })
    since = bars.index[14]
    res = run_backtest(spec, prepared=prepare_frame(spec, bars, since=since))
    w = res.warmup
    assert w["inside_window"] is True
    assert w["first_valid_bar"] == bars.index[RSI14_WARMUP].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert w["window_start"] == since.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert w["bars_in_window_before_valid"] == RSI14_WARMUP - 14
    assert w["days_in_window_before_valid"] == RSI14_WARMUP - 14
    assert "warm-up reaches into the window" in w["message"]
    # no trade is possible before the first valid bar (the signal is False there)
    assert not res.signals["entry"].loc[: bars.index[RSI14_WARMUP - 1]].any()
    # the same spec with a window after the warm-up is not flagged
    late = run_backtest(spec, prepared=prepare_frame(spec, bars, since=bars.index[300]))
    assert late.warmup["inside_window"] is False
    assert late.warmup["bars_in_window_before_valid"] == 0


def test_an_input_that_starts_late_delays_its_signal_and_composites_follow_their_logic():
    bars = _bars(fng_from=300)
    iv = DAY
    fear = {"type": "extreme_fear", "threshold": 25.0}
    rsi = {"type": "oversold_rsi", "threshold": 30.0}
    w = warmup_report({
        "fear": build_signal(fear),
        "any": build_signal({"type": "any", "of": [fear, rsi]}),
        "all": build_signal({"type": "all", "window": 3, "of": [fear, rsi]}),
    }, bars, bars.index[100], iv)
    rows = {r["name"]: r for r in w["signals"]}
    iso = lambda i: bars.index[i].strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    assert rows["fear"]["inputs_from"] == iso(300)
    assert rows["fear"]["valid_from"] == iso(300)  # extreme_fear has no warm-up
    # any: valid once its first leg is (RSI at 202); complete once both are (F&G at 300)
    assert rows["any"]["valid_from"] == iso(RSI14_WARMUP)
    assert rows["any"]["complete_from"] == iso(300)
    # all with a 3-bar window: both legs, plus window - 1 bars
    assert rows["all"]["valid_from"] == iso(302)
    assert w["first_valid_bar"] == iso(302)
    assert w["bars_in_window_before_valid"] == 202


def test_a_signal_without_inputs_is_never_valid():
    bars = _bars(fng_from=600)  # all NaN
    w = warmup_report({"fear": build_signal("extreme_fear")}, bars, bars.index[0], DAY)
    assert w["first_valid_bar"] is None and w["inside_window"] is True
    assert w["bars_in_window_before_valid"] == len(bars)
    assert "never valid" in w["message"]


def _liq_from_the_first_day(tmp_path, extra: str = ""):
    """A sample data folder, and a spec whose window starts on the first liquidation day."""
    root = write_sample_folder(tmp_path / "data", days=160)
    spec = tmp_path / "liq.toml"
    spec.write_text(
        'name = "liq_from_the_first_day"\n'
        '[data]\nsymbol = "BTC-USD"\ninterval = "1d"\nstart = "2024-01-01"\n'
        'externals = ["fng", "liquidations"]\n'
        '[signals.entry]\ntype = "liquidation_spike"\nlookback_days = 60\nmin_days = 14\n'
        + extra + '[strategy]\ntype = "contrarian"\nhold_bars = 5\n', encoding="utf-8")
    return root, spec


def test_backtest_cli_warns_and_the_report_shows_it(tmp_path, capsys):
    root, spec = _liq_from_the_first_day(tmp_path)
    runs = tmp_path / "runs"
    code = main(["--data-dir", str(root), "backtest", str(spec), "--runs-dir", str(runs)])
    out = capsys.readouterr()
    assert code == 0, out.err
    # liquidations begin on the first day: a 60-day z-score is valid 60 bars later
    assert "warning: warm-up reaches into the window" in out.err
    assert "valid only from 2024-03-01" in out.err  # 2024-01-01 + 60 days (leap year)
    run_dir = next(p for p in runs.iterdir() if p.is_dir())
    report = json.loads((run_dir / "report.json").read_text())
    w = report["warmup"]
    assert w["inside_window"] is True
    assert w["first_valid_bar"] == "2024-03-01T00:00:00Z"
    assert w["bars_in_window_before_valid"] == 60
    html = (run_dir / "report.html").read_text()
    assert 'id="warmup-message"' in html
    assert '<code id="warmup-first-valid">2024-03-01</code>' in html
    assert html.index("Signal warm-up") < html.index('id="metrics"')


def test_audit_warns_about_warmup_inside_the_window(tmp_path, capsys):
    root, spec = _liq_from_the_first_day(tmp_path, "k = 1.0\n")
    runs = tmp_path / "runs"
    code = main(["--data-dir", str(root), "audit", str(spec), "--trades", "0",
                 "--runs-dir", str(runs)])
    out = capsys.readouterr()
    assert code in (0, 6), out.err
    assert "warning: warm-up reaches into the window" in out.err
    assert "valid only from 2024-03-01" in out.err
    report = json.loads(next(runs.glob("*/report.json")).read_text())
    assert report["warmup"]["inside_window"] is True and report["audit"] is not None
