"""Registry, parameter declarations, config building and composition namespacing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from flushback.data.errors import ConfigError, DataError
from flushback.signals import (
    Param,
    Signal,
    build_signal,
    get_signal,
    list_signals,
    register,
    temporary_registration,
)
from flushback.signals.testing import synthetic_frame

SIGNALS_DIR = Path(__file__).resolve().parents[1] / "signals"


def test_unknown_signal_did_you_mean():
    with pytest.raises(ConfigError, match="did you mean 'oversold_rsi'"):
        get_signal("oversold_rs")
    with pytest.raises(ConfigError, match="did you mean 'liquidation_spike'"):
        build_signal({"type": "liquidation_spikes"})


def test_unknown_parameter_did_you_mean():
    with pytest.raises(ConfigError, match="did you mean 'threshold'"):
        build_signal({"type": "extreme_fear", "treshold": 10})
    with pytest.raises(ConfigError, match="did you mean 'window'"):
        build_signal({"type": "all", "windw": 2, "of": [{"type": "extreme_fear"}]})


def test_unknown_key_messages_name_the_owner_and_list_its_keys():
    from flushback.strategies.config import validate_strategy_params

    with pytest.raises(ConfigError) as e:
        build_signal({"type": "extreme_fear", "treshold": 10})
    assert e.value.message == ("unknown parameter 'treshold' for signal 'extreme_fear' "
                               "(did you mean 'threshold'?)")
    assert e.value.hint == ("parameters of extreme_fear: threshold, consecutive_days, "
                            "fall_points, move_window_days")
    with pytest.raises(ConfigError) as e:  # a composite's own keys include 'of'
        build_signal({"type": "all", "off": 1, "of": [{"type": "extreme_fear"}]})
    assert e.value.message == "unknown parameter 'off' for composite 'all' (did you mean 'of'?)"
    assert e.value.hint == "parameters of all: window, of"
    with pytest.raises(ConfigError) as e:
        validate_strategy_params("buy_and_hold", {"fractio": 1})
    assert e.value.message == ("unknown key 'strategy.fractio' for strategy type "
                               "'buy_and_hold' (did you mean 'fraction'?)")
    assert e.value.hint == "keys of buy_and_hold: type, fraction"
    # declared defaults are filled in; given values are validated under their owner's name
    assert validate_strategy_params("buy_and_hold", {}) == {"fraction": 1.0}
    with pytest.raises(ConfigError, match=r"strategy\(buy_and_hold\)\.fraction"):
        validate_strategy_params("buy_and_hold", {"fraction": 7})


def test_bad_values_are_config_errors():
    with pytest.raises(ConfigError, match="outside its range"):
        build_signal({"type": "oversold_rsi", "period": 1})
    with pytest.raises(ConfigError, match="did you mean 'wilder'"):
        build_signal({"type": "rsi", "smoothing": "wildr"})
    with pytest.raises(ConfigError, match="must be int"):
        build_signal({"type": "rsi", "period": 14.5})
    with pytest.raises(ConfigError, match="no 'type'"):
        build_signal({"threshold": 3})
    with pytest.raises(ConfigError, match="min_days"):
        build_signal({"type": "liquidation_spike", "min_days": 60, "lookback_days": 30})


def test_strings_from_the_cli_are_coerced():
    sig = build_signal({"type": "oversold_rsi", "period": "7", "threshold": "25"})
    assert sig.params["period"] == 7 and sig.params["threshold"] == 25.0
    assert build_signal({"type": "funding_flip", "cross": "true"}).params["cross"] is True


def test_params_are_frozen_and_round_trip():
    sig = build_signal({"type": "oversold_rsi", "threshold": 25})
    with pytest.raises(TypeError):
        sig.params["threshold"] = 10  # type: ignore[index]
    assert sig.params == {"period": 14, "smoothing": "wilder", "timeframe": "bar",
                          "threshold": 25.0}
    assert build_signal(sig.to_config()) == sig


def test_search_space_declarations():
    space = get_signal("liquidation_spike")().search_space()
    assert space["usd_threshold"].log and space["usd_threshold"].kind == "float"
    assert space["lookback_days"].kind == "int" and space["lookback_days"].step == 1
    assert space["window"].kind == "categorical" and space["window"].choices == ("1h", "4h",
                                                                                  "24h")
    assert space["regime_aware"].choices == (False, True)
    with pytest.raises(ValueError):
        Param(float, 1.0, 0.0, 2.0, log=True)  # log scale needs low > 0
    with pytest.raises(ValueError):
        Param(str, "a")  # categorical needs choices


NESTED = {
    "type": "all",
    "window": 2,
    "of": [
        {"type": "extreme_fear", "threshold": 15},
        {"type": "any", "of": [{"type": "liquidation_spike"},
                               {"type": "oversold_rsi", "threshold": 25}]},
    ],
}


def test_composite_parameters_are_namespaced_by_child_path():
    sig = build_signal(NESTED)
    assert sig.params["window"] == 2
    assert sig.params["of.0.threshold"] == 15.0
    assert sig.params["of.1.window"] == 1
    assert sig.params["of.1.of.0.k"] == 2.5
    assert sig.params["of.1.of.1.threshold"] == 25.0
    assert set(sig.search_space()) == set(sig.params)
    assert sig.search_space()["of.1.of.1.period"].high == 50
    assert set(sig.inputs) == {"fng", "liq_long_usd", "liq_short_usd", "close"}
    for iv in (pd.Timedelta(hours=1), pd.Timedelta(days=1)):
        assert sig.warmup_for(iv) == max(
            build_signal({"type": "oversold_rsi"}).warmup_for(iv),
            build_signal({"type": "liquidation_spike"}).warmup_for(iv),
        ) + 1


def test_signal_is_an_abstract_base_with_one_warmup():
    from flushback.signals import Signal

    class NoCompute(Signal):
        pass

    with pytest.raises(TypeError, match="_compute"):
        NoCompute()
    with pytest.raises(TypeError):
        Signal()
    # the warm-up is always asked for an interval: no silent daily default
    assert not hasattr(build_signal({"type": "oversold_rsi"}), "warmup_bars")


def test_composite_with_params_and_round_trip():
    sig = build_signal(NESTED)
    tuned = sig.with_params({"of.1.of.1.period": 7, "window": 3, "of.0.threshold": 20})
    assert tuned.params["of.1.of.1.period"] == 7
    assert tuned.params["window"] == 3 and tuned.params["of.0.threshold"] == 20.0
    assert sig.params["of.1.of.1.period"] == 14  # the original is untouched
    assert build_signal(tuned.to_config()) == tuned
    # overrides can be given flat in the config too
    flat = build_signal({**NESTED, "of.0.threshold": 12})
    assert flat.params["of.0.threshold"] == 12.0
    with pytest.raises(ConfigError, match="did you mean 'threshold'"):
        sig.with_params({"of.0.treshold": 3})
    with pytest.raises(ConfigError, match="no parameter 'of.7.threshold'"):
        sig.with_params({"of.7.threshold": 3})


def test_composite_config_errors():
    with pytest.raises(ConfigError, match="needs 'of'"):
        build_signal({"type": "all"})
    with pytest.raises(ConfigError, match="float strength"):
        build_signal({"type": "all", "of": [{"type": "rsi"}]})
    with pytest.raises(ConfigError, match="k must be <= the number of children"):
        build_signal({"type": "k_of_n", "k": 3,
                      "of": [{"type": "extreme_fear"}, {"type": "oversold_rsi"}]})
    with pytest.raises(ConfigError, match="exactly 1"):
        build_signal({"type": "not", "of": [{"type": "extreme_fear"}, {"type": "drawdown"}]})


def test_registry_refuses_duplicates_and_temporary_registration_cleans_up():
    class Dummy(Signal):
        inputs = ("close",)

        def _compute(self, frame):
            return frame["close"] > 0

    with pytest.raises(ConfigError, match="already registered"):
        register("rsi")(Dummy)
    with temporary_registration("dummy_tmp", Dummy):
        assert build_signal({"type": "dummy_tmp"}).compute(synthetic_frame(5)).all()
    assert "dummy_tmp" not in list_signals()
    assert get_signal("rsi").__name__ == "RSI"


def test_missing_column_is_a_data_error_naming_it():
    frame = synthetic_frame(50).drop(columns=["fng"])
    with pytest.raises(DataError, match="column 'fng'"):
        build_signal({"type": "extreme_fear"}).compute(frame)


def test_windows_must_fit_the_bar_interval():
    daily = synthetic_frame(300, "1d")
    with pytest.raises(ConfigError, match="not a whole number of 1d bars"):
        build_signal({"type": "liquidation_spike", "window": "4h"}).compute(daily)
    with pytest.raises(ConfigError, match="shorter than the bars"):
        build_signal({"type": "rsi", "timeframe": "4h"}).compute(daily)


def test_signals_import_only_numpy_pandas_and_flushback_data():
    """Signals are numpy and pandas (and flushback.data); the compiled loops of
    signals/kernels.py are numba, imported only when a signal first runs one."""
    for path in sorted(SIGNALS_DIR.glob("*.py")):
        allowed_third_party = {"numpy", "pandas"} | ({"numba"} if path.name == "kernels.py"
                                                     else set())
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top == "flushback":
                    assert name.startswith(("flushback.data", "flushback.signals")), (path, name)
                else:
                    assert top in allowed_third_party or top in sys.stdlib_module_names, (
                        path, name)
    code = ("import sys, flushback.signals; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('backtrader', 'optuna', 'numba') or m.startswith(('flushback.strategies', "
            "'flushback.backtests', 'flushback.signals.kernels'))]; print(bad); "
            "sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_docs_cover_every_signal_and_parameter():
    """docs/signals.md names every registered signal and each of its own parameters."""
    import re

    from flushback.signals.compose import Composite

    text = (SIGNALS_DIR.parent / "docs" / "signals.md").read_text()
    for name in list_signals():
        cls = get_signal(name)
        assert re.search(rf"`{name}`|### .*\b{name}\b", text), f"{name} is not documented"
        if issubclass(cls, Composite):
            continue
        for param in cls.param_specs:
            assert f"`{param}`" in text, f"{name}.{param} is not documented"
