"""nb_stats.path_stats (the fast engine's one-pass drawdown, underwater run and exposure)
gives the numbers of metrics.py's numpy expressions bit for bit, and compute_metrics with it
gives the same metrics as without it; nb_stats.return_sums gives numpy's pairwise sums of the
returns' moments, bit for bit, and score_metrics on them is compute_metrics for the scored
keys."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flushback.backtests.optimize.fast_trials import moments_from_sums, sums_match_numpy
from flushback.backtests.run.metrics import (
    SCORE_METRICS,
    _moments,
    compute_metrics,
    exposure,
    max_drawdown,
    max_drawdown_duration,
    score_metrics,
)
from flushback.strategies import nb_stats


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
    worst, longest, held, bad = nb_stats.path_stats(e, pos)
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
    assert nb_stats.path_stats(e, np.zeros(4))[3] == 1
    e = np.array([100.0, np.nan, 95.0])
    assert nb_stats.path_stats(e, np.zeros(3))[3] == 1


# -- the trial scores: numpy's pairwise sums compiled, score_metrics == compute_metrics ---------

@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 3000), seed=st.integers(0, 2**32 - 1),
       zeros=st.floats(0.0, 1.0), scale=st.floats(-8, 3))
def test_pairwise_sum_is_numpys_sum_bit_for_bit(n, seed, zeros, scale):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n) * 10.0 ** rng.uniform(scale - 2, scale + 2, n)
    a[rng.random(n) < zeros] = 0.0
    for lo in (0, 1):
        m = max(n - lo, 0)
        assert nb_stats._pairwise_sum(a, lo, m) + 0.0 == np.sum(a[lo:])


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 127, 128, 129, 130, 1024, 8191, 8192, 8193, 8194,
                               16_385, 32_640, 46_629, 131_073])
def test_pairwise_sum_around_numpys_block_sizes(n):
    rng = np.random.default_rng(n)
    a = rng.standard_normal(n) * 1e-3
    a[rng.random(n) < 0.8] = 0.0
    assert nb_stats._pairwise_sum(a, 0, n) + 0.0 == np.sum(a)
    assert nb_stats._pairwise_sum(a, 1, n - 1) + 0.0 == np.sum(a[1:])


@pytest.mark.parametrize("seed", range(10))
def test_return_sums_are_numpys_moments(seed):
    rng = np.random.default_rng(100 + seed)
    e, pos = _curve(rng, int(rng.integers(2, 40_000)))
    n = len(e)
    r = np.full(n, np.nan)
    mean, dev, neg = nb_stats.return_sums(e, r)
    # the returns: bar_returns' division, the first bar 0
    np.testing.assert_array_equal(r, np.r_[0.0, e[1:] / e[:-1] - 1.0])
    # the moments: numpy's mean, std(ddof=1) and downside deviation, bit for bit
    got = moments_from_sums(mean, dev, neg, n - 1)
    ref = _moments(e[1:] / e[:-1] - 1.0)
    assert got[0] == ref[0] and got[1] == ref[1] and got[2] == ref[2]
    # and by an independent two-pass computation in Python floats, to 1e-12
    x = e[1:] / e[:-1] - 1.0
    mu = math.fsum(x) / len(x)
    assert mean == pytest.approx(mu, rel=1e-12, abs=1e-18)
    if len(x) >= 2:
        assert got[1] == pytest.approx(math.sqrt(math.fsum((v - mu) ** 2 for v in x)
                                                 / (len(x) - 1)), rel=1e-12)
    assert got[2] == pytest.approx(math.sqrt(math.fsum(min(v, 0.0) ** 2 for v in x)
                                             / len(x)), rel=1e-12, abs=1e-300)


def test_this_numpy_sums_as_the_compiled_sums_do():
    # when this fails, numpy changed its summation: trials still score right (they take the
    # numpy metrics, see FastTrials.scores), only slower
    assert sums_match_numpy()


@pytest.mark.parametrize("seed", range(6))
def test_score_metrics_are_compute_metrics_for_the_scored_keys(seed):
    rng = np.random.default_rng(200 + seed)
    e, pos = _curve(rng, int(rng.integers(2, 20_000)))
    k = int(rng.integers(0, 40))
    pnl = rng.normal(5.0, 100.0, k)
    if seed == 1:
        pnl = np.abs(pnl) + 1.0  # no losing trade: profit factor undefined
    trades = pd.DataFrame({"trade_id": np.arange(1, k + 1), "pnl": pnl,
                           "return_pct": pnl / 1e4})
    full = compute_metrics(e, trades, 8760, position=pos)
    n = len(e)
    path = nb_stats.path_stats(e, pos)
    sums = nb_stats.return_sums(e, np.empty(n))
    got = score_metrics(e, pnl, 8760, path=path[:3],
                        moments=moments_from_sums(sums[0], sums[1], sums[2], n - 1))
    assert list(got) == list(SCORE_METRICS)
    assert got == {key: full[key] for key in SCORE_METRICS}


def test_a_trial_is_scored_with_every_metric_a_study_reads():
    from flushback.backtests.optimize.objectives import OBJECTIVE_METRICS
    from flushback.backtests.optimize.workers import _SMALL_METRICS

    assert set(OBJECTIVE_METRICS) | set(_SMALL_METRICS) <= set(SCORE_METRICS)


_SPECIAL = st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-300])


@settings(max_examples=300, deadline=None)
@given(cash=st.one_of(st.floats(1e-3, 1e7), st.sampled_from([math.nan, math.inf, 1e-300])),
       closes=st.lists(st.one_of(st.floats(-1e5, 1e5, allow_nan=False), _SPECIAL),
                       min_size=1, max_size=40),
       peak=st.one_of(st.floats(1e-3, 1e7), st.sampled_from([-math.inf, math.inf, 5e-301])),
       worst=st.floats(-2.0, 0.0), run=st.integers(0, 50), longest=st.integers(0, 60),
       bad=st.integers(0, 5), start=st.integers(0, 3))
def test_an_idle_run_is_its_bars_one_by_one(cash, closes, peak, worst, run, longest, bad,
                                            start):
    """The kernel's run of idle bars (``nb_runs._idle_run``: written at once, its path statistics
    added in closed form when every bar's equity is the same number) leaves the equity, the
    position and the statistics that ``_track`` bar by bar leaves: closes that make the
    equity NaN, a cash below or above the peak, a peak not yet set (-inf). (A zero peak is
    left out: the cash of a backtest is positive.)"""
    from flushback.strategies import nb_runs

    n = len(closes) + start
    ohlc = np.ones((n, 4))
    ohlc[start:, 3] = closes
    longest = max(longest, run)
    state = (peak, worst, run, longest, 3, bad)
    want_eq = []
    with np.errstate(invalid="ignore"):  # 0 * inf: NaN, as in the kernel
        for t in range(start, n):
            e = cash + 0.0 * ohlc[t, 3]
            want_eq.append(e)
            state = nb_stats._track(e, 0.0, *state)
    # the closes read, and (when they are all finite) not read: CFG_CLOSES_FINITE
    for finite in {False, bool(np.isfinite(ohlc[:, 3]).all())}:
        eq, pos, cash_out = np.full(n, -7.0), np.full(n, -7.0), np.full(n, -7.0)
        got = nb_runs._idle_run(ohlc, cash, -1, start, n, eq, cash_out, True, pos, True,
                           peak, worst, run, longest, 3, bad, finite)
        assert np.array_equal(eq[start:], want_eq, equal_nan=True)
        assert (eq[:start] == -7.0).all()
        assert (cash_out[start:] == cash).all() or math.isnan(cash)
        assert all(math.copysign(1, p) == -1 and p == 0 for p in pos[start:])  # side * 0.0
        assert np.array_equal(np.array(got, dtype=float), np.array(state, dtype=float),
                              equal_nan=True)


@settings(max_examples=300, deadline=None)
@given(line=st.lists(st.one_of(st.floats(-5, 5), st.just(math.nan)), max_size=30),
       i=st.integers(0, 32), cmp=st.integers(0, 4), thr=st.floats(-5, 5),
       start=st.integers(-2, 40))
def test_the_next_firing_bar_is_the_first_bar_that_fires(line, i, cmp, thr, start):
    """``nb_runs._next_fire`` (the scan for the end of an idle run) is the first bar from ``i``
    on where ``nb_runs._fires`` is true, for every comparison, NaN levels and warm-up starts."""
    from flushback.strategies import nb_runs

    a = np.array(line, dtype=np.float64)
    i = min(i, len(a))
    want = next((j for j in range(i, len(a)) if nb_runs._fires(a, j, cmp, thr, start)), len(a))
    assert nb_runs._next_fire(a, i, cmp, thr, start) == want
