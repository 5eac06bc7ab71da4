"""Calibration of the event study's random-day test: random event days must be flagged at the
nominal rate.

Each seed draws 18 random event days (as many as the catalogue has), runs the study at 7, 30
and 90 days, and records whether the two-sided p-value of the mean return is below
alpha = 0.05. Over 400 seeds a calibrated test rejects Binomial(400, 0.05) / 400 of the time:
5 % with a standard deviation of 1.09 %. The test accepts 5 % +- 2.5 standard deviations
(2.3 % .. 7.7 %) at every horizon. A baseline whose random clusters may overlap, when the
events' clusters never can, is too wide and rejects too rarely (0.5 % at 90 days on the
random walk below).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flushback.backtests.events.study import events_from_triggers, run_event_study

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_events_study import random_walk

SEEDS, N_EVENTS, ALPHA, HORIZONS = 400, 18, 0.05, (7, 30, 90)
BAND = 2.5 * math.sqrt(ALPHA * (1 - ALPHA) / SEEDS)


def _rejection_rates(frame_for_seed, days_for_seed) -> dict[int, float]:
    rejected = dict.fromkeys(HORIZONS, 0)
    for seed in range(SEEDS):
        frame = frame_for_seed(seed)
        days = days_for_seed(seed, frame)
        st = run_event_study(frame, events_from_triggers(days, "1d"), horizons=HORIZONS,
                             draws=1000, seed=seed)
        for row in st.summary.itertuples():
            rejected[int(row.horizon)] += bool(row.ret_p_value < ALPHA)
    return {h: n / SEEDS for h, n in rejected.items()}


def _assert_calibrated(rates: dict[int, float]) -> None:
    for h, rate in rates.items():
        assert abs(rate - ALPHA) <= BAND, (h, rates)


@pytest.mark.slow
def test_random_days_in_a_random_walk_are_flagged_at_the_nominal_rate():
    n = 2200

    def days(seed, frame):
        rng = np.random.default_rng(seed)
        return frame.index[np.sort(rng.choice(np.arange(1, n - 91), N_EVENTS, replace=False))]

    _assert_calibrated(_rejection_rates(lambda seed: random_walk(1000 + seed, n=n), days))


@pytest.mark.slow
@pytest.mark.realdata
def test_random_ordinary_days_of_btc_are_flagged_at_the_nominal_rate(shared_data_dir):
    from flushback.data import load_frame
    from flushback.data.flush_events import load_catalog

    frame = load_frame("BTC-USD", "1d", externals=(), data_dir=shared_data_dir).frame
    frame = frame[["open", "high", "low", "close"]]
    catalogued = pd.DatetimeIndex(
        [pd.Timestamp(e.start, tz="UTC") for e in load_catalog(None).between(
            frame.index[0], frame.index[-1])])
    # ordinary days: more than a week from any catalogued flush, with 90 days of data after
    far = np.array([np.abs((catalogued - t).days).min() > 7 for t in frame.index])
    pool = np.flatnonzero(far)
    pool = pool[pool < len(frame) - 91]

    def days(seed, _frame):
        rng = np.random.default_rng(seed)
        return frame.index[np.sort(rng.choice(pool, N_EVENTS, replace=False))]

    _assert_calibrated(_rejection_rates(lambda seed: frame, days))
