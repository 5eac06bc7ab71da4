"""Causal rolling statistics used by several signals (numpy/pandas only)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

MAD_SCALE = 1.4826  # makes the MAD a consistent estimator of sigma for normal data

_CHUNK = 4096


def run_ids(keys: pd.Series) -> np.ndarray:
    """Integer id of each contiguous run of equal keys (NaN/None is a key of its own)."""
    k = keys.astype(object).where(keys.notna(), "\x00<missing>")
    return (k != k.shift()).cumsum().to_numpy()


def trailing_median_mad(
    values: np.ndarray, window: int, min_periods: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD of the ``window`` values *before* each position (the current value is
    excluded), ignoring NaN, restarting at each change of ``groups``; NaN where fewer than
    ``min_periods`` values are available.
    """
    values = np.asarray(values, dtype="float64")
    n = len(values)
    med = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    if groups is None:
        groups = np.zeros(n, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if n else np.array([], int)
    ends = np.r_[starts[1:], n]
    for s, e in zip(starts, ends, strict=True):
        seg = values[s:e]
        prev = np.r_[np.full(window, np.nan), seg[:-1]] if len(seg) else seg
        # windows[i] = the `window` values strictly before seg[i]
        for c0 in range(0, len(seg), _CHUNK):
            c1 = min(len(seg), c0 + _CHUNK)
            block = np.lib.stride_tricks.sliding_window_view(prev[c0 : c1 + window - 1], window)
            block = block[: c1 - c0]
            count = np.sum(~np.isnan(block), axis=1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                m = np.nanmedian(block, axis=1)
                d = np.nanmedian(np.abs(block - m[:, None]), axis=1)
            ok = count >= min_periods
            med[s + c0 : s + c1] = np.where(ok, m, np.nan)
            mad[s + c0 : s + c1] = np.where(ok, d, np.nan)
    return med, mad


def robust_z(
    values: np.ndarray, window: int, min_periods: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x - median) / (1.4826 * MAD)`` against the trailing window; NaN when MAD is 0."""
    med, mad = trailing_median_mad(values, window, min_periods, groups)
    scale = MAD_SCALE * mad
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(scale > 0, (np.asarray(values, dtype="float64") - med) / scale, np.nan)
    return z, med, scale
