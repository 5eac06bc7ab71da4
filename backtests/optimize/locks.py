"""Cross-process coordination of workers sharing a storage.

- :class:`Gate`: an advisory lock (``fcntl`` on a file beside a SQLite database or journal,
  PostgreSQL ``pg_advisory_lock``) that makes "count the finished + running trials, then ask"
  atomic, so W processes on one or many machines finish *exactly* N trials.
- :class:`Lease`: a file each worker holds an exclusive ``flock`` on for its whole life, so a
  worker on the same machine can tell at once that a trial's owner died (SIGKILL included).
- :func:`reap_dead_trials`: fail the RUNNING trials of dead owners and re-queue their points."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flushback.backtests.optimize.optuna_compat import trial_id
from flushback.backtests.optimize.storage import (
    is_journal_url,
    journal_path,
    normalize_storage_url,
    redact_url,
    retry_if_fully_sampled,
)


class Gate:
    """Cross-process mutex around "count trials, then ask" (see the module docstring)."""

    def __init__(self, url: str, study_name: str) -> None:
        url = normalize_storage_url(url)
        self._url = url
        self._key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big",
                                   signed=True)
        self._file = None
        self._conn = None
        if is_journal_url(url):
            self._file = journal_path(url) + ".gate"
        elif url.startswith("sqlite"):
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                self._file = str(Path(path).expanduser()) + ".gate"
        elif url.startswith("postgresql"):
            import sqlalchemy

            self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
            self._conn = self._engine.connect()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if self._file is not None:
            import fcntl

            with open(self._file, "a+") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(fh, fcntl.LOCK_UN)
        elif self._conn is not None:
            import sqlalchemy

            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
            try:
                yield
            finally:
                self._conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"),
                                   {"k": self._key})
                self._conn.commit()
        else:
            yield

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._engine.dispose()


class Lease:
    """A file this worker process holds an exclusive ``flock`` on for its whole life.

    The kernel drops the lock when the process dies, however it dies (SIGKILL included), so
    another worker on the same machine can tell at once that a RUNNING trial tagged with this
    lease belongs to a dead process. (Across machines optuna's RDB heartbeats do that job.)
    """

    def __init__(self, directory: Path) -> None:
        import fcntl
        import socket
        import uuid

        directory.mkdir(parents=True, exist_ok=True)
        self.host = socket.gethostname()
        self.name = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.directory = directory
        self.path = directory / (self.name.replace(":", "_") + ".lease")
        self._fh = open(self.path, "w")
        fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def owner_is_dead(self, owner: str) -> bool | None:
        """True/False for owners on this machine; None when it cannot tell (another host)."""
        import fcntl

        host = owner.split(":", 1)[0]
        if host != self.host:
            return None
        if owner == self.name:
            return False
        path = self.directory / (owner.replace(":", "_") + ".lease")
        try:
            fh = open(path)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # held: the owner is alive
        else:
            fcntl.flock(fh, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                path.unlink()
            return True
        finally:
            fh.close()

    def close(self) -> None:
        import fcntl

        with contextlib.suppress(Exception):
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self.path.unlink()


def lease_dir(url: str) -> Path:
    from flushback.data.paths import runs_dir

    if is_journal_url(url):
        return Path(journal_path(url) + ".workers").expanduser()
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            return Path(str(Path(path).expanduser()) + ".workers")
    tag = hashlib.sha256(redact_url(url).encode()).hexdigest()[:12]
    return runs_dir().resolve() / ".optuna-workers" / tag


def reap_dead_trials(study: Any, storage: Any, lease: Lease) -> int:
    """Fail RUNNING trials whose process is dead and re-queue them with the same parameters
    (``storage``: the one ``study`` was opened on).

    Called under the gate: a live worker tags its trial inside the gate, so an untagged
    RUNNING trial seen under the gate was left by a process killed between ask and tag.
    """
    import optuna

    TS = optuna.trial.TrialState
    reaped = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for t in study.get_trials(deepcopy=False, states=(TS.RUNNING,)):
            owner = t.user_attrs.get("flushback_owner")
            dead = True if owner is None else lease.owner_is_dead(owner)
            if not dead:
                continue
            try:
                if not storage.set_trial_state_values(trial_id(t), state=TS.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker got there first
            failed = storage.get_trial(trial_id(t))
            retry_if_fully_sampled(study, copy.deepcopy(failed))
            reaped += 1
    return reaped


class Periodic:
    """While entered, calls ``fn`` every ``interval`` seconds in a daemon thread (a heartbeat,
    a reservation's time stamp). A failed call is ignored: the next one retries."""

    def __init__(self, fn: Callable[[], Any], interval: float) -> None:
        self._fn, self._interval = fn, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Periodic:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(Exception):
                self._fn()

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
