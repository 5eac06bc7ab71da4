"""The compiled loops of flushback.signals.kernels give, bit for bit, what the plain Python
loop they replace gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flushback.signals.kernels import recursive_mean
from flushback.signals.rsi import rsi_values


def _python_loop(values: np.ndarray, start: int, acc: float, alpha: float) -> np.ndarray:
    out = np.full(len(values), np.nan)
    out[start - 1] = acc
    for i in range(start, len(values)):
        v = values[i]
        if v == v:
            acc += (v - acc) * alpha
        out[i] = acc
    return out


@pytest.mark.parametrize("seed", range(5))
def test_recursive_mean_is_the_python_loop_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 5000))
    values = np.abs(rng.normal(0, 1e3, n)) * rng.choice([1e-6, 1.0, 1e6], n)
    values[rng.random(n) < 0.05] = np.nan  # gaps leave the average unchanged
    period = int(rng.integers(2, 15))
    alpha = 1.0 / period if seed % 2 else 2.0 / (period + 1)
    acc = float(np.nanmean(values[1:period + 1]))
    out = np.full(n, np.nan)
    out[period] = acc
    recursive_mean(values, out, period + 1, acc, alpha)
    want = _python_loop(values, period + 1, acc, alpha)
    assert np.array_equal(out[period:], want[period:], equal_nan=True)
    assert out.tobytes()[period * 8:] == want.tobytes()[period * 8:]


def test_rsi_matches_an_independent_wilder_rsi():
    rng = np.random.default_rng(9)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.02, 3000))))
    got = rsi_values(close, 14, "wilder").to_numpy()
    delta = close.diff()
    gain, loss = delta.clip(lower=0).to_numpy(), (-delta).clip(lower=0).to_numpy()
    g, lo = np.full(3000, np.nan), np.full(3000, np.nan)
    g[14], lo[14] = gain[1:15].mean(), loss[1:15].mean()
    for i in range(15, 3000):
        g[i] = g[i - 1] + (gain[i] - g[i - 1]) / 14
        lo[i] = lo[i - 1] + (loss[i] - lo[i - 1]) / 14
    want = 100 * g / (g + lo)
    np.testing.assert_allclose(got[14:], want[14:], rtol=1e-12)
    assert np.isnan(got[:14]).all()


def _rsi_on_timeframe_by_reindex(frame, period, smoothing, timeframe):
    """The higher-timeframe RSI written the direct way: the complete groups' closes, their
    RSI, reindexed on the base bars and carried forward."""
    from flushback.data.intervals import bar_interval, bars_for, duration

    interval, idx = bar_interval(frame), frame.index
    tf = duration(timeframe)
    groups = idx.floor(tf)
    counts = pd.Series(1, index=idx).groupby(groups).transform("size").to_numpy()
    closing = (idx == groups + (tf - interval)) & (counts == bars_for(tf, interval, what="x"))
    htf = rsi_values(frame["close"][closing], period, smoothing)
    return htf.reindex(idx).ffill().rename("rsi")


@pytest.mark.parametrize("n", [3, 50, 6000])
def test_rsi_on_a_higher_timeframe_is_the_direct_computation(n):
    from flushback.signals.rsi import rsi_on_timeframe

    rng = np.random.default_rng(n)
    idx = pd.date_range("2024-01-01 03:00", periods=n, freq="h", tz="UTC")
    frame = pd.DataFrame({"close": 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))},
                         index=idx)
    frame = frame.drop(frame.index[rng.random(n) < 0.02])  # holes: incomplete groups
    frame.attrs["interval"] = "1h"
    for tf in ("4h", "1d"):
        for period in (2, 14):
            for smoothing in ("wilder", "cutler", "ema"):
                pd.testing.assert_series_equal(
                    rsi_on_timeframe(frame, period, smoothing, tf),
                    _rsi_on_timeframe_by_reindex(frame, period, smoothing, tf),
                    check_exact=True)


@pytest.mark.parametrize("smoothing", ["wilder", "cutler", "ema"])
def test_rsi_on_arrays_is_the_pandas_expression(smoothing):
    """``rsi_values`` works on arrays; its gains and losses are pandas'
    ``diff().clip(lower=0)`` bit for bit (NaN, infinities, -0.0 kept as pandas keeps it),
    and the RSI the one the pandas expressions give."""
    from flushback.signals.rsi import _clip_below_zero

    x = np.array([np.nan, -0.0, 0.0, -1.5, 2.0, np.inf, -np.inf, 1e-320, -1e-320])
    want = pd.Series(x).clip(lower=0.0).to_numpy()
    assert _clip_below_zero(x).tobytes() == want.tobytes()
    rng = np.random.default_rng(4)
    close = pd.Series(np.r_[100 + np.cumsum(rng.normal(0, 1, 400)), [np.nan, 5.0, 5.0, 5.0],
                            np.full(20, 7.0), 100 + np.cumsum(rng.normal(0, 1, 80))])
    delta = close.diff()
    gain, loss = delta.clip(lower=0.0), (-delta).clip(lower=0.0)
    if smoothing == "cutler":
        g, lo = (s.rolling(14, min_periods=14).mean().to_numpy() for s in (gain, loss))
    else:
        alpha = 1 / 14 if smoothing == "wilder" else 2 / 15
        g, lo = (np.full(len(close), np.nan) for _ in range(2))
        for out, s in ((g, gain.to_numpy()), (lo, loss.to_numpy())):
            out[:] = _python_loop(s, 15, float(np.mean(s[1:15])), alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = np.where(g + lo > 0, 100.0 * (g / np.where(g + lo > 0, g + lo, 1.0)), 50.0)
    ref[np.isnan(g) | np.isnan(lo)] = np.nan
    np.testing.assert_array_equal(rsi_values(close, 14, smoothing).to_numpy(), ref)
