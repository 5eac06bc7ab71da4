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
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_LEVERAGE", "SPOT_TERMS", "liquidation_price", "liquidation_distance",
           "liquidation_loss", "margin_warning", "position_terms", "side_sign"]

#: the highest leverage a configuration may declare
MAX_LEVERAGE = 20.0


#: the terms of a strategy that declares no perpetual parameters (side, leverage,
#: maintenance_margin): it trades spot, long and unlevered, with no liquidation price
SPOT_TERMS = (1, 1.0, 0.0)


def position_terms(cfg: Mapping[str, Any]) -> tuple[int, float, float]:
    """(side +1/-1, leverage, maintenance rate) of a validated strategy config: its declared
    perpetual parameters (complete, from their declarations), or :data:`SPOT_TERMS` for a
    strategy type that declares none."""
    if "leverage" not in cfg:
        return SPOT_TERMS
    return (side_sign(str(cfg["side"])), float(cfg["leverage"]),
            float(cfg["maintenance_margin"]))


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


def margin_warning(cfg: Mapping[str, Any], trades: Any) -> str | None:
    """A warning for a validated strategy config whose worst adverse excursion (the trades'
    ``mae``) reaches its liquidation distance, or whose stop-loss lies beyond it; None
    otherwise (a 1x long, or a strategy without perpetual parameters, has no liquidation
    distance)."""
    side, lev, mm = position_terms(cfg)
    dist = liquidation_distance(lev, mm, side)
    if not math.isfinite(dist):
        return None
    what = f"{lev:g}x {'long' if side > 0 else 'short'} (maintenance {mm:.2%})"
    parts = []
    sl = float(cfg["stop_loss"] or 0.0) if "stop_loss" in cfg else 0.0
    if sl >= dist:
        parts.append(f"its stop_loss of {sl:.1%} lies beyond the liquidation distance: the "
                     "position is liquidated before the stop can fill")
    if trades is not None and len(trades) and "mae" in trades:
        mae = trades["mae"].astype(float)
        k = int(mae.to_numpy().argmin())
        worst = float(mae.iloc[k])
        if -worst >= dist * (1.0 - 1e-9):
            n_liq = int((trades["exit_reason"] == "liquidation").sum())
            when = trades["entry_time"].iloc[k] if "entry_time" in trades else None
            parts.append(f"the worst adverse excursion, {worst:.1%} (trade "
                         f"#{int(trades['trade_id'].iloc[k])}"
                         + (f", entered {when:%Y-%m-%d %H:%M}" if when is not None else "")
                         + f"), reaches it: {n_liq} trade(s) liquidated")
    if not parts:
        return None
    return (f"warning: a {what} is liquidated {dist:.1%} from its entry price; "
            + "; ".join(parts) + ". Lower strategy.leverage (or tighten the stop).")
