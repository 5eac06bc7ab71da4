"""The documented ``--storage postgresql://user@host/db`` works with the driver flushback installs.

SQLAlchemy 2.1 reads a bare ``postgresql://`` URL as the ``psycopg`` (version 3) driver, which
flushback does not install, so the documented URL failed with "No module named 'psycopg'". A
bare URL now names psycopg2. Without a server: the mapping, and that opening a bare URL reaches
psycopg2 (a refused connection, a typed StoreError), never an import error. With a server
(``FLUSHBACK_TEST_POSTGRES_URL``, started by .ci/run): a real study through the bare URL.
"""

from __future__ import annotations

import json
import socket
import uuid

import pytest

from flushback.backtests.cli import main
from flushback.backtests.optimize.study import normalize_storage_url, open_storage
from flushback.data.errors import StoreError


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql://u:p@db.example:5432/study", "postgresql+psycopg2://u:p@db.example:5432/study"),
    ("postgres://u@h/db", "postgresql+psycopg2://u@h/db"),
    ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),  # an explicit choice
    ("sqlite:///runs/optuna.db", "sqlite:///runs/optuna.db"),
    ("/tmp/study.log", "/tmp/study.log"),
])
def test_bare_postgresql_url_names_psycopg2(url, expected):
    assert normalize_storage_url(url) == expected


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bare_postgresql_url_reaches_the_installed_driver():
    url = f"postgresql://flushback@127.0.0.1:{_closed_port()}/nodb"
    with pytest.raises(StoreError) as info:
        open_storage(url, heartbeat=None)
    text = str(info.value)
    assert "psycopg2.OperationalError" in text and "No module named" not in text
    assert "postgresql+psycopg2://flushback@127.0.0.1" in text


def test_storage_help_names_the_journal_default(capsys):
    assert main(["optimize", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "optuna-journal.log" in text and "sqlite:///<runs>/optuna.db" not in text


@pytest.mark.postgres
@pytest.mark.realdata
@pytest.mark.slow
def test_optimize_through_a_bare_postgresql_url(shared_data_dir, tmp_path, capsys,
                                                postgres_url):
    url = postgres_url
    bare = "postgresql://" + url.split("://", 1)[1]  # the URL as the docs write it
    study = f"bare-url-{uuid.uuid4().hex[:8]}"
    code = main(["--data-dir", str(shared_data_dir), "optimize", "fear_flush_btc_daily",
                 "--trials", "3", "--storage", bare, "--study", study, "--format", "json",
                 "--runs-dir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert code == 0, out
    import optuna

    summaries = optuna.get_all_study_summaries(normalize_storage_url(bare))
    mine = [s for s in summaries if s.study_name.startswith(study)]
    assert mine and sum(s.n_trials for s in mine) >= 3
    assert json.loads(out)["study"]["storage"].startswith("postgresql+psycopg2://")


def test_journal_lines_read_back_as_the_standard_encoder_writes_them(tmp_path):
    """The journal's lines are orjson's where that reads back identically, else json's
    (orjson writes NaN / Infinity as null, which optuna's reader would take for None)."""
    import json
    import math

    import optuna

    from flushback.backtests.optimize.storage import _journal_line, open_storage

    logs = [
        {"op_code": 5, "worker_id": "w", "trial_id": 3, "user_attrs": {
            "flushback": {"train_returns": "m2:3:eJz7/wcAAvwB/Q==:AAAAPw==",
                          "timings": {"trial": 0.000512}}}, "values": [1.25e-07]},
        {"op_code": 6, "worker_id": "w", "trial_id": 4, "values": [float("nan")],
         "state": 2, "datetime_complete": "2026-12-02T14:00:00.000001"},
        {"op_code": 6, "worker_id": "w", "trial_id": 5, "values": [float("inf"), -1e308],
         "note": "café ✓"},
        {"op_code": 6, "worker_id": "w", "trial_id": 6, "values": None, "big": 2**70},
        {"op_code": 4, "worker_id": "w", "values": None, "value": -1.5,
         "intermediate_values": {0: 0.5, 1: float("nan")}},
        {"op_code": 4, "worker_id": "w", "values": None, "intermediate_values": {3: 0.25}},
    ]
    for log in logs:
        line = _journal_line(log)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        back = json.loads(line)
        ref = json.loads(json.dumps(log))
        assert json.dumps(back, sort_keys=True) == json.dumps(ref, sort_keys=True)
    assert math.isnan(json.loads(_journal_line(logs[1]))["values"][0])
    # a study written through it reads back in optuna (values, attributes, NaN)
    url = str(tmp_path / "j.log")
    study = optuna.create_study(storage=open_storage(url), study_name="s")
    study.enqueue_trial({"x": 0.5})
    t = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    t.set_user_attr("flushback", {"train_returns": "m2:1:eJxjAAAAAQAB:", "note": "café"})
    study.tell(t, 0.125)
    back = optuna.load_study(study_name="s", storage=open_storage(url)).trials[0]
    assert back.value == 0.125 and back.params == {"x": 0.5}
    assert back.user_attrs["flushback"]["note"] == "café"


def _open_and_report(url, queue):  # a process of the test below
    from flushback.backtests.optimize.storage import open_storage

    try:
        open_storage(url, heartbeat=None)
        queue.put("ok")
    except Exception as exc:  # reported to the parent
        queue.put(repr(exc)[:300])


def test_processes_opening_a_fresh_sqlite_database_at_once_all_succeed(tmp_path):
    """optuna creates its tables and version row on first use; four processes doing that on
    one new SQLite file at once used to fail some with a UNIQUE constraint on the version."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    results = []
    for k in range(6):
        url = f"sqlite:///{tmp_path / f'race{k}.db'}"
        q = ctx.Queue()
        procs = [ctx.Process(target=_open_and_report, args=(url, q)) for _ in range(4)]
        for p in procs:
            p.start()
        results += [q.get(timeout=120) for _ in procs]
        for p in procs:
            p.join()
    assert results == ["ok"] * 24, [r for r in results if r != "ok"][:2]


def test_journal_reader_reads_what_optunas_reader_reads(tmp_path):
    """The journal's reader gives the records optuna's file reader gives, from any record
    number, on a file mixing the lines orjson wrote, the lines json wrote (NaN, a 70-bit
    integer) and optuna's own; a line being written at the end is left for the next read,
    a broken line in the middle is an error."""
    import json

    from optuna.storages.journal import JournalFileBackend

    from flushback.backtests.optimize.storage import (
        _journal_backend,
        _journal_line,
        _journal_record,
    )

    logs = [
        {"op_code": 4, "worker_id": "w", "value": 0.1, "values": None,
         "user_attrs": {"flushback": {"train_returns": "m2:3:eJz7/wcAAvwB/Q==:AAAAPw=="}}},
        {"op_code": 6, "worker_id": "w", "trial_id": 1, "values": [float("nan")]},
        {"op_code": 5, "worker_id": "w", "trial_id": 1, "user_attr": {"n": 2**70}},
        {"op_code": 5, "worker_id": "w", "trial_id": 2, "user_attr": {"n": 2**63 + 5,
                                                                         "s": "café"}},
        {"op_code": 6, "worker_id": "w", "trial_id": 3, "values": [-0.0, 1e-300, 5e-324]},
    ]
    lines = [_journal_line(log) for log in logs]
    lines.append((json.dumps({"op_code": 5, "worker_id": "o", "n": 12}) + "\n").encode())
    assert lines[0].startswith(b'{"op_code":4') and lines[1].startswith(b'{"op_code": 6')
    path = tmp_path / "j.log"
    path.write_bytes(b"".join(lines))

    def same(a, b):
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

    for line in lines:
        got, want = _journal_record(line), json.loads(line)
        assert same(got, want)
        assert [type(v) for v in _leaves(got)] == [type(v) for v in _leaves(want)]
    ours, theirs = _journal_backend(str(path)), JournalFileBackend(str(path))
    for start in (0, 2, 5, 6, 0, 3):
        assert same(list(ours.read_logs(start)), list(theirs.read_logs(start)))
    with open(path, "ab") as f:
        f.write(b'{"op_code":5,"worker_id":"w","tri')  # another process is writing it
    assert same(list(ours.read_logs(4)), list(theirs.read_logs(4)))
    assert len(list(ours.read_logs(0))) == 6
    path.write_bytes(b"".join(lines[:2]) + b"{broken\n" + b"".join(lines[2:]))
    broken = _journal_backend(str(path))
    with pytest.raises(ValueError):
        list(broken.read_logs(0))


def _leaves(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _leaves(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _leaves(v)
    else:
        yield obj
