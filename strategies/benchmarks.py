"""Benchmarks as strategies: buy-and-hold and the fear/greed accumulation rule.

Both run through the same adapter as every other strategy (same fills at the next open,
same commission, slippage and funding), so a comparison is like for like.
"""

from __future__ import annotations

from flushback.strategies.adapter import FlushbackStrategy
from flushback.strategies.columns import builtin_feed_columns
from flushback.strategies.config import (
    BUY_AND_HOLD_PARAMS,
    FEAR_GREED_ACCUMULATION_PARAMS,
    register_strategy,
)

__all__ = ["BuyAndHold", "FearGreedAccumulation"]


@register_strategy("buy_and_hold")
class BuyAndHold(FlushbackStrategy):
    """Buy ``fraction`` of the equity at the open of the second bar; hold to the end."""

    param_specs = dict(BUY_AND_HOLD_PARAMS)

    def decide(self) -> None:
        if self.bar == 0:
            self.enter(float(self.cfg["fraction"]), "buy_and_hold")


@register_strategy("fear_greed_accumulation")
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

    def decide(self) -> None:
        fng = self.lineval("fng")
        if fng != fng:
            return
        c = self.cfg
        if fng <= float(c["buy_below"]):
            self.buy_cash_fraction(float(c["buy_fraction"]), "fear_buy")
        elif fng >= float(c["sell_above"]) and self.lot is not None:
            self.sell_position_fraction(float(c["sell_fraction"]), "greed_sell")
