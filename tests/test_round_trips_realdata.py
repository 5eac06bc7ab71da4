"""The accumulation rule on the real data: trades counted by round trip, end to end.

The fear/greed accumulation benchmark buys 10 % of its cash on every fear day and sells 10 %
of its position on every greed day, so its position is sold in many legs. Counted by legs it
showed a 99.4 % win rate over "166 trades"; counted by round trip (flat to flat) the numbers
must agree with a second computation that never reads trades.csv: the round trips are the runs
of bars where equity.csv's position is above zero, and each one's P&L is the cash after it
(the first flat bar, or the final equity when it is still open) minus the cash before it.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.cli import main
from flushback.backtests.reports.html import fmt_metric

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def _backtest(capsys, data_dir, runs, spec) -> dict:
    code = main(["--data-dir", str(data_dir), "backtest", spec, "--format", "json",
                 "--runs-dir", str(runs)])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def _round_trips_from_equity(eq: pd.DataFrame) -> list[float]:
    """P&L of each flat-to-flat position, from the equity/cash/position columns only."""
    held = (eq["position"].to_numpy() > 0).astype(np.int8)
    edges = np.diff(np.r_[0, held, 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    cash, equity = eq["cash"].to_numpy(), eq["equity"].to_numpy()
    pnls = []
    for s, e in zip(starts, ends, strict=True):
        before = cash[s - 1]  # flat at the close before the entry fill (s >= 1: warm-up)
        after = cash[e] if e < len(eq) else equity[-1]
        pnls.append(float(after - before))
    return pnls


def test_accumulation_counts_round_trips_in_compare(shared_data_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    acc = _backtest(capsys, shared_data_dir, runs, "fear_greed_accumulation_btc_daily")
    flush = _backtest(capsys, shared_data_dir, runs, "fear_flush_btc_daily")

    eq = pd.read_csv(f"{acc['run_dir']}/equity.csv", index_col="timestamp")
    legs = pd.read_csv(f"{acc['run_dir']}/trades.csv")
    pnls = np.array(_round_trips_from_equity(eq))
    wins, losses = pnls[pnls > 0], pnls[pnls < 0]
    expected = {
        "n_trades": len(pnls),
        "n_legs": len(legs),  # every leg is still a row of trades.csv
        "win_rate": len(wins) / len(pnls),
        "profit_factor": (wins.sum() / -losses.sum()) if len(losses) else None,
        "expectancy": pnls.mean(),
    }
    assert expected["n_legs"] > 100 > expected["n_trades"]  # sold in legs, few positions
    rep = json.loads(open(f"{acc['run_dir']}/report.json").read())
    for key, value in expected.items():
        got = rep["metrics"][key]
        assert (got is None) if value is None else got == pytest.approx(value, rel=1e-9), key
    # `backtest --format json` lists the round trips next to the legs
    assert [rt["pnl"] for rt in acc["round_trips"]] == pytest.approx(list(pnls), rel=1e-9)
    assert len(acc["trades"]) == expected["n_legs"]
    # the P&L of the round trips is the run's P&L
    assert pnls.sum() == pytest.approx(eq["equity"].iloc[-1] - eq["equity"].iloc[0], rel=1e-9)

    # `flushback compare` shows the same round-trip numbers, in its table and in JSON
    code = main(["compare", acc["run_id"], flush["run_id"], "--runs-dir", str(runs),
                 "--format", "json", "--resamples", "50"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    col = doc["metrics"]["fear_greed_accumulation_btc_daily"]
    assert col["n_trades"] == expected["n_trades"] and col["n_legs"] == expected["n_legs"]
    assert col["win_rate"] == pytest.approx(expected["win_rate"], rel=1e-12)
    code = main(["compare", acc["run_id"], flush["run_id"], "--runs-dir", str(runs),
                 "--resamples", "50"])
    table = capsys.readouterr().out
    assert code == 0
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in table.splitlines() if line.count("│") >= 4}
    assert rows["n_trades"][0] == fmt_metric("n_trades", expected["n_trades"])
    assert rows["n_legs"][0] == fmt_metric("n_legs", expected["n_legs"])
    assert rows["win_rate"][0] == fmt_metric("win_rate", expected["win_rate"])
    assert rows["profit_factor"][0] == fmt_metric("profit_factor", expected["profit_factor"])
    assert "count round trips" in table
