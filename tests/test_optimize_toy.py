"""A synthetic evaluator with a planted optimum (importable by worker subprocesses), and the
optimizer machinery tested on it: planted optimum, seeds, folds, search space, constraints.

The toy "strategy" earns ``mu(x, n) + noise`` per bar where ``mu`` peaks at ``x = 0.7, n = 12``;
the noise is common to every parameter set, so the Sharpe ratio is monotone in ``mu``. Returns
at bar t are derived from the frame's column ``z`` up to t only; ``evaluate`` records every
window it is asked to score so tests can assert what a study saw.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.optimize.analysis import analyse_fold
from flushback.backtests.optimize.config import StudyConfig
from flushback.backtests.optimize.evaluator import (
    Evaluation,
    SpecEvaluator,
    decode_returns,
    encode_returns,
)
from flushback.backtests.optimize.folds import make_folds
from flushback.backtests.optimize.objectives import Objective, objective_value, parse_objectives
from flushback.backtests.optimize.samplers import QMC_WARM_START
from flushback.backtests.optimize.space import Constraint, build_search_space
from flushback.backtests.optimize.storage import open_storage
from flushback.backtests.optimize.workers import run_study
from flushback.backtests.run.metrics import compute_metrics
from flushback.signals.base import Param

OPT_X, OPT_N = 0.7, 12


class ToyEvaluator:
    periods_per_year = 365

    def __init__(self, n_bars: int = 600, seed: int = 0, sleep: float | None = None,
                 corrupt_after: str | None = None) -> None:
        import os

        # a per-evaluation delay (tests that kill a study mid-trial); from the environment so
        # it is not part of the study's identity
        if sleep is None:
            sleep = float(os.environ.get("FLUSHBACK_TOY_SLEEP", "0"))
        idx = pd.date_range("2020-01-01", periods=n_bars, freq="D", tz="UTC", name="timestamp")
        z = np.random.default_rng(seed).normal(0, 1, n_bars)
        self.frame = pd.DataFrame({"z": z}, index=idx)
        if corrupt_after is not None:  # future data replaced by garbage
            cut = pd.Timestamp(corrupt_after)
            self.frame.loc[self.frame.index > cut, "z"] = 50.0
        self.index = idx
        self.sleep = sleep
        self.windows: list[tuple[pd.Timestamp, pd.Timestamp]] = []

    def declared_space(self) -> dict[str, Param]:
        return {
            "signals.entry.x": Param(float, 0.5, 0.0, 1.0),
            "signals.entry.n": Param(int, 5, 1, 20),
            "strategy.take_profit": Param(float, 0.1, 0.0, 1.0),
            "strategy.stop_loss": Param(float, 0.05, 0.0, 0.5),
            "strategy.sizing": Param(str, "fraction", choices=("fraction", "volatility")),
        }

    def default_search_keys(self) -> list[str]:
        return ["signals.entry.x", "signals.entry.n"]

    def search_table(self) -> dict[str, Any] | None:
        return None

    def current_values(self) -> dict[str, Any]:
        return {k: p.default for k, p in self.declared_space().items()}

    def describe(self) -> dict[str, Any]:
        return {"toy": True}

    def evaluate(self, params: Mapping[str, Any], start, end, *, keep: bool = False):
        self.windows.append((pd.Timestamp(start), pd.Timestamp(end)))
        if self.sleep:
            time.sleep(self.sleep)
        x = float(params.get("signals.entry.x", 0.5))
        n = int(params.get("signals.entry.n", 5))
        mu = 0.002 - 0.004 * ((x - OPT_X) ** 2 + ((n - OPT_N) / 20.0) ** 2)
        visible = self.frame.loc[:end, "z"]  # only bars up to the window end
        r = (mu + 0.01 * visible).loc[start:]
        r.iloc[0] = 0.0
        equity = 10_000 * (1 + r).cumprod()
        metrics = compute_metrics(equity, None, self.periods_per_year)
        return Evaluation(metrics=metrics, returns=r.to_numpy(), timings={"engine": 0.0})


def toy_evaluator(**kwargs: Any) -> ToyEvaluator:
    return ToyEvaluator(**kwargs)


def toy_config(tmp_path, *, n_trials=30, seed=1, folds=None, storage=None, study="toy",
               evaluator_kwargs=None, heartbeat=5, workers=1, **kw) -> StudyConfig:
    ev = ToyEvaluator(**(evaluator_kwargs or {}))
    space = build_search_space(ev.declared_space(), kw.pop("search", None),
                               default_keys=ev.default_search_keys())
    return StudyConfig(
        evaluator_factory="test_optimize_toy:toy_evaluator",
        evaluator_kwargs=evaluator_kwargs or {},
        objectives=parse_objectives(kw.pop("objective", "sharpe"), kw.pop("directions", None)),
        space=space,
        folds=tuple(folds or make_folds(ev.index)),
        n_trials=n_trials,
        storage_url=storage or str(tmp_path / "optuna-journal.log"),
        study_name=study,
        seed=seed,
        heartbeat=heartbeat,
        workers=workers,
        **kw,
    )


# ------------------------------------------------------------------------------------------


def test_study_finds_planted_optimum(tmp_path):
    ev = ToyEvaluator()
    cfg = toy_config(tmp_path, n_trials=60, seed=3)
    run_study(cfg, evaluator=ev)
    res = analyse_fold(cfg, ev, cfg.folds[0])
    assert res["trial_counts"]["COMPLETE"] == 60
    assert abs(res["best_params"]["signals.entry.x"] - OPT_X) < 0.15
    assert abs(res["best_params"]["signals.entry.n"] - OPT_N) <= 4
    # random search with the same budget does no better than TPE here
    assert res["dsr"]["n_trials"] == 60
    assert 0.0 <= res["pbo"]["pbo"] <= 1.0
    assert set(res["param_importances"]) == {"signals.entry.x", "signals.entry.n"}
    # the study only ever scored the training window; the OOS run scored the test window
    fold = cfg.folds[0]
    train = [w for w in ev.windows if w[1] <= fold.train_end]
    assert len(train) == 60
    assert all(w[0] >= fold.train_start for w in train)
    assert ev.windows[-1] == (fold.test_start, fold.test_end)


def test_dsr_trial_sharpes_use_the_same_returns_as_the_selected_sharpe(tmp_path):
    # every trial's first training return is the 0 of the starting bar; the selected trial's
    # Sharpe drops it, so the trials' Sharpe variance (SR0's scale) must drop it too
    import optuna

    ev = ToyEvaluator()
    cfg = toy_config(tmp_path, n_trials=12, seed=5)
    run_study(cfg, evaluator=ev)
    res = analyse_fold(cfg, ev, cfg.folds[0])
    study = optuna.load_study(study_name=cfg.fold_study_name(cfg.folds[0]),
                              storage=open_storage(cfg.storage_url, heartbeat=None))
    series = [decode_returns(t.user_attrs["flushback"]["train_returns"])[1:]
          for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))]
    sharpes = np.array([r.mean() / r.std(ddof=1) for r in series])
    assert res["dsr"]["sharpe_variance"] == pytest.approx(sharpes.var(ddof=1), rel=1e-9)
    assert res["dsr"]["sharpe"] == pytest.approx(sharpes.max(), rel=1e-9)


def test_multi_objective_reports_pareto_front(tmp_path):
    ev = ToyEvaluator()
    cfg = toy_config(tmp_path, n_trials=20, seed=2, objective=None,
                     directions="max_sharpe,min_max_drawdown", sampler="nsga2")
    run_study(cfg, evaluator=ev)
    res = analyse_fold(cfg, ev, cfg.folds[0])
    front = res["pareto_front"]
    assert front
    vals = [(p["values"]["max_sharpe"], p["values"]["min_max_drawdown"]) for p in front]
    # no point of the front is dominated by another
    for a in vals:
        assert not any(b[0] >= a[0] and b[1] <= a[1] and b != a for b in vals)
    assert res["best_trial"] in [p["number"] for p in front]


def test_constraints_make_infeasible_trials_pruned(tmp_path):
    ev = ToyEvaluator()
    cfg = toy_config(tmp_path, n_trials=25, seed=4, search={
        "params": ["signals.entry.*", "strategy.take_profit", "strategy.stop_loss"],
        "constraints": ["strategy.take_profit > strategy.stop_loss"],
    })
    run_study(cfg, evaluator=ev)
    import optuna

    study = optuna.load_study(study_name="toy", storage=open_storage(cfg.storage_url))
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    pruned = study.get_trials(states=(optuna.trial.TrialState.PRUNED,))
    assert len(done) + len(pruned) == 25
    assert pruned, "the space has infeasible points; some must have been sampled"
    for t in done:
        assert t.params["strategy.take_profit"] > t.params["strategy.stop_loss"]
    for t in pruned:
        assert t.params["strategy.take_profit"] <= t.params["strategy.stop_loss"]


def test_search_table_narrows_fixes_and_validates():
    decl = ToyEvaluator().declared_space()
    space = build_search_space(decl, {
        "signals.entry.x": {"low": 0.2, "high": 0.4},
        "strategy.stop_loss": 0.1,
        "strategy.sizing": {"choices": ["fraction"]},
    }, default_keys=["signals.entry.x", "signals.entry.n"])
    by = {p.name: p for p in space.params}
    assert (by["signals.entry.x"].low, by["signals.entry.x"].high) == (0.2, 0.4)
    assert by["strategy.sizing"].choices == ("fraction",)
    assert space.fixed == {"strategy.stop_loss": 0.1}
    assert "strategy.stop_loss" not in by
    from flushback.data.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean"):
        build_search_space(decl, {"signals.entry.xx": 1})
    with pytest.raises(ConfigError, match="not inside the declared"):
        build_search_space(decl, {"signals.entry.x": {"low": -1, "high": 0.5}})
    with pytest.raises(ConfigError):
        build_search_space(decl, {"strategy.stop_loss": 2.0})  # outside declared range
    with pytest.raises(ConfigError):
        build_search_space(decl, {"constraints": ["strategy.take_profit > strategy.stoploss"]})
    with pytest.raises(ConfigError):
        Constraint("__import__('os').system('x')").check({})


def test_constraint_evaluation():
    c = Constraint("strategy.take_profit >= 1.5 * strategy.stop_loss and signals.e.n != 3")
    assert c.variables == ("strategy.take_profit", "strategy.stop_loss", "signals.e.n")
    assert c.check({"strategy.take_profit": 0.31, "strategy.stop_loss": 0.2, "signals.e.n": 4})
    assert not c.check({"strategy.take_profit": 0.29, "strategy.stop_loss": 0.2,
                        "signals.e.n": 4})
    assert not c.check({"strategy.take_profit": 0.3, "strategy.stop_loss": 0.2, "signals.e.n": 3})


def test_objectives_parse():
    assert parse_objectives("calmar") == (Objective("calmar", "maximize"),)
    assert parse_objectives(None, "max_sharpe,min_max_drawdown") == (
        Objective("sharpe", "maximize"), Objective("max_drawdown", "minimize"))
    from flushback.data.errors import ConfigError

    with pytest.raises(ConfigError, match="did you mean"):
        parse_objectives("sharp")
    assert objective_value({"max_drawdown": -0.3}, "max_drawdown") == 0.3
    assert objective_value({"sharpe": None}, "sharpe") == 0.0


def test_returns_roundtrip():
    r = np.array([0.0, 0.01, -0.02, np.nan, 0.5])
    back = decode_returns(encode_returns(r))
    assert back == pytest.approx([0.0, 0.01, -0.02, 0.0, 0.5], abs=1e-7)


def test_returns_codec_exact_and_reads_the_first_format():
    import base64
    import zlib

    rng = np.random.default_rng(3)
    for n, share in ((0, 0.0), (1, 1.0), (7, 0.0), (3000, 0.3), (40_001, 0.05)):
        r = np.where(rng.random(n) < share, rng.normal(0, 0.02, n), 0.0)
        back = decode_returns(encode_returns(r))
        # exactly the float32 values, zeros where the strategy was flat
        assert back.dtype == np.float64 and len(back) == n
        assert np.array_equal(back, r.astype(np.float32).astype(np.float64))
    # the mask of a mostly flat hourly series compresses to a few bytes per run
    r = np.zeros(40_000)
    r[1000:1400] = 0.001
    r[30_000:30_050] = -0.002
    s = encode_returns(r)
    assert s.startswith("m2:40000:") and len(s.split(":")[2]) < 100
    assert np.array_equal(decode_returns(s), r.astype(np.float32).astype(np.float64))
    # studies written by earlier versions: an uncompressed mask ("m1:") ...
    r = np.array([0.0, 0.25, -0.125, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5])
    nz = r != 0
    m1 = (f"m1:{len(r)}:{base64.b64encode(np.packbits(nz).tobytes()).decode()}:"
          f"{base64.b64encode(r[nz].astype(np.float32).tobytes()).decode()}")
    assert np.array_equal(decode_returns(m1), r)
    # ... and float32 -> zlib -> base64
    r = np.array([0.0, 0.25, -0.125, 0.0])
    legacy = base64.b64encode(zlib.compress(r.astype(np.float32).tobytes(), 1)).decode()
    assert np.array_equal(decode_returns(legacy), r)


def test_pruning_stops_bad_trials_early(tmp_path):
    ev = ToyEvaluator()
    cfg = toy_config(tmp_path, n_trials=40, seed=5, pruner="median", prune_chunks=3,
                     sampler="random")
    run_study(cfg, evaluator=ev)
    import optuna

    study = optuna.load_study(study_name="toy", storage=open_storage(cfg.storage_url))
    pruned = study.get_trials(states=(optuna.trial.TrialState.PRUNED,))
    done = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert pruned and len(pruned) + len(done) == 40
    # a pruned trial stopped after fewer than all chunks: it scored fewer windows
    assert all(t.user_attrs["pruned_after_chunks"] < 3 for t in pruned)
    assert len(ev.windows) < 40 * 3
    # the Deflated Sharpe Ratio's population (N and the Sharpe variance) is the completed
    # trials; the pruned ones are counted out loud, with a warning that N leaves them out
    res = analyse_fold(cfg, ev, cfg.folds[0])
    assert res["dsr"]["n_trials"] == len(done)
    assert res["dsr"]["n_excluded_pruned"] == len(pruned)
    assert f"{len(pruned)} trials the pruner stopped" in res["dsr"]["note"]


def test_progress_bar_shows_trials_rate_best_and_eta(tmp_path):
    import io

    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=160, color_system=None)
    ev = ToyEvaluator()
    cfg = toy_config(tmp_path, n_trials=12, seed=1)
    run_study(cfg, evaluator=ev, progress=True, console=console)
    text = buf.getvalue()
    assert "12/12" in text
    assert "trials/s" in text
    assert "best max_sharpe=" in text
    assert "ETA" in text


def test_backtest_study_on_a_small_frame_finds_planted_fear_threshold(tmp_path):
    """The real pipeline (signals -> backtrader -> metrics) on 500 synthetic daily bars where
    Fear & Greed takes three levels: the day after a 10 the price rallies, after a 30 it
    drops, 60 is noise. Buying extreme fear pays only for thresholds in [10, 30)."""
    from flushback.data.synthetic import synthetic_bars

    bars = synthetic_bars(periods=500, seed=11)
    rng = np.random.default_rng(5)
    fng = rng.choice([10.0, 30.0, 60.0], size=len(bars), p=[0.08, 0.08, 0.84])
    close = [float(bars["close"].iloc[0])]
    for i in range(1, len(bars)):
        drift = {10.0: 0.04, 30.0: -0.04, 60.0: 0.0}[fng[i - 1]]
        close.append(close[-1] * (1 + drift + rng.normal(0, 0.005)))
    close = np.array(close)
    open_ = np.concatenate([[close[0]], close[:-1]])
    frame = pd.DataFrame({
        "open": open_, "high": np.maximum(open_, close) * 1.002,
        "low": np.minimum(open_, close) * 0.998, "close": close, "volume": 1000.0,
        "fng": fng,
    }, index=bars.index)
    frame.attrs.update({"interval": "1d", "symbol": "SYN-USD"})
    spec = {
        "name": "planted_fear",
        "data": {"symbol": "SYN-USD", "interval": "1d", "externals": ["fng"]},
        "signals": {"entry": {"type": "extreme_fear", "threshold": 45.0}},
        "strategy": {"type": "contrarian", "hold_bars": 1},
        "search": {"params": ["signals.entry.threshold"]},
    }
    ev = SpecEvaluator(spec, frame=frame)
    space = build_search_space(ev.declared_space(), ev.search_table(),
                               default_keys=ev.default_search_keys())
    assert [p.name for p in space.params] == ["signals.entry.threshold"]
    cfg = StudyConfig(
        evaluator_factory="unused:unused", evaluator_kwargs={},
        objectives=parse_objectives("sharpe"), space=space,
        folds=tuple(make_folds(ev.index)), n_trials=25,
        storage_url=str(tmp_path / "planted.log"), study_name="planted", seed=2)
    run_study(cfg, evaluator=ev)
    res = analyse_fold(cfg, ev, cfg.folds[0])
    best = res["best_params"]["signals.entry.threshold"]
    assert 10.0 <= best < 30.0
    # independent check: the planted rule also wins out of sample, and a threshold that also
    # buys the 30-days does worse there
    assert res["out_of_sample_metrics"]["sharpe"] > 1.0
    worse = ev.evaluate({"signals.entry.threshold": 45.0}, cfg.folds[0].test_start,
                        cfg.folds[0].test_end)
    assert worse.metrics["sharpe"] < res["out_of_sample_metrics"]["sharpe"]


def test_min_trades_makes_idle_configurations_infeasible(tmp_path):
    """Thresholds below every Fear & Greed value never trade: with min_trades they are
    infeasible (pruned) instead of winning with a flat, zero-volatility equity curve."""
    from flushback.data.synthetic import synthetic_bars

    bars = synthetic_bars(periods=400, seed=4)
    frame = bars.copy()
    frame["fng"] = np.random.default_rng(1).uniform(30, 90, len(frame)).round()
    frame.attrs.update({"interval": "1d", "symbol": "SYN-USD"})
    spec = {"name": "idle", "data": {"symbol": "SYN-USD", "interval": "1d",
                                     "externals": ["fng"]},
            "signals": {"entry": {"type": "extreme_fear", "threshold": 45.0}},
            "strategy": {"type": "contrarian", "hold_bars": 3},
            "search": {"signals.entry.threshold": {"low": 0.0, "high": 50.0}}}
    ev = SpecEvaluator(spec, frame=frame)
    space = build_search_space(ev.declared_space(), ev.search_table(),
                                   default_keys=ev.default_search_keys())
    cfg = StudyConfig(
        evaluator_factory="unused:unused", evaluator_kwargs={},
        objectives=parse_objectives("sharpe"), space=space,
        folds=tuple(make_folds(ev.index)), n_trials=20,
        storage_url=str(tmp_path / "idle.log"), study_name="idle", seed=1, min_trades=3,
        sampler="random")
    run_study(cfg, evaluator=ev)
    import optuna

    study = optuna.load_study(study_name="idle", storage=open_storage(cfg.storage_url))
    fold = cfg.folds[0]
    for t in study.trials:
        thr = t.params["signals.entry.threshold"]
        n = ev.evaluate({"signals.entry.threshold": thr}, fold.train_start,
                        fold.train_end).metrics["n_trades"]
        # independently: the trial is feasible exactly when it trades at least 3 times
        assert (t.state.name == "COMPLETE") == (n >= 3), (thr, n, t.state.name)
        if t.state.name == "PRUNED":
            assert "min_trades" in t.user_attrs["infeasible"]
    assert any(t.state.name == "PRUNED" for t in study.trials)
    res = analyse_fold(cfg, ev, fold)
    assert res["best_params"]["signals.entry.threshold"] >= 30.0
    # a selected configuration trading fewer than min_trades times out of sample is flagged
    n_oos = res["out_of_sample_metrics"]["n_trades"]
    assert ("warning" in res) == (n_oos < 3)
    strict = dataclasses.replace(cfg, min_trades=10_000)
    assert "fewer than min_trades=10000" in analyse_fold(strict, ev, fold)["warning"]


def test_qmc_warm_start_then_tpe(tmp_path):
    """``qmc-tpe``: the first QMC_WARM_START points are the seeded Sobol sequence (the same
    points a pure QMC study draws), the rest are TPE's and concentrate near the optimum; the
    batched run and the per-trial run of the same seeded study are identical."""
    import optuna

    n = QMC_WARM_START + 16
    runs = {}
    for name, sampler, batch in (("mixed", "qmc-tpe", 256), ("mixed1", "qmc-tpe", 1),
                                 ("qmc", "qmc", 256)):
        cfg = toy_config(tmp_path, n_trials=n, seed=4, sampler=sampler, batch=batch,
                         storage=str(tmp_path / f"{name}.log"))
        run_study(cfg, evaluator=ToyEvaluator())
        st = optuna.load_study(study_name="toy", storage=open_storage(cfg.storage_url))
        runs[name] = [t.params for t in st.trials]
    warm = QMC_WARM_START
    assert runs["mixed"][:warm] == runs["qmc"][:warm]
    assert runs["mixed"][warm:] != runs["qmc"][warm:]
    assert runs["mixed"] == runs["mixed1"]
    late = [abs(p["signals.entry.x"] - OPT_X) for p in runs["mixed"][warm:]]
    early = [abs(p["signals.entry.x"] - OPT_X) for p in runs["mixed"][:warm]]
    assert np.median(late) < np.median(early)
