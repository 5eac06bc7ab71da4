"""The short side of the contrarian strategy's exits: the long rules mirrored (no backtrader
import; the fast kernel in :mod:`flushback.strategies.nb` writes the same comparisons).

- close-based, checked in this order: ``stop_loss`` (close >= avg * (1 + stop_loss)),
  ``trailing_stop`` (close >= lowest close since entry * (1 + trailing_stop)),
  ``take_profit`` (close <= avg * (1 - take_profit));
- intrabar: a buy stop at the higher-priority (lower) of the stop-loss and trailing levels,
  and a buy limit at the take-profit level.
"""

from __future__ import annotations

__all__ = ["short_exit_reason", "short_resting_levels"]


def short_exit_reason(close: float, avg: float, best: float, sl: float, trail: float,
                      tp: float, intrabar: bool) -> str | None:
    """The close-based exit of a short at ``close`` (``best``: the lowest close since entry),
    or None; with ``intrabar`` these exits rest as orders instead."""
    if intrabar:
        return None
    if sl and close >= avg * (1.0 + sl):
        return "stop_loss"
    if trail and close >= best * (1.0 + trail):
        return "trailing_stop"
    if tp and close <= avg * (1.0 - tp):
        return "take_profit"
    return None


def short_resting_levels(avg: float, best: float, sl: float, trail: float, tp: float
                         ) -> tuple[float | None, float | None, str]:
    """(buy stop, buy limit, stop reason) of a short's resting exits; the stop is the lower
    (tighter) of the stop-loss and trailing levels."""
    stop, reason = None, "stop_loss"
    if sl:
        stop = avg * (1.0 + sl)
    if trail:
        t = best * (1.0 + trail)
        if stop is None or t < stop:
            stop, reason = t, "trailing_stop"
    limit = avg * (1.0 - tp) if tp else None
    return stop, limit, reason
