"""The runner's hook for reusing signal work across runs (``Prepared.signal_cache``).

Runs that share a ``Prepared`` must give exactly what independent, from-scratch runs give:
same signals, trades, equity, metrics and run id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.run import runner
from flushback.backtests.run.spec import load_spec
from flushback.signals import build_signal
from flushback.signals.base import SignalCache
from flushback.signals.rsi import rsi_values
from flushback.signals.testing import synthetic_frame

ENTRY = {
    "type": "all", "window": 2, "of": [
        {"type": "extreme_fear", "threshold": 30.0},
        {"type": "any", "of": [
            {"type": "liquidation_spike", "regime_aware": False},
            {"type": "capitulation"},
            {"type": "oversold_rsi", "threshold": 35.0},
        ]},
    ],
}

TRIALS = [
    {"signals.entry.of.0.threshold": 30.0, "signals.entry.of.1.of.2.threshold": 35.0},
    {"signals.entry.of.0.threshold": 40.0, "signals.entry.window": 3},  # fear leaf changes
    {"signals.entry.of.1.of.2.threshold": 45.0},  # RSI threshold only: RSI values reused
    {"signals.entry.of.1.of.0.k": 1.5, "signals.entry.of.1.of.1.k": 1.25},  # z / sigma reused
    {"signals.entry.of.1.of.2.period": 7, "strategy.take_profit": 0.1},
    {"signals.entry.of.1.of.0.regime_aware": True, "signals.entry.of.1.of.0.k": 1.5},
    {"signals.entry.of.1.of.0.regime_aware": True, "signals.entry.of.1.of.0.k": 2.0,
     "signals.entry.of.1.of.0.min_long_share": 0.5},
    {"signals.entry.of.0.threshold": 30.0, "signals.entry.of.1.of.2.threshold": 35.0},  # again
]


def _spec():
    return load_spec("fear_flush_btc_daily").model_copy(update={"signals": {
        "entry": ENTRY, "exit": {"type": "extreme_greed", "threshold": 70.0}}})


def _frame():
    return synthetic_frame(900, "1d", seed=3)


def test_reused_signals_give_the_same_runs_as_plain_runs():
    spec = _spec()
    shared = runner.prepare_frame(spec, _frame())
    for params in TRIALS:
        a = runner.run_backtest(spec, prepared=shared, params=params)
        # the reference: a fresh Prepared, nothing reused
        b = runner.run_backtest(spec, prepared=runner.prepare_frame(spec, _frame()),
                                params=params, reuse_signals=False)
        assert a.run_id == b.run_id
        pd.testing.assert_frame_equal(a.signals, b.signals)
        pd.testing.assert_frame_equal(a.trades, b.trades)
        pd.testing.assert_frame_equal(a.equity, b.equity)
        assert a.metrics == b.metrics
        assert a.benchmark_metrics == b.benchmark_metrics
    assert shared.signal_cache.hits > 0
    assert len(shared.signal_cache) > 0
    # the strategy really traded on these signals (the comparison is not vacuous)
    assert int(a.signals["entry"].sum()) > 0 and len(a.trades) > 0


def test_cache_serves_only_its_frame_and_matches_independent_values():
    frame = _frame()
    cache = SignalCache(frame)
    rsi = rsi_values(frame["close"], 14, "wilder")  # independent computation
    with cache.active():
        for thr in (20.0, 30.0, 40.0):
            got = build_signal({"type": "oversold_rsi", "threshold": thr}).compute(frame)
            want = (rsi < thr).to_numpy().copy()
            want[:202] = False  # Wilder RSI(14) warm-up
            assert np.array_equal(got.to_numpy(), want)
        parts = [k for k in cache._parts if k[0] == "part"]
        assert len(parts) == 1  # one RSI series for three thresholds
        assert not [k for k in cache._store if k[0] == "part"]
        # another frame object (even equal) is computed as usual, not served from the cache
        other = frame.copy()
        n = len(cache)
        build_signal({"type": "oversold_rsi", "threshold": 20.0}).compute(other)
        assert len(cache) == n
    # outside ``active()`` nothing is stored
    build_signal({"type": "oversold_rsi", "threshold": 25.0}).compute(frame)
    assert len(cache) == n


def test_many_thresholds_do_not_push_out_the_indicator():
    """An optimizer tries thousands of thresholds: the signal results fill their LRU, the RSI
    they are compared against stays (it has its own) and is computed once."""
    frame = _frame()
    cache = SignalCache(frame, maxsize=8)
    rsi = rsi_values(frame["close"], 14, "wilder")
    calls = 0
    import flushback.signals.rsi as rsi_module

    original = rsi_module.rsi_values
    def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    rsi_module.rsi_values = counting
    try:
        with cache.active():
            for i in range(50):
                thr = 10.0 + 0.5 * i
                got = build_signal({"type": "oversold_rsi", "threshold": thr}).compute(frame)
                want = (rsi < thr).to_numpy().copy()
                want[:202] = False
                assert np.array_equal(got.to_numpy(), want)
    finally:
        rsi_module.rsi_values = original
    assert len(cache._store) == 8 and len(cache._parts) == 1
    assert calls == 1


def test_composite_children_are_computed_once():
    frame = _frame()
    cache = SignalCache(frame)
    with cache.active():
        build_signal(ENTRY).compute(frame)
        misses = cache.misses
        changed = {**ENTRY, "window": 3}  # only the root's own parameter changes
        build_signal(changed).compute(frame)
    # one new entry: the root; both children (and their leaves) came from the cache
    assert cache.misses == misses + 1
    assert len(cache) == misses + 1


def test_prepared_copies_get_their_own_cache():
    import dataclasses

    spec = _spec()
    p = runner.prepare_frame(spec, _frame())
    runner.run_backtest(spec, prepared=p)
    q = dataclasses.replace(p, frame=p.frame.iloc[:-10])
    assert q.signal_cache is not p.signal_cache and q.signal_cache.frame is q.frame
    assert len(q.signal_cache) == 0


@pytest.mark.parametrize("window", [1, 2, 5])
def test_window_slice_is_the_window(window):
    spec = _spec()
    frame = _frame()
    p = runner.prepare_frame(spec, frame, since=frame.index[100 * window],
                             until=frame.index[-window])
    w = p.window
    expected = frame[(frame.index >= frame.index[100 * window])
                     & (frame.index <= frame.index[-window])]
    pd.testing.assert_frame_equal(w, expected)
    assert frame.index[p.window_slice].equals(expected.index)


def test_cached_benchmark_follows_the_signals_it_reads():
    # a contrarian benchmark reads signals.entry: a run with another entry threshold on the
    # same Prepared must not reuse the benchmark of the first run
    spec = _spec().with_overrides({"benchmark.type": "contrarian", "benchmark.hold_bars": 10,
                                   "signals.entry": {"type": "extreme_fear",
                                                     "threshold": 30.0}})
    shared = runner.prepare_frame(spec, _frame())
    for threshold in (30.0, 50.0):
        params = {"signals.entry.threshold": threshold}
        a = runner.run_backtest(spec, prepared=shared, params=params)
        b = runner.run_backtest(spec, prepared=runner.prepare_frame(spec, _frame()),
                                params=params)
        pd.testing.assert_frame_equal(a.benchmark_trades, b.benchmark_trades)
        assert a.benchmark_metrics == b.benchmark_metrics
    assert a.benchmark_metrics["n_trades"] != runner.run_backtest(
        spec, prepared=shared, params={"signals.entry.threshold": 30.0}
    ).benchmark_metrics["n_trades"]
