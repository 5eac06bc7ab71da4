"""Opening optuna storages from a URL (:func:`open_storage`).

The local default is optuna's journal file (``runs/optuna-journal.log``, see
:func:`default_storage_url`); ``*.log`` paths open a journal (written without an ``fsync``
per append, see :func:`_journal_backend`). Any SQLAlchemy URL works: ``sqlite:///path.db``
(optuna's RDB storage with *heartbeats*: a trial left RUNNING by a killed process is detected
as stale, marked FAIL and re-queued with the same parameters; SQLite runs in WAL mode, every
commit atomic) or ``postgresql://user@host/db`` for several machines (a bare ``postgresql://``
is opened with the psycopg2 driver flushback installs, see :func:`normalize_storage_url`;
schema creation is serialized by an advisory lock). URLs are shown with their password
redacted (:func:`redact_url`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import warnings
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from flushback.backtests.optimize.optuna_compat import (
    cache_journal_distributions,
    rdb_heartbeat_kwargs,
    retry_stale_trial,
)
from flushback.data.errors import ConfigError, StoreError


def default_storage_url() -> str:
    """``<runs>/optuna-journal.log``: optuna's journal file storage (see the module docstring)."""
    from flushback.data.paths import runs_dir

    d = runs_dir().resolve()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable_storage(d, exc) from None
    return str(d / "optuna-journal.log")


def normalize_storage_url(url: str) -> str:
    """A bare ``postgresql://`` / ``postgres://`` URL names the psycopg2 driver flushback
    installs (SQLAlchemy 2.1 reads a bare URL as ``psycopg``, version 3, which flushback does not
    install); explicit drivers (``postgresql+psycopg://``) and other URLs are kept."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg2://" + url[len(bare):]
    return url


def _unwritable_storage(path: Any, exc: OSError) -> StoreError:
    return StoreError(f"cannot write the optuna storage: {exc.strerror or exc}",
                      file=str(path),
                      hint="give a writable --storage path (or FLUSHBACK_OPTUNA_STORAGE), or "
                      "a writable FLUSHBACK_HOME / --runs-dir")


def is_journal_url(url: str) -> bool:
    return url.startswith("journal:") or url.endswith((".log", ".journal", ".jsonl"))


def journal_path(url: str) -> str:
    return url[len("journal:"):] if url.startswith("journal:") else url


def _journal_backend(path: str) -> Any:
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

    class _PageCacheJournal(JournalFileBackend):
        """optuna's journal file, minus the ``fsync`` after every append.

        A write that returned is in the kernel's page cache and survives the writer being
        SIGKILLed; ``fsync`` only adds durability against a power cut, at ~6 ms per append
        here (8+ appends per trial). A power cut can lose the last trials; they are re-run.
        The lock is optuna's default one (a symlink lock), made here so that appends can
        hold it through its public ``acquire``/``release``.
        """

        def __init__(self, file_path: str) -> None:
            self.append_lock = JournalFileSymlinkLock(file_path)
            self.append_path = file_path
            self._line_offsets: dict[int, int] = {0: 0}  # record number -> byte offset
            super().__init__(file_path, lock_obj=self.append_lock)

        def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
            """The records from number ``log_number_from`` on, as optuna's file reader
            gives them (the lines complete when the read began; a line that does not parse
            is an error unless it is the last, which another process may be writing), each
            parsed by :func:`_journal_record`."""
            offsets = self._line_offsets
            number = log_number_from if log_number_from in offsets else 0
            pos = offsets[number]
            pending: Exception | None = None
            with open(self.append_path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(pos)
                for line in f:
                    if pos + len(line) > size:
                        break  # appended after this read began: the next read has it
                    if pending is not None:
                        raise pending
                    if not line.endswith(b"\n"):
                        pending = ValueError(f"invalid journal line in {self.append_path}")
                        continue
                    pos += len(line)
                    number += 1
                    offsets.setdefault(number, pos)
                    if number <= log_number_from:
                        continue
                    try:
                        record = _journal_record(line)
                    except ValueError as exc:  # an error unless it is the last line
                        pending = exc
                        del offsets[number]
                        continue
                    yield record

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            data = b"".join(_journal_line(log) for log in logs)
            self.append_lock.acquire()
            try:
                with open(self.append_path, "ab") as f:
                    f.write(data)
                    f.flush()
            finally:
                self.append_lock.release()

    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    cache_journal_distributions()
    return _PageCacheJournal(str(Path(path).expanduser()))


def _journal_line(log: dict[str, Any]) -> bytes:
    """One journal record as the line optuna's reader parses (``json.loads``), in UTF-8.

    orjson writes it (a trial's stored returns are tens of kB of base64; the standard
    encoder scans them character by character), except where orjson and ``json`` would
    differ: orjson writes a non-finite float as ``null`` where ``json`` writes ``NaN`` /
    ``Infinity``, which optuna reads back as such, so a record holding one is written by
    ``json``; so is anything orjson does not serialise."""
    import orjson

    if _all_finite(log):
        try:
            return orjson.dumps(log, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE)
        except TypeError:
            pass
    # json's own separators (", ", ": "): :func:`_journal_record` tells the two kinds apart
    return json.dumps(log, ensure_ascii=False).encode("utf-8") + b"\n"


def _journal_record(line: bytes) -> dict[str, Any]:
    """One journal line as ``json.loads`` reads it. A line orjson wrote (a compact record:
    ``{"op_code":`` without a space; optuna's writer and the ``json`` fallback above put one
    there) is read by orjson, several times faster on a trial's tens of kB: orjson reads
    back exactly what it wrote. Any other line, or one orjson refuses, is read by ``json``
    (orjson would read an integer beyond 64 bits as a float, and refuses ``NaN``)."""
    import orjson

    if line.startswith(b'{"op_code":') and not line.startswith(b'{"op_code": '):
        try:
            return orjson.loads(line)  # type: ignore[no-any-return]
        except orjson.JSONDecodeError:
            pass
    return json.loads(line)  # type: ignore[no-any-return]


def _all_finite(obj: Any) -> bool:
    """No NaN or infinite float anywhere in a record (dict and list values, nested)."""
    todo = [obj]
    while todo:
        o = todo.pop()
        if isinstance(o, float):
            if not math.isfinite(o):
                return False
        elif isinstance(o, dict):
            todo.extend(o.values())
        elif isinstance(o, list | tuple):
            todo.extend(o)
    return True


def open_storage(url: str, *, heartbeat: int | None = 5) -> Any:
    """An optuna storage for ``url`` (SQLAlchemy URL, or a ``*.log`` journal file path)."""
    import optuna

    url = normalize_storage_url(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if is_journal_url(url):
            try:
                return optuna.storages.JournalStorage(_journal_backend(journal_path(url)))
            except OSError as exc:
                raise _unwritable_storage(journal_path(url), exc) from None
        if "://" not in url:
            raise ConfigError(f"storage '{url}' is neither a SQLAlchemy URL nor a *.log journal",
                              hint="e.g. sqlite:///runs/optuna.db or postgresql://user@host/db")
        engine_kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            engine_kwargs = {"connect_args": {"timeout": 60}}
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                try:
                    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise _unwritable_storage(path, exc) from None
        else:
            engine_kwargs = {"pool_pre_ping": True}
        kwargs: dict[str, Any] = {}
        if heartbeat:
            kwargs = rdb_heartbeat_kwargs(int(heartbeat), int(heartbeat) * 2 + 1,
                                          retry_if_fully_sampled)
        try:
            with _init_lock(url):  # concurrent first use would race on CREATE TABLE
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
        except Exception as exc:  # sqlalchemy OperationalError, missing driver, ...
            raise StoreError(
                f"cannot open optuna storage {redact_url(url)}: {exc}".splitlines()[0],
                hint="check the URL, that the server is up and the database exists",
            ) from None
        if url.startswith("sqlite"):
            _sqlite_wal(storage.engine)
        return storage


def release_connections(storage: Any) -> None:
    """Close the pooled database connections of an optuna RDB storage (they reopen on next
    use): done before forking worker processes, which must not share a connection with
    their parent. Journal storages hold none."""
    engine = getattr(storage, "engine", None)
    if engine is not None:
        engine.dispose()


@contextlib.contextmanager
def _init_lock(url: str) -> Iterator[None]:
    """Serialize optuna's schema creation (and version row) across processes: PostgreSQL by
    an advisory lock (across machines too), a SQLite file by a ``flock`` on a file beside it
    (two processes opening a fresh database at once both try to create it)."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if not path or path == ":memory:":
            yield
            return
        import fcntl

        with open(str(Path(path).expanduser()) + ".init", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    if not url.startswith("postgresql"):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    key = int.from_bytes(hashlib.sha256(b"flushback-optuna-schema").digest()[:8], "big",
                         signed=True)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()


def _sqlite_wal(engine: Any) -> None:
    """WAL journal + synchronous=NORMAL: every commit is still atomic (a killed process never
    leaves a torn database; readers never block the writer), but commits no longer wait for
    an fsync, which cost ~10 ms each -- about 20 per trial -- with the default settings."""
    import sqlalchemy

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    sqlalchemy.event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener get replaced


def redact_url(url: str) -> str:
    import re

    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def retry_if_fully_sampled(study: Any, trial: Any) -> None:
    """Re-queue a dead process's trial with its parameters (optuna's
    ``RetryHeartbeatStaleTrialCallback``) -- but only if all of them had been sampled.

    A process killed inside ``ask`` leaves a trial with some parameters set. Re-queuing those
    as fixed values would make the sampler draw the rest from a different random stream; not
    re-queuing it lets the next ``ask`` sample the whole point again from the same state
    (seed, finished trials), i.e. exactly the parameters the dead trial was getting.
    """
    import optuna

    names = study.user_attrs.get("flushback_param_names")
    if names is not None and set(trial.params) != set(names):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry_stale_trial(max_retry=3)(study, trial)
