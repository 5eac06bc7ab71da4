"""Benchmarks as strategies: buy-and-hold and the fear/greed accumulation rule.

Both run through the same adapter as every other strategy (same fills at the next open,
same commission, slippage and funding), so a comparison is like for like.
"""

from __future__ import annotations

from flushback.strategies.adapter import FlushbackStrategy
from flushback.strategies.columns import builtin_feed_columns
from flushback.strategies.config import BUY_AND_HOLD_PARAMS, FEAR_GREED_ACCUMULATION_PARAMS

__all__ = ["BuyAndHold", "FearGreedAccumulation"]


class BuyAndHold(FlushbackStrategy):
    """Buy ``fraction`` of the equity at the open of the second bar; hold to the end."""

    param_specs = dict(BUY_AND_HOLD_PARAMS)

    def next(self) -> None:
        super().next()
        if self.bar == 0:
            self.enter(float(self.cfg.get("fraction", 1.0)), "buy_and_hold")


class FearGreedAccumulation(FlushbackStrategy):
    """Buy ``buy_fraction`` of the cash after each bar with F&G <= ``buy_below``; sell
    ``sell_fraction`` of the position after each bar with F&G >= ``sell_above``.

    Needs the ``fng`` column on the feed (the runner adds it). Bars without a Fear & Greed
    value do nothing. Every sell closes a trade row (average-cost accounting).
    """

    param_specs = dict(FEAR_GREED_ACCUMULATION_PARAMS)

    @classmethod
    def feed_columns(cls, frame, cfg, periods_per_year):
        return builtin_feed_columns("fear_greed_accumulation", frame, cfg, periods_per_year)

    def next(self) -> None:
        super().next()
        fng = self.lineval("fng")
        if fng != fng:
            return
        c = self.cfg
        if fng <= float(c.get("buy_below", 20.0)):
            self.buy_cash_fraction(float(c.get("buy_fraction", 0.1)), "fear_buy")
        elif fng >= float(c.get("sell_above", 80.0)) and self.lot is not None:
            self.sell_position_fraction(float(c.get("sell_fraction", 0.1)), "greed_sell")
