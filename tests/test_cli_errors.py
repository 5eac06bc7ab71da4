"""Typed one-line errors with their exit codes, with and without ``--debug``.

Each case is a mistake a trader makes on the first day: an infinite cash, a window in words,
a window after the data, a read-only home folder, an unwritable optuna storage, a full disk
when report.html is written. Each must end in ONE line on stderr naming what to do and the
error's documented exit code (ConfigError 2, DataError 3, StoreError 5); ``--debug`` adds the
traceback but keeps the exit code.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pandas as pd
import pytest

from flushback.backtests import cli
from flushback.backtests.run.spec import SPECS_DIR
from flushback.data.errors import ConfigError, DataError, StoreError


def _run(capsys, *args: str, debug: bool = False) -> tuple[int, str]:
    code = cli.main((["--debug"] if debug else []) + list(args))
    return code, capsys.readouterr().err


def _one_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "Warning" not in err
    return lines[0]


@pytest.mark.parametrize("debug", [False, True])
def test_cash_inf_by_set_is_a_config_error(capsys, debug):
    code, err = _run(capsys, "backtest", "fear_flush_btc_daily", "--set", "cash=inf",
                     debug=debug)
    assert code == ConfigError.exit_code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "cash" in last and "finite" in last
    if not debug:
        _one_line(err)
    else:
        assert "Traceback" in err  # --debug shows where, and still exits with the typed code


def test_cash_inf_in_the_spec_file_is_a_config_error(capsys, tmp_path):
    text = (SPECS_DIR / "fear_flush_btc_daily.toml").read_text()
    text = "\n".join("cash = inf" if line.startswith("cash =") else line
                     for line in text.splitlines())
    spec = tmp_path / "inf_cash.toml"
    spec.write_text(text)
    code, err = _run(capsys, "backtest", str(spec))
    assert code == 2
    line = _one_line(err)
    assert str(spec) in line and "cash" in line


@pytest.mark.parametrize("debug", [False, True])
def test_since_in_words_is_a_config_error(capsys, debug):
    code, err = _run(capsys, "backtest", "fear_flush_btc_daily", "--since", "yesterday",
                     debug=debug)
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert "'yesterday' is not a date" in last and "YYYY-MM-DD" in last
    if not debug:
        _one_line(err)


@pytest.mark.realdata
@pytest.mark.parametrize("debug", [False, True])
def test_window_after_the_data_names_the_last_bar(capsys, shared_data_dir, tmp_path, debug):
    csv = shared_data_dir / "prices" / "BTC-USD_1d.csv"
    last = pd.read_csv(csv, usecols=["timestamp"])["timestamp"].iloc[-1][:10]
    code, err = _run(capsys, "--data-dir", str(shared_data_dir), "backtest",
                     "fear_flush_btc_daily", "--since", "2030-01-01", "--runs-dir",
                     str(tmp_path), debug=debug)
    assert code == DataError.exit_code == 3
    last_line = err.strip().splitlines()[-1]
    assert "the window starts 2030-01-01, after the last bar" in last_line
    assert last in last_line and "None" not in last_line
    if not debug:
        _one_line(err)


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder nothing can be created in: chmod 555, or (as root, whom permissions do not
    stop) os.mkdir / os.open refusing with EROFS below it, as a read-only mount does."""
    ro = tmp_path / "readonly"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)
        return
    real_mkdir, real_open = os.mkdir, os.open

    def below(path) -> bool:
        return str(Path(os.fsdecode(path)).absolute()).startswith(str(ro) + os.sep)

    def mkdir(path, *a, **k):
        if below(path):
            raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(path))
        return real_mkdir(path, *a, **k)

    def open_(path, flags, *a, **k):
        if below(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    yield ro


@pytest.mark.realdata
def test_read_only_home_backtest_is_a_store_error(capsys, shared_data_dir, read_only,
                                                  monkeypatch):
    monkeypatch.setenv("FLUSHBACK_HOME", str(read_only))
    code, err = _run(capsys, "--data-dir", str(shared_data_dir), "backtest",
                     "fear_flush_btc_daily")
    assert code == StoreError.exit_code == 5
    line = _one_line(err)
    assert str(read_only) in line


@pytest.mark.realdata
@pytest.mark.parametrize("debug", [False, True])
def test_read_only_home_optimize_is_a_store_error(capsys, shared_data_dir, read_only,
                                                  monkeypatch, debug):
    monkeypatch.setenv("FLUSHBACK_HOME", str(read_only))
    code, err = _run(capsys, "--data-dir", str(shared_data_dir), "optimize",
                     "fear_flush_btc_daily", "--trials", "1", debug=debug)
    assert code == 5, err
    last = err.strip().splitlines()[-1]
    assert "cannot write the optuna storage" in last and str(read_only) in last
    if not debug:
        _one_line(err)


@pytest.mark.realdata
@pytest.mark.parametrize("storage", ["x/study.log", "x/study.db"])
def test_unwritable_optimize_storage_is_a_store_error(capsys, shared_data_dir, read_only,
                                                      tmp_path, storage):
    path = read_only / storage
    url = f"sqlite:///{path}" if storage.endswith(".db") else str(path)
    code, err = _run(capsys, "--data-dir", str(shared_data_dir), "optimize",
                     "fear_flush_btc_daily", "--trials", "1", "--storage", url,
                     "--runs-dir", str(tmp_path / "runs"))
    assert code == 5, err
    line = _one_line(err)
    assert str(path.parent) in line


@pytest.mark.realdata
@pytest.mark.parametrize("debug", [False, True])
def test_report_html_on_a_full_disk_is_a_store_error(capsys, shared_data_dir, tmp_path,
                                                     monkeypatch, debug):
    from flushback.data import store

    real = store.atomic_write_bytes

    def full_disk(path, data):
        if Path(path).name == "report.html":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(store, "atomic_write_bytes", full_disk)
    runs = tmp_path / "runs"
    code, err = _run(capsys, "--data-dir", str(shared_data_dir), "backtest",
                     "fear_flush_btc_daily", "--runs-dir", str(runs), debug=debug)
    assert code == 5, err
    last = err.strip().splitlines()[-1]
    assert "No space left on device" in last and "report.html" in last
    if not debug:
        _one_line(err)
    # nothing half-written is left behind: no run folder, no hidden temporary folder
    assert not runs.exists() or list(runs.iterdir()) == []


def test_report_command_on_a_full_disk_is_a_store_error(capsys, tmp_path, monkeypatch):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from report_testkit import make_report

    from flushback.backtests.reports.schema import write_report_file
    from flushback.data import store

    run = tmp_path / "run"
    write_report_file(make_report(n=120), run / "report.json")

    def full_disk(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "atomic_write_bytes", full_disk)
    code, err = _run(capsys, "report", str(run))
    assert code == 5
    line = _one_line(err)
    assert str(run / "report.html") in line and "No space left on device" in line
