"""Derivatives signals: ``funding_flip`` (funding at or below a level) and ``oi_flush``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from flushback.signals.base import Param, Signal
from flushback.signals.registry import register

__all__ = ["FundingFlip", "OIFlush"]


@register("funding_flip")
class FundingFlip(Signal):
    """Perpetual funding rate at or below ``threshold`` (a FRACTION per 8h: -0.0001 = -0.01 %).

    ``cross=True`` fires only on the bar where funding crosses to at or below the threshold
    (the previous bar was above it), i.e. the flip itself rather than every bar of it.
    """

    summary = "funding rate <= threshold (fraction per 8h), optionally only on the cross"
    inputs = ("funding_rate",)
    param_specs = {
        "threshold": Param(float, -0.0001, -0.002, 0.0001, step=0.00001,
                           doc="fire when funding <= threshold", units="fraction per 8h"),
        "cross": Param(bool, False, doc="fire only on the bar that crosses the threshold"),
    }

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return 1 if self.params["cross"] else 0

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        f = frame["funding_rate"].astype("float64")
        below = f <= self.params["threshold"]
        if self.params["cross"]:
            below = below & (f.shift(1) > self.params["threshold"])
        return below

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        f = frame["funding_rate"].astype("float64")
        return pd.DataFrame({"funding_rate": f, "funding_pct_8h": f * 100.0}, index=frame.index)


@register("oi_flush")
class OIFlush(Signal):
    """Open interest down at least ``threshold`` from its highest value of the last
    ``lookback`` bars before t: ``oi_t / max(oi_{t-lookback..t-1}) - 1 <= -threshold``."""

    summary = "open interest down X % from its N-bar high (leverage flushed out)"
    inputs = ("oi_usd",)
    param_specs = {
        "threshold": Param(float, 0.1, 0.01, 0.5, step=0.01, doc="fall from the window high",
                           units="fraction (0.1 = 10 %)"),
        "lookback": Param(int, 3, 1, 60, step=1, doc="window of the reference high",
                          units="bars"),
    }

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return self.params["lookback"]

    def parts(self, frame: pd.DataFrame) -> pd.DataFrame:
        n = self.params["lookback"]
        oi = frame["oi_usd"].astype("float64")
        ref = oi.shift(1).rolling(n, min_periods=n).max()
        with np.errstate(invalid="ignore", divide="ignore"):
            change = oi / ref.where(ref > 0) - 1.0
        return pd.DataFrame(
            {"oi_usd": oi, "window_high": ref, "change": change,
             "trigger": (change <= -self.params["threshold"]).fillna(False)},
            index=frame.index,
        )

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        return self.parts(frame)["trigger"]

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.parts(frame).drop(columns=["trigger"])
