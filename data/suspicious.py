"""Suspicious values: rows that pass every hard rule but are very unlikely to be real.

Validation (:mod:`flushback.data.validate`) refuses what cannot be real; this module *flags*
what is probably wrong, with the file, column and timestamp, so that nothing odd is merged
silently. A flagged dataset is refused by ``data import`` and the store unless the user
accepts the flags explicitly (``--accept-flagged``); accepted flags are recorded in the
dataset's metadata (the store manifest) and shown by ``data list``/``data validate``.

Rules (each a ratio against the row's neighbours, so a regime that moves slowly is never
flagged, and a value is compared with values that surround it in time):

- **price outliers** (bars): an open, high, low or close more than ``PRICE_FACTOR`` times away
  (up or down) from the median close of the ``NEIGHBOURS`` bars on each side, such as a 50x
  bad tick. Real crashes are not flagged: the closes around them move with them, and the
  largest wick on the shared data (BTCUSDT 1h, 2021-05-19) is 0.74x its neighbours. Rows that
  carry a ``quality_flag`` other than ``ok`` are already flagged by their source.
- **level outliers** (open interest): the same ratio test on the level.
- **unit outliers** (funding rates, a fraction per 8h): a rate whose magnitude is more than
  ``UNIT_FACTOR`` times the median magnitude of its neighbours and above ``UNIT_FLOOR``: the
  signature of a few rows written in percent inside a file of fractions (the whole-file 5 %
  check in the parser catches a file that is in percent throughout).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from flushback.data.datasets import DatasetSpec

__all__ = ["NEIGHBOURS", "PRICE_FACTOR", "UNIT_FACTOR", "UNIT_FLOOR", "Flag", "find_suspicious"]

NEIGHBOURS = 5
PRICE_FACTOR = 3.0
UNIT_FACTOR = 30.0
UNIT_FLOOR = 0.002  # 0.2 % per 8h


@dataclass(frozen=True)
class Flag:
    """One suspicious value."""

    column: str
    timestamp: str
    value: float
    reference: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return f"{self.column} at {self.timestamp} = {self.value:g} ({self.reason})"


def _neighbour_median(x: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Median of the ``k`` values before and the ``k`` after each position (itself excluded),
    ignoring NaN and positions outside the array."""
    n = len(x)
    pad = np.concatenate([np.full(k, np.nan), x, np.full(k, np.nan)])
    cols = [pad[k + off: k + off + n] for off in range(-k, k + 1) if off != 0]
    stack = np.column_stack(cols) if cols else np.empty((n, 0))
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows -> NaN
            return np.nanmedian(stack, axis=1)


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ratio_flags(index: pd.DatetimeIndex, values: np.ndarray, ref: np.ndarray, column: str,
                 factor: float, what: str, skip: np.ndarray) -> list[Flag]:
    with np.errstate(all="ignore"):
        ratio = values / ref
        bad = ((ratio > factor) | (ratio < 1.0 / factor)) & np.isfinite(ratio) & ~skip
    return [Flag(column, _iso(index[i]), float(values[i]), float(ref[i]),
                 f"{ratio[i]:.3g}x the median of its neighbours ({ref[i]:g}): {what}")
            for i in np.flatnonzero(bad)]


def find_suspicious(frame: pd.DataFrame, spec: DatasetSpec) -> list[Flag]:
    """Every suspicious value of a parsed dataset (see the module docstring), in time order."""
    if frame is None or len(frame) < 3:
        return []
    idx = pd.DatetimeIndex(frame.index)
    skip = np.zeros(len(frame), dtype=bool)
    if "quality_flag" in frame.columns:
        q = frame["quality_flag"].astype("string").fillna("ok").str.strip().str.lower()
        skip = (q != "ok").to_numpy()
    flags: list[Flag] = []
    if spec.kind == "bars":
        close = frame["close"].to_numpy(dtype="float64", na_value=np.nan)
        ref = _neighbour_median(np.where(skip, np.nan, close))
        for col in ("open", "high", "low", "close"):
            flags += _ratio_flags(idx, frame[col].to_numpy(dtype="float64", na_value=np.nan),
                                  ref, col, PRICE_FACTOR, "a bad tick?", skip)
    elif spec.kind == "open_interest" and "oi_usd" in frame.columns:
        oi = frame["oi_usd"].to_numpy(dtype="float64", na_value=np.nan)
        flags += _ratio_flags(idx, oi, _neighbour_median(oi), "oi_usd", PRICE_FACTOR,
                              "a bad reading?", skip)
    elif spec.kind == "funding" and "funding_rate" in frame.columns:
        rate = np.abs(frame["funding_rate"].to_numpy(dtype="float64", na_value=np.nan))
        ref = _neighbour_median(rate, 12)
        with np.errstate(all="ignore"):
            bad = (rate > UNIT_FLOOR) & (rate > UNIT_FACTOR * np.maximum(ref, 1e-6))
        vals = frame["funding_rate"].to_numpy(dtype="float64", na_value=np.nan)
        flags += [Flag("funding_rate", _iso(idx[i]), float(vals[i]), float(ref[i]),
                       f"{rate[i] / max(ref[i], 1e-6):.3g}x the typical size of its neighbours "
                       f"({ref[i]:g}): written in percent instead of a fraction?")
                  for i in np.flatnonzero(bad)]
    flags.sort(key=lambda f: (f.timestamp, f.column))
    return flags
