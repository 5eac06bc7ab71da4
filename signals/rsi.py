"""RSI signals: ``rsi`` (float strength 0..100), ``oversold_rsi`` and ``overbought_rsi``.

RSI is written by hand here on purpose (DESIGN.md: "RSI variants with exact warm-up"): the
libraries disagree on the seed and the smoothing, and we pin both.

For ``n = period`` and close-to-close changes ``d_t = close_t - close_{t-1}``,
``g_t = max(d_t, 0)``, ``l_t = max(-d_t, 0)``:

- ``wilder`` (default): ``G_n = mean(g_1..g_n)`` (the seed, at the n-th change), then
  ``G_t = G_{t-1} + (g_t - G_{t-1}) / n``; same for ``L``.
- ``ema``: same seed, then ``G_t = G_{t-1} + (g_t - G_{t-1}) * 2 / (n + 1)``.
- ``cutler``: ``G_t = mean(g_{t-n+1}..g_t)`` (a simple moving average, no memory).

``RSI = 100 * G / (G + L)``; on a flat stretch (``G = L = 0``) RSI is 50, never a division
by zero. On a higher timeframe (``timeframe="4h"`` on 1h bars) RSI is computed on the closes
of *complete* higher-timeframe bars and joined back to the base bar that closes with them, then
carried forward: a 4h value is never visible before its 4h bar has closed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from flushback.data.errors import ConfigError
from flushback.signals.base import Param, Signal, bar_interval, bars_for, cached_part, duration
from flushback.signals.registry import register

__all__ = ["rsi_values", "rsi_on_timeframe", "RSI", "OversoldRSI", "OverboughtRSI"]

SMOOTHINGS = ("wilder", "cutler", "ema")
TIMEFRAMES = ("bar", "1h", "4h", "1d")
# Recursive smoothers (wilder, ema) forget their seed geometrically; we declare the warm-up as
# the number of bars after which the seed's weight is below this.
SEED_WEIGHT = 1e-6
RSI_TOLERANCE = 0.01  # RSI points: what the declared warm-up guarantees at the last bar


def rsi_warmup(period: int, smoothing: str) -> int:
    """Bars of history for an RSI of ``period`` to be within RSI_TOLERANCE of its limit.

    cutler: ``period + 1`` (exact). wilder/ema: ``period + k`` where ``(1 - alpha)^k`` <
    SEED_WEIGHT; Wilder RSI(14): 14 + 1 + 187 = 202 bars.
    """
    if smoothing == "cutler":
        return period + 1
    alpha = 1.0 / period if smoothing == "wilder" else 2.0 / (period + 1)
    return period + 1 + math.ceil(math.log(SEED_WEIGHT) / math.log(1.0 - alpha))


def _smooth(values: np.ndarray, period: int, smoothing: str) -> np.ndarray:
    """Smoothed average of ``values`` (values[0] is NaN: the first bar has no change)."""
    if smoothing == "cutler":
        return pd.Series(values).rolling(period, min_periods=period).mean().to_numpy()
    alpha = 1.0 / period if smoothing == "wilder" else 2.0 / (period + 1)
    out = np.full(len(values), np.nan)
    if len(values) <= period:
        return out
    acc = float(np.mean(values[1 : period + 1]))
    out[period] = acc
    # the recursion is inherently serial: a compiled loop (the optimizer recomputes it for
    # every period it tries)
    from flushback.signals.kernels import recursive_mean

    recursive_mean(values, out, period + 1, acc, alpha)
    return out


def _clip_below_zero(x: np.ndarray) -> np.ndarray:
    """``Series.clip(lower=0.0)`` on an array: negatives (and -inf) become 0; NaN and -0.0
    stay as they are."""
    return np.where(x < 0.0, 0.0, x)


def rsi_values(close: pd.Series, period: int = 14, smoothing: str = "wilder") -> pd.Series:
    """RSI (0..100, float64) of a close series; NaN until ``period`` changes exist."""
    if smoothing not in SMOOTHINGS:
        raise ConfigError(f"unknown RSI smoothing '{smoothing}'", hint=f"one of {SMOOTHINGS}")
    c = close.to_numpy(dtype="float64")
    delta = np.full(len(c), np.nan)
    delta[1:] = c[1:] - c[:-1]  # Series.diff()
    with np.errstate(invalid="ignore"):  # inf - inf
        g = _smooth(_clip_below_zero(delta), period, smoothing)
        l_ = _smooth(_clip_below_zero(-delta), period, smoothing)
    total = g + l_
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(total > 0, 100.0 * (g / np.where(total > 0, total, 1.0)), 50.0)
    rsi = np.where(np.isnan(g) | np.isnan(l_), np.nan, rsi)
    return pd.Series(rsi, index=close.index, name="rsi")


def rsi_on_timeframe(
    frame: pd.DataFrame, period: int, smoothing: str, timeframe: str, column: str = "close"
) -> pd.Series:
    """RSI of ``frame[column]`` on ``timeframe`` ("bar" = the frame's own bars), on frame.index.

    Higher timeframe: base bars are grouped by ``open.floor(timeframe)`` (UTC-aligned); a group
    is complete when it holds all ``timeframe / interval`` base bars. The RSI of complete groups
    is placed on the group's last base bar (whose close is the group's close) and carried
    forward to later bars.
    """
    interval = bar_interval(frame)
    close = frame[column]
    if timeframe == "bar" or duration(timeframe) == interval:
        return rsi_values(close, period, smoothing)
    closing, last_closed = cached_part(  # depends on the bars and the timeframe only
        frame, ("htf_groups", timeframe), lambda: _htf_groups(frame.index, interval, timeframe))
    if len(closing) == 0:  # no complete group yet
        return pd.Series(np.nan, index=frame.index, name="rsi")
    htf_rsi = rsi_values(close.iloc[closing], period, smoothing).ffill().to_numpy()
    # each base bar carries the RSI of the last complete group closed at or before it
    out = np.where(last_closed >= 0, htf_rsi[np.maximum(last_closed, 0)], np.nan)
    return pd.Series(out, index=frame.index, name="rsi")


def _htf_groups(idx: pd.DatetimeIndex, interval: pd.Timedelta,
                timeframe: str) -> tuple[np.ndarray, np.ndarray]:
    """(positions of the base bars that close a complete ``timeframe`` group, and for every
    base bar the number of the last complete group closed at or before it, -1 before the
    first)."""
    tf = duration(timeframe)
    per = bars_for(tf, interval, what=f"RSI timeframe {timeframe}")
    groups = idx.floor(tf)
    expected_last = groups + (tf - interval)
    counts = pd.Series(1, index=idx).groupby(groups).transform("size").to_numpy()
    is_closing = np.asarray((idx == expected_last) & (counts == per))
    return np.flatnonzero(is_closing), np.cumsum(is_closing) - 1


class _RSIBase(Signal):
    optional_inputs = ()
    tolerance = 0.0

    param_specs = {
        "period": Param(int, 14, 2, 50, step=1, doc="RSI look-back", units="bars of timeframe"),
        "smoothing": Param(
            str, "wilder", choices=SMOOTHINGS, doc="wilder (RMA), cutler (SMA) or ema"
        ),
        "timeframe": Param(
            str,
            "bar",
            choices=TIMEFRAMES,
            doc="compute on the frame's bars or on a higher timeframe, joined back after close",
        ),
    }
    inputs = ("close",)

    def warmup_for(self, interval: pd.Timedelta) -> int:
        p = self.params
        base = rsi_warmup(p["period"], p["smoothing"])
        if p["timeframe"] == "bar":
            return base
        per = max(1, round(duration(p["timeframe"]) / interval))
        # base higher-timeframe bars, plus one more: the first group may be incomplete.
        return (base + 1) * per

    def rsi(self, frame: pd.DataFrame) -> pd.Series:
        p = self.params
        if p["timeframe"] != "bar" and duration(p["timeframe"]) < bar_interval(frame):
            raise ConfigError(
                f"{self.name}.timeframe {p['timeframe']} is shorter than the bars "
                f"({frame.attrs.get('interval', bar_interval(frame))})",
                hint="use timeframe='bar' or a longer timeframe",
            )
        # the RSI values depend on these three parameters only: a threshold change reuses them
        # inside an active SignalCache (the optimizer's trials)
        return cached_part(  # type: ignore[no-any-return]
            frame, ("rsi", "close", p["period"], p["smoothing"], p["timeframe"]),
            lambda: rsi_on_timeframe(frame, p["period"], p["smoothing"], p["timeframe"]))

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"close": frame["close"], "rsi": self.rsi(frame)})


@register("rsi")
class RSI(_RSIBase):
    """Relative Strength Index as a float strength (0..100)."""

    kind = "float"
    tolerance = RSI_TOLERANCE
    summary = "RSI value (float strength, 0..100)"

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        return self.rsi(frame)


@register("oversold_rsi")
class OversoldRSI(_RSIBase):
    """True when RSI is strictly below ``threshold``."""

    summary = "RSI < threshold (oversold)"
    param_specs = {
        **_RSIBase.param_specs,
        "threshold": Param(float, 30.0, 5.0, 50.0, step=1.0, doc="trigger when RSI < threshold",
                           units="RSI points"),
    }

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        return self.rsi(frame) < self.params["threshold"]

    def threshold_form(self) -> tuple[str, str]:
        return "threshold", "<"

    def level(self, frame: pd.DataFrame) -> pd.Series:
        return self.rsi(frame)


@register("overbought_rsi")
class OverboughtRSI(_RSIBase):
    """True when RSI is strictly above ``threshold`` (an exit signal)."""

    summary = "RSI > threshold (overbought, for exits)"
    param_specs = {
        **_RSIBase.param_specs,
        "threshold": Param(float, 70.0, 50.0, 95.0, step=1.0, doc="trigger when RSI > threshold",
                           units="RSI points"),
    }

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        return self.rsi(frame) > self.params["threshold"]

    def threshold_form(self) -> tuple[str, str]:
        return "threshold", ">"

    def level(self, frame: pd.DataFrame) -> pd.Series:
        return self.rsi(frame)
