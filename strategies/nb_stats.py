"""The compiled passes over an equity curve that score a backtest: the drawdown, underwater
run and exposure (:func:`path_stats`, one bar at a time in :func:`_track`, which the engine
kernel also runs as it writes the equity), and the per-bar returns with the sums numpy's
``mean``, ``std`` and downside deviation take of them (:func:`return_sums`, numpy's pairwise
summation reproduced bit for bit: :func:`_pairwise_sum`, :func:`_tree_sums`). The formulas
that turn them into metrics are :mod:`flushback.backtests.run.metrics`'; the kernel is
:mod:`flushback.strategies.nb`."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["path_stats", "return_sums"]


@njit(cache=True)
def _track(e, p, peak, worst, run, longest, held, bad):
    """One bar of :func:`path_stats`, on the state it carries (``simulate``'s ``path_out``)."""
    if not e > 0.0:
        bad += 1
    if e > peak:
        peak = e
    dd = e / peak - 1.0
    if dd < worst:
        worst = dd
    if e < peak:
        run += 1
        if run > longest:
            longest = run
    else:
        run = 0
    if abs(p) > 1e-12:
        held += 1
    return peak, worst, run, longest, held, bad


@njit(cache=True)
def path_stats(equity, position):
    """(max drawdown, longest underwater run in bars, bars with a position, bars whose
    equity is not a positive number) of an equity curve in one pass: the running peak,
    ``equity / peak - 1`` per bar and its minimum, the runs of bars that end below the peak,
    ``|position| > 1e-12``. Comparisons, one division per bar and counts: for a positive
    curve the same numbers, bit for bit, as the numpy expressions of
    :mod:`flushback.backtests.run.metrics` (tested); with a bad bar use those instead."""
    peak = equity[0]
    worst = equity[0] / peak - 1.0
    run = 0
    longest = 0
    held = 0
    bad = 0
    for i in range(len(equity)):
        peak, worst, run, longest, held, bad = _track(equity[i], position[i], peak, worst,
                                                      run, longest, held, bad)
    return worst, longest, held, bad


@njit(cache=True)
def _block_sum(a, lo, n):
    """numpy's sum of a block of at most 128 values: below 8 one by one, else in 8
    interleaved accumulators combined pairwise, then the remainder one by one."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    m = lo + n - n % 8
    i = lo + 8
    while i < m:
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < lo + n:
        res += a[i]
        i += 1
    return res


@njit(cache=True)
def _pairwise_sum(a, lo, n):
    """numpy's pairwise summation of ``a[lo:lo + n]`` (``add.reduce`` on a contiguous float64
    array): blocks of at most 128 values (:func:`_block_sum`); a longer run is the sum of its
    two halves, the first cut to a multiple of 8. The same sum, bit for bit."""
    return _tree_sums(a, lo, n, 0.0, False)[0]


@njit(cache=True)
def _block_sq_sums(a, lo, n, mu):
    """:func:`_block_sum` of ``(a - mu) ** 2`` and of ``min(a, 0) ** 2`` over one block, both
    at once, each term computed as numpy computes the array it sums. (numpy starts its 8
    accumulators at the first 8 terms; starting them at 0 and adding those terms is the same
    sum, bit for bit: every term is a square, and ``0.0 + t`` is ``t`` for ``t >= 0``.)"""
    if n < 8:
        dev = 0.0
        neg = 0.0
        for i in range(lo, lo + n):
            x = a[i] - mu
            dev += x * x
            y = min(a[i], 0.0)
            neg += y * y
        return dev, neg
    d0 = d1 = d2 = d3 = d4 = d5 = d6 = d7 = 0.0
    g0 = g1 = g2 = g3 = g4 = g5 = g6 = g7 = 0.0
    m = lo + n - n % 8
    i = lo
    while i < m:
        x0, x1, x2, x3 = a[i] - mu, a[i + 1] - mu, a[i + 2] - mu, a[i + 3] - mu
        x4, x5, x6, x7 = a[i + 4] - mu, a[i + 5] - mu, a[i + 6] - mu, a[i + 7] - mu
        d0 += x0 * x0
        d1 += x1 * x1
        d2 += x2 * x2
        d3 += x3 * x3
        d4 += x4 * x4
        d5 += x5 * x5
        d6 += x6 * x6
        d7 += x7 * x7
        y0, y1, y2, y3 = min(a[i], 0.0), min(a[i + 1], 0.0), min(a[i + 2], 0.0), min(a[i + 3], 0.0)
        y4, y5, y6, y7 = (min(a[i + 4], 0.0), min(a[i + 5], 0.0), min(a[i + 6], 0.0),
                          min(a[i + 7], 0.0))
        g0 += y0 * y0
        g1 += y1 * y1
        g2 += y2 * y2
        g3 += y3 * y3
        g4 += y4 * y4
        g5 += y5 * y5
        g6 += y6 * y6
        g7 += y7 * y7
        i += 8
    dev = ((d0 + d1) + (d2 + d3)) + ((d4 + d5) + (d6 + d7))
    neg = ((g0 + g1) + (g2 + g3)) + ((g4 + g5) + (g6 + g7))
    while i < lo + n:
        x = a[i] - mu
        dev += x * x
        y = min(a[i], 0.0)
        neg += y * y
        i += 1
    return dev, neg


@njit(cache=True)
def _tree_sums(a, lo, n, mu, squares):
    """numpy's pairwise tree over ``a[lo:lo + n]``: the sum (``squares`` False; the second
    value 0), or the sums of ``(a - mu) ** 2`` and ``min(a, 0) ** 2`` in one read of ``a``.
    Written with an explicit stack (numba's cache does not keep recursive functions safely):
    the halves are summed left first and added as the recursion adds them."""
    if n <= 128:
        if squares:
            return _block_sq_sums(a, lo, n, mu)
        return _block_sum(a, lo, n), 0.0
    # pending work: (start, length) to sum, or a marker (-1) to add the top two sums
    todo_lo = np.empty(256, np.int64)
    todo_n = np.empty(256, np.int64)
    xs = np.empty(128)
    ys = np.empty(128)
    v = 0
    todo_lo[0] = lo
    todo_n[0] = n
    t = 1
    while t > 0:
        t -= 1
        start = todo_lo[t]
        k = todo_n[t]
        if start < 0:
            v -= 1
            xs[v - 1] = xs[v - 1] + xs[v]
            ys[v - 1] = ys[v - 1] + ys[v]
        elif k <= 128:
            if squares:
                xs[v], ys[v] = _block_sq_sums(a, start, k, mu)
            else:
                xs[v] = _block_sum(a, start, k)
                ys[v] = 0.0
            v += 1
        else:
            k2 = k // 2
            k2 -= k2 % 8
            todo_lo[t] = -1
            todo_n[t] = 0
            todo_lo[t + 1] = start + k2
            todo_n[t + 1] = k - k2
            todo_lo[t + 2] = start
            todo_n[t + 2] = k2
            t += 3
    return xs[0], ys[0]


@njit(cache=True)
def return_sums(equity, returns):
    """The per-bar returns of an equity curve into ``returns`` (``returns[0] = 0``, then
    ``E_t / E_{t-1} - 1``) and (mean return, sum of squared deviations from it, sum of
    squared negative returns): the sums numpy's ``mean``, ``std`` and ``mean(minimum(r, 0)
    ** 2)`` take over ``returns[1:]``, bit for bit (:func:`_tree_sums`). Meant for a curve of
    positive numbers (with a bad bar, use numpy's)."""
    n = len(equity)
    returns[0] = 0.0
    returns[1:] = equity[1:] / equity[:-1] - 1.0  # an array expression: vectorised division
    m = n - 1
    if m < 1:
        return math.nan, math.nan, math.nan
    mean = (0.0 + _pairwise_sum(returns, 1, m)) / m
    dev, neg = _tree_sums(returns, 1, m, mean, True)
    return mean, 0.0 + dev, 0.0 + neg
