"""The shipped portfolio specs on the real BTC/ETH/SOL history, against separate computations:
the assets bought at each trigger are the most oversold by an RSI computed here from the CSVs,
and the equity curve is rebuilt from trades.csv and the closes alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


@pytest.fixture(scope="module")
def runs(shared_data_dir):
    from flushback.backtests.run.runner import prepare, run_backtest

    out = {}
    for name in ("fear_flush_basket_daily", "fear_flush_basket_hold_daily"):
        prepared = prepare(name, data_dir=shared_data_dir)
        out[name] = {e: run_backtest(name, prepared=prepared, engine=e)
                     for e in ("backtrader", "fast")}
    return out


@pytest.fixture(scope="module")
def closes(shared_data_dir):
    frames = {}
    for s in SYMBOLS:
        f = pd.read_csv(shared_data_dir / "prices" / f"{s}_1d.csv", index_col=0,
                        parse_dates=True)
        f.index = f.index.tz_localize("UTC")
        frames[s] = f
    return frames


def test_both_engines_agree_on_the_shipped_portfolios(runs):
    from flushback.strategies.parity import compare_results

    for name, by_engine in runs.items():
        ref, fast = by_engine["backtrader"], by_engine["fast"]
        rep = compare_results(ref, fast)
        assert rep.ok, (name, rep.describe())
        pd.testing.assert_frame_equal(ref.trades, fast.trades, check_exact=True)
        assert ref.metrics == fast.metrics and ref.run_id == fast.run_id
    trades = runs["fear_flush_basket_daily"]["fast"].trades
    assert trades["entry_time"].min() < pd.Timestamp("2020-04-01", tz="UTC")
    assert trades["entry_time"].max() > pd.Timestamp("2026-02-01", tz="UTC")
    assert set(trades["symbol"]) == set(SYMBOLS)


def test_the_most_oversold_assets_are_bought(runs, closes, ewm_wilder_rsi):
    """At each trigger that bought, every asset bought has a lower RSI (a separate ewm RSI on
    the CSV closes) than every asset that was free, had a bar and a warm RSI, and was not
    bought."""
    trades = runs["fear_flush_basket_daily"]["fast"].trades
    rsi = pd.DataFrame({s: ewm_wilder_rsi(f["close"]) for s, f in closes.items()})
    checked = 0
    for t, bought in trades.groupby("signal_time"):
        held = trades[(trades["entry_time"] <= t) & (trades["exit_time"] > t)]
        free = [s for s in SYMBOLS if s not in set(held["symbol"])
                and not np.isnan(rsi.at[t, s] if t in rsi.index else np.nan)]
        chosen = set(bought["symbol"])
        assert chosen <= set(free), (t, chosen, free)
        others = [s for s in free if s not in chosen]
        if others and len(chosen) + len(held) >= 2:  # both slots used: the ranking decided
            assert max(rsi.at[t, s] for s in chosen) <= min(rsi.at[t, s] for s in others), t
            checked += 1
    assert checked >= 5


def test_equity_is_cash_plus_positions_at_their_closes(runs, closes):
    """Rebuild the equity from trades.csv and the CSV closes: cash moves at each fill (entry
    cost and fee out, exit proceeds net of the fee in), positions are valued at the asset's
    last close."""
    for name in runs:
        res = runs[name]["fast"]
        eq = res.equity["equity"]
        idx = eq.index
        cash = pd.Series(0.0, index=idx)
        value = pd.Series(0.0, index=idx)
        for _, tr in res.trades.iterrows():
            cost = tr["size"] * tr["entry_price"] + tr["entry_fee"]
            cash.loc[tr["entry_time"]:] -= cost
            if tr["exit_reason"] != "end_of_data":
                proceeds = tr["size"] * tr["exit_price"] - tr["exit_fee"]
                cash.loc[tr["exit_time"]:] += proceeds
                held = (idx >= tr["entry_time"]) & (idx < tr["exit_time"])
            else:
                held = idx >= tr["entry_time"]
            last = closes[tr["symbol"]]["close"].reindex(idx).ffill()
            value[held] += tr["size"] * last[held]
        rebuilt = 10_000.0 + cash + value
        np.testing.assert_allclose(eq.to_numpy(), rebuilt.to_numpy(), rtol=1e-9)


def test_the_basket_hold_holds_a_third_of_each_from_its_first_bar(runs, closes):
    t = runs["fear_flush_basket_hold_daily"]["fast"].trades.set_index("symbol")
    assert t.loc["BTCUSDT", "entry_time"] == pd.Timestamp("2020-01-02", tz="UTC")
    assert t.loc["SOLUSDT", "entry_time"] == pd.Timestamp("2020-08-12", tz="UTC")
    assert (t["exit_reason"] == "end_of_data").all()
    assert t["weight"].tolist() == pytest.approx([1 / 3] * 3)
    # BTC: a third of 10,000 at the 2020-01-02 open (plus slippage and fee)
    px = closes["BTCUSDT"].at[pd.Timestamp("2020-01-02", tz="UTC"), "open"] * 1.0005
    assert t.loc["BTCUSDT", "size"] == pytest.approx(10_000 / 3 / (px * 1.001), rel=1e-9)


def test_compare_shows_the_portfolio_beside_the_basket_and_btc(runs, tmp_path, capsys,
                                                               monkeypatch):
    from flushback.backtests.cli import main
    from flushback.backtests.run.folders import write_run

    ids = [write_run(by_engine["fast"], runs_dir=tmp_path).name for by_engine in runs.values()]
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["compare", *ids, "--runs-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "fear_flush_basket_daily" in text and "fear_flush_basket_hold_daily" in text
    assert "buy_and_hold (BTCUSDT)" in text
    assert "-48.62 %" in text and "+1798.11 %" in text and "+1007.40 %" in text


def test_the_asset_breakdown_adds_up(runs, closes, tmp_path):
    import json

    from flushback.backtests.run.folders import write_run

    res = runs["fear_flush_basket_daily"]["fast"]
    sec = res.portfolio
    assets = {a["symbol"]: a for a in sec["assets"]}
    assert set(assets) == set(SYMBOLS)
    total = sum(a["contribution"] for a in assets.values())
    assert total == pytest.approx(res.metrics["total_return"], abs=1e-12)
    for sym, a in assets.items():
        mine = res.trades[res.trades["symbol"] == sym]
        assert a["trades"] == len(mine) and a["pnl"] == pytest.approx(mine["pnl"].sum())
    assert assets["SOLUSDT"]["first_bar"].startswith("2020-08-11")
    # correlation of daily close returns over the window, each pair on common bars
    win = res.equity.index
    rets = {s: closes[s]["close"].reindex(win).pct_change(fill_method=None) for s in SYMBOLS}
    for a in SYMBOLS:
        for b in SYMBOLS:
            both = rets[a].notna() & rets[b].notna()
            want = np.corrcoef(rets[a][both], rets[b][both])[0, 1]
            assert sec["correlation"][a][b] == pytest.approx(want, abs=1e-12)
    from flushback.backtests.api import Result

    api = Result(raw=res)
    assert api.metrics.name == "portfolio"
    assert api.assets.loc["ETHUSDT", "trades"] == assets["ETHUSDT"]["trades"]
    assert api.correlation.loc["BTCUSDT", "ETHUSDT"] == sec["correlation"]["BTCUSDT"]["ETHUSDT"]
    doc = json.loads((write_run(res, runs_dir=tmp_path) / "report.json").read_text())
    assert [a["symbol"] for a in doc["portfolio"]["assets"]] == SYMBOLS
    assert doc["config"]["portfolio"]["max_positions"] == 2 and "strategy" not in doc["config"]


@pytest.mark.browser
def test_the_portfolio_report_shows_its_assets_in_a_browser(runs, tmp_path):
    import sys
    from pathlib import Path

    from flushback.backtests.run.folders import write_run

    sys.path.insert(0, str(Path(__file__).parent))
    from browser import inspect_page, output_dir

    res = runs["fear_flush_basket_daily"]["fast"]
    folder = write_run(res, runs_dir=tmp_path)
    seen: dict = {}

    def actions(page, report):
        seen["assets"] = page.evaluate(
            "() => Array.from(document.querySelectorAll('#assets-table tbody tr'))"
            ".map(r => Array.from(r.cells).map(c => c.innerText.trim()))")
        seen["corr"] = page.evaluate(
            "() => document.querySelectorAll('#correlation-table tbody tr').length")
        seen["subtitle"] = page.evaluate("() => document.body.innerText")

    rep = inspect_page(folder / "report.html", output_dir("test_portfolio") / "report.png",
                       actions=actions)
    assert rep.errors == [] and rep.problems() == []
    assert [r[0] for r in seen["assets"]] == SYMBOLS
    assert seen["assets"][2][1] == "2020-08-11"  # SOL's first bar
    assert seen["corr"] == 3
    assert "BTCUSDT, ETHUSDT, SOLUSDT" in seen["subtitle"]
    for chart in rep.charts:
        assert any(t["points"] > 0 for t in chart["traces"]), chart["id"]


def test_the_cli_runs_a_portfolio_spec(shared_data_dir, tmp_path, capsys, monkeypatch):
    """`flushback backtest fear_flush_basket_daily`: the metrics, the Assets and correlation
    tables, the trades with their asset, the stop note (portfolio stops are close-based)."""
    from flushback.backtests.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    code = main(["--data-dir", str(shared_data_dir), "backtest", "fear_flush_basket_daily",
                 "--engine", "fast", "--runs-dir", str(tmp_path)])
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0, out
    for needle in ("BTCUSDT, ETHUSDT, SOLUSDT", "portfolio", "Assets (contribution",
                   "Correlation of bar returns", "Trades (29 round trips)", "SOLUSDT",
                   "A portfolio's stops are always close-based."):
        assert needle in out, needle
    assert "strategy.exit_mode" not in out
