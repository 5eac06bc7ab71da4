"""The optimization's result and its report section: the out-of-sample test windows stitched
into one run (:func:`stitch_out_of_sample`, :func:`build_result`; never in-sample) and
``report.json["optimization"]`` (:func:`optimization_section`, checked by
:func:`validate_optimization_section`; documented in docs/optimize.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from flushback.backtests.optimize.analysis import jsonable_metrics, trials_table
from flushback.backtests.optimize.config import StudyConfig, jsonable
from flushback.backtests.optimize.evaluator import SpecEvaluator
from flushback.backtests.optimize.storage import redact_url
from flushback.backtests.run.timefmt import iso_z
from flushback.data.errors import ConfigError


def stitch_out_of_sample(results: Sequence[Any], cash: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Chain the test-window backtests: each fold's account is rescaled to start where the
    previous fold's ended (returns compound; nothing is re-run). Returns (equity, trades)."""
    parts, trades = [], []
    level, blevel = float(cash), float(cash)
    tid = 0
    for res in results:
        eq = res.equity
        scale = level / cash
        bscale = blevel / cash
        part = eq.copy()
        for col in ("equity", "cash", "position"):
            if col in part:
                part[col] = part[col] * scale
        if "benchmark_equity" in part:
            part["benchmark_equity"] = part["benchmark_equity"] * bscale
        parts.append(part)
        level = float(part["equity"].iloc[-1])
        if "benchmark_equity" in part:
            blevel = float(part["benchmark_equity"].iloc[-1])
        t = res.trades.copy()
        if len(t):
            for col in ("size", "entry_fee", "exit_fee", "pnl"):
                if col in t:
                    t[col] = t[col] * scale
            if "trade_id" in t:
                t["trade_id"] = np.arange(tid + 1, tid + 1 + len(t))
            tid += len(t)
            trades.append(t)
    equity = pd.concat(parts)
    all_trades = pd.concat(trades, ignore_index=True) if trades else results[-1].trades.iloc[0:0]
    return equity, all_trades


def build_result(cfg: StudyConfig, ev: SpecEvaluator, folds_out: Sequence[dict[str, Any]]) -> Any:
    """The run of the optimization: the stitched out-of-sample backtest (never in-sample)."""
    from flushback.backtests.run.metrics import compute_metrics
    from flushback.backtests.run.runner import compute_run_id

    oos = [f["_oos"].result for f in folds_out]
    equity, trades = stitch_out_of_sample(oos, ev.spec.cash)
    ppy = ev.periods_per_year
    metrics = compute_metrics(equity["equity"], trades, ppy, position=equity.get("position"))
    bmetrics = compute_metrics(equity["benchmark_equity"], None, ppy)
    start, end = cfg.folds[0].test_start, cfg.folds[-1].test_end
    frame = ev.prepared.frame.loc[(ev.prepared.frame.index >= start)
                                  & (ev.prepared.frame.index <= end)]
    frame.attrs = dict(ev.prepared.frame.attrs)
    signals = pd.concat([r.signals for r in oos])
    last = oos[-1]
    config = dict(last.config)
    config["window"] = {"start": iso_z(start), "end": iso_z(end)}
    config["optimization"] = {"fingerprint": cfg.fingerprint(),
                              "chosen_params": [f.get("best_params") for f in folds_out]}
    run_id = compute_run_id(config, ev.prepared.fingerprints)
    return dataclasses.replace(
        last, run_id=run_id, frame=frame, signals=signals, equity=equity, trades=trades,
        metrics=metrics, benchmark_metrics=bmetrics, config=config,
        benchmark_trades=None,
    )


def _section_models() -> tuple[Any, Any]:
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class FoldComparison(BaseModel):
        model_config = ConfigDict(extra="forbid")
        fold: int = Field(ge=1)
        train: tuple[str, str]
        test: tuple[str, str]
        in_sample: dict[str, float | int | None]
        out_of_sample: dict[str, float | int | None]
        dsr: float | None = Field(default=None, ge=0, le=1)
        pbo: float | None = Field(default=None, ge=0, le=1)

    class OptimizationSection(BaseModel):
        """``report.json["optimization"]`` (owned by this module; see docs/optimize.md)."""

        model_config = ConfigDict(extra="forbid")
        result_is_out_of_sample: Literal[True]
        note: str
        study: dict[str, Any]
        search_space: dict[str, Any]
        best_params: dict[str, Any]
        best_params_fold: int
        best_values_in_sample: dict[str, float] | None
        out_of_sample_metrics: dict[str, Any]
        is_vs_oos: list[FoldComparison] = Field(min_length=1)
        dsr: dict[str, Any] | None
        pbo: dict[str, Any] | None
        param_importances: dict[str, float] | None
        pareto_front: list[dict[str, Any]] | None
        folds: list[dict[str, Any]]
        fold_boundaries: list[dict[str, Any]]
        timings_mean_seconds: dict[str, float]
        trials: list[dict[str, Any]]
        trials_truncated: bool
        engine_check: dict[str, Any] | None = None
        warnings: list[str] | None = None

    return FoldComparison, OptimizationSection


def validate_optimization_section(section: Mapping[str, Any]) -> dict[str, Any]:
    """Check an optimization section against its model (ConfigError naming the problem)."""
    from pydantic import ValidationError

    _, model = _section_models()
    try:
        model.model_validate(dict(section))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"optimization section: {where}: {first['msg']}") from None
    return dict(section)


_IS_OOS_METRICS = ("sharpe", "sortino", "calmar", "cagr", "total_return", "max_drawdown",
                   "profit_factor", "n_trades", "exposure")


def optimization_section(cfg: StudyConfig, folds_out: Sequence[dict[str, Any]],
                         result_metrics: Mapping[str, Any], *, mode: str,
                         storage: Any, wall_seconds: float | None = None,
                         max_trials_listed: int = 2000,
                         embargo_bars: int = 0) -> dict[str, Any]:
    last = folds_out[-1]
    fold_rows = []
    is_vs_oos = []
    for f in folds_out:
        row = {k: v for k, v in f.items() if not k.startswith("_")}
        fold_rows.append(jsonable(row))
        ins, outs = f.get("in_sample_metrics", {}), f.get("out_of_sample_metrics", {})
        is_vs_oos.append({
            "fold": f["fold"]["index"] + 1,
            "train": [f["fold"]["train_start"], f["fold"]["train_end"]],
            "test": [f["fold"]["test_start"], f["fold"]["test_end"]],
            "in_sample": {k: ins.get(k) for k in _IS_OOS_METRICS},
            "out_of_sample": {k: outs.get(k) for k in _IS_OOS_METRICS},
            "dsr": (f.get("dsr") or {}).get("dsr"),
            "pbo": (f.get("pbo") or {}).get("pbo"),
        })
    trials = []
    for fold in cfg.folds:
        for t in trials_table(cfg, fold, storage):
            t["fold"] = fold.index + 1
            trials.append(t)
    timing_keys: dict[str, list[float]] = {}
    for t in trials:
        for k, v in (t.get("timings") or {}).items():
            timing_keys.setdefault(k, []).append(v)
    return jsonable({
        "result_is_out_of_sample": True,
        "note": ("metrics, equity and trades of this report are the stitched out-of-sample "
                 "test windows, each traded with the parameters chosen on its own training "
                 "window; in-sample figures appear only in the per-fold comparison"),
        "study": {
            "name": cfg.study_name,
            "fold_studies": [cfg.fold_study_name(f) for f in cfg.folds],
            "storage": redact_url(cfg.storage_url),
            "sampler": cfg.sampler,
            "seed": cfg.seed,
            "pruner": cfg.pruner,
            "prune_chunks": cfg.prune_chunks,
            "n_trials": cfg.n_trials,
            "workers": cfg.workers,
            "objectives": [o.label for o in cfg.objectives],
            "validation": mode,
            "n_folds": len(cfg.folds),
            "fingerprint": cfg.fingerprint(),
            "wall_seconds": wall_seconds,
            "min_trades": cfg.min_trades,
            "embargo_bars": embargo_bars,
        },
        "search_space": cfg.space.to_dict(),
        "best_params": last.get("best_params"),
        "best_params_fold": len(folds_out),
        "best_values_in_sample": last.get("best_values"),
        "out_of_sample_metrics": jsonable_metrics(result_metrics),
        "is_vs_oos": is_vs_oos,
        "dsr": last.get("dsr"),
        "pbo": last.get("pbo"),
        "param_importances": last.get("param_importances"),
        "pareto_front": last.get("pareto_front"),
        "folds": fold_rows,
        "fold_boundaries": [f.to_dict() for f in cfg.folds],
        "timings_mean_seconds": {k: float(np.mean(v)) for k, v in timing_keys.items()},
        "trials": trials[:max_trials_listed],
        "trials_truncated": len(trials) > max_trials_listed,
        "warnings": [f["warning"] for f in folds_out if f.get("warning")],
    })
