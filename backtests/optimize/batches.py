"""The batched worker loop: a fold's study held in memory, written to its storage in batches.

Per-trial storage round trips (optuna's ``ask`` reads every trial back, ``tell`` writes one
row per value and parameter) cost more than a fast-engine trial. Here a worker keeps an
in-memory mirror of the fold's study (an optuna ``InMemoryStorage``) and its sampler asks and
is told there; the shared storage (SQLite, PostgreSQL, a journal file) sees, per batch:

1. under the cross-process gate (the same advisory lock as the per-trial loop): the finished
   trials of every worker are mirrored in, and the batch is *reserved*: a study system
   attribute ``flushback_reserved:<worker lease>`` = ``{"n": k, "t": time}``, so that
   ``finished + reserved`` never exceeds the budget N, whatever the number of workers;
2. the ``k`` trials run in memory (ask, evaluate, tell), while a thread refreshes the
   reservation's time stamp (``--heartbeat``);
3. the finished trials are written as complete rows (one transaction for the whole batch on
   SQL storages), then the reservation is released.

``k`` adapts so that a batch is about ``flush_seconds`` of work (at most ``batch`` trials):
slow trials are written one by one, fast ones hundreds at a time.

Resumable after SIGKILL: trials not yet written are not in the storage, so they are neither
counted nor half-there; a dead worker's reservation is dropped (its lease file is unlocked,
or, on another host, its time stamp is stale). A seeded single-worker study resumed this way
continues exactly as the uninterrupted one: the sampler is reseeded from (seed, fold, finished
trials) and sees the same trials in the same order. QMC is the exception: a batch claims its
sample ids when it starts, so the ids of a batch killed before it was written are skipped
and the sequence goes on after them (N distinct points still, at most one batch of them
later in the sequence). A legacy RUNNING trial left by the per-trial loop is reaped and its
re-queued point run through that loop.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from flushback.backtests.optimize.config import ensure_study
from flushback.backtests.optimize.direct import direct_sampler
from flushback.backtests.optimize.locks import Gate, Periodic, reap_dead_trials
from flushback.backtests.optimize.optuna_compat import (
    is_qmc_position,
    journal_bulk_insert,
    rdb_bulk_insert,
    rdb_trials_since,
    trial_id,
)
from flushback.backtests.optimize.samplers import ReseededSampler, as_optuna_sampler, make_pruner
from flushback.data.errors import StoreError

__all__ = ["run_batched_fold", "write_trials", "fair_share", "batch_size_for"]

_RESERVED = "flushback_reserved:"
_BATCHED_BY = "flushback_batched_by"  # system attribute: the worker that ran it in memory


def write_trials(storage: Any, study_id: int, trials: Sequence[Any]) -> None:
    """Write finished trials (FrozenTrial templates) to the storage.

    On optuna's RDB storage the whole batch is one transaction of bulk inserts into optuna's
    own tables (the rows ``create_new_trial(template_trial=...)`` would write, numbered the
    same way: the study's trial count at insert time, under the study's row lock); optuna's
    per-row ORM path costs ~10 ms a trial, more than a fast-engine trial. On a journal file
    the batch is one append of the records ``create_new_trial`` writes. Elsewhere each trial
    is one ``create_new_trial``.
    """
    if not trials:
        return
    from optuna.storages import JournalStorage, RDBStorage

    if isinstance(storage, RDBStorage):
        rdb_bulk_insert(storage, study_id, trials)
        return
    if isinstance(storage, JournalStorage):
        journal_bulk_insert(storage, study_id, trials)
        return
    for t in trials:
        storage.create_new_trial(study_id, template_trial=t)


def _reservations(storage: Any, study_id: int, lease: Any, stale_after: float) -> int:
    """Trials reserved by live workers (other than this one); dead ones are released."""
    total = 0
    for key, value in storage.get_study_system_attrs(study_id).items():
        if not key.startswith(_RESERVED) or not isinstance(value, dict):
            continue
        n = int(value.get("n", 0))
        owner = key[len(_RESERVED):]
        if n <= 0 or owner == lease.name:
            continue
        dead = lease.owner_is_dead(owner)
        if dead is None:  # another host: trust its time stamp
            dead = time.time() - float(value.get("t", 0.0)) > stale_after
        if dead:
            storage.set_study_system_attr(study_id, key, {"n": 0, "t": time.time()})
        else:
            total += n
    return total


def reserved_by_others(storage: Any, study_id: int, lease: Any, heartbeat: int) -> int:
    """Trials of the budget that live batched workers other than ``lease``'s have reserved
    (read this before counting the trials: see :func:`run_batched_fold`)."""
    return _reservations(storage, study_id, lease, _stale_after(heartbeat))


def _stale_after(heartbeat: int) -> float:
    return max(30.0, 6.0 * max(1, heartbeat))


def _claim_sequence(storage: Any, study_id: int, lstore: Any, lid: int, k: int,
                    known: Sequence[str] = ()) -> None:
    """Under the gate: samplers that keep their place in a sequence as a study system
    attribute (optuna's QMC: see ``optuna_compat.is_qmc_position``) continue from the shared
    position, and this batch claims the next ``k`` ids, so that workers never draw the same
    point and a resumed study does not redraw written ones. ``known``: keys the sampler will
    use (claimed even before any worker has drawn a point)."""
    remote = {key: v for key, v in storage.get_study_system_attrs(study_id).items()
              if is_qmc_position(key)}
    mine = {key: v for key, v in lstore.get_study_system_attrs(lid).items()
            if is_qmc_position(key)}
    for key in set(remote) | set(mine) | set(known):
        start = max(int(remote.get(key, -1)), int(mine.get(key, -1)))
        lstore.set_study_system_attr(lid, key, start)
        storage.set_study_system_attr(study_id, key, start + k)


def _publish_sequence(storage: Any, study_id: int, lstore: Any, lid: int) -> None:
    """After a batch: sequence positions first used in this batch become shared."""
    remote = storage.get_study_system_attrs(study_id)
    for key, v in lstore.get_study_system_attrs(lid).items():
        if is_qmc_position(key) and int(remote.get(key, -1)) < int(v):
            storage.set_study_system_attr(study_id, key, int(v))


class _RemoteView:
    """The storage's trials of one study, read incrementally: each :meth:`sync` fetches only
    trials created since the last one, plus those that were not finished then (on optuna's
    RDB storage; a journal storage already holds its trials in memory)."""

    def __init__(self, storage: Any, study_id: int) -> None:
        from optuna.storages import RDBStorage

        self._storage, self._sid = storage, study_id
        self._rdb = isinstance(storage, RDBStorage)
        self._last_id = -1
        self._states: dict[int, Any] = {}  # trial id -> state

    def sync(self) -> list[Any]:
        """The trials that are new or changed state since the last call."""
        if self._rdb:
            open_ids = {i for i, st in self._states.items() if not st.is_finished()}
            fresh = rdb_trials_since(self._storage, self._sid, open_ids, self._last_id)
        else:
            fresh = self._storage.get_all_trials(self._sid, deepcopy=False)
        changed = [t for t in fresh if self._states.get(trial_id(t)) != t.state]
        for t in fresh:
            self._states[trial_id(t)] = t.state
            self._last_id = max(self._last_id, trial_id(t))
        return changed

    def _count(self, *names: str) -> int:
        return sum(1 for st in self._states.values() if st.name in names)

    @property
    def done(self) -> int:
        return self._count("COMPLETE", "PRUNED")

    @property
    def running(self) -> int:
        return self._count("RUNNING")

    @property
    def waiting(self) -> int:
        return self._count("WAITING")


class _Reservation:
    """Holds ``k`` trials of the budget for this worker and keeps the claim fresh."""

    def __init__(self, storage: Any, study_id: int, key: str, interval: float) -> None:
        self._storage, self._sid, self._key = storage, study_id, key
        self._beat = Periodic(self._stamp, interval)
        self.n = 0

    def claim(self, n: int) -> None:
        self.n = n
        self._stamp()

    def _stamp(self) -> None:
        self._storage.set_study_system_attr(self._sid, self._key,
                                            {"n": self.n, "t": time.time()})

    def __enter__(self) -> _Reservation:
        self._beat.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._beat.__exit__(*exc)

    def release(self) -> None:
        self.n = 0
        self._stamp()


def run_batched_fold(cfg: Any, ev: Any, storage: Any, lease: Any, fold: Any,
                     on_trial: Callable[[Any, Any], None] | None, poll: float,
                     max_consecutive_failures: int, legacy_step: Callable[[], bool]) -> int:
    """Run this worker's share of one fold's study in batches; returns trials run.

    ``legacy_step()`` runs one trial through the per-trial loop (used for a point re-queued
    after a legacy RUNNING trial died); it returns False when there was nothing to run."""
    with fewer_collections():
        return _batched_fold(cfg, ev, storage, lease, fold, on_trial, poll,
                             max_consecutive_failures, legacy_step)


def _batched_fold(cfg: Any, ev: Any, storage: Any, lease: Any, fold: Any,
                  on_trial: Callable[[Any, Any], None] | None, poll: float,
                  max_consecutive_failures: int, legacy_step: Callable[[], bool]) -> int:
    import optuna

    from flushback.backtests.optimize.workers import TrialOutcome, score_trial

    TS = optuna.trial.TrialState
    finished_states = (TS.COMPLETE, TS.PRUNED)
    remote = ensure_study(cfg, storage, fold)
    sid = storage.get_study_id_from_name(remote.study_name)
    name = cfg.fold_study_name(fold)
    lstore = optuna.storages.InMemoryStorage()
    local = optuna.create_study(storage=lstore,
                                directions=[o.direction for o in cfg.objectives])
    lid = lstore.get_study_id_from_name(local.study_name)
    dists = cfg.space.distributions()
    reseeded = ReseededSampler(cfg.sampler, cfg.seed, fold.index, cfg.multi, dists)
    sequence_keys = [k for k in (reseeded.sequence_key(),) if k]
    local.sampler = as_optuna_sampler(reseeded)
    local.pruner = make_pruner(cfg.pruner if not cfg.multi else "none")
    gate = Gate(cfg.storage_url, name)
    reservation = _Reservation(storage, sid, _RESERVED + lease.name, max(1, cfg.heartbeat))
    stale_after = _stale_after(cfg.heartbeat)
    view = _RemoteView(storage, sid)
    # the other workers' trials are copied into the local study for the samplers and
    # pruners that read the history; QMC draws by sample id (claimed above) and reads none
    mirror = not (cfg.sampler == "qmc" and (cfg.pruner == "none" or cfg.prune_chunks <= 1))
    mirrored: set[int] = set()
    # a QMC or random study without a pruner runs its trials without ask/tell (direct.py)
    direct = direct_sampler(cfg, reseeded, local) if cfg.direct else None
    n_local_done = n_local_trials = 0
    per_trial = None  # seconds, measured
    ran = failures = 0
    try:
        while True:
            k = 0
            with gate.hold():
                # the other workers' reservations before the trials: a batch written and
                # released between the two reads is then counted twice for a moment (as
                # reserved and as done), never zero times (which would let this worker run
                # past the budget)
                reserved = _reservations(storage, sid, lease, stale_after)
                changed = view.sync()
                if view.running and reap_dead_trials(remote, storage, lease):
                    changed += view.sync()  # failed, and maybe re-queued as WAITING
                for t in changed if mirror else ():
                    # this worker's own batched trials are in the local study already
                    if (t.state in finished_states and trial_id(t) not in mirrored
                            and t.system_attrs.get(_BATCHED_BY) != lease.name):
                        local.add_trial(t)
                        mirrored.add(trial_id(t))
                        n_local_done += 1
                waiting = view.waiting > 0
                done, running = view.done, view.running
                if not waiting:
                    free = cfg.n_trials - done - running - reserved
                    # the first batch (one trial) measures the trial time
                    want = 1 if per_trial is None else batch_size_for(
                        per_trial, cfg.flush_seconds, cfg.batch)
                    k = max(0, min(want, fair_share(free, cfg.workers)))
                    if k:
                        reservation.claim(k)
                        _claim_sequence(storage, sid, lstore, lid, k, sequence_keys)
            if waiting:
                if legacy_step():
                    ran += 1
                continue
            if k == 0:
                if done >= cfg.n_trials:
                    break
                time.sleep(poll)
                continue
            batch = []
            t_batch = time.perf_counter()
            drawn = 0.0  # the batch's points, drawn together: a share to each trial
            if direct is not None:
                direct.begin(k)
                drawn = (time.perf_counter() - t_batch) / k
            with reservation:
                for _ in range(k):
                    t0 = time.perf_counter()
                    if direct is not None:  # the same point and record, without ask/tell
                        trial = direct.ask(n_local_trials, lease.name, n_local_done)
                    else:
                        reseeded.n_done = n_local_done
                        trial = local.ask(dists)
                        trial.set_user_attr("flushback_owner", lease.name)
                    n_local_trials += 1
                    state, values = score_trial(cfg, ev, local, fold, trial,
                                                time.perf_counter() - t0 + drawn)
                    if direct is not None:
                        frozen = trial.frozen({_BATCHED_BY: lease.name})
                    else:
                        # the storage copies what it writes; only the system attributes change
                        frozen = copy.copy(lstore.get_trial(trial_id(trial)))
                        frozen.system_attrs = {**frozen.system_attrs, _BATCHED_BY: lease.name}
                    batch.append(frozen)
                    if state != "FAIL":
                        n_local_done += 1
                    ran += 1
                    failures = failures + 1 if state == "FAIL" else 0
                    if on_trial is not None:
                        on_trial(fold, TrialOutcome(frozen.number, state, values,
                                                        time.perf_counter() - t0))
                    if failures >= max_consecutive_failures:
                        break
            per_trial = (time.perf_counter() - t_batch) / max(len(batch), 1)
            write_trials(storage, sid, batch)
            _publish_sequence(storage, sid, lstore, lid)
            reservation.release()
            if failures >= max_consecutive_failures:
                raise StoreError(f"{failures} trials in a row failed in study '{name}'",
                                 hint="run `flushback backtest` on the spec to see the error")
    finally:
        with contextlib.suppress(Exception):
            reservation.release()
        gate.close()
    return ran


@contextlib.contextmanager
def fewer_collections(threshold: int = 20_000) -> Iterator[None]:
    """Python's cyclic garbage collector, tuned for the trial loop while it runs.

    A study allocates many small objects per trial that live until the end (the in-memory
    study's trials, their parameters and attributes); with the default thresholds the
    collector re-scans all of them every few hundred allocations, a cost that grows with the
    study (~10 % of a fast-engine trial by 2,000 trials). Objects alive before the loop (the
    loaded data, modules) are frozen out of the scans and young objects are collected after
    ``threshold`` allocations instead of 700. Reference cycles are still collected; the
    previous settings are restored on exit."""
    import gc

    old = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(old[0], threshold), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()


def fair_share(free: int, workers: int) -> int:
    """The most trials one of ``workers`` workers reserves of the ``free`` ones left: all of
    them alone; with others, half its share of what is left (guided scheduling: batches
    shrink as the budget runs out, so the workers finish together instead of one running
    a long last batch while the others wait)."""
    if workers <= 1:
        return free
    return min(free, max(1, math.ceil(free / (2 * workers))))


def batch_size_for(per_trial_seconds: float, flush_seconds: float, cap: int) -> int:
    """Trials per batch so that one batch is about ``flush_seconds`` of work."""
    if not math.isfinite(per_trial_seconds) or per_trial_seconds <= 0:
        return cap
    return max(1, min(cap, int(flush_seconds / per_trial_seconds)))
