"""Shared fixtures.

Real-data tests find ``../shared/data`` through one fixture, ``shared_data_dir``: the directory
named by ``FLUSHBACK_SHARED_DATA`` (default: ``../shared/data`` next to the repository). When it
is absent the test is skipped with the reason, unless ``FLUSHBACK_REQUIRE_DATA=1`` (set by
``.ci/run``), in which case it fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("FLUSHBACK_SHARED_DATA")
    return Path(env) if env else (REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    path = _shared_data_dir()
    if not (path / "prices").is_dir():
        reason = (
            f"real market data not found at {path} (set FLUSHBACK_SHARED_DATA to a folder laid "
            "out like ../shared/data)"
        )
        if os.environ.get("FLUSHBACK_REQUIRE_DATA") == "1":
            pytest.fail(reason + "; FLUSHBACK_REQUIRE_DATA=1 makes this a failure")
        pytest.skip(reason)
    return path


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own FLUSHBACK_HOME (no test touches the user's store or runs) and
    runs offline."""
    home = tmp_path_factory.mktemp("flushback_home")
    monkeypatch.setenv("FLUSHBACK_HOME", str(home))
    monkeypatch.delenv("FLUSHBACK_DATA_DIR", raising=False)
    monkeypatch.delenv("FLUSHBACK_STORE", raising=False)
    monkeypatch.delenv("FLUSHBACK_RUNS_DIR", raising=False)
    monkeypatch.delenv("COINGLASS_API_KEY", raising=False)
    # No test reaches the network by accident; tests of online behaviour unset this themselves.
    monkeypatch.setenv("FLUSHBACK_OFFLINE", "1")
    return home


@pytest.fixture
def postgres_url() -> str:
    """``FLUSHBACK_TEST_POSTGRES_URL`` (a server started by .ci/run); skips without it unless
    ``FLUSHBACK_REQUIRE_POSTGRES=1``, which makes its absence a failure."""
    url = os.environ.get("FLUSHBACK_TEST_POSTGRES_URL")
    if not url:
        reason = "FLUSHBACK_TEST_POSTGRES_URL is not set (no PostgreSQL server for this test)"
        if os.environ.get("FLUSHBACK_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + "; FLUSHBACK_REQUIRE_POSTGRES=1 makes this a failure")
        pytest.skip(reason)
    return url


def _ewm_wilder_rsi(close, period: int = 14, warmup: int = 202):
    """Wilder RSI written apart from flushback.signals.rsi: pandas' ewm (alpha = 1/period, no
    SMA seed), NaN for the first ``warmup`` bars. After 202 bars the seed's weight is below
    1e-6, so it agrees with the library's SMA-seeded RSI to ~0.01 points."""
    import numpy as np

    d = close.diff()
    up = d.clip(lower=0).ewm(alpha=1 / period, adjust=False).mean()
    dn = (-d).clip(lower=0).ewm(alpha=1 / period, adjust=False).mean()
    rsi = 100 * up / (up + dn)
    rsi.iloc[:warmup] = np.nan
    return rsi


@pytest.fixture(scope="session")
def ewm_wilder_rsi():
    """A separate Wilder RSI for tests that check RSI-based decisions on real data."""
    return _ewm_wilder_rsi
