"""The contrarian strategy: configured, not subclassed.

Decisions are taken on a bar's close and filled at the next bar's open (see the adapter).
Exit rules, checked in this order on each bar close while a position is open (the first that
holds wins):

1. ``stop_loss``: close <= average entry price * (1 - stop_loss)
2. ``trailing_stop``: close <= highest close since entry (the entry fill price counts) *
   (1 - trailing_stop)
3. ``level_stop``: close <= the stop level in force (below)
4. ``take_profit``: close >= average entry price * (1 + take_profit)
5. ``level_take_profit``: close >= the take-profit level in force, when that level is above
   the average entry price
6. ``exit_signal``: ``signals.exit`` is true on the bar (and ``exit_on_signal``)
7. ``time``: ``hold_bars`` bars held, counting the entry bar (entry at the open of bar ``e``,
   exit at the open of bar ``e + hold_bars``)

Level exits read the feed columns ``level_tp`` / ``level_sl`` (the level known at each bar's
close, precomputed by ``flushback.strategies.levels``). The level in force when bar ``t``'s
close is tested is, with ``level_update = "fixed"``, the column's value on the entry signal
bar ``s`` (the bar whose close decided the first tranche), and with ``"moving"``, its value on
bar ``t - 1`` (on the entry fill bar ``s + 1`` both are the signal bar's). A NaN level never
exits, nor does a take-profit level at or below the average entry price. Level exits are
always close-based (decided on a close, filled at the next open), in both exit modes.

With ``exit_mode = "close"`` (the default) rules 1-3 are close-based: a stop at -10 % on a bar
that closes at -15 % exits at the next open. With ``exit_mode = "intrabar"`` they are resting
orders instead (see ``FlushbackStrategy.set_resting_exits``): placed right after each entry
fill (so they guard the entry bar too) and re-placed at every close for the current position
and levels; the stop is the higher of the stop-loss and trailing levels; a bar touching both
the stop and the take-profit is read as stopped out. Rules 4-5 stay close-based.

Entries: ``signals.entry`` true on a bar close while flat, at least
``cooldown_bars`` bars after the last exit fill; while in a position, further triggers add
tranches (``max_tranches``, at least ``tranche_spacing_bars`` apart). Each tranche buys
``fraction / max_tranches`` of the equity (valued at the fill open), capped by the cash; with
``sizing = "volatility"`` the fraction is ``min(fraction, vol_target / realised_vol)``, the
realised volatility being the annualised std of the last ``vol_lookback`` log returns up to
the signal bar's close (no entry while it is undefined).

Perpetuals (``side``, ``leverage``, ``maintenance_margin``; isolated margin, see
``flushback.strategies.margin``): with ``side = "short"`` the entry signal opens a short and
the exits are mirrored: ``stop_loss`` when close >= avg * (1 + stop_loss), ``trailing_stop``
when close >= lowest close since entry * (1 + trailing_stop), ``take_profit`` when close <=
avg * (1 - take_profit); intrabar they rest as a buy stop above and a buy limit below. Level
exits are long-only. A tranche of ``f`` of the equity commits ``f * equity`` as margin plus
fee, i.e. a notional of about ``leverage * f * equity``.

Liquidation, the intrabar rule: when a bar's low (long) or high (short) reaches the
position's liquidation price, the position is liquidated on that bar at the liquidation
price, BEFORE any stop-loss, trailing stop or take-profit that the same bar would also have
touched (the resting exits are cancelled); the exit reason is ``"liquidation"``, the fee is
the commission at the liquidation price and the margin is lost. This includes the entry bar
(the position opened at its open) and a bar that gaps through the liquidation price (the
fill is still the liquidation price: isolated margin caps the loss at the margin).
"""

from __future__ import annotations

import math

import pandas as pd

from flushback.strategies.adapter import FlushbackStrategy
from flushback.strategies.columns import builtin_feed_columns, realised_volatility
from flushback.strategies.config import CONTRARIAN_PARAMS, register_strategy
from flushback.strategies.perp import short_exit_reason, short_resting_levels

__all__ = ["ContrarianStrategy", "realised_volatility"]


@register_strategy("contrarian")
class ContrarianStrategy(FlushbackStrategy):
    param_specs = dict(CONTRARIAN_PARAMS)
    required_signals = ("entry",)
    optional_signals = ("exit",)

    @classmethod
    def feed_columns(cls, frame: pd.DataFrame, cfg: dict, periods_per_year: int) -> dict:
        return builtin_feed_columns("contrarian", frame, cfg, periods_per_year)

    def __init__(self) -> None:
        super().__init__()
        c = self.cfg
        self._sl = float(c["stop_loss"])
        self._tp = float(c["take_profit"])
        self._trail = float(c["trailing_stop"])
        self._hold = int(c["hold_bars"])
        self._cooldown = int(c["cooldown_bars"])
        self._k = int(c["max_tranches"])
        self._spacing = int(c["tranche_spacing_bars"])
        self._fraction = float(c["fraction"])
        self._vol_sizing = c["sizing"] == "volatility"
        self._vol_target = float(c["vol_target"])
        aliases = self.data.lines.getlinealiases()
        self._entry = self.data.entry if "entry" in aliases else None
        self._exit = self.data.exit if "exit" in aliases and c["exit_on_signal"] else None
        self._last_tranche_bar = -(10**9)
        self._intrabar = c["exit_mode"] == "intrabar"
        self._level_tp = self.data.level_tp if "level_tp" in aliases else None
        self._level_sl = self.data.level_sl if "level_sl" in aliases else None
        self._moving = c["level_update"] == "moving"
        self._entry_levels = (math.nan, math.nan)  # (tp, sl) on the entry signal bar

    def _levels_in_force(self) -> tuple[float, float]:
        """(take-profit, stop) levels the current close is tested against (NaN: none)."""
        if not self._moving:
            return self._entry_levels
        tp = float(self._level_tp[-1]) if self._level_tp is not None else math.nan
        sl = float(self._level_sl[-1]) if self._level_sl is not None else math.nan
        return tp, sl

    def _tranche_fraction(self) -> float:
        frac = self._fraction
        if self._vol_sizing:
            vol = self.lineval("vol")
            if not (vol > 0):
                return 0.0
            frac = min(frac, self._vol_target / vol)
        return frac / self._k

    def _place_resting(self, size: float, avg: float, peak: float) -> None:
        if self.side < 0:
            stop, limit, reason = short_resting_levels(avg, peak, self._sl, self._trail,
                                                       self._tp)
            if stop is not None or limit is not None:
                self.set_resting_exits(stop, limit, stop_reason=reason, size=size)
            return
        stop, reason = None, "stop_loss"
        if self._sl:
            stop = avg * (1.0 - self._sl)
        if self._trail:
            trail = peak * (1.0 - self._trail)
            if stop is None or trail > stop:
                stop, reason = trail, "trailing_stop"
        limit = avg * (1.0 + self._tp) if self._tp else None
        if stop is not None or limit is not None:
            self.set_resting_exits(stop, limit, stop_reason=reason, size=size)

    def after_open(self) -> None:
        if self._intrabar and self.submitted_buys:
            # guard the entry bar too: the orders below are processed after the buy fills
            lot = self.lot
            size = sum(sz for sz, _ in self.submitted_buys)
            cost = sum(sz * px for sz, px in self.submitted_buys)
            best = max if self.side > 0 else min  # the best close: highest long, lowest short
            peak = best(px for _, px in self.submitted_buys)
            if lot is not None:
                size, cost, peak = size + lot.size, cost + lot.cost, best(peak, lot.peak_close)
            self._place_resting(size, cost / size, peak)

    def decide(self) -> None:
        i = self.bar
        lot = self.lot
        if lot is not None:
            close = float(self.data.close[0])
            avg = lot.avg_price
            reason = None
            level_tp, level_sl = self._levels_in_force()
            # intrabar: stop/trailing/take-profit rest as orders; level exits stay close-based
            if self.side < 0:
                reason = short_exit_reason(close, avg, lot.peak_close, self._sl, self._trail,
                                           self._tp, self._intrabar)
            elif not self._intrabar and self._sl and close <= avg * (1.0 - self._sl):
                reason = "stop_loss"
            elif not self._intrabar and self._trail and close <= lot.peak_close * (
                    1.0 - self._trail):
                reason = "trailing_stop"
            elif close <= level_sl:  # False for NaN
                reason = "level_stop"
            elif not self._intrabar and self._tp and close >= avg * (1.0 + self._tp):
                reason = "take_profit"
            elif close >= level_tp and level_tp > avg:  # a target below the entry is none
                reason = "level_take_profit"
            if reason is None and self._exit is not None and self._exit[0] > 0:
                reason = "exit_signal"
            elif reason is None and self._hold and i - lot.entry_bar + 1 >= self._hold:
                reason = "time"
            if reason is not None:
                self.exit(reason)
                return
            if self._intrabar:
                self._place_resting(lot.size, avg, lot.peak_close)
        if self._entry is None or not (self._entry[0] > 0):
            return
        if lot is None:
            if self.last_exit_bar is not None and i - self.last_exit_bar < self._cooldown:
                return
            frac = self._tranche_fraction()
            if frac > 0:
                self.enter(frac, "entry")
                self._last_tranche_bar = i
                self._entry_levels = (
                    float(self._level_tp[0]) if self._level_tp is not None else math.nan,
                    float(self._level_sl[0]) if self._level_sl is not None else math.nan)
        elif lot.tranches < self._k and i - self._last_tranche_bar >= self._spacing:
            frac = self._tranche_fraction()
            if frac > 0:
                self.enter(frac, "scale_in")
                self._last_tranche_bar = i
