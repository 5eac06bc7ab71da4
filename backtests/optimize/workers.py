"""Workers: the loop that runs a study's trials, and the processes that run the loops.

Each worker (:func:`run_worker`) prepares the data once, then per trial: under the
:class:`~flushback.backtests.optimize.locks.Gate`, reap dead trials, count, ask; evaluate the
training window (reporting chunks to the pruner) and tell (:func:`score_trial`). By default
(``StudyConfig.batch`` > 1) the fold runs through :mod:`flushback.backtests.optimize.batches`
instead (the study held in memory, written in batches; the same guarantees).
:func:`run_study` runs ``workers`` such loops (one in this process, the rest spawned, dying
with their parent) with a progress display.

The finished-trial budget N counts COMPLETE and PRUNED trials (pruned = stopped early by the
pruner, or infeasible under a constraint); FAIL trials do not count and are retried."""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from flushback.backtests.optimize.batches import reserved_by_others, run_batched_fold
from flushback.backtests.optimize.config import StudyConfig, ensure_study, trial_counts
from flushback.backtests.optimize.direct import DirectTrial
from flushback.backtests.optimize.evaluator import Evaluator, encode_returns, load_evaluator
from flushback.backtests.optimize.folds import Fold, train_chunks
from flushback.backtests.optimize.locks import Gate, Lease, Periodic, lease_dir, reap_dead_trials
from flushback.backtests.optimize.objectives import objective_value
from flushback.backtests.optimize.optuna_compat import (
    heartbeat_enabled,
    tell_without_copy,
    trial_id,
    trial_params,
)
from flushback.backtests.optimize.progress import StudyProgress
from flushback.backtests.optimize.samplers import ReseededSampler, as_optuna_sampler, make_pruner
from flushback.backtests.optimize.stitch import score_windows
from flushback.backtests.optimize.storage import open_storage, release_connections
from flushback.data.errors import ConfigError, StoreError


@contextlib.contextmanager
def _heartbeat(storage: Any, tid: int, interval: float) -> Iterator[None]:
    """Record the trial's heartbeat now and every ``interval`` seconds (storages with
    heartbeats only)."""
    if not heartbeat_enabled(storage):
        yield
        return
    storage.record_heartbeat(tid)
    with Periodic(lambda: storage.record_heartbeat(tid), interval):
        yield


@dataclass
class TrialOutcome:
    number: int
    state: str
    values: list[float] | None
    seconds: float


def _fail_stale(study: Any) -> None:
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def run_worker(
    cfg: StudyConfig,
    *,
    evaluator: Evaluator | None = None,
    on_trial: Callable[[Fold, TrialOutcome], None] | None = None,
    poll: float = 0.5,
    max_consecutive_failures: int = 20,
) -> dict[str, int]:
    """Run trials until every fold's study has ``cfg.n_trials`` finished trials.

    Data and signals are prepared once (the evaluator); memory stays flat because nothing of
    a trial is kept in the process after ``tell``. Returns trials run per fold by this worker.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ev = evaluator or load_evaluator(cfg.evaluator_factory, cfg.evaluator_kwargs)
    storage = open_storage(cfg.storage_url, heartbeat=cfg.heartbeat)
    lease = Lease(lease_dir(cfg.storage_url))
    try:
        return _worker_folds(cfg, ev, storage, lease, on_trial, poll, max_consecutive_failures)
    finally:
        lease.close()


def _worker_folds(cfg: StudyConfig, ev: Evaluator, storage: Any, lease: Lease,
                  on_trial: Callable[[Fold, TrialOutcome], None] | None, poll: float,
                  max_consecutive_failures: int) -> dict[str, int]:
    ran: dict[str, int] = {}
    for fold in cfg.folds:
        name = cfg.fold_study_name(fold)
        study = ensure_study(cfg, storage, fold)
        reseeded = ReseededSampler(cfg.sampler, cfg.seed, fold.index, cfg.multi,
                                   cfg.space.distributions())
        study.sampler = as_optuna_sampler(reseeded)
        study.pruner = make_pruner(cfg.pruner if not cfg.multi else "none")
        gate = Gate(cfg.storage_url, name)
        sid = storage.get_study_id_from_name(study.study_name)
        ran[name] = 0
        failures = 0

        def step(fold: Fold = fold, study: Any = study, gate: Gate = gate,
                 reseeded: ReseededSampler = reseeded, sid: int = sid) -> TrialOutcome | None:
            """One trial through the storage (None: nothing left to start)."""
            _fail_stale(study)
            with gate.hold():
                reap_dead_trials(study, storage, lease)
                # batched workers of other commands (--batch > 1) hold reservations; read
                # them before the trials (a batch written in between counts twice, not never)
                reserved = reserved_by_others(storage, sid, lease, cfg.heartbeat)
                done, running = trial_counts(study)
                if not (done < cfg.n_trials and done + running + reserved < cfg.n_trials):
                    return None
                t0 = time.perf_counter()
                reseeded.n_done = done
                with warnings.catch_warnings():  # "heartbeat is for Study.optimize":
                    warnings.simplefilter("ignore", UserWarning)  # we beat it ourselves
                    trial = study.ask(cfg.space.distributions())
                trial.set_user_attr("flushback_owner", lease.name)
                t_sample = time.perf_counter() - t0
            outcome = _run_trial(cfg, ev, study, storage, fold, trial, t_sample)
            if on_trial is not None:
                on_trial(fold, outcome)
            return outcome

        try:
            if cfg.batch > 1:
                ran[name] = run_batched_fold(cfg, ev, storage, lease, fold, on_trial, poll,
                                             max_consecutive_failures,
                                             lambda step=step: step() is not None)
                continue
            while True:
                outcome = step()
                if outcome is None:
                    if trial_counts(study)[0] >= cfg.n_trials:
                        break
                    time.sleep(poll)  # others are running the last trials; wait for them
                    continue
                ran[name] += 1
                failures = failures + 1 if outcome.state == "FAIL" else 0
                if failures >= max_consecutive_failures:
                    raise StoreError(f"{failures} trials in a row failed in study '{name}'",
                                     hint="run `flushback backtest` on the spec to see the error")
        finally:
            gate.close()
    return ran


def _run_trial(cfg: StudyConfig, ev: Evaluator, study: Any, storage: Any, fold: Fold,
               trial: Any, t_sample: float) -> TrialOutcome:
    t_start = time.perf_counter()
    with _heartbeat(storage, trial_id(trial), max(1, cfg.heartbeat)):
        state, values = score_trial(cfg, ev, study, fold, trial, t_sample)
    return TrialOutcome(trial.number, state, values, time.perf_counter() - t_start)


def score_trial(cfg: StudyConfig, ev: Evaluator, study: Any, fold: Fold, trial: Any,
                 t_sample: float) -> tuple[str, list[float] | None]:
    """Evaluate an asked trial and tell the study (COMPLETE, PRUNED or FAIL): constraints,
    training chunks reported to the pruner, ``min_trades``, one ``flushback`` user attribute
    (training returns, metrics, timings). Shared by the per-trial and the batched loops."""
    import optuna

    TS = optuna.trial.TrialState
    t_start = time.perf_counter()
    params = {**cfg.space.fixed, **trial_params(trial)}
    if cfg.space.constraints:
        current = {**ev.current_values(), **params}
        bad = [c.expr for c in cfg.space.constraints if not c.check(current)]
        if bad:
            trial.set_user_attr("infeasible", bad)
            _tell(study, trial, state=TS.PRUNED)
            return "PRUNED", None
    try:
        prune = cfg.prune_chunks > 1 and not cfg.multi
        segments = fold.train_windows
        # a CPCV split's training set is several segments scored as one stitched account; a
        # pruner is told the stitched objective after each segment. A single training window
        # is cut into chunks for the pruner (the objective is the chunks' mean).
        steps: list[Any]
        if len(segments) > 1:
            steps = [segments[:i + 1] for i in range(len(segments))] if prune else [segments]
        else:
            steps = [[w] for w in train_chunks(ev.index, fold.train_start, fold.train_end,
                                               cfg.prune_chunks if not cfg.multi else 1)]
        stitched = len(segments) > 1
        per_chunk: list[list[float]] = []
        returns: list[np.ndarray] = []
        timings: dict[str, float] = {"sampling": t_sample}
        metrics: dict[str, Any] = {}
        n_trades = 0
        for step, windows in enumerate(steps):
            res = score_windows(ev, params, windows)
            for k, v in res.timings.items():
                timings[k] = timings.get(k, 0.0) + v
            value = [objective_value(res.metrics, o.metric) for o in cfg.objectives]
            metrics = res.metrics
            if stitched:  # each step scores the segments so far: the last one is the trial's
                per_chunk, returns = [value], [res.returns]
                n_trades = int(res.metrics.get("n_trades") or 0)
            else:
                per_chunk.append(value)
                returns.append(res.returns)
                n_trades += int(res.metrics.get("n_trades") or 0)
            if len(steps) > 1:
                trial.report(float(np.mean([v[0] for v in per_chunk])), step)
                if trial.should_prune():
                    trial.set_user_attr("pruned_after_chunks", step + 1)
                    _tell(study, trial, state=TS.PRUNED)
                    return "PRUNED", None
        values = [_mean([v[i] for v in per_chunk]) for i in range(len(cfg.objectives))]
        if cfg.min_trades and n_trades < cfg.min_trades:
            # a configuration that (almost) never trades cannot win by doing nothing
            trial.set_user_attr("infeasible", f"{n_trades} trades < min_trades "
                                f"{cfg.min_trades} on the training window")
            _tell(study, trial, state=TS.PRUNED)
            return "PRUNED", None
        timings["trial"] = time.perf_counter() - t_start
        # one user attribute (one storage write) per trial
        trial.set_user_attr("flushback", {
            "train_returns": encode_returns(np.concatenate(returns)),
            "train_metrics": _small_metrics(metrics) if stitched or len(steps) == 1
            else {"chunks": len(steps)},
            "timings": {k: round(v, 6) for k, v in timings.items()},
        })
        _tell(study, trial, values if cfg.multi else values[0])
        return "COMPLETE", values
    except ConfigError as exc:
        # parameters the engine rejects (an invalid combination): infeasible, not a crash
        trial.set_user_attr("infeasible", str(exc))
        _tell(study, trial, state=TS.PRUNED)
        return "PRUNED", None
    except Exception as exc:
        trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
        _tell(study, trial, state=TS.FAIL)
        return "FAIL", None


def _tell(study: Any, trial: Any, values: Any = None, state: Any = None) -> None:
    """Tell the study how the trial ended (a :class:`DirectTrial` keeps it for its batch)."""
    if isinstance(trial, DirectTrial):
        trial.tell(len(study.directions), values, state)
    else:
        tell_without_copy(study, trial, values, state)


def _mean(xs: list[float]) -> float:
    """``float(np.mean(xs))``; one value is itself (``+ 0.0``: numpy's sum starts at 0)."""
    return xs[0] + 0.0 if len(xs) == 1 else float(np.mean(xs))


_SMALL_METRICS = ("sharpe", "sortino", "calmar", "cagr", "total_return", "max_drawdown",
                  "profit_factor", "win_rate", "n_trades", "exposure", "volatility")


def _small_metrics(m: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k in _SMALL_METRICS:
        v = m.get(k)
        if isinstance(v, (int, float)) and (not isinstance(v, float) or math.isfinite(v)):
            out[k] = v
    return out


def _worker_entry(cfg: StudyConfig, parent: int,
                  evaluator: Evaluator | None = None) -> None:  # pragma: no cover - subprocess
    import signal

    # Ctrl-C reaches the whole process group: the parent reports it and stops the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    run_worker(cfg, evaluator=evaluator)


def _start_workers(cfg: StudyConfig, n: int, evaluator: Evaluator | None,
                   storage: Any) -> list[Any]:
    """Start ``n`` worker processes.

    On Linux, with the data already loaded in this process (``evaluator``), they are forked:
    each starts with the loaded frame, the compiled kernels and the warm signal caches, in
    milliseconds rather than the seconds a fresh interpreter needs to import, load and
    compile (for a short study that is the difference between two workers and one). This
    process's database connections are closed first (a forked child must not share them;
    they reopen on next use). Elsewhere, without an evaluator, or when this process runs
    other threads (a notebook kernel: a fork copies their locks in whatever state they are),
    they are spawned and load their own data."""
    import multiprocessing as mp
    import sys

    fork = (evaluator is not None and sys.platform.startswith("linux")
            and threading.active_count() == 1)
    if fork:
        warm = getattr(evaluator, "warm", None)
        if warm is not None and cfg.folds:
            with contextlib.suppress(Exception):  # a failing backtest fails in the trials
                warm(*cfg.folds[0].train_windows[0])
        release_connections(storage)
    ctx: Any = mp.get_context("fork" if fork else "spawn")
    procs = [ctx.Process(target=_worker_entry,
                         args=(cfg, os.getpid(), evaluator if fork else None), daemon=False)
             for _ in range(n)]
    for p in procs:
        p.start()
    return procs


def _die_with_parent(parent: int) -> None:
    """Exit when the parent dies (SIGKILLed ``flushback optimize`` must not leave workers)."""
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


#: signal levels built before a study's trials at most (:func:`prepare_levels`)
PREPARED_LEVELS = 128


def prepare_levels(cfg: StudyConfig, evaluator: Evaluator) -> int:
    """The signal levels the trials will reuse, built once here before they start (and
    before workers are forked from this process), when the study is long enough to meet
    most of them: at most :data:`PREPARED_LEVELS`, and a quarter of the trial budget per
    worker (each worker would build the levels its trials meet on its own; a short study
    builds only those)."""
    prepare = getattr(evaluator, "prepare", None)
    limit = min(PREPARED_LEVELS, cfg.n_trials * max(1, cfg.workers) // 4)
    if prepare is None or limit <= 0:
        return 0
    built = 0
    for fold in cfg.folds:
        if built >= limit:
            break
        try:
            built += int(prepare(cfg.space, fold.train_windows, limit - built))
        except Exception:  # a configuration that fails, fails in its trials (and says why)
            break
    return built


def run_study(
    cfg: StudyConfig,
    *,
    evaluator: Evaluator | None = None,
    progress: bool = False,
    console: Any = None,
) -> None:
    """Run ``cfg.workers`` workers until all fold studies have ``cfg.n_trials`` finished trials.

    With ``evaluator`` (the data loaded here) one worker runs in this process and the other
    ``workers - 1`` are processes started from it (see :func:`_start_workers`); without, all
    ``workers`` are spawned processes that prepare their own data.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(cfg.storage_url, heartbeat=cfg.heartbeat)
    for fold in cfg.folds:  # create the studies once, before the workers race to
        ensure_study(cfg, storage, fold)
    if evaluator is not None:
        prepare_levels(cfg, evaluator)
    if cfg.sampler in ("qmc", "qmc-tpe"):
        # optuna's QMC sampler imports scipy.stats (~0.4 s) at its first point: once here,
        # not once in every worker forked from this process
        import scipy.stats.qmc  # noqa: F401
    total = cfg.n_trials * len(cfg.folds)
    # progress=True: a rich bar (a terminal); "lines": one plain line per fold and every
    # ~5 % of the trials (piped or logged stderr, where a bar would print nothing)
    bar = StudyProgress(cfg, storage, total, console, plain=progress == "lines") \
        if progress else None
    try:
        if cfg.workers <= 1:
            if bar is not None:
                bar.start()
            run_worker(cfg, evaluator=evaluator,
                       on_trial=(lambda f, o: bar.refresh()) if bar is not None else None)
        else:
            here = evaluator is not None
            procs = _start_workers(cfg, cfg.workers - 1 if here else cfg.workers, evaluator,
                                   storage)
            if bar is not None:
                bar.start()
            try:
                if here:
                    run_worker(cfg, evaluator=evaluator,
                               on_trial=(lambda f, o: bar.refresh()) if bar is not None
                               else None)
                while any(p.is_alive() for p in procs):
                    if bar is not None:
                        bar.refresh()
                    time.sleep(0.5)
            finally:
                for p in procs:
                    p.join(timeout=0.1)
                    if p.is_alive():
                        p.terminate()
                for p in procs:  # gone before anyone counts the saved trials
                    p.join(timeout=5)
            bad = [p.exitcode for p in procs if p.exitcode not in (0, None)]
            if bad:
                raise StoreError(f"{len(bad)} of {cfg.workers} worker processes exited with "
                                 f"codes {bad}", hint="rerun the same command to resume")
    finally:
        if bar is not None:
            bar.refresh(force=True)
            bar.stop()
