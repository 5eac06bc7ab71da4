"""The documented custom-strategy example (examples/custom_strategy.py) runs through the whole
pipeline: spec validation of its declared params, the feed, costs, metrics and the run folder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

from flushback.backtests.run.folders import load_report, write_run
from flushback.backtests.run.runner import prepare_frame, run_backtest
from flushback.backtests.run.spec import load_spec, search_space
from flushback.data.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_strategy.py"


@pytest.fixture(scope="module")
def example():
    name = "flushback_example_custom_strategy"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _frame(rows, entry):
    idx = pd.date_range("2024-01-01", periods=len(rows), freq="D", tz="UTC", name="timestamp")
    f = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=idx, dtype=float)
    f["volume"] = 1.0
    f["entry_flag"] = entry
    f.attrs["interval"] = "1d"
    return f


def test_ladder_by_hand(example, tmp_path):
    # a signal that is the frame's own flag column (registered only for this test)
    from flushback.signals import Signal, temporary_registration

    class Flag(Signal):
        inputs = ("entry_flag",)

        def _compute(self, frame):
            return frame["entry_flag"] > 0

    frame = _frame(
        [
            (100, 101, 99, 100),  # 0: signal, close 100 -> rung 1 at the bar-1 open
            (100, 101, 94, 95),  # 1: fill 100; signal, 95 > 100 * 0.9 -> no rung
            (95, 96, 89, 90),  # 2: signal, 90 <= 90 -> rung 2
            (90, 91, 89, 90),  # 3: fill 90
            (90, 120, 89, 118),  # 4: 118 >= avg * 1.2 -> take profit
            (120, 121, 119, 120),  # 5: sell at 120
        ],
        [1, 1, 1, 0, 0, 0],
    )
    with temporary_registration("test_flag", Flag):
        spec = load_spec({
            "data": {"interval": "1d"},
            "signals": {"entry": {"type": "test_flag"}},
            "strategy": {"type": "flush_ladder", "rungs": 2, "step": 0.1, "take_profit": 0.2},
            "costs": {"commission": 0.0, "slippage": 0.0},
            "cash": 1000.0,
        })
        res = run_backtest(spec, prepared=prepare_frame(spec, frame))
    t = res.trades.iloc[0]
    # rung 1: 50 % of 1000 at 100 = 5 BTC; rung 2: 50 % of equity at the bar-3 open
    # (500 + 5 * 90 = 950 -> 475) at 90 = 5.2778 BTC; avg = 975 / 10.2778 = 94.86
    size = 5 + 475 / 90
    assert len(res.trades) == 1 and t["tranches"] == 2
    assert t["size"] == pytest.approx(size) and t["entry_price"] == pytest.approx(975 / size)
    assert t["exit_price"] == pytest.approx(120) and t["exit_reason"] == "take_profit"
    assert round(t["pnl"], 2) == round(size * 120 - 975, 2) == 258.33
    assert res.metrics["n_trades"] == 1
    assert res.benchmark_metrics["total_return"] == pytest.approx(0.2)  # 100 -> 120
    folder = write_run(res, runs_dir=tmp_path)
    rep = load_report(folder)
    assert rep["config"]["strategy"]["type"] == "flush_ladder"
    assert rep["trades"][0]["exit_reason"] == "take_profit"


def test_custom_params_are_validated_and_searchable(example):
    with pytest.raises(ConfigError, match="did you mean 'rungs'"):
        load_spec({**example.SPEC, "strategy": {"type": "flush_ladder", "rung": 2}})
    spec = load_spec(example.SPEC)
    space, _ = search_space(spec)
    assert space["strategy.step"].high == 0.5 and "signals.entry.threshold" in space
