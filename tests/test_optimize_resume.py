"""Resume, reproducibility and distribution of studies, in real subprocesses.

- the same seed in fresh processes gives the same trials;
- a study SIGKILLed mid-trial and re-run with the same command ends with exactly N complete
  trials, none lost, none run twice, the dead process's RUNNING trial failed and retried with
  the same parameters -- and the completed trials are exactly those of an uninterrupted run;
- W worker processes (one command with --workers, or several commands) sharing one study
  complete exactly N trials; against PostgreSQL when FLUSHBACK_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

DRIVER = """
import os, sys, warnings
warnings.simplefilter("ignore")
import test_optimize_toy as T
from flushback.backtests.optimize.workers import run_study
if __name__ == "__main__":  # worker processes are spawned: they re-import this file
    storage, n, seed, workers, study = sys.argv[1:6]
    cfg = T.toy_config(None, n_trials=int(n), seed=None if seed == "none" else int(seed),
                       storage=storage, study=study, workers=int(workers), heartbeat=1,
                       sampler=os.environ.get("FLUSHBACK_TEST_SAMPLER", "tpe"))
    # "here": the evaluator is built in this process (as `flushback optimize` does): one
    # worker runs here and the others are forked from it
    run_study(cfg, evaluator=T.ToyEvaluator() if sys.argv[6:] == ["here"] else None)
"""


def _driver(tmp_path: Path) -> Path:
    p = tmp_path / "driver.py"
    p.write_text(DRIVER)
    return p


def _env(sleep: float = 0.0, sampler: str = "tpe") -> dict[str, str]:
    env = dict(os.environ)
    env["FLUSHBACK_TOY_SLEEP"] = str(sleep)
    env["FLUSHBACK_TEST_SAMPLER"] = sampler
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return env


def _cmd(tmp_path, storage, n, seed, workers=1, study="toy", here=False):
    return [sys.executable, str(_driver(tmp_path)), str(storage), str(n), str(seed),
            str(workers), study, *(["here"] if here else [])]


def _trials(storage: str, study: str = "toy"):
    import optuna

    from flushback.backtests.optimize.storage import open_storage

    return optuna.load_study(study_name=study, storage=open_storage(storage,
                                                                   heartbeat=None)).trials


def _complete(trials):
    return [t for t in trials if t.state.name == "COMPLETE"]


def _signature(trials):
    return [(tuple(sorted(t.params.items())), round(t.value, 12)) for t in _complete(trials)]


def test_same_seed_in_fresh_processes_gives_same_trials(tmp_path):
    a, b, c = (str(tmp_path / f"{x}.log") for x in "abc")
    for storage, seed in ((a, 11), (b, 11), (c, 12)):
        subprocess.run(_cmd(tmp_path, storage, 15, seed), check=True, env=_env(), timeout=300)
    ta, tb, tc = _trials(a), _trials(b), _trials(c)
    assert len(_complete(ta)) == 15
    assert _signature(ta) == _signature(tb)
    assert _signature(ta) != _signature(tc)


def _wait_for_complete(storage: str, at_least: int, proc, timeout: float = 120) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError("the study finished before it could be killed")
        try:
            if len(_complete(_trials(storage))) >= at_least:
                return
        except Exception:  # the study may not exist yet
            pass
        time.sleep(0.05)
    raise AssertionError("timeout waiting for trials")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["journal", "sqlite"])
def test_sigkilled_study_resumes_to_exactly_n_trials(tmp_path, backend):
    n = 24
    if backend == "journal":
        ref, killed = str(tmp_path / "ref.log"), str(tmp_path / "killed.log")
    else:
        ref, killed = f"sqlite:///{tmp_path / 'ref.db'}", f"sqlite:///{tmp_path / 'killed.db'}"
    # uninterrupted reference run
    subprocess.run(_cmd(tmp_path, ref, n, 5), check=True, env=_env(0.02), timeout=300)
    # the same study, SIGKILLed while a trial is running (each trial sleeps 0.3 s)
    proc = subprocess.Popen(_cmd(tmp_path, killed, n, 5), env=_env(0.3))
    _wait_for_complete(killed, 6, proc)
    time.sleep(0.1)  # well inside the next trial's evaluation
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _trials(killed)
    # a trial was running (its 0.3 s evaluation) unless the kill hit the ms between trials
    had_running = any(t.state.name == "RUNNING" for t in before)
    n_before = len(_complete(before))
    assert n_before < n
    # the same command again
    subprocess.run(_cmd(tmp_path, killed, n, 5), check=True, env=_env(0.02),
                   timeout=300)
    after = _trials(killed)
    states = [t.state.name for t in after]
    assert states.count("COMPLETE") == n
    assert "RUNNING" not in states
    assert states.count("FAIL") == (1 if had_running else 0)
    if not had_running:
        assert _signature(after) == _signature(_trials(ref))
        return
    failed = next(t for t in after if t.state.name == "FAIL")
    retried = [t for t in _complete(after) if t.system_attrs.get("failed_trial") == failed.number]
    if len(failed.params) == 2:  # killed while evaluating (the usual case): re-run once
        assert len(retried) == 1 and retried[0].params == failed.params
    else:  # killed inside ask: sampled afresh instead (see the next test)
        assert retried == []
    # no completed trial lost or repeated: the completed trials are exactly the reference's
    assert _signature(after) == _signature(_trials(ref))
    # a further run of the same command has nothing left to do
    subprocess.run(_cmd(tmp_path, killed, n, 5), check=True, env=_env(), timeout=300)
    assert len(_trials(killed)) == len(after)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["journal", "sqlite"])
def test_sigkilled_qmc_study_resumes_to_exactly_n_trials(tmp_path, backend):
    """A QMC study (its trials run without optuna's ask/tell, written in batches) SIGKILLed
    mid-batch: the resumed command finishes with exactly N trials, none running or failed,
    no point twice, every point one of the sequence's and scored as the uninterrupted study
    scores it. (The killed batch's unwritten points were claimed: the sequence goes on after
    them, so the study holds at most a batch of later points instead.)"""
    n = 24
    if backend == "journal":
        ref, killed = str(tmp_path / "ref.log"), str(tmp_path / "killed.log")
    else:
        ref, killed = f"sqlite:///{tmp_path / 'ref.db'}", f"sqlite:///{tmp_path / 'killed.db'}"
    subprocess.run(_cmd(tmp_path, ref, n + 12, 5), check=True, env=_env(0.0, "qmc"),
                   timeout=300)
    proc = subprocess.Popen(_cmd(tmp_path, killed, n, 5), env=_env(0.3, "qmc"))
    _wait_for_complete(killed, 6, proc)
    time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(_complete(_trials(killed))) < n
    subprocess.run(_cmd(tmp_path, killed, n, 5), check=True, env=_env(0.0, "qmc"),
                   timeout=300)
    after = _trials(killed)
    assert [t.state.name for t in after] == ["COMPLETE"] * n
    sequence = dict(_signature(_trials(ref)))
    points = [p for p, _ in _signature(after)]
    assert len(set(points)) == n
    assert all(sequence.get(p) == v for p, v in _signature(after))
    assert all(t.user_attrs["flushback_owner"] for t in after)


@pytest.mark.slow
def test_sigkill_with_two_worker_processes_then_resume(tmp_path):
    n = 30
    storage = str(tmp_path / "w2.log")
    proc = subprocess.Popen(_cmd(tmp_path, storage, n, 3, workers=2), env=_env(0.2))
    _wait_for_complete(storage, 6, proc)
    os.kill(proc.pid, signal.SIGKILL)  # the workers die with their parent
    proc.wait()
    time.sleep(1.0)
    subprocess.run(_cmd(tmp_path, storage, n, 3, workers=2), check=True,
                   env=_env(0.01), timeout=300)
    trials = _trials(storage)
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == n
    assert "RUNNING" not in states
    owners = {t.user_attrs.get("flushback_owner") for t in _complete(trials)}
    assert len(owners) >= 2  # the killed run's workers and the resuming run's


@pytest.mark.slow
def test_two_commands_share_one_study_exactly_n(tmp_path):
    n = 24
    storage = str(tmp_path / "shared.log")
    procs = [subprocess.Popen(_cmd(tmp_path, storage, n, "none"), env=_env(0.3))
             for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0
    trials = _trials(storage)
    assert [t.state.name for t in trials].count("COMPLETE") == n
    assert len(trials) == n  # no surplus trial was even started
    assert len({t.user_attrs["flushback_owner"] for t in trials}) == 2


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["tpe", "qmc"])
def test_two_workers_against_one_postgresql_study_complete_exactly_n(tmp_path, postgres_url,
                                                                     sampler):
    """TPE (ask/tell in each worker's in-memory study) and QMC (trials without ask/tell):
    three processes of two commands share one PostgreSQL study."""
    url = postgres_url
    n = 30
    study = f"toy-{uuid.uuid4().hex[:8]}"
    seed = "none" if sampler == "tpe" else 7  # QMC: one scrambled sequence, shared
    # two independent commands (as on two machines), one of them with two worker processes
    procs = [
        subprocess.Popen(_cmd(tmp_path, url, n, seed, workers=1, study=study),
                         env=_env(0.3, sampler)),
        subprocess.Popen(_cmd(tmp_path, url, n, seed, workers=2, study=study, here=True),
                         env=_env(0.3, sampler)),
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0
    trials = _trials(url, study)
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == n
    assert len(trials) == n
    owners = {t.user_attrs["flushback_owner"] for t in trials}
    assert len(owners) >= 2  # the processes of both commands shared the study
    if sampler == "qmc":  # the workers divided the sequence: no point twice
        assert len({tuple(sorted(t.params.items())) for t in trials}) == n


@pytest.mark.slow
@pytest.mark.parametrize("here", [False, True])
def test_worker_processes_share_one_study_exactly_n(tmp_path, here):
    """Two worker processes of one command: spawned, or (the evaluator built in the
    command's process) one worker there and one forked from it."""
    n = 24
    storage = str(tmp_path / "w.log")
    subprocess.run(_cmd(tmp_path, storage, n, "none", workers=2, here=here), check=True,
                   env=_env(0.2), timeout=300)
    trials = _trials(storage)
    assert [t.state.name for t in trials].count("COMPLETE") == n
    assert len(trials) == n
    owners = {t.user_attrs["flushback_owner"] for t in trials}
    assert len(owners) == 2
    assert len({o.split(":")[1] for o in owners}) == 2  # two processes (pids) ran trials


@pytest.mark.parametrize("partial", [True, False])
def test_dead_trial_is_retried_only_when_fully_sampled(tmp_path, partial):
    """A process killed inside ``ask`` leaves some parameters unsampled: that trial is failed
    and the point is sampled again from the same state; a fully sampled one is re-queued.
    Either way the completed trials equal an uninterrupted run's."""
    import socket

    import optuna

    sys.path.insert(0, str(TESTS))
    from test_optimize_toy import ToyEvaluator, toy_config

    from flushback.backtests.optimize.config import copy_config
    from flushback.backtests.optimize.optuna_compat import trial_id
    from flushback.backtests.optimize.storage import open_storage
    from flushback.backtests.optimize.workers import run_study

    ref = toy_config(tmp_path, n_trials=12, seed=5, storage=str(tmp_path / "ref.log"))
    run_study(ref, evaluator=ToyEvaluator())
    cfg = toy_config(tmp_path, n_trials=12, seed=5, storage=str(tmp_path / "b.log"))
    run_study(copy_config(cfg, n_trials=5), evaluator=ToyEvaluator())
    storage = open_storage(cfg.storage_url)
    study = optuna.load_study(study_name=cfg.study_name, storage=storage)
    # what the dead process had: the 6th trial, created by ask with the same sampler state
    ref_trials = optuna.load_study(study_name="toy", storage=open_storage(ref.storage_url))
    sixth = ref_trials.trials[5].params
    trial = study.ask()
    names = list(sixth)[:1] if partial else list(sixth)
    for name in names:
        trial.suggest_float(name, 0.0, 1.0) if name.endswith(".x") else trial.suggest_int(
            name, 1, 20)
    for name in names:  # pin the values the dead trial had been given
        storage.set_trial_param(trial_id(trial), name, cfg.space.distributions()[name]
                                .to_internal_repr(sixth[name]), cfg.space.distributions()[name])
    trial.set_user_attr("flushback_owner", f"{socket.gethostname()}:999999:deadbeef")
    run_study(cfg, evaluator=ToyEvaluator())
    trials = optuna.load_study(study_name="toy", storage=open_storage(cfg.storage_url)).trials
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len(failed) == 1 and failed[0].number == 5
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == 5]
    assert len(retried) == (0 if partial else 1)
    assert _signature(trials) == _signature(ref_trials.trials)
