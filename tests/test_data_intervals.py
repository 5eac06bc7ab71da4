"""One home for time and interval helpers (flushback.data.intervals): hand-computed values,
and every layer's name for a helper is that very function, not a copy."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from flushback.data import intervals as iv
from flushback.data.errors import ConfigError, DataError


def test_parse_name_and_labels():
    assert iv.parse_interval("4H") == pd.Timedelta(hours=4)
    with pytest.raises(DataError, match="unknown interval '2h'"):
        iv.parse_interval("2h")
    assert iv.interval_name(pd.Timedelta(days=1)) == "1d"
    assert iv.interval_name(pd.Timedelta(hours=2)) is None
    assert iv.fmt_td(pd.Timedelta(days=2)) == "48h" and iv.fmt_td(pd.Timedelta(0)) == "0s"
    assert iv.fmt_td(pd.Timedelta(minutes=90)) == "90min"
    assert iv.td_label(pd.Timedelta(days=2)) == "2d" and iv.td_label(pd.Timedelta(hours=4)) == "4h"


def test_durations():
    assert iv.duration("30min") == pd.Timedelta(minutes=30)
    assert iv.duration("1D") == pd.Timedelta(days=1)
    assert iv.duration(dt.timedelta(hours=8)) == pd.Timedelta(hours=8)
    with pytest.raises(ConfigError, match="is not a duration"):
        iv.duration("soon")
    assert iv.bars_for("1d", pd.Timedelta(hours=4)) == 6
    with pytest.raises(ConfigError, match="window 5h is not a whole number of 4h bars"):
        iv.bars_for("5h", pd.Timedelta(hours=4))
    assert iv.days_to_bars(3, pd.Timedelta(hours=8)) == 9
    assert iv.days_to_bars(1, pd.Timedelta(days=2)) == 1
    with pytest.raises(ConfigError, match="is negative"):
        iv.nonnegative_duration("-1h", "publication_lag")


def test_bar_interval_hours_and_periods_per_year():
    idx = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 04:00", "2024-01-01 08:00",
                            "2024-01-01 16:00"], tz="UTC")
    f = pd.DataFrame({"close": [1.0, 2.0, 3.0, 4.0]}, index=idx)
    assert iv.bar_interval(f) == pd.Timedelta(hours=4)  # the most common spacing
    assert iv.bar_hours(f) == 4.0
    assert iv.bar_hours(f.iloc[:1]) == 24.0  # a lone bar without a declared interval
    f.attrs["interval"] = "1h"
    assert iv.bar_hours(f) == 1.0
    # 365 days of 24 hours over the bar length
    for interval, n in (("1d", 365), ("4h", 2190), ("1h", 8760), ("8h", 1095),
                        (pd.Timedelta(hours=4), 2190), ("2 days", 182)):
        assert iv.periods_per_year(interval) == n


def test_every_layer_uses_the_one_definition():
    from flushback.backtests.run import metrics
    from flushback.data import datasets, frames
    from flushback.signals import base
    from flushback.strategies import columns

    assert datasets.parse_interval is iv.parse_interval and datasets.INTERVALS is iv.INTERVALS
    assert datasets.fmt_td is iv.fmt_td and datasets.ns_values is iv.ns_values
    assert frames.bar_interval is iv.bar_interval
    assert base.duration is iv.duration and base.bar_interval is iv.bar_interval
    assert base.bars_for is iv.bars_for and base.days_to_bars is iv.days_to_bars
    assert columns.bar_hours is iv.bar_hours
    assert metrics.periods_per_year_for is iv.periods_per_year
