"""Causal rolling statistics used by several signals (numpy/pandas only)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import pandas as pd

MAD_SCALE = 1.4826  # makes the MAD a consistent estimator of sigma for normal data

_CHUNK = 4096
_CELLS = 1 << 22  # window cells per chunk (~32 MB of float64)


def run_ids(keys: pd.Series) -> np.ndarray:
    """Integer id of each contiguous run of equal keys (NaN/None is a key of its own)."""
    k = keys.astype(object).where(keys.notna(), "\x00<missing>")
    return (k != k.shift()).cumsum().to_numpy()


def _trailing_blocks(
    values: np.ndarray, window: int, groups: np.ndarray | None
) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, block)`` pairs covering ``values``: ``block[j]`` holds the ``window`` values
    strictly before position ``start + j`` (NaN-padded before the start of its group of
    ``groups``, where the history restarts). Blocks are views computed a chunk of rows at a
    time, so memory stays bounded for long windows; every window is computed on its own, so
    a value never depends on where the array starts."""
    values = np.asarray(values, dtype="float64")
    n = len(values)
    if groups is None:
        groups = np.zeros(n, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if n else np.array([], int)
    ends = np.r_[starts[1:], n]
    chunk = max(1, min(_CHUNK, _CELLS // max(window, 1)))
    for s, e in zip(starts, ends, strict=True):
        seg = values[s:e]
        prev = np.r_[np.full(window, np.nan), seg[:-1]] if len(seg) else seg
        for c0 in range(0, len(seg), chunk):
            c1 = min(len(seg), c0 + chunk)
            block = np.lib.stride_tricks.sliding_window_view(prev[c0 : c1 + window - 1], window)
            yield s + c0, block[: c1 - c0]


def trailing_median_mad(
    values: np.ndarray, window: int, min_periods: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD of the ``window`` values *before* each position (the current value is
    excluded), ignoring NaN, restarting at each change of ``groups``; NaN where fewer than
    ``min_periods`` values are available.
    """
    n = len(values)
    med = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    for at, block in _trailing_blocks(values, window, groups):
        count = np.sum(~np.isnan(block), axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = np.nanmedian(block, axis=1)
            d = np.nanmedian(np.abs(block - m[:, None]), axis=1)
        ok = count >= min_periods
        med[at : at + len(block)] = np.where(ok, m, np.nan)
        mad[at : at + len(block)] = np.where(ok, d, np.nan)
    return med, mad


def trailing_mean_std(
    values: np.ndarray, window: int, min_periods: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation (ddof=1) of the ``window`` values *before* each
    position (the current value is excluded), ignoring NaN; NaN where fewer than
    ``max(min_periods, 2)`` values are available. Each window is summed on its own (no
    running sums), so the result at t is exactly the same whatever history precedes the
    window."""
    n = len(values)
    mean = np.full(n, np.nan)
    std = np.full(n, np.nan)
    need = max(int(min_periods), 2)
    for at, block in _trailing_blocks(values, window, None):
        count = np.sum(~np.isnan(block), axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = np.nanmean(block, axis=1)
            sd = np.nanstd(block, axis=1, ddof=1)
            # a constant window (a daily value repeated on intraday bars) has scale exactly 0:
            # the float mean of n equal values can miss them by an ulp, and the std then
            # comes out as 1e-16 of the level instead of 0
            hi = np.nanmax(block, axis=1)
            flat = hi == np.nanmin(block, axis=1)
        m = np.where(flat, hi, m)
        sd = np.where(flat, 0.0, sd)
        ok = count >= need
        mean[at : at + len(block)] = np.where(ok, m, np.nan)
        std[at : at + len(block)] = np.where(ok, sd, np.nan)
    return mean, std


def robust_z(
    values: np.ndarray, window: int, min_periods: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x - median) / (1.4826 * MAD)`` against the trailing window; NaN when MAD is 0."""
    med, mad = trailing_median_mad(values, window, min_periods, groups)
    scale = MAD_SCALE * mad
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(scale > 0, (np.asarray(values, dtype="float64") - med) / scale, np.nan)
    return z, med, scale
