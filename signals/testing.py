"""A seeded generator of assembled-like frames for tests and examples (numpy/pandas only).

``synthetic_frame(n, interval="1d", seed=0)`` returns a frame with every column of the data
contract (prices, fng, liquidations with a reporting-regime break, funding, open interest),
indexed by bar open time in UTC with ``attrs["interval"]`` set. It includes crashes with volume
and range spikes, liquidation spikes, a flat price stretch and missing external values, so that
every signal has something to fire on and every edge case is exercised. It is synthetic: never
use it to judge a strategy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["synthetic_frame"]

_STEP = {"1h": pd.Timedelta(hours=1), "4h": pd.Timedelta(hours=4), "1d": pd.Timedelta(days=1)}


def synthetic_frame(
    n: int = 600,
    interval: str = "1d",
    seed: int = 0,
    *,
    start: str = "2021-01-01",
    flat: bool = True,
    gaps: bool = True,
) -> pd.DataFrame:
    """A frame of ``n`` bars with all canonical columns (deterministic for a given seed)."""
    rng = np.random.default_rng(seed)
    step = _STEP[interval]
    per_day = pd.Timedelta(days=1) / step
    idx = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=n, freq=step, name="timestamp")
    sigma = 0.03 / np.sqrt(per_day)
    ret = rng.standard_t(4, size=n) * sigma / np.sqrt(2.0)
    crash = rng.random(n) < 0.02
    ret[crash] -= rng.uniform(4, 8, crash.sum()) * sigma
    if flat and n > 80:
        s = n // 3
        ret[s : s + 25] = 0.0  # a flat stretch: RSI and z-scores must not divide by zero
    close = 100.0 * np.exp(np.cumsum(ret))
    open_ = np.r_[100.0, close[:-1]]
    spread = np.abs(rng.normal(0, sigma, n)) * close + np.where(crash, 3 * sigma * close, 0.0)
    high = np.maximum(open_, close) + spread * rng.random(n)
    low = np.minimum(open_, close) - spread * rng.random(n)
    if flat and n > 80:
        high[s : s + 25] = close[s : s + 25]
        low[s : s + 25] = close[s : s + 25]
        open_[s + 1 : s + 25] = close[s : s + 24]
    volume = rng.lognormal(10, 0.4, n) * np.where(crash, rng.uniform(2, 5, n), 1.0)

    fng = np.empty(n)
    x = 50.0
    for i in range(n):
        x = x + 0.08 * (50 - x) / np.sqrt(per_day) + rng.normal(0, 9 / np.sqrt(per_day))
        if crash[i]:
            x -= rng.uniform(10, 30)
        x = min(100.0, max(0.0, x))
        fng[i] = round(x)

    regime = np.where(np.arange(n) < n // 4, "binance_full", "binance_throttled").astype(object)
    scale = np.where(regime == "binance_full", 8.0, 1.0) * 1e7 / per_day
    liq_long = rng.lognormal(0, 0.8, n) * scale * np.where(crash, rng.uniform(5, 20, n), 1.0)
    liq_short = rng.lognormal(0, 0.8, n) * scale * 0.7
    funding = 1e-4 + rng.normal(0, 1e-4, n) - np.where(crash, 4e-4, 0.0)
    oi = 1e10 * np.exp(np.cumsum(rng.normal(0, 0.01, n) - np.where(crash, 0.12, 0.0)))

    frame = pd.DataFrame(
        {
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
            "fng": fng,
            "liq_long_usd": liq_long,
            "liq_short_usd": liq_short,
            "liq_regime": regime,
            "funding_rate": funding,
            "oi_usd": oi,
        },
        index=idx,
    )
    if gaps and n > 40:
        # externals missing at the start (before the source begins) and in a short hole
        frame.loc[frame.index[:10], ["liq_long_usd", "liq_short_usd", "liq_regime"]] = np.nan
        hole = frame.index[n // 2 : n // 2 + 3]
        frame.loc[hole, ["fng", "funding_rate", "oi_usd"]] = np.nan
    frame.attrs["interval"] = interval
    frame.attrs["symbol"] = "SYNTH-USD"
    return frame
