"""The end-of-optimize engine check: a study on the fast engine re-runs its winners on
backtrader, shows both side by side in the report, and fails on a planted engine bug naming
the first differing trade."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from engine_testkit import plant_stop_at_close

from flushback.backtests.cli import main
from flushback.backtests.run.folders import load_report

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

ARGS = ["optimize", "fear_flush_btc_daily", "--trials", "6", "--walk-forward", "2",
        "--seed", "3", "--format", "json", "--min-trades", "0"]


def test_study_on_the_fast_engine_agrees_with_backtrader(shared_data_dir, tmp_path, capsys):
    code = main(["--data-dir", str(shared_data_dir), *ARGS,
                 "--storage", str(tmp_path / "s.log"), "--runs-dir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert code == 0, out
    doc = json.loads(out)
    check = load_report(doc["run_dir"])["optimization"]["engine_check"]
    assert check["engine"] == "fast" and check["reference"] == "backtrader" and check["ok"]
    whats = [(r["what"], r["fold"]) for r in check["rows"]]
    assert whats == [("train", 1), ("test", 1), ("train", 2), ("test", 2),
                     ("stitched_out_of_sample", None)]
    for row in check["rows"]:
        assert row["fast"] == row["reference"]  # side by side, equal
        assert row["parity"]["trades_reference"] == row["parity"]["trades_fast"]
    # the stitched row is the report's own out-of-sample result
    sec = load_report(doc["run_dir"])["optimization"]
    assert check["rows"][-1]["fast"]["n_trades"] == sec["out_of_sample_metrics"]["n_trades"]


@pytest.mark.parametrize("validation", [["--walk-forward", "2"],
                                        ["--cpcv", "3", "--test-groups", "1"]],
                         ids=["walk-forward", "cpcv"])
def test_planted_engine_bug_fails_optimize_naming_the_trade(shared_data_dir, tmp_path,
                                                            capsys, monkeypatch, validation):
    from importlib.resources import files

    # the shipped spec with a fixed 5 % stop-loss (only the holding period is searched), so
    # that every selected configuration has stop-loss exits
    text = files("flushback.backtests").joinpath("specs/fear_flush_btc_daily.toml").read_text()
    text = text.replace("stop_loss = 0.2", "stop_loss = 0.05").split("[search]")[0]
    text += '[search]\n"strategy.hold_bars" = { low = 5, high = 180 }\nparams = []\n'
    spec = tmp_path / "fixed_stop.toml"
    spec.write_text(text)
    plant_stop_at_close(monkeypatch)
    args = [a if a != "fear_flush_btc_daily" else str(spec) for a in ARGS]
    at = args.index("--walk-forward")
    args[at:at + 2] = validation
    code = main(["--data-dir", str(shared_data_dir), *args,
                 "--storage", str(tmp_path / "s.log"), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 7, err
    assert "disagree" in err and "first differing trade #" in err
    assert "exit_time" in err
    if validation[0] == "--cpcv":  # the window is named: a split has several
        assert re.search(r"fold \d \((train|test) window \d{4}-\d\d-\d\d", err), err
