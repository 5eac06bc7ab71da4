"""The shipped specs on the real data (../shared/data, via the shared_data_dir fixture).

- `flushback backtest` runs every shipped spec offline and trades the Feb 2026 flush where the
  spec's rules say it should;
- the whole metric set of a real run is recomputed independently from equity.csv and
  trades.csv and agrees to 1e-9;
- the same spec run in two fresh processes gives the same run_id and an identical report.json
  (only created_at differs).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.cli import main
from flushback.backtests.reports.schema import load_report_file
from flushback.backtests.run.runner import run_backtest

pytestmark = pytest.mark.realdata

FEB_FLUSH = (pd.Timestamp("2026-02-02", tz="UTC"), pd.Timestamp("2026-02-06 23:59", tz="UTC"))


def _cli_json(capsys, shared_data_dir, tmp_path, spec, *extra):
    code = main(["--data-dir", str(shared_data_dir), "backtest", spec, "--format", "json",
                 "--runs-dir", str(tmp_path / "runs"), *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    doc = json.loads(out)
    trades = pd.DataFrame(doc["trades"])
    for col in ("signal_time", "entry_time", "exit_time"):
        if len(trades):
            trades[col] = pd.to_datetime(trades[col], utc=True)
    return doc, trades, Path(doc["run_dir"])


@pytest.mark.slow
def test_fear_flush_trades_the_feb_2026_flush(shared_data_dir, tmp_path, capsys):
    doc, trades, run_dir = _cli_json(capsys, shared_data_dir, tmp_path, "fear_flush_btc_daily")
    assert doc["window"]["start"].startswith("2018-02-01")
    # F&G <= 20 together with a daily RSI < 25 / capitulation from Jan 30 2026: the entry
    # signal fires, the next open buys, and the position is held through Feb 2-6.
    rep = json.loads((run_dir / "report.json").read_text())
    fired = pd.to_datetime(rep["triggers"]["entry"], utc=True)
    assert ((fired >= "2026-01-30") & (fired <= FEB_FLUSH[1])).sum() >= 3
    held = trades[(trades["entry_time"] <= FEB_FLUSH[0]) & (trades["exit_time"] >= FEB_FLUSH[1]
                                                            - pd.Timedelta(days=1))]
    assert len(held) == 1
    t = held.iloc[0]
    assert pd.Timestamp("2026-01-25", tz="UTC") <= t["signal_time"] <= FEB_FLUSH[0]
    assert t["entry_time"] - t["signal_time"] == pd.Timedelta(days=1)  # next-open fill
    # March 2020 (Covid flush): F&G 10-14 with RSI < 25 -> a trade opened within days
    mar20 = trades[(trades["entry_time"] >= "2020-03-08") & (trades["entry_time"] <= "2020-03-20")]
    assert len(mar20) == 1
    assert doc["benchmark"]["metrics"]["exposure"] > 0.99


@pytest.mark.slow
def test_rsi4h_hourly_buys_the_feb_5_2026_oversold(shared_data_dir, tmp_path, capsys):
    doc, trades, _ = _cli_json(capsys, shared_data_dir, tmp_path, "rsi4h_btc_hourly")
    # the 4h RSI went below 25 on Feb 5 2026 (news: 22): bought at the next hourly open
    feb5 = trades[(trades["entry_time"] >= "2026-02-05") & (trades["entry_time"] < "2026-02-07")]
    assert len(feb5) == 1
    t = feb5.iloc[0]
    assert t["entry_time"] - t["signal_time"] == pd.Timedelta(hours=1)
    assert 60_000 < t["entry_price"] < 75_000
    assert doc["metrics"]["n_bars"] > 17_000


@pytest.mark.slow
def test_liquidation_spike_trades_oct_2025_and_not_the_uncovered_feb_2026(
    shared_data_dir, tmp_path, capsys
):
    doc, trades, run_dir = _cli_json(capsys, shared_data_dir, tmp_path,
                                     "liquidation_spike_btc_daily")
    # Oct 10 2025: $286M of Binance BTC longs liquidated -> bought at the Oct 11 open
    oct25 = trades[trades["entry_time"] == pd.Timestamp("2025-10-11", tz="UTC")]
    assert len(oct25) == 1
    # no liquidation data exists for 2026 (PROVENANCE.md): the rule cannot fire in Feb 2026
    rep = load_report_file(run_dir).to_dict()  # the series are in bars.parquet beside it
    ts = pd.to_datetime(rep["series"]["timestamp"], utc=True)
    liq = pd.Series(rep["series"]["liq_long_usd"], index=ts, dtype="float64")
    assert liq.loc["2026-01-01":"2026-03-01"].isna().all()
    in_2026 = (trades["entry_time"] >= "2026-01-01") & (trades["entry_time"] < "2026-03-01")
    assert not in_2026.any()


@pytest.mark.slow
def test_fear_greed_accumulation_buys_every_fear_day_of_feb_2026(
    shared_data_dir, tmp_path, capsys
):
    _, _, run_dir = _cli_json(capsys, shared_data_dir, tmp_path,
                              "fear_greed_accumulation_btc_daily")
    rep = load_report_file(run_dir).to_dict()  # the series are in bars.parquet beside it
    ts = pd.to_datetime(rep["series"]["timestamp"], utc=True)
    fng = pd.Series(rep["series"]["fng"], index=ts, dtype="float64")
    eq = pd.read_csv(run_dir / "equity.csv", index_col=0)
    eq.index = pd.to_datetime(eq.index, utc=True)
    days = fng.loc["2026-02-01":"2026-02-12"]
    assert (days <= 20).all()  # F&G 5-20 all through the flush
    for day in days.index:
        nxt = day + pd.Timedelta(days=1)
        assert eq.loc[nxt, "position"] > eq.loc[day, "position"]  # bought at the next open
        assert eq.loc[nxt, "cash"] == pytest.approx(eq.loc[day, "cash"] * 0.9, rel=1e-9)


def _independent_metrics(eq: pd.DataFrame, trades: pd.DataFrame, ppy: int) -> dict:
    """A second implementation of the metric definitions, written with pandas idioms."""
    e = eq["equity"]
    r = e.pct_change().iloc[1:]
    n = len(e) - 1
    growth = e.iloc[-1] / e.iloc[0]
    cagr = growth ** (ppy / n) - 1
    dd = e / e.cummax() - 1
    under = (dd < 0).astype(int)
    runs = under.groupby((under == 0).cumsum()).sum()
    mdd = dd.min()
    downside = math.sqrt((r.clip(upper=0) ** 2).mean())
    pnl, ret = trades["pnl"], trades["return_pct"]
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    out = {
        "start_equity": e.iloc[0],
        "end_equity": e.iloc[-1],
        "total_return": growth - 1,
        "cagr": cagr,
        "volatility": r.std() * math.sqrt(ppy),
        "sharpe": r.mean() / r.std() * math.sqrt(ppy),
        "sortino": r.mean() / downside * math.sqrt(ppy),
        "calmar": cagr / abs(mdd),
        "max_drawdown": mdd,
        "max_drawdown_duration_bars": int(runs.max()),
        "max_drawdown_duration_days": int(runs.max()) * 365 / ppy,
        "exposure": (eq["position"] != 0).sum() / len(eq),
        "n_bars": len(e),
        "years": n / ppy,
        "n_trades": len(trades),
        "win_rate": len(wins) / len(trades),
        "avg_win": wins.mean(),
        "avg_loss": losses.mean(),
        "avg_win_pct": ret[pnl > 0].mean(),
        "avg_loss_pct": ret[pnl < 0].mean(),
        "profit_factor": wins.sum() / -losses.sum(),
        "expectancy": pnl.mean(),
        "expectancy_pct": ret.mean(),
        "best_trade": ret.max(),
        "worst_trade": ret.min(),
        "avg_bars_held": trades["bars_held"].mean(),
        "avg_holding_days": trades["bars_held"].mean() * 365 / ppy,
        "avg_mae": trades["mae"].mean(),
        "worst_mae": trades["mae"].min(),
        "avg_mfe": trades["mfe"].mean(),
        "best_mfe": trades["mfe"].max(),
    }
    return out


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["rsi4h_btc_hourly", "fear_flush_btc_daily"])
def test_metrics_recomputed_from_the_csvs(shared_data_dir, tmp_path, capsys, spec):
    doc, _, run_dir = _cli_json(capsys, shared_data_dir, tmp_path, spec)
    rep = json.loads((run_dir / "report.json").read_text())
    eq = pd.read_csv(run_dir / "equity.csv", index_col="timestamp")
    trades = pd.read_csv(run_dir / "trades.csv")
    ppy = rep["periods_per_year"]
    assert ppy == (8760 if spec.startswith("rsi4h") else 365)
    mine = _independent_metrics(eq, trades, ppy)
    assert set(mine) <= set(rep["metrics"])
    for key, value in mine.items():
        assert rep["metrics"][key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
    # the benchmark's metrics, from the benchmark column (one position, held throughout)
    bench = rep["benchmark"]["metrics"]
    b = eq["benchmark_equity"]
    assert bench["total_return"] == pytest.approx(b.iloc[-1] / b.iloc[0] - 1, rel=1e-9)
    assert bench["max_drawdown"] == pytest.approx((b / b.cummax() - 1).min(), rel=1e-9)
    rb = b.pct_change().iloc[1:]
    assert bench["sharpe"] == pytest.approx(rb.mean() / rb.std() * math.sqrt(ppy), rel=1e-9)
    # bookkeeping: the trades' P&L is the equity change; each P&L is price move minus costs
    assert trades["pnl"].sum() == pytest.approx(eq["equity"].iloc[-1] - rep["config"]["cash"],
                                                abs=1e-6)
    recomputed = (trades["size"] * (trades["exit_price"] - trades["entry_price"])
                  - trades["entry_fee"] - trades["exit_fee"] - trades["funding"])
    np.testing.assert_allclose(trades["pnl"], recomputed, rtol=0, atol=1e-8)
    fee = trades["size"] * trades["entry_price"] * rep["config"]["costs"]["commission"]
    np.testing.assert_allclose(trades["entry_fee"], fee, rtol=1e-12)


@pytest.mark.slow
def test_same_spec_in_fresh_processes_is_identical(shared_data_dir, tmp_path):
    exe = Path(sys.executable).with_name("flushback")
    env = {**os.environ, "FLUSHBACK_DATA_DIR": str(shared_data_dir),
           "FLUSHBACK_HOME": str(tmp_path / "home")}
    docs = []
    for i in range(2):
        runs = tmp_path / f"runs{i}"
        proc = subprocess.run(
            [str(exe), "backtest", "fear_flush_btc_daily", "--format", "json", "--runs-dir",
             str(runs), "--set", "strategy.max_tranches=2"],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        run_dir = Path(out["run_dir"])
        docs.append((out["run_id"], json.loads((run_dir / "report.json").read_text()),
                     (run_dir / "trades.csv").read_bytes(), (run_dir / "equity.csv").read_bytes()))
    (id_a, rep_a, tr_a, eq_a), (id_b, rep_b, tr_b, eq_b) = docs
    assert id_a == id_b == rep_a["run_id"]
    assert rep_a.pop("created_at") and rep_b.pop("created_at")
    assert rep_a == rep_b
    assert tr_a == tr_b and eq_a == eq_b
    assert rep_a["trades"] and rep_a["metrics"]["n_trades"] == len(rep_a["trades"])


def test_run_id_depends_on_config_and_window(shared_data_dir):
    a = run_backtest("liquidation_spike_btc_daily", data_dir=shared_data_dir,
                     since="2024-01-01", until="2025-11-13")
    b = run_backtest("liquidation_spike_btc_daily", data_dir=shared_data_dir,
                     since="2024-01-01", until="2025-11-13")
    c = run_backtest("liquidation_spike_btc_daily", data_dir=shared_data_dir,
                     since="2024-01-02", until="2025-11-13")
    assert a.run_id == b.run_id != c.run_id
    assert a.equity.index[-1] == pd.Timestamp("2025-11-13", tz="UTC")
    assert set(a.fingerprints) and all(len(v) >= 16 for v in a.fingerprints.values())
