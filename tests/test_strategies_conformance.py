"""The strategy contract (FlushbackStrategy's docstring), checked on every registered strategy
by the published suite (flushback.strategies.testing), and the suite proved on planted bad
strategies and on tampered results: each fails with the check that names its fault."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from flushback.data.errors import ConfigError
from flushback.strategies.adapter import FlushbackStrategy
from flushback.strategies.config import (
    builtin_strategies,
    get_strategy,
    list_strategies,
    register_strategy,
    strategy_param_specs,
)
from flushback.strategies.testing import (
    CHECKS,
    check_costs,
    check_equity_is_cash_plus_position,
    check_fills_at_next_open,
    check_strategy,
    conformance_bars,
    run_conformance,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_strategy.py"


def _register_example() -> None:
    """The documented custom strategy ("flush_ladder") is registered like a user's would be."""
    name = "flushback_example_custom_strategy"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


_register_example()

# configurations that exercise each strategy's rules on the conformance frame
CONFIGS = {
    "contrarian": [
        {},
        {"hold_bars": 10, "cooldown_bars": 3},
        {"exit_mode": "intrabar", "stop_loss": 0.05, "take_profit": 0.08,
         "trailing_stop": 0.06, "max_tranches": 3},
        {"sizing": "volatility", "vol_lookback": 90, "level_stop": "swing_low",
         "level_take_profit": "retracement", "hold_bars": 20, "max_tranches": 2},
        {"level_stop": "next_level", "level_take_profit": "gap", "level_update": "moving",
         "stop_loss": 0.1},
    ],
    "buy_and_hold": [{}, {"fraction": 0.37}],
    "fear_greed_accumulation": [{}, {"buy_below": 30, "sell_above": 60, "buy_fraction": 0.3}],
}


def _cases():
    for name in list_strategies():
        for k, cfg in enumerate(CONFIGS.get(name, [{}])):
            yield pytest.param(name, cfg, id=f"{name}-{k}")


def test_every_registered_strategy_has_cases():
    assert "flush_ladder" in list_strategies()
    assert set(builtin_strategies()) <= set(CONFIGS)


@pytest.mark.parametrize(("name", "cfg"), list(_cases()))
def test_registered_strategy_keeps_the_contract(name, cfg):
    failures = check_strategy(name, cfg)
    assert failures == {}, failures


# --------------------------------------------------------------------------- planted bad


class EagerEntry(FlushbackStrategy):
    """Reads a missing entry value as a trigger (NaN != 0): buys during the warm-up."""

    required_signals = ("entry",)

    def decide(self) -> None:
        if self.lot is None and self.data.entry[0] != 0:
            self.enter(0.5, "entry")
        elif self.lot is not None and self.bar - self.lot.entry_bar >= 5:
            self.exit("time")


class FillsAtClose(FlushbackStrategy):
    """Turns backtrader's cheat-on-close on and orders directly: fills at the signal bar's
    close instead of the next open."""

    required_signals = ("entry",)

    def start(self) -> None:
        self.broker.set_coc(True)

    def decide(self) -> None:
        if self.lot is None and self.data.entry[0] > 0:
            self.buy(size=0.5 * self.broker.get_cash() / self.data.close[0])
        elif self.lot is not None and self.bar - self.lot.entry_bar >= 5:
            self.sell(size=self.position_size)


def test_ordering_during_the_warmup_fails_that_check_only():
    failures = check_strategy(EagerEntry)
    assert set(failures) == {"no_order_before_warmup"}, failures
    assert "bar 1 " in failures["no_order_before_warmup"]


def test_filling_at_the_signal_close_fails_that_check_only():
    failures = check_strategy(FillsAtClose)
    assert set(failures) == {"fills_at_next_open"}, failures
    # the price it got is the previous bar's close (+ slippage), computed here from the frame
    run = run_conformance(FillsAtClose)
    buy = run.result.fills[run.result.fills["size"] > 0].iloc[0]
    prev_close = run.frame["close"].iloc[int(buy["bar"]) - 1]
    assert buy["price"] == pytest.approx(prev_close * 1.0005, rel=1e-12)
    assert buy["price"] != pytest.approx(run.frame["open"].iloc[int(buy["bar"])], rel=1e-6)


def test_a_strategy_that_never_trades_is_reported():
    class Idle(FlushbackStrategy):
        def decide(self) -> None:
            pass

    assert set(check_strategy(Idle)) == {"trades"}


# --------------------------------------------------------------------------- tampered runs


def _run():
    return run_conformance("contrarian", {"hold_bars": 7})


def test_conformance_bars_gap_at_every_open():
    f = conformance_bars(200, seed=3)
    gap = f["open"].to_numpy()[1:] / f["close"].to_numpy()[:-1] - 1.0
    assert np.all(np.abs(gap) >= 0.002 - 1e-12)
    assert (f["high"] >= f[["open", "close"]].max(axis=1)).all()
    assert (f["low"] <= f[["open", "close"]].min(axis=1)).all()


def test_checks_catch_a_fill_moved_a_bar_or_a_fee_or_equity_off():
    run = _run()
    for check in CHECKS.values():
        check(run)  # the untampered run passes
    fills = run.result.fills
    moved = fills.copy()
    moved.loc[moved.index[0], "bar"] = int(moved["bar"].iloc[0]) - 1
    run.result.fills = moved
    with pytest.raises(AssertionError, match="open"):
        check_fills_at_next_open(run)
    cheap = fills.copy()
    cheap.loc[cheap.index[0], "fee"] *= 0.5
    run.result.fills = cheap
    with pytest.raises(AssertionError, match="commission"):
        check_costs(run)
    run.result.fills = fills
    eq = run.result.equity
    run.result.equity = eq.assign(equity=eq["equity"] + 0.01)
    with pytest.raises(AssertionError, match="cash \\+ position"):
        check_equity_is_cash_plus_position(run)
    run.result.equity = eq.assign(cash=eq["cash"] + 0.01)
    with pytest.raises(AssertionError, match="recorded cash"):
        check_costs(run)


def test_costs_by_hand_on_the_first_round_trip():
    """The first entry of an all-in contrarian: size = cash / (open * (1 + s) * (1 + c))
    (a hair less), its fee c * notional; recomputed here from the frame."""
    run = _run()
    f = run.result.fills.iloc[0]
    b = int(f["bar"])
    px = run.frame["open"].iloc[b] * (1 + 0.0005)
    assert f["price"] == pytest.approx(px, rel=1e-12)
    assert f["size"] == pytest.approx(10_000.0 / (px * 1.001), rel=1e-9)
    assert f["fee"] == pytest.approx(f["size"] * px * 0.001, rel=1e-9)
    assert run.result.equity["cash"].iloc[b] == pytest.approx(0.0, abs=1e-6)


# --------------------------------------------------------------------------- template, registry


def test_overriding_next_is_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"implement decide\(\)"):
        class Old(FlushbackStrategy):
            def next(self) -> None:
                pass
    with pytest.raises(TypeError, match=r"implement after_open\(\)"):
        class OldOpen(FlushbackStrategy):
            def next_open(self) -> None:
                pass
    # a strategy's own state goes in backtrader's start(), which the base leaves free
    assert "start" not in FlushbackStrategy.__dict__


def test_one_registry_for_builtin_and_custom_strategies():
    for name in builtin_strategies():
        cls = get_strategy(name)
        assert cls.strategy_type == name
        assert dict(cls.param_specs) == dict(strategy_param_specs(name))
    assert get_strategy("flush_ladder").strategy_type == "flush_ladder"
    with pytest.raises(ConfigError, match="already registered"):
        register_strategy("contrarian")(EagerEntry)
    with pytest.raises(ConfigError, match="did you mean 'contrarian'"):
        get_strategy("contrarain")


def test_the_strategy_reads_every_declared_parameter_from_a_complete_config():
    run = run_conformance("contrarian", {"hold_bars": 7})
    cfg = run.result.strategy.cfg
    specs = strategy_param_specs("contrarian")
    assert set(cfg) == set(specs)
    assert cfg["hold_bars"] == 7
    assert all(cfg[k] == p.default for k, p in specs.items() if k != "hold_bars")
