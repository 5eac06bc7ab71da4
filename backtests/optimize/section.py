"""The optimization's result and its report section: the out-of-sample test windows stitched
into one run (:func:`build_result`, with :mod:`.stitch`; never in-sample) and
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
from flushback.backtests.optimize.folds import Fold, cpcv_paths
from flushback.backtests.optimize.stitch import stitch_with_metrics
from flushback.backtests.optimize.storage import redact_url
from flushback.backtests.run.timefmt import iso_z
from flushback.data.errors import ConfigError


def build_result(cfg: StudyConfig, ev: SpecEvaluator, folds_out: Sequence[dict[str, Any]]) -> Any:
    """The run of the optimization, out-of-sample only: the walk-forward test windows stitched,
    or the first backtest path of a combinatorial purged k-fold (every path is in
    :func:`cpcv_summary`)."""
    if cfg.folds[0].combinatorial:
        (path, *_), _ = path_results(cfg.folds, folds_out)
        return _stitched_run(cfg, ev, [r for r, _ in path], [p for _, p in path])
    return _stitched_run(cfg, ev, [f["_oos"].result for f in folds_out],
                         [f.get("best_params") for f in folds_out])


def path_results(folds: Sequence[Fold], folds_out: Sequence[dict[str, Any]]) -> tuple[
        list[list[tuple[Any, Any]]], list[list[tuple[int, int]]]]:
    """Each CPCV backtest path as (test-group result, chosen parameters) in time order, and
    the paths' (group, fold index) pairs (:func:`.folds.cpcv_paths`)."""
    paths = cpcv_paths(folds)
    out = []
    for path in paths:
        row = []
        for group, fi in path:
            fold, f = folds[fi], folds_out[fi]
            row.append((f["_oos_windows"][fold.test_groups.index(group)].result,
                        f.get("best_params")))
        out.append(row)
    return out, paths


def _stitched_run(cfg: StudyConfig, ev: SpecEvaluator, oos: Sequence[Any],
                  chosen: Sequence[Any]) -> Any:
    from flushback.backtests.run.metrics import compute_metrics
    from flushback.backtests.run.runner import compute_run_id

    ppy = ev.periods_per_year
    equity, trades, metrics = stitch_with_metrics(oos, ev.spec.cash, ppy)
    bmetrics = compute_metrics(equity["benchmark_equity"], None, ppy)
    start, end = equity.index[0], equity.index[-1]
    frame = ev.prepared.frame.loc[(ev.prepared.frame.index >= start)
                                  & (ev.prepared.frame.index <= end)]
    frame.attrs = dict(ev.prepared.frame.attrs)
    signals = pd.concat([r.signals for r in oos])
    last = oos[-1]
    config = dict(last.config)
    config["window"] = {"start": iso_z(start), "end": iso_z(end)}
    config["optimization"] = {"fingerprint": cfg.fingerprint(), "chosen_params": list(chosen)}
    run_id = compute_run_id(config, ev.prepared.fingerprints)
    return dataclasses.replace(
        last, run_id=run_id, frame=frame, signals=signals, equity=equity, trades=trades,
        metrics=metrics, benchmark_metrics=bmetrics, config=config,
        benchmark_trades=None,
    )


#: the path statistics of :func:`cpcv_summary`
_PATH_METRICS = ("sharpe", "sortino", "total_return", "cagr", "max_drawdown", "n_trades",
                 "exposure")


def cpcv_summary(cfg: StudyConfig, ev: SpecEvaluator,
                 folds_out: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``optimization["cpcv"]``: the groups, every backtest path with its metrics (each path
    the test groups' backtests of the splits it draws on, stitched), the distribution of the
    paths' figures, and buy-and-hold over the same bars."""
    from flushback.backtests.run.metrics import compute_metrics

    folds = cfg.folds
    n_groups = max(g for f in folds for g in f.test_groups) + 1
    groups: dict[int, list[str]] = {}
    for f in folds:
        for g, (a, b) in zip(f.test_groups, f.test_segments, strict=True):
            groups[int(g)] = [iso_z(a), iso_z(b)]
    results, paths = path_results(cfg.folds, folds_out)
    ppy = ev.periods_per_year
    rows: list[dict[str, Any]] = []
    figures: list[dict[str, Any]] = []
    bench: dict[str, Any] = {}
    for j, (path, pairs) in enumerate(zip(results, paths, strict=True)):
        equity, _, m = stitch_with_metrics([r for r, _ in path], ev.spec.cash, ppy)
        if not bench:
            bench = compute_metrics(equity["benchmark_equity"], None, ppy)
        figures.append({name: m.get(name) for name in _PATH_METRICS})
        rows.append({"path": j + 1, "folds": [fi + 1 for _, fi in pairs],
                     "metrics": figures[-1]})
    summary: dict[str, Any] = {}
    for name in ("sharpe", "total_return", "cagr", "max_drawdown"):
        vals = np.array([_finite(f[name]) for f in figures], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        if len(vals):
            summary[name] = {"mean": float(vals.mean()),
                             "std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                             "min": float(vals.min()), "median": float(np.median(vals)),
                             "max": float(vals.max())}
    summary["share_positive_sharpe"] = float(np.mean([_finite(f["sharpe"]) > 0
                                                      for f in figures]))
    b_ret = _finite(bench.get("total_return"))
    if np.isfinite(b_ret):
        summary["share_beating_benchmark"] = float(np.mean(
            [_finite(f["total_return"]) > b_ret for f in figures]))
    k = len(folds[0].test_groups)
    return jsonable({
        "n_groups": n_groups, "n_test_groups": k, "n_splits": len(folds),
        "n_paths": len(rows),
        "groups": [{"group": g + 1, "start": groups[g][0], "end": groups[g][1]}
                   for g in sorted(groups)],
        "paths": rows,
        "summary": summary,
        "benchmark_metrics": {m: bench.get(m) for m in _PATH_METRICS
                              if m not in ("n_trades", "exposure")},
        "result_path": 1,
        "note": (f"{len(folds)} splits of {n_groups} groups, {k} tested per split; each group "
                 f"is tested by {len(rows)} splits, so {len(rows)} out-of-sample paths cover "
                 "the whole period, each group's test backtest used by exactly one path. The "
                 "report's equity, trades and headline metrics are path 1."),
    })


def _finite(v: Any) -> float:
    """A metric as a float (NaN when missing or not a number)."""
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else float("nan")


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
        # a CPCV split: its training segments and test groups
        train_windows: list[tuple[str, str]] | None = None
        test_windows: list[tuple[str, str]] | None = None
        test_groups: list[int] | None = None

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
        cpcv: dict[str, Any] | None = None

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
                         embargo_bars: int = 0,
                         cpcv: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``report.json["optimization"]``. ``best_params`` (and the top-level DSR, PBO and
    importances) are those of the fold trained on the most recent data: the last walk-forward
    fold, or the CPCV split testing the first groups (it trains on all the later ones)."""
    pick = 0 if cpcv else len(folds_out) - 1
    last = folds_out[pick]
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
            **({"train_windows": f["fold"]["train_segments"],
                "test_windows": f["fold"]["test_segments"],
                "test_groups": [g + 1 for g in f["fold"]["test_groups"]]}
               if "test_groups" in f["fold"] else {}),
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
                 "window; in-sample figures appear only in the per-fold comparison"
                 if not cpcv else
                 "metrics, equity and trades of this report are backtest path 1 of the "
                 "combinatorial purged k-fold: each group's test backtest traded with the "
                 "parameters its split chose on its own training segments; every path is in "
                 "optimization.cpcv; in-sample figures appear only in the per-split comparison"),
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
        "best_params_fold": pick + 1,
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
        **({"cpcv": dict(cpcv)} if cpcv else {}),
    })
