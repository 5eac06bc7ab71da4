"""State and helpers shared by the command modules."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rich.console import Console

console = Console()
console_err = Console(stderr=True)


@dataclass
class _State:
    debug: bool = False
    offline: bool = False
    data_dir: str | None = None
    argv: list[str] | None = None  # the command line as given (to print a resume command)


STATE = _State()


class Engine(StrEnum):
    """The engine a command runs strategies on (see flushback.strategies.engines)."""

    backtrader = "backtrader"
    fast = "fast"


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


def wide_console(width: int) -> Console:
    """``console``, or, when stdout is not a terminal narrower than ``width`` (a pipe, a file,
    CI), a plain console ``width`` columns wide so wide tables are not squeezed."""
    if console.is_terminal or console.width >= width:
        return console
    import sys

    return Console(file=sys.stdout, width=width, color_system=None)


def print_json(payload: Any) -> None:
    """Print JSON to stdout (plain, machine-readable: no rich markup or wrapping)."""
    import sys

    sys.stdout.write(json.dumps(payload, indent=2, default=str, allow_nan=False) + "\n")
