"""A basket traded as one portfolio with shared cash: the rules, the inputs, the fast engine.

The same rules run in two engines: :func:`run_portfolio_fast` (numpy arrays, a plain loop over
bars and assets) and the backtrader reference (``flushback.strategies.portfolio_bt``, one data
feed per asset). ``tests/test_portfolio_parity.py`` proves them identical (trades exactly,
equity to 1e-9) on random baskets.

Rules (decisions on a bar's close, fills at the next bar's open of the asset):

- **Signals** are the portfolio's: ``entry`` / ``exit`` on the basket frame (e.g. a BTC fear +
  flush trigger, or a breadth signal). The assets are the basket's members; an asset is
  tradable at bar t when it has a bar at t.
- **Selection.** When ``entry`` fires at t with free slots (``max_positions`` minus the open
  positions), the assets not held with a bar at t are ranked and the first ``free`` of them
  are bought. ``rank_by = "rsi"``: by their RSI(``rsi_period``) at t, most oversold first (an
  asset without a warm RSI at t is not a candidate; ties keep the basket's order);
  ``"order"``: the basket's order (an equal-weight basket held from each asset's first bar is
  ``rank_by = "order"`` with an always-true entry and no exits).
- **Allocation** (weights of equity, decided at t): ``equal``: ``fraction / max_positions``
  each; ``inverse_vol``: the new positions share ``fraction * n_new / max_positions`` in
  proportion to 1 / realised volatility (the std of the last ``vol_lookback`` log returns up
  to t; no candidate without it); ``signal``: in proportion to the strength ``100 - RSI``.
- **Entry fill** at the open of t+1: the equity is valued once, after that bar's exits, as
  cash plus every position at the asset's open (its last close when it has no bar at t+1);
  each new position buys ``weight * equity`` (capped by the cash left, in rank order) at
  ``open * (1 + slippage)`` plus the fee. An asset without a bar at t+1 is skipped.
- **Exits**, per position, checked on its asset's close (the first that holds): ``stop_loss``
  (close <= entry price * (1 - stop_loss)), ``take_profit`` (close >= entry price *
  (1 + take_profit)), ``time`` (``hold_bars`` bars held, the entry bar counted), and the
  portfolio's ``exit`` signal (every position). Filled at the asset's next open at
  ``open * (1 - slippage)`` minus the fee; an asset without a bar waits for its next bar.
  Exits fill before entries on the same bar.
- **Rebalancing** (``rebalance_bars = N``, 0 = never): at the close of every N-th bar of the
  window (bars N-1, 2N-1, ... counted from 0) the open positions are brought back to their
  weights at the next open: each position's target is its entry weight times the equity
  valued as for entries (after that open's exits); a position more than ``rebalance_band``
  of the equity away from its target sells the excess (a trade leg, average-cost) or buys the
  shortfall (capped by the cash), sells first, each in the basket's order, before that open's
  entries. An asset without a bar at that open is left as it is.
- **Equity** at each close: cash plus every position at its asset's last close. A position
  still open on the last bar is marked to its last close as a trade ``end_of_data`` without
  an exit fee.

Bookkeeping is average-cost, as in the single-asset engines: every reducing fill is a trade
row (a leg) sharing the position's ``trade_id``; the stop and take-profit compare the close
with the average entry price.

Fees are a fraction of traded notional per side (0.001 = 0.1 %); sizes are fractional.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flushback.data.basket import basket_column, members
from flushback.data.errors import ConfigError, DataError

__all__ = ["ALLOCATIONS", "PORTFOLIO_TRADE_COLUMNS", "RANKINGS", "PortfolioConfig",
           "PortfolioInputs", "PortfolioResult", "portfolio_inputs", "run_portfolio_fast"]

ALLOCATIONS = ("equal", "inverse_vol", "signal")
RANKINGS = ("rsi", "order")
PORTFOLIO_TRADE_COLUMNS = [
    "trade_id", "symbol", "signal_time", "entry_time", "entry_price", "exit_time", "exit_price",
    "size", "entry_fee", "exit_fee", "pnl", "return_pct", "bars_held", "exit_reason", "weight",
    "mae", "mfe",
]
_EPS_SIZE = 1e-12
_CASH_SAFETY = 1.0 - 1e-12


@dataclass(frozen=True)
class PortfolioConfig:
    """The portfolio's parameters (validated on construction; see the module docstring)."""

    max_positions: int = 3
    allocation: str = "equal"
    rank_by: str = "rsi"
    fraction: float = 1.0
    rsi_period: int = 14
    vol_lookback: int = 30
    stop_loss: float = 0.0
    take_profit: float = 0.0
    hold_bars: int = 0
    rebalance_bars: int = 0
    rebalance_band: float = 0.01

    def __post_init__(self) -> None:
        if self.allocation not in ALLOCATIONS:
            raise ConfigError(f"portfolio.allocation {self.allocation!r} is not one of "
                              f"{', '.join(ALLOCATIONS)}", hint="choose equal, inverse_vol "
                              "or signal")
        if self.rank_by not in RANKINGS:
            raise ConfigError(f"portfolio.rank_by {self.rank_by!r} is not one of "
                              f"{', '.join(RANKINGS)}", hint="choose rsi or order")
        checks = [
            ("max_positions", self.max_positions >= 1, ">= 1"),
            ("fraction", 0 < self.fraction <= 1, "in (0, 1]"),
            ("rsi_period", self.rsi_period >= 2, ">= 2"),
            ("vol_lookback", self.vol_lookback >= 2, ">= 2"),
            ("stop_loss", 0 <= self.stop_loss < 1, "in [0, 1) (0 = off)"),
            ("take_profit", self.take_profit >= 0, ">= 0 (0 = off)"),
            ("hold_bars", self.hold_bars >= 0, ">= 0 (0 = off)"),
            ("rebalance_bars", self.rebalance_bars >= 0, ">= 0 (0 = never)"),
            ("rebalance_band", 0 <= self.rebalance_band < 1, "in [0, 1)"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"portfolio.{name} = {getattr(self, name)!r} must be {rule}",
                                  hint=f"set portfolio.{name} {rule}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> PortfolioConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            from flushback.data.suggest import did_you_mean

            raise ConfigError(f"unknown portfolio parameter '{unknown[0]}'"
                              + did_you_mean(unknown[0], known),
                              hint=f"portfolio parameters: {', '.join(sorted(known))}")
        return cls(**dict(values))


@dataclass
class PortfolioInputs:
    """What both engines read: per-asset OHLC (T x n, NaN where an asset has no bar), the
    portfolio's entry/exit triggers (T), the ranking RSI and the realised volatility (T x n,
    NaN where not usable)."""

    index: pd.DatetimeIndex
    symbols: list[str]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    entry: np.ndarray
    exit: np.ndarray
    rsi: np.ndarray
    vol: np.ndarray


@dataclass
class PortfolioResult:
    """``equity`` (equity, cash, positions, exposure per bar) and ``trades``
    (:data:`PORTFOLIO_TRADE_COLUMNS`, one row per position, ``trade_id`` in entry order)."""

    equity: pd.DataFrame
    trades: pd.DataFrame
    symbols: list[str] = field(default_factory=list)


def portfolio_inputs(frame: pd.DataFrame, entry: pd.Series, exit_: pd.Series | None,
                     cfg: PortfolioConfig, symbols: Sequence[str] | None = None
                     ) -> PortfolioInputs:
    """Arrays from a basket frame (``flushback.data.basket``) and the portfolio's signals."""
    from flushback.signals.breadth import member_rsi

    names = list(symbols) if symbols is not None else members(frame)
    missing = [s for s in names if basket_column("close", s) not in frame.columns]
    if not names or missing:
        raise DataError(
            "a portfolio needs every asset's bars on the frame"
            + (f"; missing {', '.join(missing)}" if missing else ""),
            column=f"close@{missing[0]}" if missing else "close@<symbol>",
            hint="name the assets in the spec's data.basket (the spec's symbol is a member)",
        )

    def stack(field_: str) -> np.ndarray:
        return np.column_stack([frame[basket_column(field_, s)].to_numpy(dtype="float64")
                                for s in names])

    close = stack("close")
    rsi = np.column_stack([member_rsi(frame[basket_column("close", s)], cfg.rsi_period,
                                      "wilder").to_numpy() for s in names])
    logret = np.log(close[1:] / close[:-1])
    logret = np.vstack([np.full((1, len(names)), np.nan), logret])
    vol = (pd.DataFrame(logret).rolling(cfg.vol_lookback, min_periods=cfg.vol_lookback)
           .std(ddof=1).to_numpy())
    for name, s in (("entry", entry), ("exit", exit_)):
        if s is not None and not s.index.equals(frame.index):
            raise DataError(f"the portfolio's {name} signal is not on the frame's index",
                            hint="compute the signals on the basket frame")
    ex = (np.zeros(len(frame), dtype=bool) if exit_ is None
          else exit_.fillna(False).to_numpy(dtype=bool))
    return PortfolioInputs(
        index=pd.DatetimeIndex(frame.index), symbols=names, open=stack("open"),
        high=stack("high"), low=stack("low"), close=close,
        entry=entry.fillna(False).to_numpy(dtype=bool), exit=ex, rsi=rsi, vol=vol)


def select(inputs: PortfolioInputs, cfg: PortfolioConfig, t: int, held: Sequence[bool],
           free: int) -> list[tuple[int, float]]:
    """(asset, weight) of the positions to open after bar t's close, in rank order."""
    if free <= 0:
        return []
    need_rsi = cfg.rank_by == "rsi" or cfg.allocation == "signal"
    cands = [i for i in range(len(inputs.symbols))
             if not held[i] and inputs.close[t, i] == inputs.close[t, i]
             and (not need_rsi or inputs.rsi[t, i] == inputs.rsi[t, i])
             and (cfg.allocation != "inverse_vol"
                  or (inputs.vol[t, i] == inputs.vol[t, i] and inputs.vol[t, i] > 0))]
    if cfg.rank_by == "rsi":
        cands.sort(key=lambda i: (inputs.rsi[t, i], i))
    chosen = cands[:free]
    if not chosen:
        return []
    k = cfg.max_positions
    if cfg.allocation == "equal":
        return [(i, cfg.fraction / k) for i in chosen]
    if cfg.allocation == "inverse_vol":
        score = [1.0 / inputs.vol[t, i] for i in chosen]
    else:
        score = [max(100.0 - inputs.rsi[t, i], 0.0) for i in chosen]
    total = math.fsum(score)
    share = cfg.fraction * len(chosen) / k
    if not total > 0:
        return [(i, share / len(chosen)) for i in chosen]
    return [(i, share * sc / total) for i, sc in zip(chosen, score, strict=True)]


@dataclass
class _Position:
    """An open position, average-cost: ``cost`` = sum(size * fill price) of the units held,
    ``fees`` = their entry fees; ``bt_price`` is the broker's position price (the fill price
    unrounded, averaged over buys)."""

    trade_id: int
    asset: int
    signal_bar: int
    entry_bar: int
    size: float
    cost: float
    fees: float
    weight: float
    bt_price: float
    low: float = math.inf
    high: float = -math.inf

    @property
    def avg(self) -> float:
        return self.cost / self.size


def exit_reason(cfg: PortfolioConfig, pos: Any, close: float, bars_held: int,
                exit_signal: bool) -> str | None:
    """The first exit rule that holds for an open position at a close (None: hold)."""
    if cfg.stop_loss > 0 and close <= pos.avg * (1.0 - cfg.stop_loss):
        return "stop_loss"
    if cfg.take_profit > 0 and close >= pos.avg * (1.0 + cfg.take_profit):
        return "take_profit"
    if cfg.hold_bars > 0 and bars_held >= cfg.hold_bars:
        return "time"
    if exit_signal:
        return "exit_signal"
    return None


def trade_row(inputs: PortfolioInputs, pos: Any, exit_bar: int, price: float, fee: float,
              reason: str, mark: bool, size: float | None = None) -> dict[str, Any]:
    """A reducing fill of ``size`` units (default: all) as a trade row (times as bar positions,
    converted later): its share of the entry fees, pnl against the average entry price."""
    y = pos.size if size is None else size
    avg = pos.avg
    entry_fee = pos.fees * min(y / pos.size, 1.0)
    pnl = y * (price - avg) - entry_fee - fee
    basis = y * avg + entry_fee
    return {
        "trade_id": pos.trade_id, "symbol": inputs.symbols[pos.asset],
        "signal_bar": pos.signal_bar, "entry_bar": pos.entry_bar, "entry_price": avg,
        "exit_bar": exit_bar, "exit_price": price, "size": y, "entry_fee": entry_fee,
        "exit_fee": fee, "pnl": pnl, "return_pct": pnl / basis if basis > 0 else float("nan"),
        "bars_held": exit_bar - pos.entry_bar + (1 if mark else 0), "exit_reason": reason,
        "weight": pos.weight, "mae": min(pos.low, price) / avg - 1.0,
        "mfe": max(pos.high, price) / avg - 1.0,
    }


def reduce_position(pos: Any, size: float, entry_fee: float) -> bool:
    """Take ``size`` units (and their ``entry_fee``) out of an average-cost position; True
    when it is closed."""
    if pos.size - size < _EPS_SIZE:
        return True
    avg = pos.avg
    pos.size -= size
    pos.cost -= size * avg
    pos.fees -= entry_fee
    return False


def rebalance_due(cfg: PortfolioConfig, t: int, n_bars: int) -> bool:
    """Whether the close of window bar ``t`` is a rebalancing close."""
    return cfg.rebalance_bars > 0 and (t + 1) % cfg.rebalance_bars == 0 and t < n_bars - 1


def result_frames(inputs: PortfolioInputs, rows: list[dict[str, Any]],
                  equity: list[tuple[float, float, int, float]]) -> PortfolioResult:
    """Trade rows and per-bar equity as the result's DataFrames."""
    idx = inputs.index
    eq = pd.DataFrame(np.asarray(equity, dtype="float64").reshape(-1, 4),
                      index=idx[: len(equity)], columns=["equity", "cash", "positions",
                                                         "exposure"])
    eq["positions"] = eq["positions"].astype("int64")
    eq.index.name = "timestamp"
    trades = pd.DataFrame(rows)
    if trades.empty:
        trades = pd.DataFrame({c: pd.Series(dtype="float64") for c in PORTFOLIO_TRADE_COLUMNS})
        for col in ("signal_time", "entry_time", "exit_time"):
            trades[col] = pd.Series(dtype="datetime64[ns, UTC]")
        trades["symbol"] = trades["symbol"].astype(object)
        trades["exit_reason"] = trades["exit_reason"].astype(object)
    else:
        for col in ("signal", "entry", "exit"):
            trades[f"{col}_time"] = idx[trades.pop(f"{col}_bar").to_numpy(dtype=np.int64)]
        trades = trades.sort_values(["trade_id"], kind="stable")
    trades = trades[PORTFOLIO_TRADE_COLUMNS].reset_index(drop=True)
    trades["bars_held"] = trades["bars_held"].astype("int64")
    trades["trade_id"] = trades["trade_id"].astype("int64")
    return PortfolioResult(equity=eq, trades=trades, symbols=list(inputs.symbols))


def _valid(x: float) -> bool:
    return x == x and x > 0


def run_portfolio_fast(inputs: PortfolioInputs, cfg: PortfolioConfig, *, cash: float,
                       commission: float = 0.0, slippage: float = 0.0) -> PortfolioResult:
    """The portfolio rules (module docstring) over the arrays: the fast engine."""
    n_bars, n = inputs.close.shape
    c, s = float(commission), float(slippage)
    positions: list[_Position | None] = [None] * n
    last_close = np.full(n, np.nan)
    pending_exit: dict[int, tuple[str, int]] = {}  # asset -> (reason, signal bar)
    pending_entry: list[tuple[int, float, int]] = []  # (asset, weight, signal bar)
    rebalance = False
    rows: list[dict[str, Any]] = []
    equity: list[tuple[float, float, int, float]] = []
    seq = 0

    def sell(i: int, y: float, o: float, reason: str, t: int) -> None:
        # backtrader's broker: cash += y * price_pos + y * (fill - price_pos), then the fee
        nonlocal cash
        pos = positions[i]
        assert pos is not None
        p = o * (1.0 - s) if s != 0.0 else o
        cash = cash + (y * pos.bt_price + y * (p - pos.bt_price))
        fee = y * c * p
        cash = cash - fee
        row = trade_row(inputs, pos, t, (-y * p) / -y, fee, reason, mark=False, size=y)
        rows.append(row)
        if reduce_position(pos, y, row["entry_fee"]):
            positions[i] = None

    def buy(i: int, x: float, o: float, t: int, weight: float, sig: int) -> None:
        nonlocal cash, seq
        p = o * (1.0 + s) if s != 0.0 else o
        cash = cash - x * p
        fee = x * c * p
        cash = cash - fee
        xp = (x * p) / x
        pos = positions[i]
        if pos is None:
            seq += 1
            positions[i] = _Position(seq, i, sig, t, x, x * xp, fee, weight, p)
            return
        pos.bt_price = (pos.bt_price * pos.size + x * p) / (pos.size + x)
        pos.size += x
        pos.cost += x * xp
        pos.fees += fee

    for t in range(n_bars):
        # -- open: exits, rebalancing, entries -----------------------------------------------
        # ``est`` is the cash the buys are sized with (the reference's estimate at the open:
        # sale proceeds net of fees); ``cash`` follows backtrader's broker formulas.
        est = cash
        for i in sorted(pending_exit):
            pos = positions[i]
            o = inputs.open[t, i]
            if pos is None or not _valid(o):
                continue
            est += pos.size * (o * (1.0 - s)) * (1.0 - c)
            sell(i, pos.size, o, pending_exit[i][0], t)
            del pending_exit[i]
        if pending_entry or rebalance:
            value = est
            for j, pos in enumerate(positions):
                if pos is not None:
                    o = inputs.open[t, j]
                    value += pos.size * (o if _valid(o) else last_close[j])
            if rebalance:
                buys = []
                for i, pos in enumerate(positions):
                    o = inputs.open[t, i]
                    if pos is None or not _valid(o):
                        continue
                    delta = pos.weight * value - pos.size * o
                    if abs(delta) <= cfg.rebalance_band * value:
                        continue
                    if delta < 0:
                        y = min(-delta / o, pos.size)
                        est += y * (o * (1.0 - s)) * (1.0 - c)
                        sell(i, y, o, "rebalance", t)
                    else:
                        buys.append((i, delta, o))
                for i, delta, o in buys:
                    px = o * (1.0 + s)
                    x = min(delta, est) * _CASH_SAFETY / (px * (1.0 + c))
                    if x > _EPS_SIZE:
                        est -= x * px * (1.0 + c)
                        pos = positions[i]
                        assert pos is not None
                        buy(i, x, o, t, pos.weight, pos.signal_bar)
                rebalance = False
            for i, w, sig in pending_entry:
                o = inputs.open[t, i]
                if positions[i] is not None or not _valid(o):
                    continue
                px = o * (1.0 + s)
                x = min(value * w, est) * _CASH_SAFETY / (px * (1.0 + c))
                if x <= _EPS_SIZE:
                    continue
                est -= x * px * (1.0 + c)
                buy(i, x, o, t, w, sig)
            pending_entry = []
        # -- close: record, mark, decide ----------------------------------------------------
        for i in range(n):
            cl = inputs.close[t, i]
            if cl == cl:
                last_close[i] = cl
            pos = positions[i]
            if pos is not None and cl == cl:
                pos.low = min(pos.low, inputs.low[t, i])
                pos.high = max(pos.high, inputs.high[t, i])
        invested = 0.0
        for pos in positions:
            if pos is not None:
                invested += pos.size * last_close[pos.asset]
        open_n = sum(p is not None for p in positions)
        equity.append((cash + invested, cash, open_n,
                       invested / (cash + invested) if cash + invested > 0 else 0.0))
        if t == n_bars - 1:
            break
        for i, pos in enumerate(positions):
            if pos is None or i in pending_exit:
                continue
            cl = inputs.close[t, i]
            if cl == cl:
                why = exit_reason(cfg, pos, cl, t - pos.entry_bar + 1, bool(inputs.exit[t]))
            else:
                why = "exit_signal" if inputs.exit[t] else None
            if why is not None:
                pending_exit[i] = (why, t)
        rebalance = rebalance_due(cfg, t, n_bars) and open_n > 0
        if inputs.entry[t]:
            held = [p is not None for p in positions]
            pending_entry = [(i, w, t) for i, w in
                             select(inputs, cfg, t, held, cfg.max_positions - sum(held))]
    for i, pos in enumerate(positions):
        if pos is not None:
            rows.append(trade_row(inputs, pos, n_bars - 1, float(last_close[i]), 0.0,
                                  "end_of_data", mark=True))
    return result_frames(inputs, rows, equity)
