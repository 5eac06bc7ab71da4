"""The optimizer's array path (backtests.fast_trials) scores a trial exactly as a full
``run_backtest`` does on either engine: same metrics, same per-bar returns."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from flushback.backtests.optimize.evaluator import SpecEvaluator
from flushback.backtests.optimize.folds import make_folds
from flushback.backtests.optimize.space import build_search_space

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
    # the second time round, every signal comes from the window's memo
    window = ev._fast(fold.train_start, fold.train_end)
    n_lines = len({"entry", "exit"} & set(ev.spec.signals))
    assert (n_lines > 0) == (len(window._memo) > 0)
    assert len(window._memo) <= n_lines * len(points)
