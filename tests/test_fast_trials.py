"""The optimizer's array path (backtests.fast_trials) scores a trial exactly as a full
``run_backtest`` does on either engine: same metrics, same per-bar returns; a threshold
trigger compared on its cached level is the signal itself."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd
import pytest

from flushback.backtests.optimize.evaluator import SpecEvaluator
from flushback.backtests.optimize.folds import make_folds
from flushback.backtests.optimize.space import build_search_space
from flushback.backtests.run.metrics import SCORE_METRICS
from flushback.signals import build_signal
from flushback.strategies import nb_stats

pytestmark = pytest.mark.realdata


@pytest.mark.parametrize("spec", ["fear_flush_btc_daily", "liquidation_spike_btc_daily",
                                  "fear_greed_accumulation_btc_daily"])
def test_array_path_equals_run_backtest(shared_data_dir, spec):
    ev = SpecEvaluator(spec, data_dir=str(shared_data_dir))
    assert ev.engine == "fast"
    space = build_search_space(ev.declared_space(), ev.search_table(),
                               default_keys=ev.default_search_keys())
    fold = make_folds(ev.index, walk_forward=2)[1]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    dists = space.distributions()
    points = [{**space.fixed, **study.ask(dists).params} for _ in range(6)] if dists else [{}]
    for params in points:
        for start, end in ((fold.train_start, fold.train_end),
                           (fold.test_start, fold.test_end)):
            fast = ev.evaluate(params, start, end)
            ref = ev.evaluate(params, start, end, keep=True, engine="backtrader")
            assert fast.result is None and ref.result is not None
            assert fast.metrics == ref.metrics
            np.testing.assert_array_equal(fast.returns, ref.returns)
            # the kernel's path statistics, written as it runs, are nb_stats.path_stats'
            ft = ev._fast(start, end)
            eq, pos, _ = ft.simulate(params)
            assert tuple(ft.path) == nb_stats.path_stats(eq, pos)
            # what a trial is scored with: the same values for the scored keys
            scored = ev.score(params, [(start, end)])
            assert scored.metrics == {k: ref.metrics[k] for k in SCORE_METRICS}
            np.testing.assert_array_equal(scored.returns, ref.returns)
    # the second time round, every signal comes from the window's memo
    window = ev._fast(fold.train_start, fold.train_end)
    n_lines = len({"entry", "exit"} & set(ev.spec.signals))
    assert (n_lines > 0) == (len(window._memo) > 0)
    assert len(window._memo) <= n_lines * len(points)


def test_threshold_triggers_on_the_window_are_the_signals(shared_data_dir):
    """Hourly bars, a 4h RSI: thresholds anywhere in the range and exactly at values the RSI
    takes (where < and <= differ), on a window that starts inside the signal's warm-up."""
    ev = SpecEvaluator("rsi4h_btc_hourly", data_dir=str(shared_data_dir))
    start, end = ev.prepared.frame.index[0], ev.index[len(ev.index) // 3]
    ft = ev._fast(start, end)
    view = ev.window_view(start, end)
    rng = np.random.default_rng(3)
    for name in ("entry", "exit"):
        base = dict(ev.spec.signals[name])
        sig = build_signal(base)
        rsi = sig.level(view.frame).dropna().to_numpy()
        spec = sig.param_specs["threshold"]
        inside = rsi[(rsi >= spec.low) & (rsi <= spec.high)]
        thresholds = [*rng.uniform(spec.low, spec.high, 6), *rng.choice(inside, 4)]
        for thr in thresholds:
            cfg = {**base, "threshold": float(thr)}
            expected = build_signal(cfg).compute(view.frame).to_numpy()[view.window_slice]
            got = ft.trigger(cfg)
            np.testing.assert_array_equal(got, expected.astype(np.float64))
        assert got.dtype == np.float64 and got.flags.c_contiguous
    assert sig.warmup_for(pd.Timedelta(hours=1)) > 0  # the window starts inside the warm-up
    assert len(ft._levels) == 2  # one level per signal, every threshold compared on it


def test_scores_fall_back_to_numpy_for_curves_the_compiled_pass_cannot_take(shared_data_dir):
    ev = SpecEvaluator("fear_flush_btc_daily", data_dir=str(shared_data_dir))
    fold = make_folds(ev.index)[0]
    ft = ev._fast(fold.train_start, fold.train_end)
    eq, pos, rows = ft.simulate({})
    eq, pos, rows = eq.copy(), pos.copy(), rows.copy()
    assert len(rows) >= 2
    # two legs of one position (a partial exit): round trips, as compute_metrics folds them
    legs = rows.copy()
    legs[1, 0] = legs[0, 0]
    got, r = ft.scores(eq, pos, legs)
    full = ft.metrics(eq, pos, legs)
    assert got == {k: full[k] for k in SCORE_METRICS}
    assert got["n_trades"] == len(rows) - 1
    # a bar that is not a positive number
    bad = eq.copy()
    bad[5] = np.nan
    got, r = ft.scores(bad, pos, rows)
    full = ft.metrics(bad, pos, rows)
    assert got.keys() == {k: full[k] for k in SCORE_METRICS}.keys()
    assert all(got[k] == full[k] or (got[k] != got[k] and full[k] != full[k]) for k in got)
    assert np.isnan(r[5])


def test_trials_that_move_only_thresholds_score_as_full_backtests(shared_data_dir):
    """The 4h-RSI hourly spec: after a first trial per RSI period, later trials that change
    only the thresholds reuse the level (no signal is built); their scores equal a full
    ``run_backtest`` on the fast engine (trigger arrays from ``Signal.compute``), and a
    threshold outside the signal's declared range is refused as before."""
    from flushback.data.errors import ConfigError

    ev = SpecEvaluator("rsi4h_btc_hourly", data_dir=str(shared_data_dir))
    start, end = ev.index[len(ev.index) // 2], ev.index[-1]
    rng = np.random.default_rng(11)
    trials = []
    for period in (14, 21):
        for _ in range(4):
            trials.append({"signals.entry.period": period,
                           "signals.entry.threshold": float(rng.uniform(15, 35)),
                           "signals.exit.threshold": float(rng.uniform(50, 75)),
                           "strategy.hold_bars": int(rng.integers(24, 720))})
    ft = ev._fast(start, end)
    for params in trials:
        eq, pos, _ = ft.simulate(params)
        assert tuple(ft.path) == nb_stats.path_stats(eq, pos)
        scored = ev.score(params, [(start, end)])
        full = ev.evaluate(params, start, end, keep=True)  # run_backtest, engine "fast"
        assert full.result is not None
        assert scored.metrics == {k: full.metrics[k] for k in SCORE_METRICS}
        np.testing.assert_array_equal(scored.returns, full.returns)
    assert set(ft._threshold_param.values()) == {"threshold"}
    # only the thresholds moved between trials of one period: one level per (signal, period)
    assert len(ft._levels) == 3
    bad = {**trials[-1], "signals.entry.threshold": 99.0}
    with pytest.raises(ConfigError, match="threshold"):
        ev.score(bad, [(start, end)])


def test_prepared_levels_are_the_ones_trials_build(shared_data_dir):
    """Before a study, every RSI period of the search is built once per signal (2 x 49
    levels of the 4h RSI); trials then build no signal and score exactly as on an evaluator
    that prepared nothing. Too many levels for the limit: nothing is built."""
    from flushback.backtests.optimize.optuna_compat import block_qmc_sampler

    fresh, ready = (SpecEvaluator("rsi4h_btc_hourly", data_dir=str(shared_data_dir))
                    for _ in range(2))
    space = build_search_space(ready.declared_space(), ready.search_table(),
                               default_keys=ready.default_search_keys())
    dists = space.distributions()
    assert {"signals.entry.period", "signals.exit.period"} <= set(dists)
    start, end = ready.index[len(ready.index) // 2], ready.index[-1]
    assert ready.prepare(space, [(start, end)], 97) == 0  # 98 levels do not fit in 97
    assert ready.prepare(space, [(start, end)], 128) == 98
    ft = ready._fast(start, end)
    assert len(ft._levels) == 98
    sampler = block_qmc_sampler(3, dists)
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    rel = sampler.infer_relative_search_space(study, None)
    built, built_fresh = [], []
    compute = type(ft)._compute_signal
    ft._compute_signal = lambda *a: built.append(a) or compute(ft, *a)  # type: ignore
    other = fresh._fast(start, end)
    other._compute_signal = lambda *a: built_fresh.append(a) or compute(other, *a)  # type: ignore
    for params in sampler.relative_points(study, rel, 40):
        params = {**space.fixed, **params}
        got = ready.score(params, [(start, end)])
        want = fresh.score(params, [(start, end)])
        assert got.metrics == want.metrics
        np.testing.assert_array_equal(got.returns, want.returns)
    assert built == [] and len(built_fresh) > 20  # the other one built a level per period
