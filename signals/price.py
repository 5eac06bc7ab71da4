"""Price/volume signals: ``capitulation`` (a PROXY for a liquidation flush) and ``drawdown``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flushback.signals.base import Param, Signal, cached_part
from flushback.signals.registry import register

__all__ = ["Capitulation", "Drawdown"]


def _capitulation_stats(frame: pd.DataFrame, n: int) -> tuple[pd.Series, ...]:
    close = frame["close"].astype("float64")
    prev_close = close.shift(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ret = np.log(close / prev_close)
        rng = (frame["high"].astype("float64") - frame["low"].astype("float64")) / prev_close
    sigma = ret.shift(1).rolling(n, min_periods=n).std(ddof=1)
    vol = frame["volume"].astype("float64")
    vol_med = vol.shift(1).rolling(n, min_periods=n).median()
    rng_med = rng.shift(1).rolling(n, min_periods=n).median()
    return close, ret, rng, sigma, vol, vol_med, rng_med


@register("capitulation")
class Capitulation(Signal):
    """PROXY for a liquidation flush from price and volume alone (for periods or markets with
    no liquidation data, e.g. March 2020 or February 2026 in the shared data). It does not
    observe liquidations; it fires on the footprint a forced-selling cascade leaves on a bar:

    - a crash: the log return ``r_t = ln(close_t / close_{t-1})`` is below ``-k * sigma_t``,
      where ``sigma_t`` is the standard deviation of the ``lookback`` log returns before bar t;
    - heavy volume: ``volume_t >= m * median(volume)`` over the ``lookback`` bars before t;
    - range expansion: ``(high_t - low_t) / close_{t-1} >= range_mult * median`` of the same
      ratio over the ``lookback`` bars before t.
    """

    summary = "PROXY flush: return < -k sigma, volume > m x median, range expansion"
    inputs = ("high", "low", "close", "volume")
    param_specs = {
        "k": Param(float, 2.0, 1.0, 5.0, step=0.25, doc="return below -k sigma",
                   units="sigma of log returns"),
        "volume_mult": Param(float, 1.5, 1.0, 5.0, step=0.1,
                             doc="volume >= this x trailing median", units="x median"),
        "range_mult": Param(float, 1.5, 1.0, 5.0, step=0.1,
                            doc="(high-low)/prev close >= this x trailing median",
                            units="x median"),
        "lookback": Param(int, 30, 10, 200, step=1, doc="trailing window for sigma and medians",
                          units="bars"),
    }

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return self.params["lookback"] + 1

    def parts(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        n = p["lookback"]
        # the trailing statistics depend on ``lookback`` only (not on the multipliers): a
        # threshold change reuses them inside an active SignalCache
        close, ret, rng, sigma, vol, vol_med, rng_med = cached_part(
            frame, ("capitulation_stats", n), lambda: _capitulation_stats(frame, n))
        crash = ret <= -p["k"] * sigma
        heavy = vol >= p["volume_mult"] * vol_med
        wide = rng >= p["range_mult"] * rng_med
        # a flat stretch (sigma = 0, median volume 0) must not turn every bar into a trigger
        valid = (sigma > 0) & (vol_med > 0) & (rng_med > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = pd.DataFrame(
                {
                    "close": close,
                    "return": ret,
                    "sigmas": ret / sigma.where(sigma > 0),
                    "volume_x": vol / vol_med.where(vol_med > 0),
                    "range_x": rng / rng_med.where(rng_med > 0),
                },
                index=frame.index,
            )
        out["trigger"] = (crash & heavy & wide & valid).fillna(False)
        return out

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        return self.parts(frame)["trigger"]

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.parts(frame).drop(columns=["trigger"])


@register("drawdown")
class Drawdown(Signal):
    """Close at least ``threshold`` below the highest high of the last ``lookback`` bars
    (including the current bar): ``close_t / max(high_{t-lookback+1..t}) - 1 <= -threshold``."""

    summary = "close >= threshold below the N-bar high"
    inputs = ("high", "close")
    param_specs = {
        "threshold": Param(float, 0.25, 0.02, 0.8, step=0.01, doc="drawdown from the N-bar high",
                           units="fraction (0.25 = 25 %)"),
        "lookback": Param(int, 30, 2, 365, step=1, doc="window of the reference high",
                          units="bars"),
    }

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return self.params["lookback"] - 1

    def parts(self, frame: pd.DataFrame) -> pd.DataFrame:
        n = self.params["lookback"]
        high = frame["high"].astype("float64").rolling(n, min_periods=n).max()
        close = frame["close"].astype("float64")
        with np.errstate(invalid="ignore", divide="ignore"):
            dd = close / high.where(high > 0) - 1.0
        return pd.DataFrame(
            {"close": close, "window_high": high, "drawdown": dd,
             "trigger": (dd <= -self.params["threshold"]).fillna(False)},
            index=frame.index,
        )

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        return self.parts(frame)["trigger"]

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.parts(frame).drop(columns=["trigger"])
