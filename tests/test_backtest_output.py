"""What the main job (``flushback backtest fear_flush_btc_daily``, quickstart.sh) tells a trader.

- where report.html is and how to open it;
- why a 20 % stop lost 24-26 %: stops are close-based, decided on a bar's close and filled at
  the next bar's open. The note's figures are recomputed from trades.csv, and the mechanism is
  checked against the price file itself: each stop-loss exit is the open (minus slippage) of the
  bar after a close at or below the stop level.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from flushback.backtests.cli import main

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def test_backtest_names_report_html_and_explains_stop_fills(shared_data_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["--data-dir", str(shared_data_dir), "backtest", "fear_flush_btc_daily",
                 "--runs-dir", str(runs)])
    out = capsys.readouterr().out
    assert code == 0, out
    flat = " ".join(out.split())
    run_dir = Path(re.search(r"run [0-9a-f]{16} -> (\S+)", flat).group(1))
    html = run_dir / "report.html"
    assert html.is_file()
    assert f"report: {html}" in flat and "open it in a browser" in flat
    assert f"flushback report {run_dir.name} --open" in flat

    trades = pd.read_csv(run_dir / "trades.csv", parse_dates=["entry_time", "exit_time"])
    stopped = trades[trades["exit_reason"] == "stop_loss"]
    beyond = stopped[stopped["return_pct"] < -0.2]
    assert len(beyond) >= 3  # the 2018, 2021, 2022 and Feb 2026 stops lost 21-26 %
    worst = beyond["return_pct"].min()
    assert (f"note: {len(beyond)} of {len(stopped)} stop-loss exits lost more than the 20% "
            f"stop (worst {worst:.1%})") in flat
    assert "filled at the NEXT bar's open" in flat and 'exit_mode = "intrabar"' in flat

    bars = pd.read_csv(shared_data_dir / "prices" / "BTC-USD_1d.csv", index_col="timestamp",
                       parse_dates=True)
    bars.index = bars.index.tz_localize("UTC")
    for _, t in stopped.iterrows():
        at = bars.index.get_loc(t["exit_time"])
        assert t["exit_price"] == pytest.approx(bars["open"].iloc[at] * (1 - 0.0005), rel=1e-9)
        assert bars["close"].iloc[at - 1] <= t["entry_price"] * 0.8  # the close that decided
