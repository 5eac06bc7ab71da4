"""``backtest SPEC --symbols``: the same playbook on each asset, one run each, side by side."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.realdata


def test_symbols_runs_the_spec_on_each_asset(shared_data_dir, tmp_path, capsys, monkeypatch):
    from flushback.backtests.cli import main
    from flushback.backtests.run.runner import run_backtest
    from flushback.backtests.run.spec import load_spec

    monkeypatch.setenv("COLUMNS", "160")
    base = ["--data-dir", str(shared_data_dir), "backtest", "fear_flush_btc_daily", "--since",
            "2024-01-01", "--engine", "fast", "--runs-dir", str(tmp_path)]
    assert main([*base, "--symbols", "BTCUSDT,ETHUSDT", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["symbol"] for r in doc["runs"]] == ["BTCUSDT", "ETHUSDT"]
    for r in doc["runs"]:
        # each column is the plain run of the spec with data.symbol set to the asset
        alone = run_backtest(load_spec("fear_flush_btc_daily", [f"data.symbol={r['symbol']}"]),
                             data_dir=shared_data_dir, since="2024-01-01", engine="fast")
        assert r["run_id"] == alone.run_id
        assert r["metrics"]["total_return"] == pytest.approx(alone.metrics["total_return"])
        assert (tmp_path / r["run_id"] / "report.json").exists()
    assert main([*base, "--symbols", "BTCUSDT,ETHUSDT"]) == 0
    out = capsys.readouterr().out
    assert "on each asset" in out and "Buy-and-hold return" in out and "ETHUSDT" in out
    # a portfolio trades its basket already; one symbol is no comparison
    assert main(["--data-dir", str(shared_data_dir), "backtest", "fear_flush_basket_daily",
                 "--symbols", "BTCUSDT,ETHUSDT", "--runs-dir", str(tmp_path)]) == 2
    assert main([*base, "--symbols", "BTCUSDT"]) == 2
