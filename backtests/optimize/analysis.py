"""The statistics of a finished fold study (:func:`analyse_fold`): the chosen trial (best on
the training window), the Deflated Sharpe Ratio and PBO over the stored per-trial training
returns (:mod:`flushback.backtests.optimize.overfitting`), parameter importances
(``optuna.importance``), and the out-of-sample backtest of the chosen parameters; plus the
per-trial table (:func:`trials_table`)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from flushback.backtests.optimize.config import StudyConfig, jsonable
from flushback.backtests.optimize.evaluator import Evaluator, decode_returns
from flushback.backtests.optimize.folds import Fold
from flushback.backtests.optimize.objectives import OBJECTIVE_METRICS, Objective
from flushback.backtests.optimize.stitch import combine, evaluator_cash
from flushback.backtests.optimize.storage import open_storage


def _select(study: Any, cfg: StudyConfig) -> Any:
    """The chosen trial: best on the training window (Pareto: best first objective)."""
    if cfg.multi:
        front = study.best_trials
        if not front:
            return None
        sign = 1 if cfg.objectives[0].direction == "maximize" else -1
        return max(front, key=lambda t: (sign * t.values[0], -t.number))
    try:
        return study.best_trial
    except ValueError:
        return None


def _fb(trial: Any) -> dict[str, Any]:
    return trial.user_attrs.get("flushback") or {}


def _pbo_splits(n_rows: int) -> int:
    for s in (16, 12, 10, 8, 6, 4, 2):
        if n_rows // s >= 10:
            return s
    return 2


#: the population of the Deflated Sharpe Ratio (N and the variance of the Sharpe ratios)
DSR_POPULATION = ("completed trials whose training returns have a Sharpe ratio (they traded); "
                  "trials that never traded and trials stopped by the pruner are in neither N "
                  "nor the variance")


def _dsr_over_population(study: Any, series: Sequence[np.ndarray],
                         best_r: np.ndarray) -> dict[str, Any]:
    """DSR of the chosen trial; N and the Sharpe variance over one population of trials.

    The population is :data:`DSR_POPULATION`: the trials the winner was actually picked from
    among those with a Sharpe ratio. A trial that never traded has no Sharpe ratio (0 / 0) and
    could not be the maximum of positive Sharpe ratios; a pruned trial's full-window Sharpe was
    never measured. Counting either in N but not in the variance mixes two populations.
    """
    import optuna

    from flushback.backtests.optimize import overfitting as of

    TS = optuna.trial.TrialState
    # the first return of every series is the 0 of the starting bar: drop it everywhere,
    # so the trials' Sharpe variance and the selected Sharpe use the same returns
    sharpes = np.array([of.sharpe_per_period(s[1:]) for s in series])
    traded = sharpes[np.isfinite(sharpes)]
    pruned = sum(1 for t in study.get_trials(deepcopy=False, states=(TS.PRUNED,))
                 if "infeasible" not in t.user_attrs)
    d = of.deflated_sharpe_ratio(
        best_r[1:], n_trials=max(len(traded), 1),
        sharpe_variance=float(traded.var(ddof=1)) if len(traded) > 1 else 0.0)
    out = {**d.to_dict(), "population": DSR_POPULATION,
           "n_excluded_no_trades": int(len(sharpes) - len(traded)),
           "n_excluded_pruned": int(pruned)}
    if pruned:
        out["note"] = (f"N leaves out the {pruned} trials the pruner stopped (their Sharpe ratio "
                       "over the training window was never measured): the DSR is optimistic; "
                       "run without a pruner for a DSR over every configuration")
    return out


def _pbo_measure(objective: Objective) -> tuple[str, str | None]:
    """The measure CSCV selects and ranks by: the study's (first) objective when the stored
    per-bar returns can recompute it on any set of rows, else Sharpe (with the reason)."""
    from flushback.backtests.optimize.overfitting import PBO_MEASURES

    if objective.metric in PBO_MEASURES and objective.direction == OBJECTIVE_METRICS.get(
            objective.metric):
        return objective.metric, None
    why = ("is a trade statistic the stored per-bar returns cannot recompute on a subset of bars"
           if objective.metric not in PBO_MEASURES else "is optimized in an unusual direction")
    return "sharpe", f"the objective {objective.label} {why}; CSCV ranks the trials by Sharpe"


def analyse_fold(cfg: StudyConfig, ev: Evaluator, fold: Fold, *, storage: Any = None,
                 keep_result: bool = True) -> dict[str, Any]:
    """Selection, DSR, PBO, importances and the out-of-sample backtest of one fold."""
    import optuna

    from flushback.backtests.optimize import overfitting as of

    storage = storage or open_storage(cfg.storage_url, heartbeat=None)
    study = optuna.load_study(study_name=cfg.fold_study_name(fold), storage=storage)
    TS = optuna.trial.TrialState
    complete = study.get_trials(deepcopy=False, states=(TS.COMPLETE,))
    counts = {s.name: len(study.get_trials(deepcopy=False, states=(s,))) for s in TS}
    out: dict[str, Any] = {"fold": fold.to_dict(), "study_name": study.study_name,
                           "trial_counts": counts}
    best = _select(study, cfg)
    if best is None:
        out["error"] = "no completed trial"
        return out
    params = {**cfg.space.fixed, **best.params}
    out["best_trial"] = best.number
    out["best_params"] = jsonable(params)
    out["best_values"] = {o.label: v for o, v in zip(cfg.objectives, best.values, strict=True)}
    out["in_sample_metrics"] = _fb(best).get("train_metrics", {})
    # overfitting statistics over the stored per-trial training returns
    series = [decode_returns(_fb(t)["train_returns"]) for t in complete
              if "train_returns" in _fb(t)]
    lengths = {len(s) for s in series}
    if series and len(lengths) == 1:
        mat = np.column_stack(series)
        best_r = decode_returns(_fb(best)["train_returns"]) if "train_returns" in \
            _fb(best) else None
        if best_r is not None:
            out["dsr"] = _dsr_over_population(study, series, best_r)
        if mat.shape[1] >= 2:
            measure, note = _pbo_measure(cfg.objectives[0])
            try:
                # the first return of every series is the 0 of the starting bar: dropped
                p = of.probability_of_backtest_overfitting(
                    mat[1:], _pbo_splits(mat.shape[0] - 1), measure,
                    periods_per_year=ev.periods_per_year)
                out["pbo"] = {**p.to_dict(), **({"note": note} if note else {})}
            except ValueError as exc:
                out["pbo"] = {"error": str(exc)}
    # importances (optuna.importance, PED-ANOVA: optuna 5's default, named so that optuna 4,
    # whose default fANOVA needs scikit-learn, gives the same)
    try:
        # PED-ANOVA ranks by "low is good" when given a target
        sign = -1.0 if cfg.objectives[0].direction == "maximize" else 1.0
        target = (lambda t: sign * t.values[0]) if cfg.multi else None
        with warnings.catch_warnings():  # "low is good" / "too few trials" / experimental
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(
                study, target=target,
                evaluator=optuna.importance.PedAnovaImportanceEvaluator())
        out["param_importances"] = {k: float(v) for k, v in imp.items()}
    except Exception as exc:  # too few trials, a single distinct value, ...
        out["param_importances"] = {}
        out["param_importances_error"] = str(exc)[:200]
    if cfg.multi:
        out["pareto_front"] = [
            {"number": t.number, "values": dict(zip([o.label for o in cfg.objectives],
                                                    t.values, strict=True)),
             "params": jsonable(t.params)}
            for t in study.best_trials
        ]
    # the out-of-sample backtest of the chosen parameters (warm-up history, never scored);
    # a CPCV split's test groups each on their own, and stitched for the split's figures
    t0 = time.perf_counter()
    tests = [ev.evaluate(params, a, b, keep=keep_result) for a, b in fold.test_windows]
    oos = tests[0] if len(tests) == 1 else combine(tests, evaluator_cash(ev),
                                                   ev.periods_per_year)
    out["oos_seconds"] = time.perf_counter() - t0
    out["out_of_sample_metrics"] = jsonable_metrics(oos.metrics)
    n_oos = int(oos.metrics.get("n_trades") or 0)
    if cfg.min_trades and n_oos < cfg.min_trades:
        where = "test groups" if fold.combinatorial else "test window"
        out["warning"] = (f"fold {fold.index + 1}: the selected configuration trades {n_oos} "
                          f"times in its {where}, fewer than min_trades={cfg.min_trades}: "
                          "its out-of-sample figures rest on too few trades")
    out["_oos"] = oos  # removed before serialization
    out["_oos_windows"] = tests
    return out


def jsonable_metrics(m: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in m.items():
        if isinstance(v, (np.floating, np.integer)):
            v = v.item()
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        if isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
    return out


def trials_table(cfg: StudyConfig, fold: Fold, storage: Any, limit: int | None = None) -> list[
        dict[str, Any]]:
    import optuna

    study = optuna.load_study(study_name=cfg.fold_study_name(fold), storage=storage)
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({
            "number": t.number,
            "state": t.state.name,
            "values": list(t.values) if t.values is not None else None,
            "params": jsonable(t.params),
            "train_metrics": _fb(t).get("train_metrics"),
            "timings": _fb(t).get("timings"),
            "retried_from": t.system_attrs.get("failed_trial"),
        })
    return rows[:limit] if limit else rows
