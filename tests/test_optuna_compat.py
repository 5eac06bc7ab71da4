"""Each accessor of flushback.backtests.optimize.optuna_compat against real optuna storages.

An optuna upgrade that renames or reshapes one of the private internals flushback relies on
fails the test named after its accessor. Where optuna has a public (slower) route to the same
answer, the accessor is checked against it; otherwise against what was written.
"""

from __future__ import annotations

import json
import warnings

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.search_space import intersection_search_space
from optuna.trial import TrialState, create_trial

from flushback.backtests.optimize.optuna_compat import (
    block_qmc_sampler,
    carry_search_space_cache,
    finished_trials_in_ask,
    heartbeat_enabled,
    is_qmc_position,
    journal_bulk_insert,
    qmc_position_key,
    rdb_bulk_insert,
    rdb_heartbeat_kwargs,
    rdb_trials_since,
    tell_without_copy,
    trial_id,
)
from flushback.backtests.optimize.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
KINDS = ("memory", "sqlite", "journal")
DISTS = {"x": FloatDistribution(0.0, 1.0), "n": IntDistribution(1, 9)}


def _storage(kind: str, tmp_path, heartbeat: int | None = None):
    if kind == "memory":
        return optuna.storages.InMemoryStorage()
    if kind == "sqlite":
        return open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat=heartbeat)
    return open_storage(str(tmp_path / "s.log"))


def _study(storage, name: str = "s"):
    return optuna.create_study(storage=storage, study_name=name, directions=["maximize"])


@pytest.mark.parametrize("kind", KINDS)
def test_trial_id(kind, tmp_path):
    storage = _storage(kind, tmp_path)
    other = _study(storage, "other")  # ids and numbers differ once two studies share storage
    for _ in range(2):
        other.tell(other.ask(DISTS), 0.0)
    study = _study(storage)
    sid = storage.get_study_id_from_name("s")
    live = [study.ask(DISTS) for _ in range(3)]
    for t in live:
        # a live Trial: the public lookup by (study id, number) names the same row
        assert trial_id(t) == storage.get_trial_id_from_study_id_trial_number(sid, t.number)
        study.tell(t, float(t.number))
    frozen = study.get_trials(deepcopy=False)
    assert [trial_id(t) for t in frozen] == [trial_id(t) for t in live]
    for t in frozen:
        assert storage.get_trial(trial_id(t)).number == t.number
    assert {trial_id(t) for t in frozen}.isdisjoint(trial_id(t) for t in other.trials)


@pytest.mark.parametrize("kind", KINDS)
def test_heartbeat_enabled(kind, tmp_path):
    storage = _storage(kind, tmp_path, heartbeat=5)
    # only optuna's RDB storage records heartbeats, and only when opened with an interval
    assert heartbeat_enabled(storage) is (kind == "sqlite")
    if kind == "sqlite":
        assert heartbeat_enabled(open_storage(f"sqlite:///{tmp_path / 'h.db'}",
                                              heartbeat=None)) is False


class _Recorder(optuna.samplers.RandomSampler):
    """Records, at each stage of an ask, the finished trials the accessor and the public
    ``study.get_trials`` report."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.seen: list[tuple[list[int], list[int]]] = []

    def _record(self, study) -> None:
        states = (TrialState.COMPLETE, TrialState.PRUNED)
        self.seen.append(([t.number for t in finished_trials_in_ask(study, states)],
                          [t.number for t in study.get_trials(deepcopy=False, states=states)]))

    def before_trial(self, study, trial) -> None:
        self._record(study)
        super().before_trial(study, trial)

    def sample_independent(self, study, trial, name, dist):
        self._record(study)
        return super().sample_independent(study, trial, name, dist)


@pytest.mark.parametrize("kind", KINDS)
def test_finished_trials_in_ask(kind, tmp_path):
    study = _study(_storage(kind, tmp_path))
    rec = _Recorder()
    study.sampler = rec
    for i, state in enumerate([TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                               TrialState.COMPLETE]):
        t = study.ask(DISTS)
        study.tell(t, float(i) if state == TrialState.COMPLETE else None, state=state)
    study.ask(DISTS)  # a RUNNING trial: never counted
    assert rec.seen, "the sampler was never consulted"
    for cached, public in rec.seen:
        assert cached == public
    assert rec.seen[-1][0] == [0, 1, 3]


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "cmaes"])
def test_carry_search_space_cache(sampler, tmp_path):
    from flushback.backtests.optimize.samplers import make_sampler

    if sampler == "cmaes":
        pytest.importorskip("cmaes")
    study = _study(_storage("sqlite", tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = make_sampler(sampler, 1, False)
        study.sampler = old
        study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("n", 1, 9),
                       n_trials=4)
        old.infer_relative_search_space(study, study.trials[-1])  # builds the cache
        new = make_sampler(sampler, 2, False)
    assert carry_search_space_cache(old, new) is True
    # the carried cache answers what optuna's public function computes from the trials
    assert new._search_space.calculate(study) == intersection_search_space(
        study.get_trials(deepcopy=False), include_pruned=sampler == "tpe")
    # a sampler without one is left alone
    assert carry_search_space_cache(old, optuna.samplers.RandomSampler(seed=1)) is False


def _templates():
    out = []
    for i, state in enumerate([TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]):
        t = create_trial(state=state, values=[i / 4] if state == TrialState.COMPLETE else None,
                         params={"x": i / 10, "n": i + 1}, distributions=DISTS,
                         user_attrs={"flushback": {"k": [i, "a"]}},
                         system_attrs={"flushback_batched_by": "h:1:ab"},
                         intermediate_values={0: 0.5 * i} if i else None)
        out.append(t)
    return out


def _shape(t):
    return (t.number, t.state, t.values, t.params, t.user_attrs, t.system_attrs,
            t.intermediate_values, t.datetime_start, t.datetime_complete,
            json.dumps({k: str(v) for k, v in t.distributions.items()}, sort_keys=True))


def test_rdb_bulk_insert(tmp_path):
    got = open_storage(f"sqlite:///{tmp_path / 'bulk.db'}", heartbeat=None)
    want = open_storage(f"sqlite:///{tmp_path / 'ref.db'}", heartbeat=None)
    for storage in (got, want):
        study = _study(storage)
        study.tell(study.ask(DISTS), 1.0)  # numbering continues after existing trials
    templates = _templates()
    rdb_bulk_insert(got, got.get_study_id_from_name("s"), templates)
    for t in templates:
        want.create_new_trial(want.get_study_id_from_name("s"), template_trial=t)
    a = optuna.load_study(study_name="s", storage=got).get_trials()
    b = optuna.load_study(study_name="s", storage=want).get_trials()
    assert [t.number for t in a] == [0, 1, 2, 3]
    assert [_shape(t) for t in a[1:]] == [_shape(t) for t in b[1:]]


def test_rdb_trials_since(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat=None)
    study = _study(storage)
    sid = storage.get_study_id_from_name("s")
    for i in range(5):
        study.tell(study.ask(DISTS), float(i))
    running = study.ask(DISTS)
    every = storage.get_all_trials(sid, deepcopy=False)
    ids = [trial_id(t) for t in every]
    assert [trial_id(t) for t in rdb_trials_since(storage, sid, set(), -1)] == ids
    assert [t.number for t in rdb_trials_since(storage, sid, set(), ids[2])] == [3, 4, 5]
    got = rdb_trials_since(storage, sid, {ids[0], trial_id(running)}, ids[4])
    assert sorted(t.number for t in got) == [0, 5]
    assert [_shape(t) for t in rdb_trials_since(storage, sid, set(), -1)] == \
        [_shape(t) for t in every]


def test_journal_without_fsync_reads_back_as_optunas_own(tmp_path):
    """The journal backend flushback writes (optuna's file backend, appends without fsync,
    under optuna's symlink lock) produces a file optuna's stock backend reads identically."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    path = tmp_path / "j.log"
    study = _study(open_storage(str(path)))
    for i in range(3):
        study.tell(study.ask(DISTS), float(i))
    stock = optuna.load_study(study_name="s",
                              storage=JournalStorage(JournalFileBackend(str(path))))
    assert [_shape(t) for t in stock.get_trials()] == [_shape(t) for t in study.get_trials()]
    assert not list(tmp_path.glob("*.lock"))  # the lock is released after every append


@pytest.mark.parametrize("kind", KINDS)
def test_is_qmc_position(kind, tmp_path):
    storage = _storage(kind, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(storage=storage, study_name="s",
                                    sampler=optuna.samplers.QMCSampler(seed=1))
    sid = storage.get_study_id_from_name("s")
    storage.set_study_system_attr(sid, "flushback_reserved:h:1:ab", {"n": 0, "t": 0.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(5):
            t = study.ask(DISTS)
            study.tell(t, 0.0)
    attrs = storage.get_study_system_attrs(sid)
    positions = {k: v for k, v in attrs.items() if is_qmc_position(k)}
    # one sequence; the first trial is sampled independently (QMC learns the search space
    # from finished trials), the next four take sample ids 0..3
    assert list(positions.values()) == [3], attrs
    assert not is_qmc_position("flushback_reserved:h:1:ab")


QMC_SPACE = {
    "x": FloatDistribution(-2.0, 3.0),
    "lr": FloatDistribution(1e-4, 1.0, log=True),
    "q": FloatDistribution(0.0, 1.0, step=0.05),
    "n": IntDistribution(2, 120),
    "k": IntDistribution(1, 64, log=True),
    "mode": optuna.distributions.CategoricalDistribution(["close", "intrabar", "both"]),
}


def _points(sampler, n: int, storage=None) -> list[dict]:
    study = optuna.create_study(sampler=sampler, storage=storage)
    out = []
    for _ in range(n):
        t = study.ask(QMC_SPACE)
        out.append(dict(t.params))
        study.tell(t, 0.0)
    return out


@pytest.mark.parametrize("block", [1, 7, 256])
def test_block_qmc_sampler(block):
    """The block sampler draws optuna's QMC sequence: its trial i is optuna's trial i + 1
    (optuna draws its first trial at random, before the search space is known; the block
    sampler knows the space and starts the sequence at once), across block boundaries."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stock = _points(optuna.samplers.QMCSampler(seed=7, warn_independent_sampling=False),
                        301)
        ours = _points(block_qmc_sampler(7, QMC_SPACE, block=block), 300)
    # optuna < 5 samples categorical parameters at random, outside the sequence
    sequenced = set(QMC_SPACE) if int(optuna.__version__.split(".")[0]) >= 5 \
        else set(QMC_SPACE) - {"mode"}

    def seq(points):
        return [{k: v for k, v in p.items() if k in sequenced} for p in points]

    assert seq(ours) == seq(stock[1:])
    assert len({json.dumps(p, sort_keys=True) for p in seq(ours)}) == 300
    # without a declared space it behaves as optuna's (the first trial at random)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        undeclared = _points(block_qmc_sampler(7, None, block=block), 20)
    assert seq(undeclared[1:]) == seq(stock[1:20])


@pytest.mark.parametrize("k", [1, 2, 5, 300])
def test_block_qmc_points_are_sample_relatives(k):
    """``relative_points(k)`` gives the points (and leaves the place in the sequence) that
    ``k`` calls of ``sample_relative`` give, across block boundaries; on this optuna by its
    own computation (not by falling back to ``sample_relative``)."""
    def study():
        return optuna.create_study(storage=optuna.storages.InMemoryStorage())

    a, b = block_qmc_sampler(5, QMC_SPACE, block=7), block_qmc_sampler(5, QMC_SPACE, block=7)
    sa, sb = study(), study()
    space = a.infer_relative_search_space(sa, None)
    one_by_one = [a.sample_relative(sa, None, space) for _ in range(3 + k + 4)]
    got = b.relative_points(sb, space, 3) + b.relative_points(sb, space, k) + \
        b.relative_points(sb, space, 4)
    assert got == one_by_one
    assert [type(p["n"]) for p in got] == [type(p["n"]) for p in one_by_one]
    key = qmc_position_key(a)
    assert sb._storage.get_study_system_attrs(sb._study_id)[key] == \
        sa._storage.get_study_system_attrs(sa._study_id)[key]
    if int(optuna.__version__.split(".")[0]) >= 5:
        assert b._fast_points  # optuna 5's own computation of a point
    # where the computation does not give sample_relative's first point of a batch, every
    # point is sample_relative's
    c, sc = block_qmc_sampler(5, QMC_SPACE, block=7), study()
    c._converter = lambda space: (lambda row: {"not": "a point"})
    assert c.relative_points(sc, space, 3 + k + 4) == one_by_one
    assert not c._fast_points


@pytest.mark.parametrize("kind", KINDS)
def test_qmc_position_key(kind, tmp_path):
    """The key is known before the first point is drawn and is the one optuna then writes."""
    sampler = block_qmc_sampler(3, QMC_SPACE)
    key = qmc_position_key(sampler)
    assert key is not None and is_qmc_position(key)
    storage = _storage(kind, tmp_path)
    _points(sampler, 5, storage)
    sid = storage.get_study_id_from_name(storage.get_all_studies()[0].study_name)
    attrs = storage.get_study_system_attrs(sid)
    assert attrs[key] == 4  # the last sample id of five points
    assert [k for k in attrs if is_qmc_position(k)] == [key]
    assert qmc_position_key(optuna.samplers.TPESampler()) is None


@pytest.mark.parametrize("kind", KINDS)
def test_tell_without_copy(kind, tmp_path):
    """Finishes trials as ``tell`` does (values, states, the sampler's after_trial)."""
    seen = []

    class Sampler(optuna.samplers.RandomSampler):
        def after_trial(self, study, trial, state, values):
            seen.append((trial.number, state, values))

    storage = _storage(kind, tmp_path)
    study = optuna.create_study(storage=storage, study_name="s", sampler=Sampler(seed=1))
    a, b, c = (study.ask(DISTS) for _ in range(3))
    tell_without_copy(study, a, 1.5)
    tell_without_copy(study, b, state=TrialState.PRUNED)
    tell_without_copy(study, c, state=TrialState.FAIL)
    got = [(t.state, t.value) for t in optuna.load_study(study_name="s",
                                                          storage=storage).trials]
    assert got == [(TrialState.COMPLETE, 1.5), (TrialState.PRUNED, None),
                   (TrialState.FAIL, None)]
    assert [(n, s) for n, s, _ in seen] == [(0, TrialState.COMPLETE), (1, TrialState.PRUNED),
                                            (2, TrialState.FAIL)]
    with pytest.raises((ValueError, RuntimeError)):  # a finished trial cannot be told again
        tell_without_copy(study, a, 2.0)


def test_journal_bulk_insert(tmp_path):
    """One append writes what create_new_trial writes trial by trial: a fresh reader of
    each file sees the same trials, numbered the same, beside trials of other writers."""
    templates = []
    for i in range(5):
        templates.append(create_trial(
            params={"x": 0.1 * i, "n": i + 1}, distributions=DISTS, value=float(i) / 3,
            user_attrs={"flushback": {"train_returns": "m1:3:AA==:", "timings": {"t": 0.5}}},
            system_attrs={"flushback_batched_by": "h:1:x"},
            state=TrialState.COMPLETE if i != 2 else TrialState.PRUNED))
        if i == 2:
            templates[-1] = create_trial(params={"x": 0.2, "n": 3}, distributions=DISTS,
                                         state=TrialState.PRUNED)
    files = {}
    for how in ("one_by_one", "bulk"):
        storage = open_storage(str(tmp_path / f"{how}.log"))
        study = _study(storage)
        sid = storage.get_study_id_from_name("s")
        other = dict(params={"x": 0.5, "n": 2}, distributions=DISTS)
        study.add_trial(create_trial(value=9.0, **other))  # a trial of another writer first
        if how == "bulk":
            journal_bulk_insert(storage, sid, templates)
        else:
            for t in templates:
                storage.create_new_trial(sid, template_trial=t)
        study.add_trial(create_trial(value=8.0, **other))  # and one after
        files[how] = tmp_path / f"{how}.log"

    def read(path):
        fresh = open_storage(str(path))
        return [(t.number, t.state, t.values, t.params, t.user_attrs, t.system_attrs,
                 t.datetime_start is not None, t.datetime_complete is not None)
                for t in fresh.get_all_trials(fresh.get_study_id_from_name("s"))]

    assert read(files["bulk"]) == read(files["one_by_one"])
    assert [r[0] for r in read(files["bulk"])] == list(range(7))
    # the same records: one per trial either way
    assert (files["bulk"].read_text().count("\n")
            == files["one_by_one"].read_text().count("\n"))


def test_rdb_heartbeat_kwargs(tmp_path):
    stale: list[int] = []

    def on_stale(study, trial) -> None:
        stale.append(trial.number)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'h.db'}",
                                             **rdb_heartbeat_kwargs(1, 2, on_stale))
    assert storage.get_heartbeat_interval() == 1 and heartbeat_enabled(storage)
    study = optuna.create_study(storage=storage, study_name="s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "heartbeat is for Study.optimize"
        dead = study.ask(DISTS)
        storage.record_heartbeat(trial_id(dead))
    storage.engine.dispose()
    import time

    time.sleep(3.5)  # past the grace period: the trial's process is taken for dead
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.fail_stale_trials(study)
    assert study.trials[0].state == TrialState.FAIL
    assert stale == [dead.number]  # the callback was handed the stale trial


def test_trial_params_are_the_asked_values_without_a_copy():
    import optuna

    from flushback.backtests.optimize.optuna_compat import trial_params

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1),
                       "n": optuna.distributions.IntDistribution(1, 5)})
    assert trial_params(trial) == trial.params and set(trial.params) == {"x", "n"}
    trial.suggest_categorical("c", ["a", "b"])
    assert trial_params(trial) == trial.params and "c" in trial_params(trial)


def test_cache_journal_distributions(tmp_path):
    """The journal storage's distribution (de)serialization, memoized, reads back the
    trials it wrote: every kind of distribution, equal values, each parsed once."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal import _storage as journal

    from flushback.backtests.optimize.optuna_compat import cache_journal_distributions

    cache_journal_distributions()
    cache_journal_distributions()  # idempotent
    assert journal.json_to_distribution._flushback_memo
    assert journal.distribution_to_json._flushback_memo
    space = {**QMC_SPACE, "f": FloatDistribution(0.0, 1.0, step=0.25),
             "g": FloatDistribution(1e-3, 1.0, log=True),
             "c": CategoricalDistribution([None, 1, 2.5, "x", True])}
    path = str(tmp_path / "j.log")
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(path)),
                                sampler=optuna.samplers.RandomSampler(seed=2))
    for _ in range(12):
        t = study.ask(space)
        study.tell(t, float(t.number))
    journal.json_to_distribution.cache_clear()
    back = optuna.load_study(study_name=study.study_name,
                             storage=JournalStorage(JournalFileBackend(path))).trials
    assert [(t.params, t.distributions, t.values) for t in back] == \
        [(t.params, t.distributions, t.values) for t in study.trials]
    info = journal.json_to_distribution.cache_info()
    assert info.misses == len(space) and info.hits > 0


def test_retry_stale_trial():
    """optuna's re-queuing callback under this optuna's name for it."""
    from flushback.backtests.optimize.optuna_compat import retry_stale_trial

    cb = retry_stale_trial(max_retry=3)
    assert type(cb).__name__ in ("RetryHeartbeatStaleTrialCallback", "RetryFailedTrialCallback")
    assert callable(cb)
