"""Isolated margin on a perpetual: the arithmetic both engines share (no backtrader import).

The model (docs/strategies.md, "Perpetuals: shorts, leverage, isolated margin"):

- A position of ``size`` units entered at the average price ``entry`` with leverage ``L``
  locks the **margin** ``size * entry / L`` from the cash; the entry fee (commission on the
  notional ``size * entry``) is paid from the cash on top of it.
- The **liquidation price** is where the position's equity (margin + unrealised pnl) has
  fallen to the maintenance margin ``m * size * price``:

  - long: ``entry * (1 - 1/L) / (1 - m)`` (0 for ``L = 1``: a 1x long is never liquidated),
  - short: ``entry * (1 + 1/L) / (1 + m)``.

  It is Binance's isolated formula for one position with the maintenance amount set to 0
  and the isolated wallet balance equal to the initial margin.
- A **liquidation** (the bar's low reaches a long's liquidation price, its high a short's)
  fills at the liquidation price with the commission as its fee; the whole margin is lost:
  the price loss ``size * |entry - liq|``, then the rest (the maintenance margin) goes to the
  exchange, the liquidation fee taken out of it. Only when the fee exceeds that rest is the
  excess paid from the cash.

:func:`liquidation_price` and :func:`liquidation_loss` are plain Python (the tests and the
reports call them); the kernels in :mod:`flushback.strategies.nb` and the reference engine
compute the same expressions.
"""

from __future__ import annotations

import math

__all__ = ["MAX_LEVERAGE", "liquidation_price", "liquidation_distance", "liquidation_loss",
           "side_sign"]

#: the highest leverage a configuration may declare
MAX_LEVERAGE = 20.0


def side_sign(side: str) -> int:
    """+1 for ``"long"``, -1 for ``"short"``."""
    if side not in ("long", "short"):
        raise ValueError(f"side must be 'long' or 'short', not {side!r}")
    return 1 if side == "long" else -1


def liquidation_price(entry: float, leverage: float, maintenance: float, side: int) -> float:
    """The isolated-margin liquidation price of a position (``side`` +1 long, -1 short);
    0.0 for a 1x long (never liquidated)."""
    if side > 0:
        return entry * (1.0 - 1.0 / leverage) / (1.0 - maintenance)
    return entry * (1.0 + 1.0 / leverage) / (1.0 + maintenance)


def liquidation_distance(leverage: float, maintenance: float, side: int) -> float:
    """How far the price may move against a position, as a fraction of the entry price,
    before it is liquidated (``inf`` for a 1x long)."""
    liq = liquidation_price(1.0, leverage, maintenance, side)
    if side > 0:
        return math.inf if liq <= 0.0 else 1.0 - liq
    return liq - 1.0


def liquidation_loss(size: float, entry: float, leverage: float, liq: float, fee: float
                     ) -> float:
    """What a liquidation takes from the trader beyond the entry fee and funding: the whole
    margin ``size * entry / leverage``, or the price loss plus the fee when that is more
    (a fee larger than the maintenance margin left at ``liq``)."""
    margin = size * entry / leverage
    price_loss = size * abs(entry - liq)
    return max(margin, price_loss + fee)
