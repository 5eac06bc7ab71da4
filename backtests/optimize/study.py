"""The whole ``flushback optimize`` command as a function (:func:`optimize_spec`, also
``fb.optimize``): build the study from a spec, run it (resuming it if it exists), analyse each
fold, re-check the winners on backtrader, write the run folder. The CLI is a thin layer over it.

:func:`spec_evaluator` is the evaluator factory worker processes import: its dotted path,
``flushback.backtests.optimize.study:spec_evaluator``, is part of every study's fingerprint
(and so of its default name and the run's id), so it stays here."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flushback.backtests.optimize.analysis import analyse_fold
from flushback.backtests.optimize.config import StudyConfig, jsonable, trial_counts
from flushback.backtests.optimize.evaluator import SpecEvaluator
from flushback.backtests.optimize.folds import make_cpcv_folds, make_folds
from flushback.backtests.optimize.objectives import parse_objectives
from flushback.backtests.optimize.samplers import make_pruner, make_sampler
from flushback.backtests.optimize.section import (
    build_result,
    cpcv_summary,
    optimization_section,
    validate_optimization_section,
)
from flushback.backtests.optimize.space import build_search_space
from flushback.backtests.optimize.storage import (
    default_storage_url,
    normalize_storage_url,
    open_storage,
    redact_url,
)
from flushback.backtests.optimize.workers import run_study
from flushback.data.errors import ConfigError, StoreError

#: a trial trading fewer times on its training window is infeasible (``--min-trades``)
DEFAULT_MIN_TRADES = 5


def spec_evaluator(**kwargs: Any) -> SpecEvaluator:
    return SpecEvaluator(**kwargs)


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a study: every finished trial is already in the storage; what
    was saved and where, so the same command can resume."""

    def __init__(self, storage: str, studies: list[str], finished: int | None,
                 total: int) -> None:
        super().__init__("optimization interrupted")
        self.storage, self.studies, self.finished, self.total = storage, studies, finished, total

    @staticmethod
    def caused(exc: BaseException | None) -> bool:
        """A KeyboardInterrupt, or an error raised while one was unwinding (e.g. inside a
        storage lock's cleanup)."""
        seen = 0
        while exc is not None and seen < 20:
            if isinstance(exc, KeyboardInterrupt):
                return True
            exc, seen = exc.__context__, seen + 1
        return False

    @classmethod
    def of(cls, cfg: StudyConfig) -> StudyInterrupted:
        import optuna

        names = [cfg.fold_study_name(f) for f in cfg.folds]
        finished: int | None = None
        try:
            storage = open_storage(cfg.storage_url, heartbeat=None)
            count = 0
            for name in names:
                study = optuna.load_study(study_name=name, storage=storage)
                count += min(trial_counts(study)[0], cfg.n_trials)
            finished = count
        except Exception:  # the storage is unreachable now: say so rather than guess
            finished = None
        return cls(redact_url(cfg.storage_url), names, finished, cfg.n_trials * len(names))


@dataclass
class OptimizationRun:
    run_dir: Path
    result: Any
    section: dict[str, Any]
    config: StudyConfig


def default_study_name(spec_name: str, cfg: StudyConfig) -> str:
    return f"{spec_name}-{cfg.fingerprint()[:10]}"


def optimize_spec(
    spec: str,
    *,
    n_trials: int = 100,
    objective: str | None = None,
    directions: str | None = None,
    sampler: str | None = None,
    walk_forward: int | None = None,
    anchored: bool = True,
    train_until: str | None = None,
    storage: str | None = None,
    study: str | None = None,
    workers: int = 1,
    seed: int | None = None,
    pruner: str = "none",
    prune_chunks: int | None = None,
    overrides: Sequence[str] = (),
    data_dir: str | None = None,
    heartbeat: int = 5,
    runs_dir: str | None = None,
    progress: bool = False,
    console: Any = None,
    engine: str | None = None,
    embargo: int | None = None,
    min_trades: int | None = None,
    batch: int = 256,
    cpcv: int | None = None,
    test_groups: int = 2,
) -> OptimizationRun:
    """Build the study from a spec, run it (resuming if it exists), analyse, write the run.

    ``engine``: the trials' engine (default: the fast engine when it runs the strategy type).
    The selected configurations and the stitched out-of-sample run are then re-run on
    backtrader (:mod:`flushback.backtests.optimize.engine_check`); a mismatch raises EngineMismatch.

    ``embargo``: bars between each training window and its test window (default: the longest
    holding period the search allows plus the signals' warm-up, see
    :meth:`SpecEvaluator.default_embargo`). ``min_trades`` (default
    :data:`DEFAULT_MIN_TRADES`): fewer trades on a training window make a trial infeasible;
    a selected configuration trading fewer times in its test window is reported as a warning.
    ``batch``: trials a worker writes to the storage at once, at most
    (:mod:`flushback.backtests.optimize.batches`; 1 writes each trial as it finishes).
    ``cpcv=N``: combinatorial purged k-fold instead of walk-forward: ``N`` groups, every
    choice of ``test_groups`` of them one split (its own study), purged by ``embargo`` bars on
    both sides of each test group; the report gives every backtest path
    (:func:`~flushback.backtests.optimize.folds.make_cpcv_folds`).
    """
    from flushback.backtests.optimize.engine_check import raise_on_mismatch, recheck_on_reference
    from flushback.backtests.run.folders import write_run

    if n_trials < 1:
        raise ConfigError("--trials must be >= 1")
    if workers < 1:
        raise ConfigError("--workers must be >= 1")
    if batch < 1:
        raise ConfigError("--batch must be >= 1")
    if cpcv is not None and (walk_forward is not None or train_until is not None):
        raise ConfigError("give one of --cpcv, --walk-forward and --train-until")
    objectives = parse_objectives(objective, directions)
    sampler = sampler or ("nsga2" if len(objectives) > 1 else "tpe")
    make_sampler(sampler, seed, len(objectives) > 1)  # unknown / unavailable: fail now
    make_pruner(pruner)
    ev_kwargs: dict[str, Any] = {"spec": spec, "overrides": list(overrides),
                                 "data_dir": data_dir, "engine": engine}
    ev = SpecEvaluator(**ev_kwargs)
    ev_kwargs["engine"] = ev.engine  # workers run the same engine
    space = build_search_space(ev.declared_space(), ev.search_table(),
                               default_keys=ev.default_search_keys())
    if not space.params:
        raise ConfigError("nothing to optimize: the search space is empty",
                          hint="list parameters in [search] params = [...] or give ranges")
    if embargo is None:
        embargo = ev.default_embargo(space)
    if embargo < 0:
        raise ConfigError("--embargo must be >= 0")
    min_trades = DEFAULT_MIN_TRADES if min_trades is None else int(min_trades)
    if min_trades < 0:
        raise ConfigError("--min-trades must be >= 0")
    if cpcv is not None:
        folds = make_cpcv_folds(ev.index, cpcv, test_groups, embargo_bars=embargo)
        mode = "combinatorial_purged_kfold"
    else:
        folds = make_folds(ev.index, walk_forward=walk_forward, anchored=anchored,
                           train_until=train_until, embargo_bars=embargo)
        mode = ("walk_forward_anchored" if anchored else "walk_forward_rolling") \
            if walk_forward else ("train_until" if train_until else "holdout_30pct")
    if prune_chunks is None:
        prune_chunks = 3 if pruner != "none" else 1
    cfg = StudyConfig(
        evaluator_factory="flushback.backtests.optimize.study:spec_evaluator",
        evaluator_kwargs=ev_kwargs,
        objectives=objectives, space=space, folds=tuple(folds), n_trials=int(n_trials),
        storage_url=normalize_storage_url(storage) if storage else default_storage_url(),
        study_name=study or "pending",
        sampler=sampler, seed=seed, pruner=pruner, prune_chunks=int(prune_chunks),
        heartbeat=int(heartbeat), workers=int(workers), min_trades=min_trades,
        batch=int(batch),
    )
    # the study's identity must not depend on where the spec or the data sit on disk:
    # fingerprint the spec's content instead of its path
    ident = dataclasses.replace(cfg, evaluator_kwargs={"spec": ev.spec.to_dict(),
                                                       "overrides": list(overrides)})
    cfg = dataclasses.replace(cfg, fingerprint_override=ident.fingerprint())
    if study is None:
        cfg = dataclasses.replace(cfg, study_name=default_study_name(ev.spec.name, cfg))
    t0 = time.perf_counter()
    try:
        run_study(cfg, evaluator=ev, progress=progress, console=console)
    except BaseException as exc:
        if not StudyInterrupted.caused(exc):
            raise
        raise StudyInterrupted.of(cfg) from None
    wall = time.perf_counter() - t0
    store = open_storage(cfg.storage_url, heartbeat=None)
    folds_out = [analyse_fold(cfg, ev, f, storage=store) for f in cfg.folds]
    missing = [f["study_name"] for f in folds_out if "error" in f]
    if missing:
        raise StoreError(f"no completed trial in {', '.join(missing)}",
                         hint="every trial failed or traded fewer than --min-trades "
                         f"({min_trades}) times: run `flushback backtest` on the spec, or "
                         "lower --min-trades")
    result = build_result(cfg, ev, folds_out)
    check = recheck_on_reference(ev, cfg.folds, folds_out, result, ev.spec.cash)
    section = optimization_section(
        cfg, folds_out, result.metrics, mode=mode, storage=store, wall_seconds=wall,
        embargo_bars=int(embargo),
        cpcv=cpcv_summary(cfg, ev, folds_out) if cpcv is not None else None)
    section["engine_check"] = jsonable(check)
    section = validate_optimization_section(section)
    from flushback.backtests.run.spec import active_overrides

    run_dir = write_run(result, runs_dir=runs_dir,
                        sections={"kind": "optimization", "optimization": section,
                                  "overrides": active_overrides(overrides)})
    raise_on_mismatch(check, where=str(run_dir))
    return OptimizationRun(run_dir=run_dir, result=result, section=section, config=cfg)
