"""``import flushback as fb``: the notebook surface gives what the CLI gives, takes the user's
own prices and boolean entries with the time rules intact, and the example notebook runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import flushback as fb
from flushback.backtests.cli import main
from flushback.data.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]


def _bars(n: int = 30) -> pd.DataFrame:
    idx = pd.date_range("2024-01-01", periods=n, freq="1D", tz="UTC", name="timestamp")
    close = 100.0 + np.arange(n, dtype=float)
    open_ = close - 0.5
    frame = pd.DataFrame({"open": open_, "high": close + 1, "low": open_ - 1, "close": close,
                          "volume": 1.0}, index=idx)
    frame.attrs["symbol"] = "TOY"
    return frame


def test_import_is_light_and_lists_the_surface():
    code = ("import sys, flushback as fb; "
            "assert 'backtrader' not in sys.modules and 'optuna' not in sys.modules; "
            "print(sorted(fb.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "backtest" in out and "optimize" in out and "events" in out


def test_user_entries_fill_at_the_next_open_to_the_cent():
    frame = _bars()
    entries = pd.Series(False, index=frame.index)
    exits = pd.Series(False, index=frame.index)
    entries.iloc[[3, 15]] = True
    exits.iloc[[8, 20]] = True
    res = fb.backtest(data=frame, entries=entries, exits=exits, cash=1000.0,
                      set={"costs.commission": 0.0, "costs.slippage": 0.0})
    t = res.trades
    assert list(t["entry_time"]) == [frame.index[4], frame.index[16]]
    assert list(t["exit_time"]) == [frame.index[9], frame.index[21]]
    assert list(t["entry_price"]) == pytest.approx([frame["open"].iloc[4],
                                                    frame["open"].iloc[16]], rel=1e-12)
    assert list(t["exit_price"]) == pytest.approx([frame["open"].iloc[9],
                                                   frame["open"].iloc[21]], rel=1e-12)
    # no costs: all-in at the fill price, P&L = size * (exit - entry), compounding
    cash = 1000.0
    for i_in, i_out in ((4, 9), (16, 21)):
        size = cash / frame["open"].iloc[i_in]
        cash += size * (frame["open"].iloc[i_out] - frame["open"].iloc[i_in])
    assert res.equity["equity"].iloc[-1] == pytest.approx(cash, rel=1e-12)
    assert isinstance(res.metrics, pd.Series) and res.metrics["n_trades"] == 2
    assert res.metrics["end_equity"] == pytest.approx(cash, rel=1e-12)
    assert isinstance(res.benchmark_metrics, pd.Series)


def test_user_entries_nan_never_triggers_and_misalignment_is_refused():
    frame = _bars()
    entries = pd.Series(np.nan, index=frame.index, dtype=object)
    res = fb.backtest(data=frame, entries=entries.astype("float64"))
    assert len(res.trades) == 0
    with pytest.raises(DataError, match="not aligned"):
        fb.backtest(data=frame, entries=pd.Series(True, index=frame.index[:-1]))
    with pytest.raises(DataError, match="must be boolean"):
        fb.backtest(data=frame, entries=frame["close"])
    with pytest.raises(ConfigError, match="nothing to run"):
        fb.backtest()
    with pytest.raises(ConfigError, match="prices"):
        fb.backtest(entries=[True, False])


def test_user_strategy_overrides_apply():
    frame = _bars()
    entries = pd.Series(False, index=frame.index)
    entries.iloc[2] = True
    res = fb.backtest(data=frame, entries=entries, strategy={"hold_bars": 5})
    t = res.trades.iloc[0]
    assert t["entry_time"] == frame.index[3]
    assert (t["exit_time"] - t["entry_time"]) == pd.Timedelta(days=5)


def test_plot_and_html_have_data():
    frame = _bars()
    entries = pd.Series(False, index=frame.index)
    entries.iloc[[3]] = True
    res = fb.backtest(data=frame, entries=entries)
    fig = res.plot()
    names = [tr.name for tr in fig.data]
    assert {"close", "entry", res.spec.strategy.type} <= set(names)
    assert all(len(tr.x) > 0 for tr in fig.data)
    html = res.to_html()
    assert html.lstrip().lower().startswith("<!doctype html") and "user_signals" in html
    assert "<table" in res._repr_html_()


def test_signals_get_returns_a_configured_instance():
    sig = fb.signals.get("oversold_rsi", period=14, threshold=25)
    assert sig.name == "oversold_rsi" and sig.params["period"] == 14
    with pytest.raises(ConfigError, match="did you mean"):
        fb.signals.get("oversold_rsl")


@pytest.mark.slow
def test_fb_backtest_equals_the_cli_run(shared_data_dir, capsys, tmp_path):
    code = main(["--data-dir", str(shared_data_dir), "backtest", "fear_flush_btc_daily",
                 "--runs-dir", str(tmp_path), "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    run_dir = Path(out["run_dir"])
    res = fb.backtest("fear_flush_btc_daily", data_dir=shared_data_dir)
    assert res.run_id == out["run_id"]
    report = json.loads((run_dir / "report.json").read_text())
    for key, value in report["metrics"].items():
        mine = res.metrics[key]
        if value is None:
            assert mine is None or (isinstance(mine, float) and np.isnan(mine)), key
        elif isinstance(value, float):
            assert mine == pytest.approx(value, rel=1e-12, abs=1e-12), key
        else:
            assert mine == value, key
    trades = pd.read_csv(run_dir / "trades.csv")
    assert len(trades) == len(res.trades) > 0
    assert list(pd.to_datetime(trades["entry_time"], utc=True)) == list(res.trades["entry_time"])
    assert np.allclose(trades["pnl"], res.trades["pnl"], rtol=1e-12, atol=1e-9)
    equity = pd.read_csv(run_dir / "equity.csv", index_col=0)
    assert np.allclose(equity["equity"].to_numpy(), res.equity["equity"].to_numpy(),
                       rtol=1e-12)
    # saving from Python writes the same run folder
    saved = res.save(tmp_path / "py")
    assert json.loads((saved / "report.json").read_text())["metrics"] == report["metrics"]


@pytest.mark.slow
def test_the_example_notebook_runs(shared_data_dir, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    nb = nbformat.read(REPO / "examples" / "quickstart.ipynb", as_version=4)
    env = {"FLUSHBACK_DATA_DIR": str(shared_data_dir)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # the figure cell rendered a plotly figure
    assert any("application/vnd.plotly.v1+json" in o.get("data", {}) for o in outputs)
