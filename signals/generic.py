"""Generic signals over any numeric frame column: ``threshold``, ``zscore``, ``crossing``,
``change``.

They exist for *user series*: a CSV of timestamped values (an on-chain metric, ETF flows,
another sentiment index) registered with a name, an interval and a publication lag, which the
data layer joins as-of on its ``known_at`` onto the bars as a float column named exactly that
name (``etf_flows``, ``mvrv``). The same signals work on any built-in column (``fng``,
``oi_usd``, ``close``, ``funding_rate``).

The ``column`` parameter is free text (a lower-case identifier, ``Param(..., pattern=...)``):
it is never sampled by the optimizer, and it is required -- ``build_signal({"type":
"threshold", "level": 0})`` without a column is a ConfigError, so a forgotten column never
silently means another series. Levels on the user's own scale (``level``, ``threshold``)
declare no range: any finite value is valid and the optimizer searches them only inside a
range the spec's ``[search]`` table gives.

Durations are in days and converted to bars with ``days_to_bars`` (rounded up), so a spec
reads the same on 1d, 4h and 1h bars. Every signal has finite memory and is exact after its
warm-up (``tolerance = 0``). A missing value (NaN) never triggers, and a bar whose look-back
reaches a missing value does not trigger either (documented per signal).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from flushback.data.errors import ConfigError, DataError
from flushback.signals._rolling import MAD_SCALE, trailing_mean_std, trailing_median_mad
from flushback.signals.base import (
    IDENTIFIER,
    Param,
    Signal,
    bar_interval,
    cached_part,
    days_to_bars,
)
from flushback.signals.registry import register

__all__ = ["Change", "Crossing", "Threshold", "ZScore"]

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
}


def _column_param(default: str = "fng") -> Param:
    return Param(str, default, pattern=IDENTIFIER,
                 doc="the frame column to read (a user series' name, e.g. etf_flows, or a "
                 "built-in column such as fng, oi_usd, close)", units="column name")


class _ColumnSignal(Signal):
    """Base of the generic signals: one numeric column named by the ``column`` parameter,
    which must be given explicitly (``example()`` names a column of the synthetic frame)."""

    example_params: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        if "column" not in params:
            raise ConfigError(
                f"signal '{self.name}' needs column=<name of a frame column>",
                hint=f"e.g. {{type = '{self.name}', column = 'etf_flows', ...}}: the name a user "
                "series was registered under, or a built-in column such as fng",
            )
        super().__init__(**params)

    @classmethod
    def example(cls) -> Signal:
        return cls(**cls.example_params)

    def required_columns(self) -> tuple[str, ...]:
        return (self.params["column"],)

    def parts(self, frame: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - abstract
        """The intermediate values (``value`` = the column) and the ``trigger``."""
        raise NotImplementedError

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        return self.parts(frame)["trigger"]

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = self.parts(frame).drop(columns=["trigger"])
        column = self.params["column"]
        # show the column under its own name (unless a user series is called e.g. "z")
        return out if column in out.columns else out.rename(columns={"value": column})

    def values(self, frame: pd.DataFrame, column: str | None = None) -> pd.Series:
        """The column as float64; DataError naming it when it is not numeric."""
        name = column or self.params["column"]
        col = frame[name]
        try:
            return col.astype("float64")
        except (TypeError, ValueError):
            raise DataError(
                f"signal '{self.name}' needs a numeric column '{name}', got dtype {col.dtype}",
                column=name,
                hint="register the series with numeric values (one number per timestamp)",
            ) from None


@register("threshold")
class Threshold(_ColumnSignal):
    """``column_t op level`` with ``op`` one of ``>=``, ``<=``, ``>``, ``<``. NaN never
    triggers. Warm-up 0."""

    summary = "a column compared with a level (>=, <=, >, <)"
    param_specs = {
        "column": _column_param(),
        "op": Param(str, "<=", choices=(">=", "<=", ">", "<"),
                    doc="fire when column <op> level"),
        "level": Param(float, 0.0, doc="the level, in the column's own units "
                       "(searched only inside a [search] range)", units="column units"),
    }
    example_params = {"column": "fng", "op": "<=", "level": 20.0}

    def parts(self, frame: pd.DataFrame) -> pd.DataFrame:
        x = self.values(frame)
        with np.errstate(invalid="ignore"):
            fire = _OPS[self.params["op"]](x.to_numpy(), self.params["level"])
        return pd.DataFrame({"value": x, "trigger": fire}, index=frame.index)


@register("zscore")
class ZScore(_ColumnSignal):
    """The column's z-score against its trailing baseline beyond ``k``.

    ``z_t = (x_t - centre) / scale`` over the ``window_days`` of bars *before* t (bar t is
    excluded from its own baseline, like ``liquidation_spike``: a spike does not inflate the
    scale it is measured against, and with an n-bar window an included value could never
    score above (n-1)/sqrt(n)). ``method="mean"``: mean and sample standard deviation
    (ddof=1); ``method="robust"``: median and 1.4826 x MAD (robust to the outliers one is
    looking for). ``direction="above"`` fires when ``z_t >= k``, ``"below"`` when
    ``z_t <= -k``.

    Missing values in the window are skipped; a baseline needs at least half the window
    (and 2 values) present, else z is NaN. A flat baseline (scale 0) gives NaN: no trigger.
    Warm-up: the window (``days_to_bars(window_days)`` bars); exact after it.
    """

    summary = "rolling z-score of a column (mean/std or median/MAD, bar t excluded) beyond k"
    param_specs = {
        "column": _column_param(),
        "window_days": Param(int, 30, 2, 365, step=1, doc="baseline length before bar t",
                             units="days"),
        "method": Param(str, "mean", choices=("mean", "robust"),
                        doc="mean/std, or median/(1.4826 MAD)"),
        "k": Param(float, 2.0, 0.5, 6.0, step=0.25, doc="fire beyond k standard scores",
                   units="sigma"),
        "direction": Param(str, "above", choices=("above", "below"),
                           doc="above: z >= k; below: z <= -k"),
    }
    example_params = {"column": "oi_usd", "direction": "below", "k": 2.0}

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return days_to_bars(self.params["window_days"], interval)

    def parts(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        w = self.warmup_for(bar_interval(frame))
        x = self.values(frame)

        def baseline() -> tuple[np.ndarray, np.ndarray]:
            values = x.to_numpy()
            minp = max(2, (w + 1) // 2)
            if p["method"] == "robust":
                centre, mad = trailing_median_mad(values, w, minp)
                return centre, MAD_SCALE * mad
            return trailing_mean_std(values, w, minp)

        # depends on the column, window and method only: a change of k or direction reuses it
        centre, scale = cached_part(frame, ("generic_z", p["column"], w, p["method"]), baseline)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(scale > 0, (x.to_numpy() - centre) / scale, np.nan)
        fire = z >= p["k"] if p["direction"] == "above" else z <= -p["k"]
        return pd.DataFrame({"value": x, "centre": centre, "scale": scale, "z": z,
                             "trigger": fire}, index=frame.index)



@register("crossing")
class Crossing(_ColumnSignal):
    """The column crosses ``level`` (or the column ``other``) at bar t.

    ``direction="up"``: ``x_{t-1} < ref_{t-1}`` and ``x_t >= ref_t`` (it was strictly below
    and is now at or above); ``"down"``: ``x_{t-1} > ref_{t-1}`` and ``x_t <= ref_t`` (as
    ``funding_flip`` with ``cross``). ``ref`` is ``level``, or the column ``other`` when it
    is named. Only consecutive bars count: a missing value at t or t-1 (in either column) is
    no crossing, so a cross across a gap in the data does not fire. Warm-up 1 bar.
    """

    summary = "a column crosses a level (or another column) up or down at bar t"
    param_specs = {
        "column": _column_param(),
        "level": Param(float, 0.0, doc="the level crossed, in the column's units (ignored "
                       "when other is set; searched only inside a [search] range)",
                       units="column units"),
        "other": Param(str, "", pattern=f"(?:{IDENTIFIER})?",
                       doc="cross this column instead of level ('' = use level)",
                       units="column name"),
        "direction": Param(str, "up", choices=("up", "down"),
                           doc="up: from below to at/above; down: from above to at/below"),
    }
    example_params = {"column": "fng", "level": 25.0, "direction": "down"}

    def _validate(self, values: dict[str, Any]) -> None:
        if values["other"] == values["column"]:
            raise ConfigError(
                f"crossing.other is the column itself ('{values['column']}')",
                hint="name another column, or leave other empty to cross level",
            )

    def required_columns(self) -> tuple[str, ...]:
        other = self.params["other"]
        return (self.params["column"], other) if other else (self.params["column"],)

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return 1

    def parts(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        x = self.values(frame)
        if p["other"]:
            ref = self.values(frame, p["other"])
        else:
            ref = pd.Series(p["level"], index=frame.index, dtype="float64")
        diff = (x - ref).to_numpy()  # NaN where either is missing
        prev = np.r_[np.nan, diff[:-1]]
        with np.errstate(invalid="ignore"):
            if p["direction"] == "up":
                fire = (prev < 0) & (diff >= 0)
            else:
                fire = (prev > 0) & (diff <= 0)
        return pd.DataFrame({"value": x, "previous": x.shift(1), "reference": ref,
                             "trigger": fire}, index=frame.index)



@register("change")
class Change(_ColumnSignal):
    """The column's change over ``days`` beyond ``threshold``.

    ``n = days_to_bars(days)`` bars back: ``mode="absolute"``: ``x_t - x_{t-n}`` (the column's
    units); ``mode="relative"``: ``x_t / x_{t-n} - 1`` as a FRACTION (-0.1 = a 10 % fall),
    defined only where ``x_{t-n} > 0`` (a series that crosses zero, such as flows, needs
    ``absolute``). ``direction="above"`` fires when the change ``>= threshold``, ``"below"``
    when ``<= threshold`` (a fall of 10 %: below, -0.1). NaN at t or t-n: no trigger.
    Warm-up ``n`` bars.
    """

    summary = "change of a column over N days (absolute or relative) above/below a threshold"
    param_specs = {
        "column": _column_param(),
        "days": Param(int, 7, 1, 365, step=1, doc="compare with the value this long before",
                      units="days"),
        "mode": Param(str, "relative", choices=("relative", "absolute"),
                      doc="relative: x_t / x_{t-n} - 1 (fraction); absolute: x_t - x_{t-n}"),
        "threshold": Param(float, 0.0, doc="the change to reach (searched only inside a "
                           "[search] range)", units="fraction (relative) or column units"),
        "direction": Param(str, "below", choices=("above", "below"),
                           doc="above: change >= threshold; below: change <= threshold"),
    }
    example_params = {"column": "oi_usd", "days": 3, "threshold": -0.1, "direction": "below"}

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return days_to_bars(self.params["days"], interval)

    def parts(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        n = self.warmup_for(bar_interval(frame))
        x = self.values(frame)
        ref = x.shift(n)
        if p["mode"] == "relative":
            with np.errstate(invalid="ignore", divide="ignore"):
                change = x / ref.where(ref > 0) - 1.0
        else:
            change = x - ref
        fire = change >= p["threshold"] if p["direction"] == "above" else (
            change <= p["threshold"])
        # "change" is a fraction (shown as a percentage by `signals scan`), "difference" is in
        # the column's units
        label = "change" if p["mode"] == "relative" else "difference"
        return pd.DataFrame({"value": x, "reference": ref, label: change, "trigger": fire},
                            index=frame.index)

