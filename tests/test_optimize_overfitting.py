"""The optimizer's overfitting statistics over its stored trials: the DSR's population and the
measure CSCV selects by, checked against recomputations from the trials' stored returns."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from statistics import NormalDist

import numpy as np
import optuna
import pytest

from flushback.backtests.optimize.analysis import analyse_fold
from flushback.backtests.optimize.evaluator import Evaluation, decode_returns
from flushback.backtests.optimize.storage import open_storage
from flushback.backtests.optimize.workers import run_study

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_optimize_toy import ToyEvaluator, toy_config
from test_overfitting import _naive_cscv


class SometimesFlatEvaluator(ToyEvaluator):
    """The toy strategy, except that x < 0.35 never trades (flat returns, no Sharpe ratio)."""

    def evaluate(self, params, start, end, *, keep=False):
        res = super().evaluate(params, start, end, keep=keep)
        if float(params.get("signals.entry.x", 0.5)) < 0.35:
            flat = np.zeros_like(res.returns)
            return Evaluation(metrics={"sharpe": None, "n_trades": 0}, returns=flat,
                              timings=res.timings)
        return res


def _stored_returns(cfg):
    study = optuna.load_study(study_name=cfg.fold_study_name(cfg.folds[0]),
                              storage=open_storage(cfg.storage_url, heartbeat=None))
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    return [decode_returns(t.user_attrs["flushback"]["train_returns"]) for t in done]


def test_dsr_population_leaves_out_trials_that_never_traded_from_n_and_the_variance(tmp_path):
    ev = SometimesFlatEvaluator()
    cfg = toy_config(tmp_path, n_trials=24, seed=3, sampler="random")
    run_study(cfg, evaluator=ev)
    res = analyse_fold(cfg, ev, cfg.folds[0])["dsr"]
    series = [r[1:] for r in _stored_returns(cfg)]
    traded = [r for r in series if r.std() > 0]
    flat = len(series) - len(traded)
    assert flat >= 3 and len(traded) >= 10  # the study has both kinds
    # recompute every input by hand over the trials that traded
    srs = [r.mean() / r.std(ddof=1) for r in traded]
    n = len(traded)
    var = float(np.var(srs, ddof=1))
    z = NormalDist().inv_cdf
    g = 0.5772156649015329
    sr0 = math.sqrt(var) * ((1 - g) * z(1 - 1 / n) + g * z(1 - 1 / (n * math.e)))
    best = traded[int(np.argmax(srs))]
    sr, t = max(srs), len(best)
    c = best - best.mean()
    skew = np.mean(c**3) / np.mean(c**2) ** 1.5
    kurt = np.mean(c**4) / np.mean(c**2) ** 2
    dsr = NormalDist().cdf((sr - sr0) * math.sqrt(t - 1)
                           / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    assert res["n_trials"] == n
    assert res["n_excluded_no_trades"] == flat
    assert res["sharpe_variance"] == pytest.approx(var, rel=1e-9)
    assert res["expected_max_sharpe"] == pytest.approx(sr0, rel=1e-6)
    assert res["dsr"] == pytest.approx(dsr, rel=1e-6)
    assert "traded" in res["population"]


@pytest.mark.parametrize("objective", ["sortino", "calmar"])
def test_pbo_selects_by_the_study_objective(tmp_path, objective):
    ev = ToyEvaluator(n_bars=150)
    cfg = toy_config(tmp_path, n_trials=12, seed=4, objective=objective, sampler="random",
                     evaluator_kwargs={"n_bars": 150})
    run_study(cfg, evaluator=ev)
    res = analyse_fold(cfg, ev, cfg.folds[0])["pbo"]
    m = np.column_stack(_stored_returns(cfg))[1:]
    counts, _ = _naive_cscv(m, res["n_splits"], objective)
    assert res["metric"] == objective
    assert res["overfit_counts"] == counts
    assert "note" not in res


def test_pbo_falls_back_to_sharpe_for_trade_statistics_and_says_so(tmp_path):
    ev = ToyEvaluator(n_bars=150)
    cfg = toy_config(tmp_path, n_trials=6, seed=4, objective="win_rate", sampler="random",
                     evaluator_kwargs={"n_bars": 150})
    run_study(cfg, evaluator=ev)
    res = analyse_fold(cfg, ev, cfg.folds[0])["pbo"]
    assert res["metric"] == "sharpe"
    assert "max_win_rate" in res["note"]
