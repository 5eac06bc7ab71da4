"""Where flushback keeps its files.

- ``FLUSHBACK_HOME``: when set, the store is ``$FLUSHBACK_HOME/store`` and runs go to
  ``$FLUSHBACK_HOME/runs``.
- ``FLUSHBACK_STORE`` / ``FLUSHBACK_RUNS_DIR`` override each one separately.
- Otherwise the store lives in the user cache directory (platformdirs) and runs in ``./runs``.
- ``FLUSHBACK_DATA_DIR``: a folder laid out like ``../shared/data`` (prices/, sentiment/,
  liquidations/, derivatives/) that is read directly, without importing it into the store.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def home() -> Path | None:
    value = os.environ.get("FLUSHBACK_HOME")
    return Path(value).expanduser() if value else None


def _folder(override: str | Path | None, env: str, under_home: str | None) -> Path | None:
    """The first that is set: ``override``, the variable ``env``, ``$FLUSHBACK_HOME/under_home``
    (when ``under_home`` is given); None when none is."""
    if override:
        return Path(override).expanduser()
    value = os.environ.get(env)
    if value:
        return Path(value).expanduser()
    h = home()
    return h / under_home if h is not None and under_home else None


def store_dir(override: str | Path | None = None) -> Path:
    return (_folder(override, "FLUSHBACK_STORE", "store")
            or Path(platformdirs.user_cache_dir("flushback")) / "store")


def runs_dir(override: str | Path | None = None) -> Path:
    return _folder(override, "FLUSHBACK_RUNS_DIR", "runs") or Path("runs")


def data_dir(override: str | Path | None = None) -> Path | None:
    """The directly-read data folder, if one was given by flag or ``FLUSHBACK_DATA_DIR``."""
    return _folder(override, "FLUSHBACK_DATA_DIR", None)
