"""nb.path_stats (the fast engine's one-pass drawdown, underwater run and exposure) gives
the numbers of metrics.py's numpy expressions bit for bit, and compute_metrics with it gives
the same metrics as without it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.run.metrics import (
    compute_metrics,
    exposure,
    max_drawdown,
    max_drawdown_duration,
)
from flushback.strategies import nb


def _curve(rng, n):
    steps = rng.normal(0, 0.01, n)
    steps[rng.random(n) < 0.4] = 0.0  # flat stretches: equal to the peak is not underwater
    e = 10_000 * np.exp(np.cumsum(steps))
    pos = np.where(steps != 0, rng.uniform(0.1, 2.0, n), 0.0)
    pos[rng.random(n) < 0.05] = 1e-13  # dust below the exposure threshold
    return e, pos


@pytest.mark.parametrize("seed", range(8))
def test_path_stats_is_the_numpy_expressions(seed):
    rng = np.random.default_rng(seed)
    e, pos = _curve(rng, int(rng.integers(1, 40_000)))
    worst, longest, held, bad = nb.path_stats(e, pos)
    assert bad == 0
    assert worst == max_drawdown(e)  # exact
    assert longest == max_drawdown_duration(e)
    assert held / len(e) == exposure(pos)
    trades = pd.DataFrame()
    a = compute_metrics(e, trades, 8760, position=pos)
    b = compute_metrics(e, trades, 8760, position=pos, path=(worst, longest, held))
    assert a == b


def test_path_stats_flags_curves_it_cannot_stand_for():
    e = np.array([100.0, 90.0, 0.0, 50.0])
    assert nb.path_stats(e, np.zeros(4))[3] == 1
    e = np.array([100.0, np.nan, 95.0])
    assert nb.path_stats(e, np.zeros(3))[3] == 1
