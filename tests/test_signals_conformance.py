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

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flushback.signals import (
    Param,
    Signal,
    bar_interval,
    get_signal,
    list_signals,
    temporary_registration,
)
from flushback.signals.rsi import rsi_values
from flushback.signals.testing import synthetic_frame

SIGNALS = list_signals()
INTERVALS = ["1d", "4h", "1h"]


def _instance(name: str) -> Signal:
    return get_signal(name).example()


def _frame(sig: Signal, interval: str, seed: int = 0, extra: int = 300) -> pd.DataFrame:
    step = synthetic_frame(2, interval).index.to_series().diff().iloc[-1]
    n = sig.warmup_for(step) + extra
    return synthetic_frame(n, interval, seed=seed)


def _same(a: pd.Series, b: pd.Series, atol: float = 0.0) -> bool:
    if a.dtype == bool or b.dtype == bool:
        return bool((a.to_numpy() == b.to_numpy()).all())
    x, y = a.to_numpy(dtype="float64"), b.to_numpy(dtype="float64")
    both_nan = np.isnan(x) & np.isnan(y)
    close = np.isclose(x, y, rtol=0.0, atol=max(atol, 1e-12))
    return bool((both_nan | close).all())


# --- the checks (each raises AssertionError on a violation) ---------------------------------


def check_alignment_dtype_name(sig: Signal, frame: pd.DataFrame) -> None:
    out = sig.compute(frame)
    assert isinstance(out, pd.Series), f"{sig.name}: compute must return a Series"
    assert out.index.equals(frame.index), f"{sig.name}: result not aligned to frame.index"
    want = "bool" if sig.kind == "bool" else "float64"
    assert str(out.dtype) == want, f"{sig.name}: dtype {out.dtype}, contract says {want}"
    assert out.name == sig.name, f"{sig.name}: series named {out.name!r}"


def check_no_mutation(sig: Signal, frame: pd.DataFrame) -> None:
    before = frame.copy(deep=True)
    attrs = copy.deepcopy(frame.attrs)
    sig.compute(frame)
    pd.testing.assert_frame_equal(frame, before, check_exact=True)
    assert frame.attrs == attrs, f"{sig.name}: frame.attrs mutated"


def check_determinism(sig: Signal, frame: pd.DataFrame) -> None:
    a = sig.compute(frame)
    b = sig.compute(frame.copy(deep=True))
    c = type(sig).from_config(sig.to_config()) if hasattr(type(sig), "from_config") else type(
        sig
    )(**sig.params)
    assert _same(a, b), f"{sig.name}: two runs on the same frame differ"
    assert _same(a, c.compute(frame)), f"{sig.name}: a rebuilt equal signal gives other values"


def check_warmup(sig: Signal, frame: pd.DataFrame) -> None:
    out = sig.compute(frame)
    w = sig.warmup_for(bar_interval(frame))
    head = out.iloc[:w]
    if sig.kind == "bool":
        assert not head.any(), f"{sig.name}: True inside the {w}-bar warm-up"
    else:
        assert head.isna().all(), f"{sig.name}: values inside the {w}-bar warm-up"


def check_missing_inputs(sig: Signal, frame: pd.DataFrame) -> None:
    """NaN never triggers: with every input column missing, a bool signal is all False and a
    float signal all NaN."""
    blank = frame.copy()
    for col in sig.required_columns():
        blank[col] = np.nan
    out = sig.compute(blank)
    if sig.kind == "bool":
        assert not out.any(), f"{sig.name}: fires on missing inputs"
    else:
        assert out.isna().all(), f"{sig.name}: values from missing inputs"


def check_truncation(sig: Signal, frame: pd.DataFrame, cut: int,
                     full: pd.Series | None = None) -> None:
    """Values at t < cut are unchanged when the rows from cut onward are dropped (``full``:
    the signal on the whole frame, when already computed)."""
    full = (sig.compute(frame) if full is None else full).iloc[:cut]
    part = sig.compute(frame.iloc[:cut])
    if not _same(full, part):
        diff = full.index[~((full.to_numpy() == part.to_numpy()) | (full.isna() & part.isna()))]
        raise AssertionError(
            f"{sig.name}: look-ahead - values before the cut at {frame.index[cut - 1]} change "
            f"when later rows are dropped (first at {diff[:3].tolist()})"
        )


def check_convergence(sig: Signal, frame: pd.DataFrame) -> None:
    """Given warmup_bars of history, the last value is within the declared tolerance."""
    w = sig.warmup_for(bar_interval(frame))
    assert len(frame) > w + 1, "test frame too short for this signal"
    full = sig.compute(frame).iloc[-1]
    short = sig.compute(frame.iloc[-(w + 1):]).iloc[-1]
    tol = sig.tolerance
    if sig.kind == "bool":
        assert tol >= 1 or bool(full) == bool(short), (
            f"{sig.name}: last value {short} with {w} bars of history, {full} with all of it"
        )
    else:
        assert not np.isnan(full), f"{sig.name}: NaN at the last bar after warm-up"
        assert not np.isnan(short), f"{sig.name}: NaN at the last bar with {w} bars of history"
        assert abs(full - short) <= tol, (
            f"{sig.name}: last value {short} with {w} bars of history vs {full} with all of it "
            f"(declared tolerance {tol})"
        )


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
        if sig.kind == "bool":
            # and the frame ending AT a trigger bar (the freqtrade lookahead-analysis cut): a
            # sparse trigger that needs later bars -- a swing low used at its own bar -- is
            # rarely hit by a random cut, always by this one
            fired = np.flatnonzero(full.to_numpy())
            if len(fired):
                check_truncation(sig, frame, int(fired[seed % len(fired)]) + 1, full)

    return prop


def run_conformance(sig: Signal, interval: str = "1d") -> dict[str, str]:
    """Run every check on ``sig``; return {check name: failure message} for those that fail."""
    frame = _frame(sig, interval)
    checks = {
        "alignment_dtype_name": lambda: check_alignment_dtype_name(sig, frame),
        "no_mutation": lambda: check_no_mutation(sig, frame),
        "determinism": lambda: check_determinism(sig, frame),
        "warmup": lambda: check_warmup(sig, frame),
        "missing_inputs": lambda: check_missing_inputs(sig, frame),
        "truncation_invariance": truncation_property(sig, interval, max_examples=10),
        "warmup_convergence": lambda: check_convergence(sig, frame),
    }
    failures = {}
    for name, check in checks.items():
        try:
            check()
        except AssertionError as exc:
            failures[name] = str(exc)
    return failures


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
