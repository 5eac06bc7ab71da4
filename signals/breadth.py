"""Breadth signals: the flush read across a basket of assets.

They run on a basket frame (``flushback.data.basket``: every member's bars as
``close@SYMBOL``... columns, the primary included) and fire on the basket, whatever asset the
frame's own bars belong to:

- ``breadth_rsi`` (float): the mean or median RSI of the members;
- ``breadth_oversold``: that statistic below ``threshold`` (the articles' "average crypto RSI
  dropped below 30");
- ``breadth_k_oversold``: at least ``k`` members with RSI below ``threshold``;
- ``breadth_decline``: at least ``k`` members down more than ``drop`` over ``days``;
- ``breadth_liquidation_spike``: at least ``k`` members in a liquidation spike (the
  ``liquidation_spike`` signal on each member's own liquidations);
- ``basket_drawdown``: the equal-weight basket down more than ``drop`` from its highest close
  of the last ``days``;
- ``basket_long_share``: longs at least ``threshold`` of the basket's liquidations over
  ``window``;
- ``on_asset``: any trigger read on ANOTHER member's bars (``symbol``): trade ETH or SOL on a
  BTC flush.

Calendar alignment: at bar t a statistic uses only the members with data at t that have
finished their own warm-up (as many bars of their own history as the signal's warm-up), and
needs at least ``min_assets`` of them; ``explain()`` shows each member's value and
``n_assets``, the number used. A member that starts years later (SOL) joins when it is warm;
until then the statistic is over the others. No value looks past bar t: each member's
indicator is computed on its own bars up to t.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from flushback.data.basket import basket_column, member_frame, members
from flushback.data.errors import ConfigError, DataError
from flushback.signals.base import (
    Param,
    Signal,
    bar_interval,
    bars_for,
    cached_part,
    days_to_bars,
    duration,
)
from flushback.signals.compose import Composite
from flushback.signals.liquidations import LiquidationSpike
from flushback.signals.registry import register
from flushback.signals.rsi import RSI_TOLERANCE, SMOOTHINGS, rsi_values, rsi_warmup

__all__ = ["BasketDrawdown", "BasketLongShare", "BreadthDecline", "BreadthKOversold",
           "BreadthLiquidationSpike", "BreadthOversold", "BreadthRSI", "OnAsset", "member_rsi"]

#: market-wide columns a member's frame shares with the basket frame (not per asset)
_SHARED = ("fng",)


def _members(frame: pd.DataFrame, name: str) -> list[str]:
    found = [m for m in members(frame) if basket_column("close", m) in frame.columns]
    if not found:
        raise DataError(
            f"signal '{name}' needs a basket: the frame has no close@<symbol> columns",
            column="close@<symbol>",
            hint="name the basket in the spec (data.basket = [\"BTCUSDT\", \"ETHUSDT\", "
            "\"SOLUSDT\"]) or load it with flushback.data.load_basket(...)",
        )
    return found


def _ready(valid: pd.Series, warmup: int) -> pd.Series:
    """True from the member's ``warmup + 1``-th bar with data on (its own warm-up done)."""
    return valid & (valid.cumsum() > warmup)


def _returns(frame: pd.DataFrame, name: str, lag: int) -> pd.DataFrame:
    """Each member's close over its close ``lag`` bars earlier, minus 1 (NaN unless both
    bars are present)."""
    out = {}
    for m in _members(frame, name):
        close = frame[basket_column("close", m)].astype("float64")
        out[m] = close / close.shift(lag) - 1.0
    return pd.DataFrame(out, index=frame.index)


def _liquidation_members(frame: pd.DataFrame,
                         name: str) -> list[tuple[str, pd.DataFrame | None]]:
    """(member, its frame) for each member; None for a member without liquidation columns."""
    out: list[tuple[str, pd.DataFrame | None]] = []
    for m in _members(frame, name):
        mf = member_frame(frame, m)
        both = "liq_long_usd" in mf.columns and "liq_short_usd" in mf.columns
        out.append((m, mf if both else None))
    return out


def member_rsi(close: pd.Series, period: int, smoothing: str) -> pd.Series:
    """RSI of one member on its own bars (the rows where it has a close), NaN during its own
    warm-up and where it has no bar; on the frame's index."""
    own = close.dropna()
    rsi = rsi_values(own, period, smoothing)
    w = rsi_warmup(period, smoothing)
    rsi.iloc[:w] = np.nan
    return rsi.reindex(close.index)


class _Breadth(Signal):
    """Shared plumbing: members, per-member values, how many are usable at each bar."""

    #: runs on a basket frame only (``flushback.data.basket``)
    needs_basket: ClassVar[bool] = True

    min_assets_param = Param(int, 2, 1, 20, step=1,
                             doc="members with data and warm-up needed at a bar",
                             units="assets")

    def columns_in(self, frame: pd.DataFrame) -> tuple[str, ...]:
        return tuple(basket_column(f, m) for m in members(frame) for f in self._fields
                     if basket_column(f, m) in frame.columns)

    _fields: tuple[str, ...] = ("close",)

    def per_member(self, frame: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - abstract
        """One column per member: its value at each bar, NaN when it is not usable."""
        raise NotImplementedError

    def evaluable(self, frame: pd.DataFrame) -> pd.Series:
        usable = self.per_member(frame).notna().sum(axis=1)
        return usable >= self.params["min_assets"]

    def _counted(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        values = self.per_member(frame)
        n = values.notna().sum(axis=1).astype("int64").rename("n_assets")
        return values, n

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        values, n = self._counted(frame)
        out = values.copy()
        out["n_assets"] = n
        out[self.name] = self.compute(frame)
        return out


class _RSIBreadth(_Breadth):
    param_specs = {
        "period": Param(int, 14, 2, 50, step=1, doc="RSI look-back", units="bars"),
        "smoothing": Param(str, "wilder", choices=SMOOTHINGS,
                           doc="wilder (RMA), cutler (SMA) or ema"),
        "min_assets": _Breadth.min_assets_param,
    }
    tolerance = RSI_TOLERANCE

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return rsi_warmup(self.params["period"], self.params["smoothing"])

    def per_member(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        names = _members(frame, self.name)
        # the members' RSI depends on these only: a threshold change reuses it inside an
        # active SignalCache (the optimizer's trials), as the single-asset RSI signals do
        return cached_part(  # type: ignore[no-any-return]
            frame, ("breadth_rsi", tuple(names), p["period"], p["smoothing"]),
            lambda: pd.DataFrame(
                {m: member_rsi(frame[basket_column("close", m)], p["period"], p["smoothing"])
                 for m in names}, index=frame.index))


def _statistic(values: pd.DataFrame, n: pd.Series, stat: str, min_assets: int) -> pd.Series:
    """The members' mean or median at each bar, NaN where fewer than ``min_assets`` count."""
    arr = values.to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        # an all-NaN row (no member usable) is NaN by design: no "mean of empty slice" warning
        warnings.simplefilter("ignore", RuntimeWarning)
        s = np.nanmedian(arr, axis=1) if stat == "median" else np.nanmean(arr, axis=1)
    s = np.where(n.to_numpy() >= min_assets, s, np.nan)
    return pd.Series(s, index=values.index)


@register("breadth_rsi")
class BreadthRSI(_RSIBreadth):
    """The basket's mean (or median) RSI over the members usable at each bar (float)."""

    kind = "float"
    summary = "mean or median RSI across the basket (float)"
    param_specs = {**_RSIBreadth.param_specs,
                   "stat": Param(str, "mean", choices=("mean", "median"),
                                 doc="how the members' RSI values are combined")}

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        values, n = self._counted(frame)
        return _statistic(values, n, self.params["stat"], self.params["min_assets"])


@register("breadth_oversold")
class BreadthOversold(_RSIBreadth):
    """The basket's mean (or median) RSI strictly below ``threshold``."""

    summary = "mean/median RSI across the basket < threshold"
    param_specs = {**BreadthRSI.param_specs,
                   "threshold": Param(float, 30.0, 5.0, 50.0, step=1.0,
                                      doc="fire when the basket RSI < threshold",
                                      units="RSI points")}

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        values, n = self._counted(frame)
        stat = _statistic(values, n, self.params["stat"], self.params["min_assets"])
        return stat < self.params["threshold"]


@register("breadth_k_oversold")
class BreadthKOversold(_RSIBreadth):
    """At least ``k`` members with RSI strictly below ``threshold``."""

    summary = "k of the basket's assets with RSI < threshold"
    param_specs = {**_RSIBreadth.param_specs,
                   "k": Param(int, 2, 1, 20, step=1, doc="members that must be oversold",
                              units="assets"),
                   "threshold": Param(float, 30.0, 5.0, 50.0, step=1.0,
                                      doc="a member is oversold when its RSI < threshold",
                                      units="RSI points")}

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        values, n = self._counted(frame)
        hits = (values < self.params["threshold"]).sum(axis=1)
        return (hits >= self.params["k"]) & (n >= self.params["min_assets"])


@register("breadth_decline")
class BreadthDecline(_Breadth):
    """At least ``k`` members whose close is more than ``drop`` below their close ``days``
    earlier (both bars present)."""

    summary = "k of the basket's assets down more than drop over days"
    param_specs = {
        "k": Param(int, 2, 1, 20, step=1, doc="members that must be down", units="assets"),
        "drop": Param(float, 0.2, 0.02, 0.8, step=0.01, doc="fall from the close days ago",
                      units="fraction"),
        "days": Param(int, 7, 1, 90, step=1, doc="look-back of the fall", units="days"),
        "min_assets": _Breadth.min_assets_param,
    }

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return days_to_bars(self.params["days"], interval)

    def per_member(self, frame: pd.DataFrame) -> pd.DataFrame:
        return _returns(frame, self.name, self.warmup_for(bar_interval(frame)))

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        values, n = self._counted(frame)
        hits = (values <= -self.params["drop"]).sum(axis=1)
        return (hits >= self.params["k"]) & (n >= self.params["min_assets"])


@register("breadth_liquidation_spike")
class BreadthLiquidationSpike(_Breadth):
    """At least ``k`` members whose own long liquidations spike (``liquidation_spike`` with
    the robust z-score ``z`` against each member's trailing baseline)."""

    summary = "k of the basket's assets in a long-liquidation spike"
    _fields = ("liq_long_usd", "liq_short_usd")
    param_specs = {
        "k": Param(int, 2, 1, 20, step=1, doc="members that must spike", units="assets"),
        "z": Param(float, 2.5, 1.0, 8.0, step=0.25, doc="z-score threshold of each member",
                   units="robust sigma"),
        "window": Param(str, "24h", choices=("1h", "4h", "24h"),
                        doc="liquidations summed over this window"),
        "lookback_days": Param(int, 90, 14, 365, step=1, doc="baseline length", units="days"),
        "min_days": Param(int, 14, 3, 90, step=1, doc="history a member needs in its regime",
                          units="days"),
        "min_assets": _Breadth.min_assets_param,
    }

    def _validate(self, values: dict[str, Any]) -> None:
        self._spike(values)

    @staticmethod
    def _spike(p: Any) -> LiquidationSpike:
        return LiquidationSpike(window=p["window"], k=p["z"], lookback_days=p["lookback_days"],
                                min_days=p["min_days"])

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return self._spike(self.params).warmup_for(interval)

    def per_member(self, frame: pd.DataFrame) -> pd.DataFrame:
        spike = self._spike(self.params)
        warm = self.warmup_for(bar_interval(frame))
        out: dict[str, pd.Series] = {}
        for m, mf in _liquidation_members(frame, self.name):
            if mf is None:
                out[m] = pd.Series(np.nan, index=frame.index)
                continue
            fired = spike.compute(mf).astype("float64")
            valid = mf["liq_long_usd"].notna() & mf["liq_short_usd"].notna()
            out[m] = fired.where(_ready(valid, warm))
        return pd.DataFrame(out, index=frame.index)

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        values, n = self._counted(frame)
        hits = (values == 1.0).sum(axis=1)
        return (hits >= self.params["k"]) & (n >= self.params["min_assets"])


@register("basket_drawdown")
class BasketDrawdown(_Breadth):
    """The equal-weight basket more than ``drop`` below its highest level of the last
    ``days`` (the basket's return at a bar is the mean of the members' close-to-close returns
    with both bars present)."""

    summary = "equal-weight basket down more than drop from its high of the last days"
    param_specs = {
        "drop": Param(float, 0.2, 0.02, 0.8, step=0.01, doc="fall from the basket's high",
                      units="fraction"),
        "days": Param(int, 30, 2, 365, step=1, doc="window of the high", units="days"),
        "min_assets": _Breadth.min_assets_param,
    }

    warmup_for = BreadthDecline.warmup_for

    def per_member(self, frame: pd.DataFrame) -> pd.DataFrame:
        return _returns(frame, self.name, 1)

    def drawdown(self, frame: pd.DataFrame) -> pd.Series:
        """The basket's drawdown from its high of the last ``days`` (<= 0; NaN until the
        window holds a full run of basket returns)."""
        values, n = self._counted(frame)
        w = self.warmup_for(bar_interval(frame))
        r = _statistic(values, n, "mean", self.params["min_assets"])
        log_r = np.log1p(r)
        # the basket's log level; its high over the window is the max of the level at the
        # window's start and after each of its w returns (w + 1 levels)
        level = log_r.fillna(0.0).cumsum()
        high = level.rolling(w + 1, min_periods=w + 1).max()
        full = log_r.rolling(w, min_periods=w).count() == w
        return np.expm1(level - high).where(full & high.notna())

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        return self.drawdown(frame) <= -self.params["drop"]

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = super().explain(frame)
        out.insert(len(out.columns) - 1, "drawdown", self.drawdown(frame))
        return out


@register("basket_long_share")
class BasketLongShare(_Breadth):
    """Longs at least ``threshold`` of all liquidations across the basket over ``window``
    (members' USD summed; a member counts once it reports both sides)."""

    summary = "long share of the basket's liquidations over a window >= threshold"
    _fields = ("liq_long_usd", "liq_short_usd")
    param_specs = {
        "threshold": Param(float, 0.7, 0.5, 0.99, step=0.01, doc="long share that fires",
                           units="fraction"),
        "window": Param(str, "24h", choices=("1h", "4h", "24h"),
                        doc="liquidations summed over this window (a multiple of the bars)"),
        "min_assets": _Breadth.min_assets_param,
    }

    def warmup_for(self, interval: pd.Timedelta) -> int:
        try:
            return bars_for(duration(self.params["window"]), interval) - 1
        except ConfigError:
            return 0

    def per_member(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Each member's long share over the window (its long and short USD summed)."""
        w = bars_for(duration(self.params["window"]), bar_interval(frame),
                     what=f"{self.name}.window")
        out: dict[str, pd.Series] = {}
        for m, mf in _liquidation_members(frame, self.name):
            if mf is None:
                out[m] = pd.Series(np.nan, index=frame.index)
                continue
            lo = mf["liq_long_usd"].astype("float64").rolling(w, min_periods=w).sum()
            sh = mf["liq_short_usd"].astype("float64").rolling(w, min_periods=w).sum()
            tot = lo + sh
            out[m] = (lo / tot.where(tot > 0)).rename(m)
            out[f"{m}:usd"] = tot
        return pd.DataFrame(out, index=frame.index)

    def _counted(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        values = self.per_member(frame)
        shares = values[[c for c in values.columns if not c.endswith(":usd")]]
        n = shares.notna().sum(axis=1).astype("int64").rename("n_assets")
        return values, n

    def evaluable(self, frame: pd.DataFrame) -> pd.Series:
        return self._counted(frame)[1] >= self.params["min_assets"]

    def share(self, frame: pd.DataFrame) -> pd.Series:
        """Long USD / all USD over the members with both sides at the bar."""
        values, n = self._counted(frame)
        names = [c for c in values.columns if not c.endswith(":usd")]
        long_usd = sum((values[m] * values[f"{m}:usd"]).fillna(0.0) for m in names)
        total = sum(values[f"{m}:usd"].where(values[m].notna()).fillna(0.0) for m in names)
        share = long_usd / total.where(total > 0)
        return share.where(n >= self.params["min_assets"])

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        return self.share(frame) >= self.params["threshold"]


@register("on_asset")
class OnAsset(Composite):
    """One trigger read on another basket member's bars: ``of`` evaluated on the frame of
    ``symbol`` (its bars and liquidations, with the market-wide Fear & Greed), placed on the
    frame's bars. The member's bar at t closes with the frame's bar at t, so the as-of rule
    holds across assets: nothing of bar t + 1 is seen. False where the member has no bar.
    ``symbol = ""`` reads the frame's own asset (the child unchanged)."""

    summary = "a trigger read on another basket member (trade ETH on a BTC flush)"
    min_children = max_children = 1
    needs_basket: ClassVar[bool] = True
    param_specs: ClassVar[dict[str, Param]] = {
        "symbol": Param(str, "", pattern=r"(?:[A-Za-z0-9][A-Za-z0-9._-]*)?",
                        doc="the member whose bars the child reads ('' = the frame's own)",
                        units="symbol"),
    }

    @classmethod
    def example(cls) -> Signal:
        return cls(of=[{"type": "oversold_rsi"}], symbol="SYNTH-B")

    def _frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        sym = self.own_params["symbol"]
        if not sym or sym == frame.attrs.get("symbol"):
            return frame
        mf = member_frame(frame, sym)
        for col in _SHARED:
            if col in frame.columns:
                mf[col] = frame[col]
        return mf

    def columns_in(self, frame: pd.DataFrame) -> tuple[str, ...]:
        sym = self.own_params["symbol"]
        if not sym or sym == frame.attrs.get("symbol"):
            return self.children[0].columns_in(frame)
        return tuple(basket_column(c, sym) if c not in _SHARED else c
                     for c in self.children[0].columns_in(self._frame(frame)))

    def evaluable(self, frame: pd.DataFrame) -> pd.Series:
        return self.children[0].evaluable(self._frame(frame))

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        return self.children[0].compute(self._frame(frame))

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.children[0].explain(self._frame(frame))
