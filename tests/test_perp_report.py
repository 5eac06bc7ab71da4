"""Perpetual runs as a trader reads them: the liquidation among the trades, leverage and
margin in report.json's config, and the warning when the worst adverse excursion reaches
the liquidation distance (figures recomputed by hand from the margin formulas)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from flushback.backtests.cli import main
from flushback.backtests.run.spec import StrategySpec
from flushback.strategies.margin import liquidation_distance, margin_warning


def test_liquidation_distance_by_hand():
    # long 3x, m = 0.4 %: 1 - (2/3) / 0.996 = 0.330656; short 2x: 1.5 / 1.004 - 1 = 0.494024
    assert liquidation_distance(3.0, 0.004, 1) == pytest.approx(1 - (2 / 3) / 0.996)
    assert round(liquidation_distance(3.0, 0.004, 1), 6) == 0.330656
    assert round(liquidation_distance(2.0, 0.004, -1), 6) == 0.494024
    assert liquidation_distance(1.0, 0.004, 1) == float("inf")


def test_margin_warning_names_the_stop_and_the_worst_excursion():
    trades = pd.DataFrame({"trade_id": [1, 2], "mae": [-0.05, -0.3306562],
                           "exit_reason": ["time", "liquidation"],
                           "entry_time": pd.to_datetime(["2026-01-26 04:00",
                                                         "2026-01-30 04:00"], utc=True)})
    cfg = {"leverage": 3.0, "maintenance_margin": 0.004, "side": "long", "stop_loss": 0.4}
    text = margin_warning(cfg, trades)
    assert text.startswith("warning: a 3x long (maintenance 0.40%) is liquidated 33.1% from")
    assert "stop_loss of 40.0% lies beyond the liquidation distance" in text
    assert "-33.1% (trade #2, entered 2026-01-30 04:00), reaches it: 1 trade(s) liquidated" \
        in text
    # a shallower excursion and a tighter stop: nothing to warn about; 1x long: never
    assert margin_warning({**cfg, "stop_loss": 0.2}, trades.iloc[:1]) is None
    assert margin_warning({**cfg, "leverage": 1.0}, trades) is None
    # a strategy type without perpetual parameters trades spot: nothing to warn about
    assert margin_warning({"fraction": 1.0}, trades) is None


def test_a_1x_long_config_keeps_its_spot_shape_and_a_leveraged_one_records_margin():
    spot = StrategySpec.model_validate({"type": "contrarian", "stop_loss": 0.1}).to_config()
    assert not {"side", "leverage", "maintenance_margin"} & set(spot)
    perp = StrategySpec.model_validate({"type": "contrarian", "leverage": 3}).to_config()
    assert (perp["side"], perp["leverage"], perp["maintenance_margin"]) == ("long", 3.0, 0.004)
    short = StrategySpec.model_validate({"type": "contrarian", "side": "short"}).to_config()
    assert (short["side"], short["leverage"]) == ("short", 1.0)


@pytest.mark.realdata
def test_cli_shows_the_liquidation_and_records_leverage(shared_data_dir, tmp_path, capsys):
    """A 5x long of fear_flush_perp_btc_4h over Jan-Mar 2026 with the 8h settlements: the
    Jan 30 entry is liquidated on the Feb 5 flush."""
    code = main(["--data-dir", str(shared_data_dir), "backtest", "fear_flush_perp_btc_4h",
                 "--since", "2026-01-20", "--until", "2026-03-15", "--runs-dir",
                 str(tmp_path), "--set", 'costs.funding="settlements"',
                 "--set", "strategy.leverage=5", "--set", "strategy.stop_loss=0.3"])
    out = capsys.readouterr().out
    assert code == 0, out
    flat = " ".join(out.split())
    run_dir = Path(re.search(r"run [0-9a-f]{16} -> (\S+)", flat).group(1))
    doc = json.loads((run_dir / "report.json").read_text())
    strat, costs = doc["config"]["strategy"], doc["config"]["costs"]
    assert (strat["leverage"], strat["side"], strat["maintenance_margin"]) == (5.0, "long",
                                                                              0.004)
    assert costs["funding"] == "settlements"
    liq = [t for t in doc["trades"] if t["exit_reason"] == "liquidation"]
    assert len(liq) == 1
    t = liq[0]
    # the hand liquidation price of the average entry; the first 4h bar whose low reaches it
    price = t["entry_price"] * (1 - 1 / 5) / (1 - 0.004)
    assert t["exit_price"] == pytest.approx(price, rel=1e-12)
    bars = pd.read_csv(shared_data_dir / "prices" / "BTCUSDT-PERP_4h.csv",
                       index_col="timestamp", parse_dates=True)
    bars.index = pd.DatetimeIndex(bars.index).tz_convert("UTC") if bars.index.tz else \
        pd.DatetimeIndex(bars.index).tz_localize("UTC")
    held = bars.loc[pd.Timestamp(t["entry_time"]):]
    assert held.index[(held["low"] <= price).to_numpy().argmax()] == \
        pd.Timestamp(t["exit_time"])
    assert "liquidation" in flat
    assert "warning: a 5x long (maintenance 0.40%) is liquidated 19.7% from its entry" in flat
    assert "stop_loss of 30.0% lies beyond the liquidation distance" in flat
    # the same warning travels with the run: report.json and report.html
    assert len(doc["warnings"]) == 1 and doc["warnings"][0].startswith(
        "warning: a 5x long (maintenance 0.40%) is liquidated 19.7% from its entry")
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'id="warnings"' in html and "lies beyond the liquidation distance" in html
