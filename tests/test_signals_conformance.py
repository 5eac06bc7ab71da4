"""The signal conformance suite: every registered signal is checked against the contract in
``flushback.signals.base.Signal`` (a new signal is tested the day it is registered).

Checks: alignment, dtype, name, no mutation, determinism, NaN/False in warm-up and on missing
inputs, truncation invariance (Hypothesis: the value at t does not change when rows after t are
dropped) and warm-up convergence (given ``warmup_bars`` of history, the last value is within the
declared tolerance of the full-history value).

The suite is proven to bite: a deliberately biased signal that peeks one bar ahead, and one that
under-declares its warm-up, are registered only inside their tests and must fail.
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flushback.signals import (
    Param,
    Signal,
    get_signal,
    list_signals,
    temporary_registration,
)
from flushback.signals.rsi import rsi_values
from flushback.signals.testing import (
    check_alignment_dtype_name,
    check_at_a_trigger,
    check_convergence,
    check_determinism,
    check_missing_inputs,
    check_no_mutation,
    check_signal,
    check_truncation,
    check_warmup,
    conformance_frame,
)

SIGNALS = list_signals()
INTERVALS = ["1d", "4h", "1h"]


def _instance(name: str) -> Signal:
    return get_signal(name).example()


def _frame(sig: Signal, interval: str, seed: int = 0, extra: int = 300) -> pd.DataFrame:
    return conformance_frame(sig, interval, seed=seed, extra=extra)


# --- the checks live in flushback.signals.testing (published for users' own signals) -------


def truncation_property(sig: Signal, interval: str, max_examples: int = 15):
    """A Hypothesis test (call it to run) of truncation invariance for ``sig``."""

    @settings(max_examples=max_examples, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(seed=st.integers(0, 10_000), frac=st.floats(0.05, 1.0))
    def prop(seed: int, frac: float) -> None:
        frame = _frame(sig, interval, seed=seed, extra=120)
        cut = max(1, int(round(frac * len(frame))))
        full = sig.compute(frame)
        check_truncation(sig, frame, cut, full)
        check_at_a_trigger(sig, frame, full, seed)  # and the frame ending AT a trigger bar

    return prop


def run_conformance(sig: Signal, interval: str = "1d") -> dict[str, str]:
    """Every check on ``sig`` (the published ``check_signal``, with Hypothesis drawing the
    truncation points); {check name: failure message} for those that fail."""
    return check_signal(sig, interval,
                        truncation=truncation_property(sig, interval, max_examples=10))


# --- the suite, applied to every registered signal -----------------------------------------


def test_registry_is_populated():
    assert {"extreme_fear", "extreme_greed", "liquidation_spike", "oversold_rsi",
            "overbought_rsi", "rsi", "capitulation", "funding_flip", "oi_flush", "drawdown",
            "all", "any", "k_of_n", "not", "cooldown", "first_of_cluster"} <= set(SIGNALS)


@pytest.mark.parametrize("interval", INTERVALS)
@pytest.mark.parametrize("name", SIGNALS)
def test_alignment_dtype_name(name, interval):
    sig = _instance(name)
    check_alignment_dtype_name(sig, _frame(sig, interval))


@pytest.mark.parametrize("name", SIGNALS)
def test_no_mutation(name):
    sig = _instance(name)
    check_no_mutation(sig, _frame(sig, "1d"))


@pytest.mark.parametrize("name", SIGNALS)
def test_determinism(name):
    sig = _instance(name)
    check_determinism(sig, _frame(sig, "4h"))


@pytest.mark.parametrize("interval", INTERVALS)
@pytest.mark.parametrize("name", SIGNALS)
def test_warmup_is_false_or_nan(name, interval):
    sig = _instance(name)
    check_warmup(sig, _frame(sig, interval))


@pytest.mark.parametrize("name", SIGNALS)
def test_missing_inputs_never_trigger(name):
    sig = _instance(name)
    check_missing_inputs(sig, _frame(sig, "1d"))


@pytest.mark.parametrize("interval", ["1d", "1h"])
@pytest.mark.parametrize("name", SIGNALS)
def test_truncation_invariance(name, interval):
    # hourly frames are long (a 90-day baseline is 2,160 bars): fewer, still random, examples
    truncation_property(_instance(name), interval, max_examples=15 if interval == "1d" else 6)()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("interval", ["1d", "4h"])
@pytest.mark.parametrize("name", SIGNALS)
def test_warmup_convergence(name, interval, seed):
    sig = _instance(name)
    check_convergence(sig, _frame(sig, interval, seed=seed))


@pytest.mark.parametrize("name", SIGNALS)
def test_search_space_matches_params(name):
    sig = _instance(name)
    space = sig.search_space()
    assert set(space) == set(sig.params), f"{name}: search space keys != params keys"
    for key, param in space.items():
        assert isinstance(param, Param)
        # every default is valid and the current value is inside its declared range
        param.validate(param.default, key)
        param.validate(sig.params[key], key)


def test_suite_fires_on_something():
    """Guard against a vacuous suite: on the synthetic frames most triggers do fire."""
    fired = [n for n in SIGNALS
             if (lambda s: (s.compute(_frame(s, "1d")).fillna(0) != 0).any())(_instance(n))]
    assert len(fired) >= len(SIGNALS) - 2, f"only {fired} fire on synthetic data"


# --- proof that the suite bites -------------------------------------------------------------


class _PeekAhead(Signal):
    """BIASED ON PURPOSE: fires when the NEXT bar's close is higher (uses shift(-1))."""

    kind = "bool"
    inputs = ("close",)
    param_specs = {"lag": Param(int, 1, 1, 5, step=1)}

    def _compute(self, frame):
        close = frame["close"]
        return close.shift(-self.params["lag"]) > close


class _ShortWarmupRSI(Signal):
    """Under-declares its warm-up: Wilder RSI(14) claiming 15 bars are enough to converge."""

    kind = "float"
    inputs = ("close",)
    tolerance = 0.01
    param_specs = {"period": Param(int, 14, 2, 50, step=1)}

    def warmup_for(self, interval):
        return self.params["period"] + 1

    def _compute(self, frame):
        return rsi_values(frame["close"], self.params["period"], "wilder")


def test_planted_peek_ahead_signal_fails_the_suite():
    with temporary_registration("peek_ahead_planted", _PeekAhead):
        assert "peek_ahead_planted" in list_signals()
        sig = get_signal("peek_ahead_planted")()
        failures = run_conformance(sig, "1d")
        assert "truncation_invariance" in failures, failures
        assert "look-ahead" in failures["truncation_invariance"]
        # the structural checks alone would not have caught it
        assert "alignment_dtype_name" not in failures
        assert "no_mutation" not in failures
    assert "peek_ahead_planted" not in list_signals()  # the real registry stays clean


def test_planted_short_warmup_fails_convergence():
    with temporary_registration("short_warmup_planted", _ShortWarmupRSI):
        failures = run_conformance(get_signal("short_warmup_planted")(), "1d")
        assert "warmup_convergence" in failures, failures
        assert "truncation_invariance" not in failures
    assert "short_warmup_planted" not in list_signals()


@pytest.mark.slow
def test_every_real_signal_passes_run_conformance():
    """The same runner that condemns the planted signals passes the library (1d)."""
    bad = {n: f for n in SIGNALS if (f := run_conformance(_instance(n), "1d"))}
    assert not bad, bad


def test_published_check_signal_passes_the_library_and_condemns_the_planted_peek():
    """What a user runs on their own signal: the numpy-seeded sweep, no Hypothesis needed."""
    assert check_signal(get_signal("oversold_rsi")(), "1d") == {}
    failures = check_signal(_PeekAhead(), "1d")
    assert "truncation_invariance" in failures and "look-ahead" in failures[
        "truncation_invariance"]
    assert "warmup_convergence" in check_signal(_ShortWarmupRSI(), "1d")


# --- threshold forms: a trigger that says it is a level against a threshold is exactly that --

_OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
THRESHOLD_SIGNALS = [n for n in SIGNALS if _instance(n).threshold_form() is not None]


def test_the_threshold_forms_cover_the_rsi_and_sentiment_triggers():
    assert {"oversold_rsi", "overbought_rsi", "extreme_fear"} <= set(THRESHOLD_SIGNALS)


@pytest.mark.parametrize("name", THRESHOLD_SIGNALS)
@pytest.mark.parametrize("interval", INTERVALS)
def test_threshold_form_is_the_signal(name, interval):
    from flushback.signals.base import bar_interval

    base = _instance(name)
    param, op = base.threshold_form()
    frame = _frame(base, interval)
    level = base.level(frame).to_numpy(dtype="float64", na_value=float("nan"))
    finite = level[~pd.isna(level)]
    assert len(finite)
    spec = base.param_specs[param]
    # thresholds across the range, and levels the series takes (where < and <= part ways)
    candidates = [spec.low, spec.high, spec.default, *finite[:: max(1, len(finite) // 5)]]
    for thr in candidates:
        if not spec.low <= thr <= spec.high:
            continue
        sig = base.with_params({param: float(thr)})
        assert sig.threshold_form() == (param, op)
        expected = sig.compute(frame).to_numpy()
        got = _OPS[op](sig.level(frame).to_numpy(dtype="float64", na_value=float("nan")),
                       float(thr))
        got[:sig.warmup_for(bar_interval(frame))] = False
        assert (got == expected).all(), (name, interval, thr)


def test_extreme_fear_with_a_streak_or_a_fall_has_no_threshold_form():
    assert get_signal("extreme_fear")(consecutive_days=2).threshold_form() is None
    assert get_signal("extreme_fear")(fall_points=10).threshold_form() is None
