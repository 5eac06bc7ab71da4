"""``liquidation_spike``: long liquidations far above their usual level.

Inputs ``liq_long_usd`` / ``liq_short_usd`` hold the USD liquidated in the source bucket that
ended most recently at each bar's close (see the data contract); a bucket repeated on several
bars (source coarser than the bars) is counted once in a window sum. ``liq_regime`` names the
reporting regime; Binance throttled its public liquidation feed on 2021-04-27, so reported
levels fell 5-10x and a baseline that straddles the break is meaningless. With
``regime_aware=True`` the rolling baseline restarts at every change of ``liq_regime``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flushback.data.errors import ConfigError
from flushback.signals._rolling import robust_z, run_ids
from flushback.signals.base import (
    Param,
    Signal,
    bar_interval,
    bars_for,
    cached_part,
    check_granularity,
    days_to_bars,
    duration,
)
from flushback.signals.registry import register

__all__ = ["LiquidationSpike"]


def _fresh(x: pd.Series) -> pd.Series:
    """Count each reported bucket once. When the source is coarser than the bars (a 4h or 1d
    total on 1h bars) the as-of join repeats the bucket's value on every bar until the next
    bucket is known; summing a window would count it several times. A value equal to the
    previous bar's is a repeat and contributes 0. Applied on intraday bars only (daily bars
    are never finer than a liquidation source); there, two exactly equal consecutive totals
    from a source as fine as the bars are in practice zeros, where this changes nothing.
    """
    repeat = x.eq(x.shift(1))
    return x.where(~repeat, 0.0)


@register("liquidation_spike")
class LiquidationSpike(Signal):
    """Long liquidations summed over ``window`` (or the long share of all liquidations) above
    an absolute level, or above ``k`` robust z-scores of their trailing baseline.

    ``method="zscore"`` (default): ``z = (y_t - median(y)) / (1.4826 * MAD(y))`` over the
    ``lookback_days`` before bar t (bar t excluded), restarted at each regime change, needing
    ``min_days`` of the regime's history; ``y = log1p(usd)`` for the USD measures (liquidations
    are multiplicative / heavy-tailed) and the raw share for ``long_share``. Fires when
    ``z >= k``. ``method="absolute"``: fires when the USD sum >= ``usd_threshold`` (USD
    measures) or the share >= ``share_threshold`` (``long_share``), optionally only inside one
    reporting ``regime`` (absolute levels are not comparable across regimes).
    ``min_long_share`` (0 = off) additionally requires longs to be at least that share of the
    window's liquidations.
    """

    summary = "long liquidations over a window: robust z-score vs regime baseline, or USD level"
    inputs = ("liq_long_usd", "liq_short_usd")
    optional_inputs = ("liq_regime",)
    param_specs = {
        "window": Param(str, "24h", choices=("1h", "4h", "24h"),
                        doc="liquidations summed over this window (a multiple of the bars)"),
        "measure": Param(str, "long_usd", choices=("long_usd", "total_usd", "long_share"),
                         doc="long USD, long+short USD, or long / (long + short)"),
        "method": Param(str, "zscore", choices=("zscore", "absolute"),
                        doc="robust z-score vs the trailing baseline, or an absolute level"),
        "k": Param(float, 2.5, 1.0, 8.0, step=0.25, doc="z-score threshold", units="robust sigma"),
        "lookback_days": Param(int, 90, 14, 365, step=1, doc="baseline length", units="days"),
        "min_days": Param(int, 14, 3, 90, step=1,
                          doc="history needed in the current regime before a z-score exists",
                          units="days"),
        "regime_aware": Param(bool, True, doc="restart the baseline at each liq_regime change"),
        "usd_threshold": Param(float, 1e8, 1e5, 1e10, log=True,
                               doc="absolute method: USD over the window", units="USD"),
        "share_threshold": Param(float, 0.75, 0.5, 1.0, step=0.01,
                                 doc="absolute method on long_share", units="fraction"),
        "regime": Param(str, "any", choices=("any", "binance_full", "binance_throttled"),
                        doc="absolute method: only fire inside this reporting regime"),
        "min_long_share": Param(float, 0.0, 0.0, 0.95, step=0.05,
                                doc="also require long share >= this (0 = off)",
                                units="fraction"),
    }

    def _validate(self, values: dict) -> None:
        if values["min_days"] > values["lookback_days"]:
            raise ConfigError(
                f"liquidation_spike.min_days ({values['min_days']}) exceeds lookback_days "
                f"({values['lookback_days']})",
                hint="min_days must be <= lookback_days",
            )

    def _bars(self, interval: pd.Timedelta) -> tuple[int, int, int]:
        p = self.params
        w = bars_for(duration(p["window"]), interval, what=f"{self.name}.window")
        lb = days_to_bars(p["lookback_days"], interval)
        mp = days_to_bars(p["min_days"], interval)
        return w, lb, mp

    def warmup_for(self, interval: pd.Timedelta) -> int:
        try:
            w, lb, mp = self._bars(interval)
        except ConfigError:
            return 0
        if self.params["method"] == "absolute":
            return w - 1
        # a full baseline (not just min_days) is needed for the value to equal the
        # full-history one; min_days only lets a fresh regime start scoring early
        return w - 1 + lb

    def parts(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        interval = bar_interval(frame)
        w, lb, mp = self._bars(interval)
        check_granularity(frame, "liq_long_usd", duration(p["window"]),
                          what=f"{self.name}.window")
        long_ = frame["liq_long_usd"].astype("float64")
        short = frame["liq_short_usd"].astype("float64")
        if interval < pd.Timedelta(days=1):  # the sources are 4h or 1d: repeats only intraday
            long_, short = _fresh(long_), _fresh(short)
        long_w = long_.rolling(w, min_periods=w).sum()
        short_w = short.rolling(w, min_periods=w).sum()
        total_w = long_w + short_w
        with np.errstate(invalid="ignore", divide="ignore"):
            share = (long_w / total_w.where(total_w > 0)).astype("float64")
        measure = {"long_usd": long_w, "total_usd": total_w, "long_share": share}[p["measure"]]
        out = pd.DataFrame(
            {"long_usd": long_w, "short_usd": short_w, "long_share": share}, index=frame.index
        )
        has_regime = "liq_regime" in frame.columns
        if has_regime:
            out["regime"] = frame["liq_regime"]
        if p["method"] == "zscore":
            y = measure if p["measure"] == "long_share" else np.log1p(measure.clip(lower=0))
            groups = None
            if p["regime_aware"] and has_regime:
                groups = run_ids(frame["liq_regime"])

            def zscore(y: pd.Series = y, groups: np.ndarray | None = groups) -> tuple:
                values = y.to_numpy(dtype="float64")
                if groups is not None and w > 1:
                    # the rolling-sum window must not mix regimes either: a sum whose first
                    # bar (w-1 earlier) is in another run is neither scored nor part of any
                    # baseline
                    mixed = pd.Series(groups, index=frame.index).diff(w - 1).to_numpy() != 0
                    values = np.where(mixed, np.nan, values)
                z, med, _scale = robust_z(values, lb, mp, groups)
                return z, med

            # the z-scores depend on these parameters only (not on k or min_long_share): a
            # threshold change reuses them inside an active SignalCache
            z, med = cached_part(frame, ("liquidation_z", w, lb, mp, p["measure"],
                                         p["regime_aware"] and has_regime), zscore)
            out["baseline"] = (
                med if p["measure"] == "long_share" else np.expm1(med)
            )
            out["z"] = z
            fire = pd.Series(z >= p["k"], index=frame.index)
        else:
            level = p["share_threshold"] if p["measure"] == "long_share" else p["usd_threshold"]
            fire = measure >= level
            if p["regime"] != "any":
                regime = frame["liq_regime"] if has_regime else pd.Series(np.nan, frame.index)
                fire = fire & (regime.astype(object) == p["regime"])
        if p["min_long_share"] > 0:
            fire = fire & (share >= p["min_long_share"])
        out["trigger"] = fire.fillna(False).astype(bool)
        return out

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        return self.parts(frame)["trigger"]

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.parts(frame).drop(columns=["trigger"])
