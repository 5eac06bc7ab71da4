"""Typed errors shared by every layer of flushback.

Every error carries enough context to act on: the file, the column, the offending timestamps
and a sentence that says what to do. The CLI prints ``str(error)`` as one line on stderr and
exits with ``error.exit_code``; tracebacks are shown only with ``--debug``.

Exit codes are stable and documented in the README:

====================  ====
error                 code
====================  ====
ConfigError           2
DataError             3
SourceUnavailable     4
StoreError            5
BiasDetected          6
EngineMismatch        7
====================  ====
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = [
    "FlushbackError",
    "ConfigError",
    "DataError",
    "StaleDataError",
    "SourceUnavailable",
    "StoreError",
    "BiasDetected",
    "EngineMismatch",
    "format_timestamps",
]


def format_timestamps(stamps: Iterable[Any], limit: int = 5) -> str:
    """Render up to ``limit`` timestamps, then ``(+N more)``; ISO 8601, UTC as given."""
    items = [str(s) for s in stamps]
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f" (+{len(items) - limit} more)"
    return shown


class FlushbackError(Exception):
    """Base class: a message, optional location (file, column, timestamps) and a hint."""

    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        column: str | None = None,
        timestamps: Iterable[Any] | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.column = column
        self.timestamps = [] if timestamps is None else list(timestamps)
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.column:
            parts.append(f"column '{self.column}'")
        if self.timestamps:
            parts.append(f"at {format_timestamps(self.timestamps)}")
        where = (": ".join([", ".join(parts), ""]) if parts else "")
        text = f"{where}{self.message}"
        if self.hint:
            text += f" -- {self.hint}"
        return text


class ConfigError(FlushbackError):
    """A spec, a flag or an environment variable is invalid (unknown key, bad value)."""

    exit_code = 2


class DataError(FlushbackError):
    """Input data is malformed, incomplete or inconsistent; it never reaches an engine."""

    exit_code = 3


class StaleDataError(DataError):
    """External data is older than the declared maximum staleness."""


class SourceUnavailable(FlushbackError):
    """A remote source could not be reached (offline, HTTP error, rate limit, timeout)."""

    exit_code = 4


class StoreError(FlushbackError):
    """The local store or a run folder could not be read or written."""

    exit_code = 5


class BiasDetected(FlushbackError):
    """An audit found look-ahead, insufficient warm-up or a premature external datum."""

    exit_code = 6


class EngineMismatch(FlushbackError):
    """The fast engine and the reference engine (backtrader) disagree on a run."""

    exit_code = 7
