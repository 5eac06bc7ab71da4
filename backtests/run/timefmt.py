"""Time values as reports and audit findings write them: UTC, ISO 8601, trailing ``Z``.

numpy/pandas only, so that any module of :mod:`flushback.backtests` can use it.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

__all__ = ["iso_z"]


def iso_z(value: Any) -> str | None:
    """``"2026-02-05T00:00:00Z"`` for a time value (a naive one is taken as UTC), None for
    None, NaN and NaT."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
