"""Funding at the settlements (flushback.strategies.funding): which bar a settlement belongs
to, hand-checked on small tables, and the coverage refusal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flushback.data.errors import DataError
from flushback.strategies.funding import settled_funding

H = pd.Timedelta(hours=1)


def settlements(*pairs):
    return pd.Series([r for _, r in pairs],
                     index=pd.DatetimeIndex([pd.Timestamp(t, tz="UTC") for t, _ in pairs]))


def test_a_settlement_belongs_to_the_bar_whose_close_it_is():
    idx = pd.date_range("2026-02-02", periods=6, freq="4h", tz="UTC")  # 00:00 .. 20:00
    s = settlements(("2026-02-02 00:00", 9.0), ("2026-02-02 08:00", 1e-4),
                    ("2026-02-02 16:00", -2e-4), ("2026-02-03 00:00", 3e-4))
    out = settled_funding(idx, 4 * H, s)
    # 00:00 is the close of the bar before the window: not charged here; 08:00 closes the
    # 04:00 bar, 16:00 the 12:00 bar, the next day's 00:00 the 20:00 bar
    np.testing.assert_array_equal(out, [np.nan, 1e-4, np.nan, -2e-4, np.nan, 3e-4])


def test_daily_bars_sum_the_settlements_of_the_day():
    idx = pd.date_range("2026-02-02", periods=2, freq="1D", tz="UTC")
    s = settlements(("2026-02-02 08:00", 1e-4), ("2026-02-02 16:00", 2e-4),
                    ("2026-02-03 00:00", 4e-4), ("2026-02-03 08:00", 8e-4),
                    ("2026-02-03 16:00", 1e-5), ("2026-02-04 00:00", 2e-5))
    out = settled_funding(idx, 24 * H, s)
    assert out[0] == pytest.approx(7e-4) and out[1] == pytest.approx(8.3e-4)


def test_bars_outside_the_settlements_are_refused():
    idx = pd.date_range("2026-01-01", periods=10, freq="4h", tz="UTC")
    s = settlements(("2026-01-02 08:00", 1e-4), ("2026-01-02 16:00", 1e-4))
    with pytest.raises(DataError, match="funding settlements cover"):
        settled_funding(idx, 4 * H, s)
