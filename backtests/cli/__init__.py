"""The ``flushback`` command line: thin typer commands over the library.

Each command group lives in its own module and imports heavy libraries inside its commands,
so ``flushback --help`` stays fast. ``main()`` turns a :class:`FlushbackError` into one line on
stderr and the error's exit code; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys

import typer

from flushback.backtests.cli._common import STATE, console_err

app = typer.Typer(
    name="flushback",
    help="Backtest contrarian crypto signals: buy the flush, with evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    home: str = typer.Option(
        None, "--home", envvar="FLUSHBACK_HOME", help="Root folder for the store and the runs."
    ),
    data_dir: str = typer.Option(
        None,
        "--data-dir",
        envvar="FLUSHBACK_DATA_DIR",
        help="Read data directly from a folder laid out like ../shared/data.",
    ),
    offline: bool = typer.Option(
        False, "--offline", envvar="FLUSHBACK_OFFLINE", help="Never touch the network."
    ),
) -> None:
    import os

    STATE.debug = debug
    STATE.offline = offline
    STATE.data_dir = data_dir
    if home:
        os.environ["FLUSHBACK_HOME"] = home
    if data_dir:
        os.environ["FLUSHBACK_DATA_DIR"] = data_dir
    if offline:
        os.environ["FLUSHBACK_OFFLINE"] = "1"


def _register() -> None:
    # Command groups: one module each (see backtests/cli/*.py).
    from flushback.backtests.cli import data as _data

    app.add_typer(_data.app, name="data", help="Import, fetch, list and validate datasets.")
    app.command("backtest")(__import__("flushback.backtests.cli.backtest", fromlist=["x"]).backtest)
    app.add_typer(__import__("flushback.backtests.cli.events", fromlist=["app"]).app, name="events")
    __import__("flushback.backtests.cli.report", fromlist=["register"]).register(app)
    app.add_typer(__import__("flushback.backtests.cli.signals", fromlist=["a"]).app, name="signals")
    app.command("audit")(__import__("flushback.backtests.cli.audit", fromlist=["x"]).audit)
    app.command("optimize")(__import__("flushback.backtests.cli.optimize", fromlist=["x"]).optimize)
    __import__("flushback.backtests.cli.study", fromlist=["register"]).register(app)
    __import__("flushback.backtests.cli.today", fromlist=["register"]).register(app)


_register()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    from flushback.data.errors import FlushbackError

    STATE.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = app(args=argv, standalone_mode=False)
    except FlushbackError as exc:
        if STATE.debug:  # the traceback, then the same line and exit code as without --debug
            import traceback

            traceback.print_exc(file=sys.stderr)
        console_err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        console_err.print("interrupted", markup=False)
        return 130
    except typer.Abort:
        return 1
    except Exception as exc:
        # Usage errors (unknown command, missing argument, bad option value): typer's parser
        # raises them with ``show()`` and an ``exit_code`` (2), whichever click it is built on.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            return exit_code
        if STATE.debug:
            raise
        console_err.print(
            f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return 1
    # A command may end with ``typer.Exit(code)``: standalone_mode=False returns that code.
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
