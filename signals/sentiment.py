"""Fear & Greed signals: ``extreme_fear`` (entries) and its mirror ``extreme_greed`` (exits).

Input ``fng`` is the alternative.me Crypto Fear & Greed Index (0..100), as-of joined by the
data layer on its publication time, so a daily value is seen by the first bar that closes after
it was published. Durations are in days (the index is daily) and converted to bars.
"""

from __future__ import annotations

import math

import pandas as pd

from flushback.signals.base import Param, Signal, days_to_bars
from flushback.signals.registry import register

__all__ = ["ExtremeFear", "ExtremeGreed"]


def _streak_bars(days: int, interval: pd.Timedelta) -> int:
    """Bars that make "``days`` daily values in a row": 1 bar for 1 day, 1 + 24h of bars for 2."""
    return 1 + math.ceil(pd.Timedelta(days=days - 1) / interval)


class _FngSignal(Signal):
    inputs = ("fng",)
    sign = 1  # +1: fear (low values), -1: greed (high values)

    def warmup_for(self, interval: pd.Timedelta) -> int:
        p = self.params
        bars = _streak_bars(p["consecutive_days"], interval) - 1
        if p[self._move_key] > 0:
            bars = max(bars, days_to_bars(p["move_window_days"], interval))
        return bars

    @property
    def _move_key(self) -> str:
        return "fall_points" if self.sign == 1 else "rise_points"

    def parts(self, frame: pd.DataFrame) -> pd.DataFrame:
        from flushback.signals.base import bar_interval

        p = self.params
        interval = bar_interval(frame)
        fng = frame["fng"].astype("float64")
        if self.sign == 1:
            level = fng <= p["threshold"]
        else:
            level = fng >= p["threshold"]
        n = _streak_bars(p["consecutive_days"], interval)
        # NaN never counts and breaks the streak (a single missing day is not NaN: the 48 h
        # staleness of the F&G join repeats the previous value, which then counts as a day)
        streak = level.astype("float64").rolling(n, min_periods=n).min() == 1.0
        out = pd.DataFrame({"fng": fng, "level": level, "streak": streak})
        if p[self._move_key] > 0:
            w = days_to_bars(p["move_window_days"], interval)
            if self.sign == 1:
                ref = fng.rolling(w + 1, min_periods=w + 1).max()
                move = ref - fng
                out["window_high"] = ref
            else:
                ref = fng.rolling(w + 1, min_periods=w + 1).min()
                move = fng - ref
                out["window_low"] = ref
            out["move"] = move
            out["moved"] = move >= p[self._move_key]
        else:
            out["moved"] = True
        out["trigger"] = out["streak"] & out["moved"]
        return out

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        p = self.params
        if p["consecutive_days"] == 1 and not p[self._move_key] > 0:
            # the common case, without building the explain frame: a one-bar streak is the
            # level itself (NaN never counts: comparisons with NaN are False)
            fng = frame["fng"].to_numpy(dtype="float64")
            level = fng <= p["threshold"] if self.sign == 1 else fng >= p["threshold"]
            return pd.Series(level, index=frame.index)
        return self.parts(frame)["trigger"]

    def threshold_form(self) -> tuple[str, str] | None:
        p = self.params
        if p["consecutive_days"] == 1 and not p[self._move_key] > 0:
            return "threshold", "<=" if self.sign == 1 else ">="
        return None

    def level(self, frame: pd.DataFrame) -> pd.Series:
        return frame["fng"].astype("float64")

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        parts = self.parts(frame)
        return parts.drop(columns=["level", "streak", "moved", "trigger"])


@register("extreme_fear")
class ExtremeFear(_FngSignal):
    """Fear & Greed at or below ``threshold`` for ``consecutive_days`` days in a row, and (if
    ``fall_points`` > 0) at least ``fall_points`` below its high of the last
    ``move_window_days`` days."""

    summary = "Fear & Greed <= threshold (optionally N days in a row / after a fall)"
    sign = 1
    param_specs = {
        "threshold": Param(float, 10.0, 0.0, 50.0, step=1.0, doc="trigger when fng <= threshold",
                           units="index points 0..100"),
        "consecutive_days": Param(int, 1, 1, 14, step=1, doc="days in a row at/below threshold",
                                  units="days"),
        "fall_points": Param(float, 0.0, 0.0, 60.0, step=1.0,
                             doc="require a fall of at least this many points from the "
                             "window high (0 = off)", units="index points"),
        "move_window_days": Param(int, 7, 1, 60, step=1, doc="window for the fall",
                                  units="days"),
    }


@register("extreme_greed")
class ExtremeGreed(_FngSignal):
    """Mirror of extreme_fear for exits: Fear & Greed at or above ``threshold`` (optionally for
    N days in a row, and ``rise_points`` above its ``move_window_days``-day low)."""

    summary = "Fear & Greed >= threshold (exit; mirror of extreme_fear)"
    sign = -1
    param_specs = {
        "threshold": Param(float, 80.0, 50.0, 100.0, step=1.0,
                           doc="trigger when fng >= threshold", units="index points 0..100"),
        "consecutive_days": Param(int, 1, 1, 14, step=1, doc="days in a row at/above threshold",
                                  units="days"),
        "rise_points": Param(float, 0.0, 0.0, 60.0, step=1.0,
                             doc="require a rise of at least this many points from the "
                             "window low (0 = off)", units="index points"),
        "move_window_days": Param(int, 7, 1, 60, step=1, doc="window for the rise",
                                  units="days"),
    }
