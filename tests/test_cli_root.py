"""The command-line entry point: exit codes and one-line errors for every kind of failure."""

from __future__ import annotations

import subprocess
import sys

import typer

from flushback.backtests import cli
from flushback.data.errors import DataError


def test_help_lists_every_command_group(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("data", "signals", "backtest", "events", "optimize", "audit", "report",
                 "compare", "runs"):
        assert name in out


def test_usage_errors_exit_2_with_a_message(capsys):
    assert cli.main(["no-such-command"]) == 2
    assert "No such command 'no-such-command'" in capsys.readouterr().err
    assert cli.main(["backtest"]) == 2
    assert "Missing argument" in capsys.readouterr().err


def test_typed_errors_become_one_line_and_their_exit_code(capsys, monkeypatch):
    sub = typer.Typer()

    @sub.command()
    def boom() -> None:
        raise DataError("2 NaN closes", file="x.csv", column="close",
                        timestamps=["2024-01-02T00:00:00Z"], hint="re-fetch the file")

    monkeypatch.setattr(cli, "app", sub)
    assert cli.main([]) == DataError.exit_code == 3
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err == ("error: x.csv, column 'close', at 2024-01-02T00:00:00Z: 2 NaN closes "
                   "-- re-fetch the file")


def test_unexpected_errors_are_one_line_without_traceback(capsys, monkeypatch):
    sub = typer.Typer()

    @sub.command()
    def boom() -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "app", sub)
    assert cli.main([]) == 1
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: division by zero" in err
    assert "Traceback" not in err


def test_typer_exit_code_is_returned(monkeypatch):
    sub = typer.Typer()

    @sub.command()
    def stop() -> None:
        raise typer.Exit(code=7)

    monkeypatch.setattr(cli, "app", sub)
    assert cli.main([]) == 7


def test_console_script_error_is_one_line_and_debug_shows_the_traceback(tmp_path):
    missing = tmp_path / "nope.toml"
    cmd = [sys.executable, "-m", "flushback.backtests.cli", "--offline", "backtest", str(missing)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert str(missing.name) in lines[0]
    debug = subprocess.run(cmd[:3] + ["--debug"] + cmd[3:], capture_output=True, text=True,
                           timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
