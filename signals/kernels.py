"""Compiled loops of the signals (numba), imported only when a signal needs one.

Each kernel performs the same float operations, in the same order, as the plain Python
loop it replaces, so the values are identical to the last bit (``tests/test_signals_rsi.py``
compares them with the Python loop on random series with gaps)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def recursive_mean(values: np.ndarray, out: np.ndarray, start: int, acc: float,
                   alpha: float) -> None:  # pragma: no cover - compiled
    """``out[i] = acc`` after ``acc += (values[i] - acc) * alpha`` for ``i >= start``; a NaN
    value leaves ``acc`` unchanged (the exponential / Wilder smoothing of an RSI)."""
    for i in range(start, len(values)):
        v = values[i]
        if v == v:  # not NaN
            acc += (v - acc) * alpha
        out[i] = acc
