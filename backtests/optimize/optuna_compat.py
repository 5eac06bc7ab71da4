"""Every use of optuna's private internals, in one place, each behind a named accessor.

flushback drives optuna through its public API (``create_study``, ``ask``/``tell``, the
``BaseStorage`` methods, the samplers, ``optuna.importance``) except for the few things below,
where the public API has no equivalent or costs a storage round trip per trial. An optuna
upgrade that renames or reshapes one of them breaks the matching test in
``tests/test_optuna_compat.py`` (one test per accessor, run against real in-memory, SQLite and
journal-file storages), not an optimization halfway through.

Checked against optuna 4.0.0, 4.1.0, 4.2.1, 4.3.0, 4.4.0, 4.5.0, 4.6.0, 4.7.0, 4.8.0, 4.9.0 and
5.0.0 (``pyproject.toml`` allows ``>=4.0,<6``): run ``pytest tests/test_optuna_compat.py``
after changing the pin or upgrading optuna.

- :func:`trial_id`: a trial's storage id (``Trial._trial_id`` / ``FrozenTrial._trial_id``).
  Public route: ``storage.get_trial_id_from_study_id_trial_number``, one query per trial.
- :func:`heartbeat_enabled`: whether a storage records heartbeats
  (``optuna.storages._heartbeat.is_heartbeat_enabled``).
- :func:`finished_trials_in_ask`: the finished trials a sampler sees during one ``ask``,
  read once per ``ask`` (``Study._get_trials(use_cache=True)``); the public
  ``study.get_trials`` reads the storage at every call, four or more times per ``ask``.
- :func:`carry_search_space_cache`: hand a sampler's incremental intersection search space
  (``sampler._search_space``) to its reseeded successor, so it does not re-scan every trial.
- :func:`rdb_trials_since`: the RDB storage's incremental trial read
  (``RDBStorage._get_trials``): only trials created after an id, plus chosen ones (optuna 4.0's
  ``_get_trials`` has no such filter: every trial is read and filtered here).
- :func:`rdb_bulk_insert`: finished trials written as one transaction of bulk inserts into
  optuna's own tables (``optuna.storages._rdb.models``, ``_create_scoped_session``).
- :func:`tell_without_copy`: ``Study.tell`` without the deep copy of the finished trial it
  returns (``optuna.study._tell._tell_with_warning``; the copy of the trial's parameters,
  distributions and attributes costs about as much as a fast-engine trial's bookkeeping).
- :func:`journal_bulk_insert`: finished trials appended to a journal file in one write:
  the log records ``JournalStorage.create_new_trial`` writes (made by optuna's own method
  on a scratch storage that collects them) appended together through the storage's file
  backend (``JournalStorage._backend``), instead of one locked append and one read-back of
  the file per trial.
- :func:`is_qmc_position`: the study system attribute where optuna's ``QMCSampler`` keeps its
  place in the sequence (``"qmc:<hash>"`` from optuna 4.9, ``"sobol (scramble=True,
  seed=1)'s last sample id"`` before), which workers share so none redraws a point.
- :func:`block_qmc_sampler`: optuna's ``QMCSampler`` with two of its steps replaced: the
  Sobol/Halton engine (``QMCSampler._sample_qmc``, which builds a new engine and fast-forwards
  it at every ``ask``) draws a block of points at once and serves the next asks from it, and
  the search space is the study's declared one from the first trial on. Its place in the
  sequence is still kept by optuna (``QMCSampler._find_sample_id``); :func:`qmc_position_key`
  names that attribute before the first point is drawn.

- :func:`cache_journal_distributions`: optuna's journal storage parses each trial's
  distributions from JSON when it replays the file (``json_to_distribution``, five
  parameters: about as long as the rest of the trial's replay) and writes them the same way
  (``distribution_to_json``); every process sharing a study replays every trial. The two
  names in ``optuna.storages.journal._storage`` are replaced by memoized versions of
  themselves (the same values; a distribution is an immutable value in optuna).

And public APIs that changed name: :func:`rdb_heartbeat_kwargs` passes the stale-trial
callback as ``heartbeat_stale_trial_callback`` (optuna >= 4.9) or ``failed_trial_callback``
(earlier; deprecated in 4.9); :func:`retry_stale_trial` is
``RetryHeartbeatStaleTrialCallback`` (optuna >= 4.9) or ``RetryFailedTrialCallback``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "trial_id",
    "heartbeat_enabled",
    "finished_trials_in_ask",
    "carry_search_space_cache",
    "rdb_trials_since",
    "rdb_bulk_insert",
    "tell_without_copy",
    "trial_params",
    "journal_bulk_insert",
    "cache_journal_distributions",
    "is_qmc_position",
    "block_qmc_sampler",
    "qmc_position_key",
    "rdb_heartbeat_kwargs",
    "retry_stale_trial",
]


def trial_id(trial: Any) -> int:
    """The storage id of an ``optuna.trial.Trial`` or ``FrozenTrial`` (not its ``number``)."""
    return int(trial._trial_id)


def heartbeat_enabled(storage: Any) -> bool:
    """True when ``storage`` records heartbeats (an RDB storage opened with an interval)."""
    from optuna.storages._heartbeat import BaseHeartbeat

    return isinstance(storage, BaseHeartbeat) and bool(storage.get_heartbeat_interval())


def finished_trials_in_ask(study: Any, states: tuple[Any, ...]) -> list[Any]:
    """The study's trials in ``states``, as optuna's samplers see them inside one ``ask``
    (optuna's per-``ask`` cache: the storage is read once, every call agrees)."""
    return list(study._get_trials(deepcopy=False, states=states, use_cache=True))


def carry_search_space_cache(old: Any, new: Any) -> bool:
    """Give ``new`` the incremental intersection search space ``old`` has built (a pure
    function of the study's trials) when both samplers keep one; True if it was carried."""
    from optuna.search_space import IntersectionSearchSpace

    cached = getattr(old, "_search_space", None)
    if (isinstance(cached, IntersectionSearchSpace)
            and isinstance(getattr(new, "_search_space", None), type(cached))):
        new._search_space = cached
        return True
    return False


def rdb_trials_since(storage: Any, study_id: int, included_ids: Iterable[int],
                     greater_than: int) -> list[Any]:
    """Trials of an RDB storage's study whose id is above ``greater_than`` or in
    ``included_ids`` (frozen, not deep-copied)."""
    included = set(included_ids)
    params = inspect.signature(storage._get_trials).parameters
    if "trial_id_greater_than" in params:
        return list(storage._get_trials(study_id, None, included, greater_than))
    return [t for t in storage.get_all_trials(study_id, deepcopy=False)
            if trial_id(t) > greater_than or trial_id(t) in included]


def rdb_bulk_insert(storage: Any, study_id: int, trials: Sequence[Any]) -> None:
    """Insert finished trials (``FrozenTrial`` templates) into an RDB storage in one
    transaction: the rows ``create_new_trial(template_trial=...)`` writes, numbered the same
    way (the study's trial count at insert time, under the study's row lock)."""
    import json

    import sqlalchemy as sa
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models as M
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(storage.scoped_session) as session:
        M.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        n0 = session.query(sa.func.count(M.TrialModel.trial_id)).filter(
            M.TrialModel.study_id == study_id).scalar()
        rows = [M.TrialModel(study_id=study_id, number=n0 + i, state=t.state,
                             datetime_start=t.datetime_start,
                             datetime_complete=t.datetime_complete)
                for i, t in enumerate(trials)]
        session.add_all(rows)
        session.flush()  # trial ids
        tables: dict[Any, list[dict[str, Any]]] = {
            M.TrialValueModel: [], M.TrialParamModel: [], M.TrialUserAttributeModel: [],
            M.TrialSystemAttributeModel: [], M.TrialIntermediateValueModel: []}
        for row, t in zip(rows, trials, strict=True):
            tid = row.trial_id
            for objective, v in enumerate(t.values or ()):
                value, kind = M.TrialValueModel.value_to_stored_repr(v)
                tables[M.TrialValueModel].append(dict(trial_id=tid, objective=objective,
                                                      value=value, value_type=kind))
            for name, v in t.params.items():
                dist = t.distributions[name]
                tables[M.TrialParamModel].append(dict(
                    trial_id=tid, param_name=name, param_value=dist.to_internal_repr(v),
                    distribution_json=distribution_to_json(dist)))
            for model, attrs in ((M.TrialUserAttributeModel, t.user_attrs),
                                 (M.TrialSystemAttributeModel, t.system_attrs)):
                for key, v in attrs.items():
                    tables[model].append(dict(trial_id=tid, key=key, value_json=json.dumps(v)))
            for step, v in t.intermediate_values.items():
                ivalue, ikind = M.TrialIntermediateValueModel.intermediate_value_to_stored_repr(
                    v)
                tables[M.TrialIntermediateValueModel].append(dict(
                    trial_id=tid, step=step, intermediate_value=ivalue,
                    intermediate_value_type=ikind))
        for model, values in tables.items():
            if values:
                session.execute(sa.insert(model), values)


def trial_params(trial: Any) -> dict[str, Any]:
    """An asked trial's parameters so far, without the deep copy ``trial.params`` makes (the
    trial's own cached record; read, never modified)."""
    cached = getattr(trial, "_cached_frozen_trial", None)
    return cached.params if cached is not None else trial.params  # type: ignore[no-any-return]


def tell_without_copy(study: Any, trial: Any, values: Any = None, state: Any = None) -> None:
    """``study.tell(trial, values, state=state)``, without building the deep copy of the
    finished trial that ``tell`` returns."""
    from optuna.study._tell import _tell_with_warning

    _tell_with_warning(study=study, trial=trial, value_or_values=values, state=state,
                       skip_if_finished=False)


def journal_bulk_insert(storage: Any, study_id: int, trials: Sequence[Any]) -> None:
    """Append finished trials (``FrozenTrial`` templates) to a ``JournalStorage``'s file in
    one write: the records ``create_new_trial(template_trial=...)`` writes, in order (the
    journal numbers trials by their place in the file, as for one-by-one creation)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import BaseJournalBackend

    class Collect(BaseJournalBackend):
        def __init__(self) -> None:
            self.logs: list[dict[str, Any]] = []

        def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
            return []

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            self.logs.extend(logs)

    collect = Collect()
    scratch = JournalStorage(collect)
    # the scratch storage replays nothing (its reader returns no records), so the id of the
    # trial it "created" stays unset; create_new_trial reads it before returning
    scratch._replay_result._last_created_trial_id_by_this_process = -1
    for t in trials:
        scratch.create_new_trial(study_id, template_trial=t)
    if collect.logs:
        worker = storage._replay_result.worker_id  # written as this storage's own records
        storage._backend.append_logs([{**log, "worker_id": worker} for log in collect.logs])


def cache_journal_distributions() -> None:
    """Memoize the journal storage's distribution (de)serialization in this process (see the
    module docstring); idempotent."""
    import functools

    from optuna.storages.journal import _storage as journal

    for name in ("json_to_distribution", "distribution_to_json"):
        fn = getattr(journal, name, None)
        if fn is None or getattr(fn, "_flushback_memo", False):
            continue  # (an optuna that no longer uses it there: nothing to speed up)
        memo = functools.lru_cache(maxsize=4096)(fn)
        memo._flushback_memo = True  # type: ignore[attr-defined]
        setattr(journal, name, memo)


def is_qmc_position(key: str) -> bool:
    """Whether a study system attribute is where ``QMCSampler`` keeps its last sample id."""
    return key.startswith("qmc:") or key.endswith("'s last sample id")


#: QMC points drawn per engine construction by :func:`block_qmc_sampler`
QMC_BLOCK = 256


def _find_sample_id(sampler: Any, study: Any, search_space: Any) -> int:
    """``QMCSampler._find_sample_id``: the next sample id, recorded in the study (optuna
    4.9+ takes the search space, earlier versions do not)."""
    if _sample_id_takes_space(sampler):
        return int(sampler._find_sample_id(study, search_space))
    return int(sampler._find_sample_id(study))


def _sample_id_takes_space(sampler: Any) -> bool:
    cls = type(sampler)
    takes = _TAKES_SPACE.get(cls)
    if takes is None:  # inspect.signature is slow: once per sampler class
        takes = _TAKES_SPACE[cls] = len(
            inspect.signature(sampler._find_sample_id).parameters) >= 2
    return takes


_TAKES_SPACE: dict[type, bool] = {}


def block_qmc_sampler(seed: int | None, space: Mapping[str, Any] | None,
                      block: int = QMC_BLOCK) -> Any:
    """An ``optuna.samplers.QMCSampler`` (Sobol, scrambled) whose points are drawn ``block``
    at a time, for a study whose every trial asks the distributions ``space``.

    The points are the sequence optuna's own sampler draws (``tests/test_optuna_compat.py``
    compares them): point ``i`` of the sequence is the engine fast-forwarded by ``i``, and one
    engine drawing a block gives the same rows as a fresh engine per point. Two differences,
    both on purpose: optuna builds and fast-forwards a new engine at every ``ask`` and scans
    every finished trial for the search space (per trial costs that grow with the study);
    here both happen once per block. And optuna draws the very first trial at random (its
    search space is not known until a trial finished), so two workers starting together
    draw the same first point; here the first trial is the sequence's first point, and
    every point has a sample id the workers can divide among them.
    """
    import threading
    import warnings

    import optuna

    class BlockQMCSampler(optuna.samplers.QMCSampler):
        def __init__(self) -> None:
            with warnings.catch_warnings():  # "QMCSampler is experimental"
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                super().__init__(seed=seed, warn_independent_sampling=False)
            self._space = _qmc_space(self, space) if space else None
            self._rows: Any = None
            self._first = -1
            self._dims = -1
            self._rows_lock = threading.Lock()
            self._fast_points = True
            self._keys: dict[tuple[Any, ...], str] = {}

        def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
            if self._space is not None:
                return dict(self._space)
            return super().infer_relative_search_space(study, trial)

        def _sample_qmc(self, study, search_space):  # type: ignore[no-untyped-def]
            sample_id = _find_sample_id(self, study, search_space)
            return self._row(sample_id, len(search_space))[None, :].copy()

        def relative_points(self, study, search_space, k):  # type: ignore[no-untyped-def]
            """The next ``k`` points, as ``k`` calls of ``sample_relative`` return them. The
            first is ``sample_relative``'s own; the others are computed as optuna 5's
            ``sample_relative`` computes a point (the search-space transform and the place
            in the sequence are worked out once, not per point), after checking that this
            gives the first point exactly. Where it does not (another optuna), every point
            is ``sample_relative``'s."""
            first = self.sample_relative(study, None, search_space)
            if k <= 1 or not self._fast_points:
                return [first] + [self.sample_relative(study, None, search_space)
                                  for _ in range(k - 1)]
            key = self._position_key(search_space)
            storage, sid = study._storage, study._study_id
            start = int(storage.get_study_system_attrs(sid)[key])
            convert = self._converter(search_space)
            if convert(self._row(start, len(search_space))) != first:
                self._fast_points = False
                return [first] + [self.sample_relative(study, None, search_space)
                                  for _ in range(k - 1)]
            d = len(search_space)
            out = [first] + [convert(self._row(start + j, d)) for j in range(1, k)]
            storage.set_study_system_attr(sid, key, start + k - 1)
            return out

        def _row(self, sample_id: int, d: int) -> Any:
            with self._rows_lock:
                rows, first = self._rows, self._first
                if rows is None or self._dims != d or not first <= sample_id < first + len(rows):
                    rows, first = self._draw(d, sample_id), sample_id
                    self._rows, self._first, self._dims = rows, first, d
                return rows[sample_id - first]

        def _position_key(self, search_space):  # type: ignore[no-untyped-def]
            ident = tuple(sorted((n, str(d)) for n, d in search_space.items()))
            key = self._keys.get(ident)
            if key is None:
                scratch = optuna.create_study(storage=optuna.storages.InMemoryStorage())
                _find_sample_id(self, scratch, search_space)
                attrs = scratch._storage.get_study_system_attrs(scratch._study_id)
                key = self._keys[ident] = next(k for k in attrs if is_qmc_position(k))
            return key

        def _converter(self, search_space):  # type: ignore[no-untyped-def]
            from optuna._transform import _SearchSpaceTransform
            from optuna.distributions import CategoricalDistribution, FloatDistribution

            cats = {n: d for n, d in search_space.items()
                    if isinstance(d, CategoricalDistribution)}
            pseudo = {n: FloatDistribution(0, len(d.choices)) for n, d in cats.items()}
            trans = _SearchSpaceTransform(dict(search_space) | pseudo, transform_0_1=True)

            def convert(row):  # type: ignore[no-untyped-def]
                sample = trans.untransform(row)
                return {n: (cats[n].to_external_repr(int(v)) if n in cats else v)
                        for n, v in sample.items()}

            return convert

        def _draw(self, d: int, start: int) -> Any:
            from scipy.stats import qmc

            with warnings.catch_warnings():  # a block is not a power of two: Sobol warns
                warnings.simplefilter("ignore")
                if self._qmc_type == "halton":
                    engine = qmc.Halton(d, seed=self._seed, scramble=self._scramble)
                else:
                    engine = qmc.Sobol(d, seed=self._seed, scramble=self._scramble)
                if start > 0:  # Sobol refuses fast_forward(0)
                    engine.fast_forward(start)
                return engine.random(block)

    return BlockQMCSampler()


def _qmc_space(sampler: Any, space: Mapping[str, Any]) -> dict[str, Any]:
    """The relative search space optuna's QMC sampler infers once a trial that asked
    ``space`` has finished (optuna < 5 leaves categorical parameters out)."""
    import optuna

    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    params = {name: _any_value(dist) for name, dist in space.items()}
    study.add_trial(optuna.trial.create_trial(params=params, distributions=dict(space),
                                              value=0.0))
    base = optuna.samplers.QMCSampler.infer_relative_search_space
    return dict(base(sampler, study, study.trials[0]))


def _any_value(dist: Any) -> Any:
    choices = getattr(dist, "choices", None)
    return choices[0] if choices is not None else dist.low


def qmc_position_key(sampler: Any) -> str | None:
    """The study system attribute where ``sampler`` (from :func:`block_qmc_sampler`) keeps
    its place in the sequence, known before its first point is drawn (None: not a QMC sampler
    with a declared space)."""
    import optuna

    space = getattr(sampler, "_space", None)
    if not space or not isinstance(sampler, optuna.samplers.QMCSampler):
        return None
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    _find_sample_id(sampler, study, space)
    attrs = storage.get_study_system_attrs(storage.get_study_id_from_name(study.study_name))
    keys = [k for k in attrs if is_qmc_position(k)]
    return keys[0] if len(keys) == 1 else None


def rdb_heartbeat_kwargs(interval: int, grace_period: int,
                         on_stale: Callable[[Any, Any], None]) -> dict[str, Any]:
    """``RDBStorage`` keyword arguments for heartbeats whose stale trials go to ``on_stale``."""
    from optuna.storages import RDBStorage

    params = inspect.signature(RDBStorage.__init__).parameters
    name = ("heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params
            else "failed_trial_callback")
    return {"heartbeat_interval": interval, "grace_period": grace_period, name: on_stale}


def retry_stale_trial(max_retry: int) -> Callable[[Any, Any], None]:
    """optuna's callback that re-queues a stale trial with its parameters (``max_retry``
    times at most), under its current name."""
    import warnings

    import optuna

    cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
        optuna.storages.RetryFailedTrialCallback
    with warnings.catch_warnings():  # "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return cls(max_retry=max_retry)  # type: ignore[no-any-return]
