"""Batched trial writes: what the bulk insert writes into optuna's tables reads back as the
trials optuna's own ``create_new_trial(template_trial=...)`` writes, on SQLite and a journal."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from flushback.backtests.optimize.batches import batch_size_for, write_trials
from flushback.backtests.optimize.config import copy_config
from flushback.backtests.optimize.storage import open_storage
from flushback.backtests.optimize.workers import run_study


def _templates():
    dists = {"x": FloatDistribution(0.0, 1.0), "n": IntDistribution(1, 20),
             "c": CategoricalDistribution(["a", "b"])}
    out = []
    for i in range(5):
        params = {"x": i / 10, "n": i + 1, "c": "ab"[i % 2]}
        kw = dict(params=params, distributions=dists, user_attrs={"flushback": {"i": i}},
                  system_attrs={"flushback_batched_by": "w"}, intermediate_values={0: i * 1.5})
        if i == 3:
            out.append(create_trial(state=TrialState.PRUNED, **kw))
        elif i == 4:
            out.append(create_trial(values=[math.inf, -2.0], **kw))
        else:
            out.append(create_trial(values=[float(i), -float(i)], **kw))
    return out


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_bulk_written_trials_read_back_as_optunas_own(tmp_path, kind):
    url = f"sqlite:///{tmp_path / 'a.db'}" if kind == "sqlite" else str(tmp_path / "a.log")
    ref_url = f"sqlite:///{tmp_path / 'r.db'}" if kind == "sqlite" else str(tmp_path / "r.log")
    got, want = [], []
    for u, out in ((url, got), (ref_url, want)):
        storage = open_storage(u, heartbeat=None)
        study = optuna.create_study(storage=storage, study_name="s",
                                    directions=["maximize", "minimize"])
        study.add_trial(create_trial(values=[0.5, 0.5], params={"x": 0.5},
                                     distributions={"x": FloatDistribution(0.0, 1.0)}))
        if out is got:
            write_trials(storage, storage.get_study_id_from_name("s"), _templates())
        else:
            for t in _templates():
                storage.create_new_trial(storage.get_study_id_from_name("s"), template_trial=t)
        out.extend(optuna.load_study(study_name="s", storage=open_storage(
            u, heartbeat=None)).trials)
    assert [t.number for t in got] == list(range(6))
    for a, b in zip(got, want, strict=True):
        assert (a.number, a.state, a.values, a.params, a.distributions, a.user_attrs,
                a.system_attrs, a.intermediate_values) == (
            b.number, b.state, b.values, b.params, b.distributions, b.user_attrs,
            b.system_attrs, b.intermediate_values)


def test_batch_size_follows_the_trial_time():
    assert batch_size_for(0.3, 1.0, 256) == 3  # slow trials: written every ~second
    assert batch_size_for(0.001, 1.0, 256) == 256  # fast ones: capped
    assert batch_size_for(5.0, 1.0, 256) == 1
    assert batch_size_for(float("nan"), 1.0, 64) == 64


def test_workers_reserve_shrinking_shares_of_what_is_left():
    from flushback.backtests.optimize.batches import fair_share

    assert fair_share(200, 1) == 200  # alone: the batch size decides
    assert fair_share(200, 2) == 50 and fair_share(199, 2) == 50
    assert fair_share(3, 2) == 1 and fair_share(1, 4) == 1 and fair_share(0, 2) == 0
    # two workers taking turns at a 200-trial budget with batches of up to 166 (slow TPE
    # trials): neither is left with more than a small last batch to run alone
    free, taken = 199, []
    while free:
        k = min(166, fair_share(free, 2))
        taken.append(k)
        free -= k
    assert max(taken) == 50 and taken[-1] == 1 and sum(taken) == 199


def test_two_workers_share_a_study(tmp_path):
    """Trials are slow enough here (5 ms) for a batch to want ~200 of the 120: each of the
    two workers still runs a real share of them."""
    import sys
    import time
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_optimize_toy import ToyEvaluator, toy_config

    class Slow(ToyEvaluator):
        def evaluate(self, params, start, end, **kw):
            time.sleep(0.005)
            return super().evaluate(params, start, end, **kw)

    cfg = toy_config(tmp_path, n_trials=120, seed=3, sampler="random", workers=2,
                     storage=str(tmp_path / "w.log"))
    run_study(cfg, evaluator=Slow())
    st = optuna.load_study(study_name="toy", storage=open_storage(cfg.storage_url))
    owners = [t.system_attrs.get("flushback_batched_by") for t in st.trials]
    counts = sorted(owners.count(o) for o in set(owners))
    assert len(st.trials) == 120 and len(counts) == 2
    # 30 % at least (the first one starts a little earlier); without the shrinking shares
    # the first worker's second batch takes most of the budget (here 91 of 120)
    assert counts[0] >= 36


def test_qmc_points_are_never_redrawn_across_resumes_and_workers(tmp_path):
    """QMC keeps its place in the Sobol sequence in the study: a study run to 10 trials and
    resumed to 24 draws the points of a straight 24-trial run; two worker processes never
    draw the same point twice."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_optimize_toy import ToyEvaluator, toy_config

    def params(cfg):
        st = optuna.load_study(study_name="toy", storage=open_storage(cfg.storage_url))
        return [tuple(sorted(t.params.items())) for t in st.trials
                if t.state.name == "COMPLETE"]

    straight = toy_config(tmp_path, n_trials=24, seed=3, sampler="qmc",
                          storage=str(tmp_path / "a.log"))
    run_study(straight, evaluator=ToyEvaluator())
    resumed = toy_config(tmp_path, n_trials=24, seed=3, sampler="qmc",
                         storage=str(tmp_path / "b.log"))
    run_study(copy_config(resumed, n_trials=10), evaluator=ToyEvaluator())
    run_study(resumed, evaluator=ToyEvaluator())
    assert params(resumed) == params(straight)
    assert len(set(params(straight))) == 24
    two = toy_config(tmp_path, n_trials=40, seed=3, sampler="qmc", workers=2,
                     storage=str(tmp_path / "c.log"))
    run_study(two)
    got = params(two)
    # the two workers divide the sequence's first 40 points between them: none twice, none
    # skipped (the first trial included: it is the sequence's first point, not a random one)
    one = toy_config(tmp_path, n_trials=40, seed=3, sampler="qmc",
                     storage=str(tmp_path / "d.log"))
    run_study(one, evaluator=ToyEvaluator())
    assert len(got) == 40 and set(got) == set(params(one))
    assert params(one)[:24] == params(straight)


@pytest.mark.parametrize("batch", [1, 256])
def test_a_batch_written_between_the_counts_is_not_run_again(tmp_path, monkeypatch, batch):
    """Another worker writes its batch and releases its reservation while this worker,
    under the gate, is between reading the trials and reading the reservations: this
    worker must still see those trials one way or the other and stop at the budget (it ran
    past it by that whole batch when it read the trials first). Both loops: batched, and
    the per-trial loop of ``--batch 1`` beside batched workers."""
    import socket
    import sys
    from pathlib import Path

    from flushback.backtests.optimize import batches, workers
    from flushback.backtests.optimize.locks import Lease, lease_dir

    sys.path.insert(0, str(Path(__file__).parent))
    from test_optimize_toy import ToyEvaluator, toy_config

    n, theirs = 10, 4
    cfg = copy_config(toy_config(tmp_path, n_trials=n, seed=1, storage=str(tmp_path / "s.log")),
                      batch=batch)
    storage = open_storage(cfg.storage_url)
    from flushback.backtests.optimize.config import ensure_study

    study = ensure_study(cfg, storage, cfg.folds[0])
    sid = storage.get_study_id_from_name(study.study_name)
    other = Lease(lease_dir(cfg.storage_url))  # a live worker of another command
    assert other.host == socket.gethostname()
    key = "flushback_reserved:" + other.name
    storage.set_study_system_attr(sid, key, {"n": theirs, "t": 1e12})
    dists = cfg.space.distributions()
    done_by_other = [create_trial(params={k: d.low if hasattr(d, "low") else d.choices[0]
                                          for k, d in dists.items()},
                                  distributions=dists, value=0.0,
                                  system_attrs={"flushback_batched_by": other.name})
                     for _ in range(theirs)]
    calls, fired = [], []

    def other_finishes() -> None:  # the other worker: write, then release
        if not fired:
            fired.append(True)
            write_trials(storage, sid, done_by_other)
            storage.set_study_system_attr(sid, key, {"n": 0, "t": 1e12})

    if batch > 1:
        real_sync = batches._RemoteView.sync

        def sync(self):  # the trials are read, then the other worker finishes...
            out = real_sync(self)
            calls.append(1)
            if len(calls) == 2:  # ...after this worker's first batch (of one trial: it
                other_finishes()  # measures the trial time), as it claims a large one
            return out

        monkeypatch.setattr(batches._RemoteView, "sync", sync)
    else:
        real_counts = workers.trial_counts

        def counts(st):  # the trials are counted, then the other worker finishes, once
            out = real_counts(st)  # this worker has run its share of the budget
            if out[0] >= n - theirs:
                other_finishes()
            return out

        monkeypatch.setattr(workers, "trial_counts", counts)
    try:
        run_study(cfg, evaluator=ToyEvaluator())
    finally:
        other.close()
    trials = optuna.load_study(study_name=study.study_name,
                               storage=open_storage(cfg.storage_url)).trials
    assert fired and sum(t.state.name == "COMPLETE" for t in trials) == n


def test_levels_are_prepared_for_long_studies_only(tmp_path):
    """``prepare_levels`` asks the evaluator for at most a quarter of the trial budget per
    worker (and never more than PREPARED_LEVELS), on each fold's training windows until the
    limit is spent; an evaluator that fails to prepare leaves it to the trials."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_optimize_toy import ToyEvaluator, toy_config

    from flushback.backtests.optimize.workers import PREPARED_LEVELS, prepare_levels

    class Preparing(ToyEvaluator):
        def __init__(self, per_window=30, fail=False):
            super().__init__()
            self.asked, self.per_window, self.fail = [], per_window, fail

        def prepare(self, space, windows, limit):
            self.asked.append((len(windows), limit))
            if self.fail:
                raise RuntimeError("no data")
            return min(self.per_window, limit)

    from flushback.backtests.optimize.folds import make_folds

    folds = make_folds(ToyEvaluator().index, walk_forward=3)
    ev = Preparing()
    assert prepare_levels(toy_config(tmp_path, n_trials=40, folds=folds), ev) == 10
    assert ev.asked == [(1, 10)]  # the first fold spent the limit of 40 // 4
    ev = Preparing()
    assert prepare_levels(toy_config(tmp_path, n_trials=40, workers=2, folds=folds), ev) == 20
    ev = Preparing()
    assert prepare_levels(toy_config(tmp_path, n_trials=2000, folds=folds), ev) == 90
    assert [limit for _, limit in ev.asked] == [PREPARED_LEVELS, PREPARED_LEVELS - 30,
                                                PREPARED_LEVELS - 60]
    assert prepare_levels(toy_config(tmp_path, n_trials=3, folds=folds), Preparing()) == 0
    assert prepare_levels(toy_config(tmp_path, n_trials=400, folds=folds),
                          Preparing(fail=True)) == 0
    assert prepare_levels(toy_config(tmp_path, n_trials=400, folds=folds), ToyEvaluator()) == 0
