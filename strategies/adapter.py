"""The backtrader adapter: the only module (with the strategy modules built on it) that touches
backtrader.

What it pins, because this is exactly where backtesting frameworks disagree:

- **Feed.** :func:`make_feed` builds a data feed whose lines are filled from numpy arrays in one
  call per line (no per-cell ``iloc`` as in ``PandasData``). Precomputed signal columns travel
  as extra lines (``self.data.entry[0]``); nothing is computed inside backtrader and nothing is
  resampled there.
- **Fill timing.** A decision taken on bar ``t`` (its values are known at its close) fills at
  the OPEN of bar ``t+1``. backtrader's cheat-on-close stays off; ``cheat_on_open`` is on only so
  that an order can be *sized* at the price it fills at (an all-in order sized at the signal
  bar's close is rejected when the next open gaps up). Strategies express decisions with
  :meth:`FlushbackStrategy.enter` / :meth:`FlushbackStrategy.exit` in ``decide()`` (called by
  the base's ``next()`` after it records the bar); the base submits them in ``next_open()`` of
  the following bar.
- **Sizes** are fractional (BTC is not traded in whole coins).
- **Commission** is a FRACTION of traded notional per side: ``0.001`` means 0.1 %. A custom
  ``CommInfoBase`` would read 0.001 as 0.001 % unless ``percabs=True``; :class:`FractionCommission`
  pins it.
- **Slippage** is a fraction of the open price, always applied (buys at ``open*(1+s)``, sells at
  ``open*(1-s)``), even when that lies outside the bar's range (``slip_out=True``), so fills are
  predictable to the cent.
- **Funding** (perpetuals, optional): with ``funding=True`` a long position pays ``size *
  close * funding_rate * bar_hours / 8`` at each bar close it is held over (``funding_rate`` is
  a fraction per 8 h; negative rates are received); with ``funding="settlements"`` the
  ``funding_rate`` line holds the rates SETTLED during each bar (summed, scaled to 8 h; NaN or
  0 when none) and a position pays ``size * close * funding_rate`` at that bar's close. A short
  receives what a long pays.
- **Perpetuals** (the strategy's ``side``, ``leverage`` and ``maintenance_margin``): isolated
  margin (:mod:`flushback.strategies.margin`). backtrader's broker keeps the cash: a long's
  opening fill takes ``size * price / leverage`` (the margin) plus the fee, a closing fill
  gives back the margin plus the pnl minus the fee, and equity is ``cash + margin +
  unrealised pnl``; a short's sale proceeds go to the cash (``shortcash``) and equity is
  ``cash - size * price``; both are the same trader's equity, initial margin + pnl.
  A liquidation (the bar's low reaches a long's liquidation price, its high a short's) is
  decided at the bar's open, before the broker tries the resting exits, which are
  cancelled: the position is closed at the liquidation price at that bar's close, outside
  the broker, losing its margin.

Bookkeeping is average-cost: every reducing fill closes a trade row (a full exit is one row),
so ``sum(trades.pnl) == final equity - initial cash`` holds exactly. A position still open on
the last bar is marked to the last close as a trade with ``exit_reason="end_of_data"`` and no
exit fee.
"""

from __future__ import annotations

import array
import contextlib
import math
from dataclasses import dataclass
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from flushback.data.errors import DataError
from flushback.data.intervals import periods_per_year
from flushback.strategies.columns import bar_hours, validate_bars
from flushback.strategies.config import complete_params
from flushback.strategies.margin import liquidation_loss, liquidation_price, position_terms
from flushback.strategies.results import (
    FILL_COLUMNS,
    TRADE_COLUMNS,
    EngineResult,
    equity_frame,
    trades_frame,
)

__all__ = [
    "FractionCommission",
    "FlushbackStrategy",
    "EngineResult",
    "make_feed",
    "run_engine",
    "TRADE_COLUMNS",
    "validate_bars",
]

PRICE_LINES = ("open", "high", "low", "close", "volume")
_EPS_SIZE = 1e-12
# Orders are sized a hair below the available cash so float rounding never overdraws it
# (1e-12 relative: far below a cent on any account size).
_CASH_SAFETY = 1.0 - 1e-12
# bt.date2num(1970-01-01) == 719163.0 (days since 0001-01-01, plus one)
_EPOCH_NUM = 719163.0


def _to_num(index: pd.DatetimeIndex) -> np.ndarray:
    ns = index.tz_convert("UTC").tz_localize(None).as_unit("ns").asi8.astype(np.float64)
    return ns / 86_400e9 + _EPOCH_NUM


class FractionCommission(bt.CommInfoBase):
    """Commission as a fraction of traded notional per side (0.001 = 0.1 %), spot-like."""

    params = (
        ("commission", 0.0),
        ("commtype", bt.CommInfoBase.COMM_PERC),
        ("percabs", True),  # 0.001 is a fraction, NOT 0.001 %
        ("stocklike", True),
        ("mult", 1.0),
        ("margin", None),
        ("leverage", 1.0),
    )


class _ArrayFeed(bt.feed.DataBase):
    """Base for feeds preloaded from numpy arrays (see :func:`make_feed`)."""

    params = (("arrays", None),)

    def preload(self) -> None:
        arrays: dict[str, np.ndarray] = self.p.arrays
        n = len(arrays["datetime"])
        for name in self.lines.getlinealiases():
            line = getattr(self.lines, name)
            values = arrays.get(name)
            if values is None:
                values = np.full(n, np.nan)
            buf = array.array("d")
            buf.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
            line.array = buf
        self.home()

    def _load(self) -> bool:  # only preloaded operation is supported
        return False

    def advance(self, size: int = 1, datamaster: Any = None, ticks: bool = True) -> None:
        # Bars are complete (no replay/live ticks): skip backtrader's per-bar copy of every line
        # into ``tick_*`` attributes (a third of the run time); the broker then reads the bar.
        super().advance(size, datamaster, ticks=False)


_FEED_CLASSES: dict[tuple[str, ...], type] = {}


def make_feed(frame: pd.DataFrame, extra: pd.DataFrame | None = None, *,
              validate: bool = True) -> bt.feed.DataBase:
    """A backtrader feed over ``frame``'s OHLCV plus ``extra``'s columns as extra lines.

    ``extra`` columns (bool or float, aligned to ``frame.index``) become lines of the same name;
    booleans are 1.0/0.0, missing values NaN. Column names must be valid identifiers.
    ``validate=False`` skips :func:`validate_bars` for bars that already passed it (the runner
    validates a prepared frame once, not once per run).
    """
    if validate:
        validate_bars(frame)
    extra = pd.DataFrame(index=frame.index) if extra is None else extra
    if not extra.index.equals(frame.index):
        raise DataError("extra feed columns are not aligned to the bars' index",
                        hint="reindex the signal columns on frame.index")
    names = tuple(str(c) for c in extra.columns)
    for name in names:
        if not name.isidentifier() or name in PRICE_LINES or name in ("datetime", "openinterest"):
            raise ValueError(f"extra feed column {name!r} is not a usable line name")
    cls = _FEED_CLASSES.get(names)
    if cls is None:
        cls = type(f"FlushbackFeed_{len(_FEED_CLASSES)}", (_ArrayFeed,), {"lines": names})
        _FEED_CLASSES[names] = cls
    arrays: dict[str, np.ndarray] = {"datetime": _to_num(frame.index)}
    for col in PRICE_LINES:
        arrays[col] = frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
    for col in names:
        values = extra[col]
        if values.dtype == bool or values.dtype == np.float64:  # the common, exact fast path
            arrays[col] = values.to_numpy(dtype=np.float64)
            continue
        arrays[col] = pd.to_numeric(values.astype("float64"), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    return cls(arrays=arrays)


@dataclass
class _Intent:
    kind: str  # "enter" | "exit" | "buy_cash" | "sell_fraction"
    value: float
    reason: str
    signal_bar: int


@dataclass
class _OpenLot:
    trade_id: int
    signal_bar: int
    entry_bar: int
    size: float = 0.0
    cost: float = 0.0  # sum(size * price) of the remaining units (average-cost)
    fees: float = 0.0  # entry fees of the remaining units
    funding: float = 0.0  # funding paid on the remaining units
    # the best close since entry (the entry fill counts): the highest for a long, the lowest
    # for a short
    tranches: int = 0
    low: float = math.inf
    high: float = -math.inf
    peak_close: float = -math.inf

    @property
    def avg_price(self) -> float:
        return self.cost / self.size if self.size > 0 else float("nan")


class FlushbackStrategy(bt.Strategy):
    """Base class of every flushback strategy. **This docstring is the contract.**

    Template method: backtrader calls :meth:`next` at each bar's close; the base records the
    bar (equity, cash, position, excursions, funding) and then calls :meth:`decide`, the one
    method a subclass implements. At each bar's open :meth:`next_open` submits the decisions
    of the previous close and then calls :meth:`after_open` (a hook, default: nothing).
    Subclasses never override ``next`` / ``next_open`` (a TypeError says so at class creation).

    In ``decide()`` (bar ``t``, values known at its close) a strategy calls :meth:`enter`,
    :meth:`exit`, :meth:`buy_cash_fraction`, :meth:`sell_position_fraction` or
    :meth:`set_resting_exits`. What the base then guarantees, and what
    ``flushback.strategies.testing.check_strategy`` checks for every registered strategy:

    - fills at the OPEN of bar ``t+1`` (+/- slippage), never at bar ``t``'s close;
    - fractional sizes, sized at the fill price so an all-in order is never rejected;
    - commission (a fraction of notional per side) and slippage applied to every fill;
    - no decision before the warm-up: a strategy reads only its feed lines, which are
      False/NaN during their signals' warm-up, and must not order on a bar where they are;
    - deterministic: the same bars and config give the same fills, trades and equity;
    - equity at each bar's close == cash + position size * close.

    Parameters: declare them as ``param_specs`` (name -> ``Param``); :attr:`cfg` is the
    validated configuration with every declared parameter filled in (defaults come from the
    declarations only), so read it by key: ``self.cfg["take_profit"]``.
    Read the feed's lines as usual (``self.data.close[0]``, ``self.data.entry[0]``...). Useful
    state: :attr:`bar` (index of the current bar), :attr:`position_size`, :attr:`lot` (the open
    position: ``avg_price``, ``entry_bar``, ``tranches``, ``peak_close``...),
    :attr:`last_exit_bar`.
    """

    params = (
        ("commission", 0.0),
        ("slippage", 0.0),
        ("funding", False),
        ("bar_hours", 24.0),
        ("periods_per_year", 365),
        ("cfg", None),  # the validated strategy parameters (a dict)
        ("on_progress", None),  # callable(done_bars, total_bars), every ~1 % of the bars
        ("total_bars", 0),
    )

    #: name -> Param declarations (see flushback.strategies.config.register_strategy)
    param_specs: dict = {}
    #: ``[signals.<name>]`` tables this strategy reads as feed lines
    required_signals: tuple[str, ...] = ()
    optional_signals: tuple[str, ...] = ()

    @classmethod
    def feed_columns(cls, frame: pd.DataFrame, cfg: dict, periods_per_year: int) -> dict:
        """Extra per-bar columns (computed in pandas) to put on the feed. Default: none."""
        return {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for hook, use in (("next", "decide"), ("next_open", "after_open")):
            if hook in cls.__dict__:
                raise TypeError(f"{cls.__name__} overrides {hook}(): implement {use}() "
                                f"instead (the base records the bar in {hook}() first)")

    @property
    def cfg(self) -> dict:
        """The validated parameters, every declared one present (read them by key)."""
        return self._cfg

    def lineval(self, name: str) -> float:
        """The current value of an extra feed line, NaN when the feed does not carry it."""
        if name in self.data.lines.getlinealiases():
            return float(getattr(self.data, name)[0])
        return float("nan")

    # -- lifecycle -----------------------------------------------------------------------
    def __init__(self) -> None:
        cls = type(self)
        self._cfg = complete_params(cls.param_specs, self.p.cfg,
                                    name=getattr(cls, "strategy_type", cls.__name__))
        self._intents: list[_Intent] = []
        self._lot: _OpenLot | None = None
        self._trade_seq = 0
        self._rows: list[dict[str, Any]] = []
        self._fills: list[dict[str, Any]] = []
        self._eq: list[tuple[float, float, float]] = []
        self._pending_orders = 0
        self.last_exit_bar: int | None = None
        self._resting: list[Any] = []
        #: (size, expected fill price) of the buy orders submitted at this bar's open
        self.submitted_buys: list[tuple[float, float]] = []
        self._has_funding = "funding_rate" in self.data.lines.getlinealiases()
        c = self.p.cfg or {}
        #: +1 long, -1 short; leverage; maintenance-margin rate (flushback.strategies.margin)
        self.side, self.leverage, self.maintenance = position_terms(c)
        # a 1x long keeps the spot arithmetic (equity = cash + size * price) bit for bit
        self._plain = self.side == 1 and self.leverage == 1.0
        self.liq_price = 0.0  # of the open (or opening) position; 0 = none
        self._liquidating = False

    @property
    def bar(self) -> int:
        return len(self) - 1

    @property
    def position_size(self) -> float:
        return self._lot.size if self._lot is not None else 0.0

    @property
    def lot(self) -> _OpenLot | None:
        return self._lot

    # -- decisions (called from next()) --------------------------------------------------
    def enter(self, fraction: float, reason: str = "entry") -> None:
        """Buy ``fraction`` of equity (valued at the fill bar's open) at the next open."""
        if fraction > 0:
            self._intents.append(_Intent("enter", float(fraction), reason, self.bar))

    def exit(self, reason: str) -> None:
        """Sell the whole position at the next open (cancels resting exit orders)."""
        self.cancel_resting_exits()
        if self._lot is not None and not any(i.kind == "exit" for i in self._intents):
            self._intents.append(_Intent("exit", 1.0, reason, self.bar))

    def set_resting_exits(
        self,
        stop: float | None = None,
        limit: float | None = None,
        *,
        stop_reason: str = "stop_loss",
        limit_reason: str = "take_profit",
        size: float | None = None,
    ) -> None:
        """Replace the resting exit orders for the whole position: a stop (sell if the price
        trades at or below ``stop``) and/or a limit (sell at or above ``limit``), one cancels
        the other. They fill INTRABAR on the following bars: at the stop price (minus slippage),
        or at the open (minus slippage) when the bar gaps through it; the limit at its price,
        or at the open when the bar gaps above it. When a bar touches both, the stop is assumed
        to fill first (the pessimistic reading of an OHLC bar)."""
        self.cancel_resting_exits()
        size = self.position_size if size is None else float(size)
        if size <= _EPS_SIZE or self._liquidating:
            return  # a liquidation on this bar comes before any resting exit
        # a short's exits are buys: the stop above the price, the take-profit below
        close_order = self.sell if self.side > 0 else self.buy
        first = None
        if stop is not None and stop > 0:
            first = close_order(size=size, exectype=bt.Order.Stop, price=float(stop))
            first.addinfo(reason=stop_reason, signal_bar=self.bar)
            self._resting.append(first)
        if limit is not None and limit > 0:
            order = close_order(size=size, exectype=bt.Order.Limit, price=float(limit),
                                oco=first)
            order.addinfo(reason=limit_reason, signal_bar=self.bar)
            self._resting.append(order)

    def cancel_resting_exits(self) -> None:
        broker = self.broker
        for order in self._resting:
            if order.alive() and not broker.cancel(order):
                # Placed since the last broker step (e.g. at the previous close, replaced at
                # this open after a scale-in buy): backtrader's cancel only searches the
                # accepted orders, so withdraw it from the submission queue, or it would
                # still fill and sell more than the position.
                with contextlib.suppress(ValueError):
                    broker.submitted.remove(order)
                    order.cancel()
                    broker.notify(order)
        self._resting = []

    def buy_cash_fraction(self, fraction: float, reason: str = "buy") -> None:
        """Spend ``fraction`` of the cash (at the fill bar's open, fees included) next open."""
        if fraction > 0:
            self._intents.append(_Intent("buy_cash", float(fraction), reason, self.bar))

    def sell_position_fraction(self, fraction: float, reason: str = "sell") -> None:
        """Sell ``fraction`` of the position at the next open (cancels resting exits)."""
        self.cancel_resting_exits()
        if fraction > 0 and self._lot is not None:
            self._intents.append(_Intent("sell_fraction", float(fraction), reason, self.bar))

    def pending(self) -> bool:
        return bool(self._intents)

    # -- the template: backtrader's hooks, then the subclass's --------------------------
    def next(self) -> None:
        """At each bar's close: record the bar, then :meth:`decide`."""
        self._record_bar()
        self.decide()

    def decide(self) -> None:
        """The strategy's decision at this bar's close (subclasses implement it)."""
        raise NotImplementedError(f"{type(self).__name__} must implement decide()")

    def next_open(self) -> None:
        """At each bar's open: submit the previous close's decisions and check the position's
        liquidation price against the bar, then :meth:`after_open`."""
        self._open_bar()
        self.after_open()

    def after_open(self) -> None:
        """Hook after this open's orders are submitted (:attr:`submitted_buys`). Default: none."""

    # -- execution (next bar open) -------------------------------------------------------
    def _open_bar(self) -> None:
        self.submitted_buys = []
        self._liquidating = False
        intents, self._intents = self._intents, []
        open_ = float(self.data.open[0])
        closing = False
        if intents and open_ > 0:
            closing = self._submit_intents(intents, open_)
        self._check_liquidation(closing)

    def _submit_intents(self, intents: list[_Intent], open_: float) -> bool:
        """Market orders for the decisions of the previous close, closing ones first; returns
        whether a closing order was submitted. For a short the closing side buys and the
        opening side sells; ``submitted_buys`` lists the OPENING orders either way."""
        s, c = float(self.p.slippage), float(self.p.commission)
        buy_px, sell_px = open_ * (1.0 + s), open_ * (1.0 - s)
        open_px, close_px = (buy_px, sell_px) if self.side > 0 else (sell_px, buy_px)
        lev = self.leverage
        cash = float(self.broker.get_cash())
        size_held = self.position_size
        closing = False
        for it in intents:
            if it.kind in ("exit", "sell_fraction") and size_held > _EPS_SIZE:
                size = size_held if it.kind == "exit" else size_held * min(it.value, 1.0)
                if size_held - size < _EPS_SIZE:
                    size = size_held
                self._submit(-self.side * size, close_px, it)
                closing = True
                size_held -= size
                if self._plain:
                    cash += size * sell_px * (1.0 - c)
                else:
                    cash += self._position_value(size, close_px) - size * c * close_px
        for it in intents:
            if it.kind == "enter":
                if self._plain:
                    equity = cash + size_held * open_
                elif size_held > 0.0:
                    equity = cash + self._position_value(size_held, open_)
                else:
                    equity = cash
                alloc = min(equity * it.value, cash)
            elif it.kind == "buy_cash":
                alloc = cash * min(it.value, 1.0)
            else:
                continue
            size = alloc * _CASH_SAFETY / (open_px * (1.0 / lev + c))
            if size > _EPS_SIZE:
                self._submit(self.side * size, open_px, it)
                self.submitted_buys.append((size, open_px))
                size_held += size
                cash -= size * open_px * (1.0 / lev + c)
        return closing

    def _check_liquidation(self, closing: bool) -> None:
        """At the open: the liquidation price of the position after this open's orders, and
        whether this bar reaches it (then the resting exits are cancelled: the liquidation
        comes first, see :meth:`_liquidate`)."""
        if self._plain:
            return
        lot = self._lot
        if self.submitted_buys:
            size = sum(sz for sz, _ in self.submitted_buys)
            cost = sum(sz * px for sz, px in self.submitted_buys)
            if lot is not None:
                size, cost = size + lot.size, cost + lot.cost
            self.liq_price = liquidation_price(cost / size, self.leverage, self.maintenance,
                                               self.side)
        holds = (lot is not None and not closing) or bool(self.submitted_buys)
        if not (holds and self.liq_price > 0.0):
            return
        if (self.side > 0 and float(self.data.low[0]) <= self.liq_price) or (
                self.side < 0 and float(self.data.high[0]) >= self.liq_price):
            self._liquidating = True
            self.cancel_resting_exits()

    def _position_value(self, size: float, price: float) -> float:
        """What ``size`` of the open position adds to the broker's cash to make the equity at
        ``price``: a long's margin plus its unrealised pnl; for a short (whose sale proceeds
        are in the cash: backtrader's ``shortcash``) minus its value."""
        if self.side < 0:
            return -size * price
        assert self._lot is not None
        avg = self._lot.avg_price
        return size * avg / self.leverage + size * (price - avg)

    def _liquidate(self) -> None:
        """Close the position at its liquidation price, outside the broker: the fee is the
        commission at that price, the margin is lost (:func:`liquidation_loss`)."""
        lot = self._lot
        assert lot is not None
        liq, lev = self.liq_price, self.leverage
        size = lot.size
        fee = size * float(self.p.commission) * liq
        avg = lot.avg_price
        loss = liquidation_loss(size, avg, lev, liq, fee)
        pos = self.broker.getposition(self.data)
        if self.side > 0:  # the margin comes back, less the loss
            self.broker.cash = self.broker.cash + ((abs(pos.size) * pos.price) / lev - loss)
        else:  # the short's sale proceeds go to buy it back, and the loss
            self.broker.cash = self.broker.cash - (abs(pos.size) * pos.price + loss)
        pos.set(0.0, 0.0)
        self._fills.append({"bar": self.bar, "size": -self.side * size, "price": liq,
                            "fee": fee, "reason": "liquidation"})
        forfeit = loss - size * abs(avg - liq) - fee
        self._on_sell(size, liq, fee, "liquidation", mark=False, forfeit=forfeit)

    def _submit(self, size: float, price: float, intent: _Intent) -> None:
        # ``price`` only informs backtrader's cash check; the fill is at the open +/- slippage.
        if size > 0:
            order = self.buy(size=size, exectype=bt.Order.Market, price=price)
        else:
            order = self.sell(size=-size, exectype=bt.Order.Market, price=price)
        order.addinfo(reason=intent.reason, signal_bar=intent.signal_bar)

    def notify_order(self, order: bt.Order) -> None:
        if order.status in (order.Margin, order.Rejected):
            raise RuntimeError(f"order rejected by the broker ({order.getstatusname()}); "
                               "sizing should have prevented this")
        if order.status != order.Completed:
            return  # Submitted/Accepted/Canceled (OCO siblings, replaced resting exits)
        if any(o is order for o in self._resting):
            self._resting = [o for o in self._resting if o is not order and o.alive()]
        size = float(order.executed.size)
        price = float(order.executed.price)
        fee = float(order.executed.comm)
        reason = order.info.get("reason", "")
        signal_bar = int(order.info.get("signal_bar", self.bar))
        self._fills.append(
            {"bar": self.bar, "size": size, "price": price, "fee": fee, "reason": reason}
        )
        if size * self.side > 0:  # opening (a buy for a long, a sell for a short)
            self._on_buy(abs(size), price, fee, signal_bar)
        else:
            self._on_sell(abs(size), price, fee, reason, mark=False)

    def _on_buy(self, size: float, price: float, fee: float, signal_bar: int) -> None:
        if self._lot is None:
            self._trade_seq += 1
            self._lot = _OpenLot(self._trade_seq, signal_bar, self.bar, peak_close=price)
        lot = self._lot
        lot.size += size
        lot.cost += size * price
        lot.fees += fee
        lot.tranches += 1

    def _on_sell(self, size: float, price: float, fee: float, reason: str, mark: bool,
                 forfeit: float = 0.0) -> None:
        """Close ``size`` of the lot at ``price`` (the closing side of either direction);
        ``forfeit``: what a liquidation takes beyond the price loss and its fee."""
        lot = self._lot
        if lot is None:
            return
        share = min(size / lot.size, 1.0)
        avg = lot.avg_price
        entry_fee = lot.fees * share
        funding = lot.funding * share
        # Excursions: the entry bar up to the bar before the exit, plus the exit price.
        low = min(lot.low, price)
        high = max(lot.high, price)
        if self.side > 0:
            pnl = size * (price - avg) - entry_fee - fee - funding
        else:
            pnl = size * (avg - price) - entry_fee - fee - funding
        if forfeit != 0.0:
            pnl = pnl - forfeit
        basis = size * avg / self.leverage + entry_fee
        self._rows.append(
            {
                "trade_id": lot.trade_id,
                "signal_bar": lot.signal_bar,
                "entry_bar": lot.entry_bar,
                "entry_price": avg,
                "exit_bar": self.bar,
                "exit_price": price,
                "size": size,
                "entry_fee": entry_fee,
                "exit_fee": fee,
                "funding": funding,
                "pnl": pnl,
                "return_pct": pnl / basis if basis > 0 else float("nan"),
                "bars_held": self.bar - lot.entry_bar + (1 if mark else 0),
                "exit_reason": reason,
                "tranches": lot.tranches,
                "mae": low / avg - 1.0 if self.side > 0 else 1.0 - high / avg,
                "mfe": high / avg - 1.0 if self.side > 0 else 1.0 - low / avg,
            }
        )
        if share >= 1.0 or lot.size - size < _EPS_SIZE:
            self._lot = None
            self.liq_price = 0.0
            if not mark:
                self.last_exit_bar = self.bar
        else:
            lot.size -= size
            lot.cost -= size * avg
            lot.fees -= entry_fee
            lot.funding -= funding

    # -- per-bar recording (bar close) ---------------------------------------------------
    def _record_bar(self) -> None:
        """A liquidation decided at this bar's open happens first (before any stop), then the
        bar is recorded: excursions, peak close, funding, equity."""
        if self._liquidating and self._lot is not None:
            self._liquidate()
        close = float(self.data.close[0])
        lot = self._lot
        if lot is not None:
            lot.low = min(lot.low, float(self.data.low[0]))
            lot.high = max(lot.high, float(self.data.high[0]))
            if self.side > 0:
                lot.peak_close = max(lot.peak_close, close)
            elif close < lot.peak_close:
                lot.peak_close = close
            if self.p.funding and self._has_funding:
                rate = float(self.data.funding_rate[0])
                if rate == rate:  # not NaN
                    if self.p.funding == "settlements":  # this bar's settlements, summed
                        cost = lot.size * close * rate
                    else:
                        cost = lot.size * close * rate * float(self.p.bar_hours) / 8.0
                    if self.side < 0:  # a short receives what a long pays
                        cost = -cost
                    lot.funding += cost
                    # Immediate (broker.add_cash would only apply at the next bar).
                    self.broker.cash -= cost
        cash = float(self.broker.get_cash())
        if self._plain or lot is None:
            equity = cash + self.position_size * close
        else:
            equity = cash + self._position_value(lot.size, close)
        self._eq.append((equity, cash, self.side * self.position_size))
        cb = self.p.on_progress
        if cb is not None:
            n = len(self._eq)
            step = max(self.p.total_bars // 100, 1000)
            if n % step == 0 or n == self.p.total_bars:
                cb(n, self.p.total_bars)

    def stop(self) -> None:
        if self._lot is not None:
            close = float(self.data.close[0])
            lot = self._lot
            self._on_sell(lot.size, close, 0.0, "end_of_data", mark=True)


def run_engine(
    strategy_cls: type,
    frame: pd.DataFrame,
    extra: pd.DataFrame | None = None,
    *,
    cash: float = 10_000.0,
    commission: float = 0.0,
    slippage: float = 0.0,
    funding: bool | str = False,
    strategy_params: dict[str, Any] | None = None,
    on_progress: Any = None,
    validate: bool = True,
) -> EngineResult:
    """Run one backtrader backtest of ``strategy_cls`` over ``frame`` (+ extra lines);
    ``validate=False``: the bars already passed :func:`validate_bars`."""
    hours = bar_hours(frame)
    cerebro = bt.Cerebro(
        stdstats=False, cheat_on_open=True, preload=True, runonce=True, quicknotify=False
    )
    cerebro.broker.set_coc(False)
    cerebro.broker.set_coo(True)
    cerebro.broker.set_cash(float(cash))
    cerebro.broker.set_slippage_perc(
        float(slippage), slip_open=True, slip_limit=True, slip_match=True, slip_out=True
    )
    side, leverage, _ = position_terms((strategy_params or {}).get("cfg") or {})
    if side < 0 or leverage != 1.0:
        # backtrader's submission check pseudo-fills a short's OCO exits one after the other
        # (the take-profit then opens a long) and refuses it; fills still check the cash
        cerebro.broker.set_checksubmit(False)
    # isolated margin: a long's opening fill takes size * price / leverage from the cash
    cerebro.broker.addcommissioninfo(FractionCommission(
        commission=float(commission), leverage=leverage))
    cerebro.adddata(make_feed(frame, extra, validate=validate))
    params = dict(strategy_params or {})
    params.update(commission=commission, slippage=slippage, funding=funding, bar_hours=hours,
                  periods_per_year=periods_per_year(pd.Timedelta(hours=hours)),
                  on_progress=on_progress, total_bars=len(frame))
    cerebro.addstrategy(strategy_cls, **params)
    strat = cerebro.run()[0]

    idx = frame.index
    equity = equity_frame(np.asarray(strat._eq, dtype=np.float64), idx)
    trades = trades_frame(pd.DataFrame(strat._rows), idx)
    fills = pd.DataFrame(strat._fills, columns=FILL_COLUMNS)
    return EngineResult(equity=equity, trades=trades, fills=fills, strategy=strat)
