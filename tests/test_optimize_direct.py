"""QMC and random trials run without optuna's ask/tell (``backtests/optimize/direct.py``)
write the trials the ask/tell loop writes: the same points, values, states, attributes and
intermediate values, in the same order, on a journal file and on SQLite, alone and resumed;
on the toy study and on a real spec (the hourly 4h-RSI study on the fast engine)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import optuna
import pytest

from flushback.backtests.optimize.config import copy_config
from flushback.backtests.optimize.direct import DirectTrial, direct_sampler
from flushback.backtests.optimize.samplers import ReseededSampler
from flushback.backtests.optimize.storage import open_storage
from flushback.backtests.optimize.workers import run_study

sys.path.insert(0, str(Path(__file__).parent))
from test_optimize_toy import ToyEvaluator, toy_config

_SEARCH = {"params": ["signals.entry.*", "strategy.take_profit", "strategy.stop_loss",
                      "strategy.sizing"],
           "constraints": ["strategy.take_profit > strategy.stop_loss"]}


class _Edgy(ToyEvaluator):
    """Some points fail (an exception: FAIL trials) and some score NaN (undefined: 0.0).
    (A seeded random study retries a failed point from the same sampler state, as the
    ask/tell loop does, until it gives up: its studies here plant no failure.)"""

    def __init__(self, fail: bool = True) -> None:
        super().__init__()
        self.fail = fail

    def evaluate(self, params, start, end, **kw):
        x = float(params["signals.entry.x"])
        if self.fail and 0.30 < x < 0.36:
            raise RuntimeError("planted failure")
        ev = super().evaluate(params, start, end, **kw)
        if 0.60 < x < 0.64:
            ev.metrics["sharpe"] = math.nan
        return ev


def _trials(cfg):
    st = optuna.load_study(study_name=cfg.study_name, storage=open_storage(cfg.storage_url))
    out = []
    for t in st.trials:
        user = dict(t.user_attrs)
        fb = dict(user.pop("flushback", {}))
        fb.pop("timings", None)  # seconds: differ from run to run
        # the worker's lease name (host, pid, random): the same worker wrote each trial
        owner = user.pop("flushback_owner")
        system = dict(t.system_attrs)
        assert system.pop("flushback_batched_by") == owner
        out.append((t.number, t.state, t.values, t.params, t.distributions, user, fb,
                    system, t.intermediate_values))
    return out


def _pair(tmp_path, url_of, sampler="qmc", **kw):
    got = {}
    for direct in (True, False):
        cfg = toy_config(tmp_path, sampler=sampler, seed=7, storage=url_of(direct), **kw)
        run_study(copy_config(cfg, direct=direct), evaluator=_Edgy(sampler == "qmc"))
        got[direct] = _trials(cfg)
    return got[True], got[False]


@pytest.mark.parametrize("sampler", ["qmc", "random"])
@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_direct_trials_are_the_ask_tell_trials(tmp_path, kind, sampler):
    def url(direct):
        name = f"{kind}-{direct}"
        return f"sqlite:///{tmp_path / name}.db" if kind == "sqlite" else \
            str(tmp_path / f"{name}.log")

    direct, asked = _pair(tmp_path, url, sampler, n_trials=60, search=_SEARCH, min_trades=0)
    assert direct == asked
    states = {t[1].name for t in direct}
    # every ending is exercised: complete, infeasible (pruned), an exception (failed)
    assert states == ({"COMPLETE", "PRUNED", "FAIL"} if sampler == "qmc" else
                      {"COMPLETE", "PRUNED"})
    assert all("error" in t[5] for t in direct if t[1].name == "FAIL")
    assert any(t[1].name == "COMPLETE" and t[2] == [0.0] for t in direct)  # the NaN
    assert {type(t[3]["signals.entry.n"]) for t in direct} == {int}
    assert {t[3]["strategy.sizing"] for t in direct} == {"fraction", "volatility"}


@pytest.mark.parametrize("sampler", ["qmc", "random"])
def test_direct_trials_report_chunks_and_resume_as_ask_tell(tmp_path, sampler):
    """Chunks reported without a pruner (intermediate values), a study stopped at 9 trials
    and resumed to 30: still the ask/tell loop's trials."""
    got = {}
    for direct in (True, False):
        cfg = toy_config(tmp_path, sampler=sampler, seed=2, n_trials=30, prune_chunks=3,
                         storage=str(tmp_path / f"r{direct}.log"))
        ev = _Edgy(sampler == "qmc")
        run_study(copy_config(cfg, n_trials=9, direct=direct), evaluator=ev)
        run_study(copy_config(cfg, direct=direct), evaluator=ev)
        got[direct] = _trials(cfg)
    assert got[True] == got[False]
    assert all(len(t[8]) == 3 for t in got[True] if t[1].name == "COMPLETE")


def test_multi_objective_direct_trials(tmp_path):
    def url(direct):
        return str(tmp_path / f"m{direct}.log")

    direct, asked = _pair(tmp_path, url, n_trials=20, objective=None,
                          directions="max_sharpe,min_max_drawdown")
    assert direct == asked
    assert all(len(t[2]) == 2 for t in direct if t[1].name == "COMPLETE")


def test_which_studies_take_the_direct_path(tmp_path):
    def chosen(**kw):
        cfg = toy_config(tmp_path, seed=1, **kw)
        dists = cfg.space.distributions()
        reseeded = ReseededSampler(cfg.sampler, cfg.seed, 0, cfg.multi, dists)
        study = optuna.create_study()
        return direct_sampler(cfg, reseeded, study) is not None

    assert chosen(sampler="qmc") and chosen(sampler="random")
    assert chosen(sampler="qmc", pruner="median", prune_chunks=1)  # nothing to prune
    assert not chosen(sampler="qmc", pruner="median", prune_chunks=3)
    assert not chosen(sampler="random", pruner="median", prune_chunks=3)
    assert not chosen(sampler="tpe") and not chosen(sampler="nsga2")
    assert not chosen(sampler="qmc-tpe")


def test_direct_trial_tells_as_optuna_does():
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    def told(values=None, state=None, reports=(), n=1):
        t = DirectTrial(0, {"x": 0.5}, {"x": FloatDistribution(0, 1)}, "w", None)
        for step, v in reports:
            t.report(v, step)
        t.tell(n, values, state)
        return t.state, t.values

    assert told(1.5) == (TrialState.COMPLETE, [1.5])
    assert told(math.inf) == (TrialState.COMPLETE, [math.inf])
    assert told(math.nan) == (TrialState.FAIL, None)
    assert told([1.0]) == (TrialState.COMPLETE, [1.0])
    assert told([1.0, 2.0], n=1) == (TrialState.FAIL, None)  # one value per objective
    assert told([1.0, 2.0], n=2) == (TrialState.COMPLETE, [1.0, 2.0])
    assert told(state=TrialState.PRUNED) == (TrialState.PRUNED, None)
    assert told(state=TrialState.PRUNED, reports=[(0, 1.0), (1, 2.0), (1, 9.0)]) == (
        TrialState.PRUNED, [2.0])  # the last step's first report
    assert told(state=TrialState.PRUNED, reports=[(0, math.nan)]) == (TrialState.PRUNED, None)
    assert told(state=TrialState.FAIL) == (TrialState.FAIL, None)
    with pytest.raises(ValueError):
        told(reports=[(-1, 1.0)])


@pytest.mark.realdata
def test_direct_trials_on_a_real_spec(tmp_path, shared_data_dir):
    """The hourly 4h-RSI spec on the fast engine, 60 QMC trials with levels prepared: the
    direct loop writes the ask/tell loop's trials (scores, stored returns and metrics)."""
    from flushback.backtests.optimize.config import StudyConfig
    from flushback.backtests.optimize.evaluator import SpecEvaluator
    from flushback.backtests.optimize.folds import make_folds
    from flushback.backtests.optimize.objectives import parse_objectives
    from flushback.backtests.optimize.space import build_search_space

    kwargs = {"spec": "rsi4h_btc_hourly", "overrides": ["data.start=2024-01-01"],
              "data_dir": str(shared_data_dir)}
    ev = SpecEvaluator(**kwargs)
    space = build_search_space(ev.declared_space(), ev.search_table(),
                               default_keys=ev.default_search_keys())
    got = {}
    for direct in (True, False):
        cfg = StudyConfig(
            evaluator_factory="flushback.backtests.optimize.study:spec_evaluator",
            evaluator_kwargs=kwargs, objectives=parse_objectives("sharpe"), space=space,
            folds=tuple(make_folds(ev.index)), n_trials=60,
            storage_url=str(tmp_path / f"{direct}.log"), study_name="real", seed=4,
            sampler="qmc", direct=direct, min_trades=3)
        run_study(cfg, evaluator=ev)
        got[direct] = _trials(cfg)
    assert got[True] == got[False]
    assert {t[1].name for t in got[True]} >= {"COMPLETE"}
    assert all(t[6]["train_returns"].startswith("m2:") for t in got[True]
               if t[1].name == "COMPLETE")
