"""The portfolio rules of ``flushback.strategies.portfolio`` in backtrader: the reference.

One data feed per asset on the basket's common index (an asset without a bar at t has a NaN
bar there, and nothing is ordered on it); the portfolio's entry/exit triggers ride on the
first feed, each asset's ranking RSI and realised volatility on its own feed as extra lines.
Orders are sized in ``next_open`` (cheat-on-open, as the single-asset adapter does) and fill
at that open with backtrader's slippage and commission. The ranking and the exit checks are
written here again, from the feeds' lines, so that the parity test compares two
implementations of the rules, not one.
"""

from __future__ import annotations

import math
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from flushback.strategies.adapter import FractionCommission, make_feed
from flushback.strategies.portfolio import (
    PortfolioConfig,
    PortfolioInputs,
    PortfolioResult,
    rebalance_due,
    reduce_position,
    result_frames,
    trade_row,
)

__all__ = ["run_portfolio_backtrader"]

_EPS_SIZE = 1e-12
_CASH_SAFETY = 1.0 - 1e-12


class _Held:
    """An open position as the reference sees it (average-cost, as ``trade_row`` reads it)."""

    def __init__(self, trade_id: int, asset: int, signal_bar: int, entry_bar: int, size: float,
                 price: float, fee: float, weight: float) -> None:
        self.trade_id, self.asset, self.signal_bar = trade_id, asset, signal_bar
        self.entry_bar, self.size, self.cost, self.fees = entry_bar, size, size * price, fee
        self.weight = weight
        self.low, self.high = math.inf, -math.inf

    @property
    def avg(self) -> float:
        return self.cost / self.size


class PortfolioStrategy(bt.Strategy):
    params = (("cfg", None), ("inputs", None), ("commission", 0.0), ("slippage", 0.0))

    def __init__(self) -> None:
        self.held: dict[int, _Held] = {}
        self.exits: dict[int, tuple[str, int]] = {}
        self.entries: list[tuple[int, float, int]] = []
        self.rebalance = False
        self.rows: list[dict[str, Any]] = []
        self.eq: list[tuple[float, float, int, float]] = []
        self.last_close = [math.nan] * len(self.datas)
        self.seq = 0

    @property
    def bar(self) -> int:
        return len(self) - 1

    @staticmethod
    def _price(x: float) -> bool:
        return not math.isnan(x) and x > 0

    def next_open(self) -> None:
        c, s = float(self.p.commission), float(self.p.slippage)
        cash = float(self.broker.get_cash())
        leaving = set()
        for i in sorted(self.exits):
            d = self.datas[i]
            o = float(d.open[0])
            if i not in self.held or not self._price(o):
                continue
            size = self.held[i].size
            order = self.sell(data=d, size=size, exectype=bt.Order.Market, price=o * (1 - s))
            order.addinfo(reason=self.exits[i][0], asset=i)
            cash += size * (o * (1.0 - s)) * (1.0 - c)
            leaving.add(i)
        if not (self.entries or self.rebalance):
            return
        value = cash
        for j, h in sorted(self.held.items()):
            if j in leaving:
                continue
            o = float(self.datas[j].open[0])
            value += h.size * (o if self._price(o) else self.last_close[j])
        if self.rebalance:
            cash = self._rebalance(value, cash, leaving)
            self.rebalance = False
        for i, w, sig in self.entries:
            d = self.datas[i]
            o = float(d.open[0])
            if i in self.held or not self._price(o):
                continue
            px = o * (1.0 + s)
            size = min(value * w, cash) * _CASH_SAFETY / (px * (1.0 + c))
            if size <= _EPS_SIZE:
                continue
            order = self.buy(data=d, size=size, exectype=bt.Order.Market, price=px)
            order.addinfo(asset=i, weight=w, signal_bar=sig)
            cash -= size * px * (1.0 + c)
        self.entries = []

    def _rebalance(self, value: float, cash: float, leaving: set[int]) -> float:
        """Orders bringing each held position back to its weight of ``value``: the sales,
        then the purchases; returns the cash estimate after them."""
        cfg: PortfolioConfig = self.p.cfg
        c, s = float(self.p.commission), float(self.p.slippage)
        shortfalls = []
        for i, h in sorted(self.held.items()):
            d = self.datas[i]
            o = float(d.open[0])
            if i in leaving or not self._price(o):
                continue
            gap = h.weight * value - h.size * o
            if abs(gap) <= cfg.rebalance_band * value:
                continue
            if gap > 0:
                shortfalls.append((i, gap, o))
                continue
            y = min(-gap / o, h.size)
            order = self.sell(data=d, size=y, exectype=bt.Order.Market, price=o * (1 - s))
            order.addinfo(reason="rebalance", asset=i)
            cash += y * (o * (1.0 - s)) * (1.0 - c)
        for i, gap, o in shortfalls:
            px = o * (1.0 + s)
            size = min(gap, cash) * _CASH_SAFETY / (px * (1.0 + c))
            if size <= _EPS_SIZE:
                continue
            h = self.held[i]
            order = self.buy(data=self.datas[i], size=size, exectype=bt.Order.Market, price=px)
            order.addinfo(asset=i, weight=h.weight, signal_bar=h.signal_bar)
            cash -= size * px * (1.0 + c)
        return cash

    def notify_order(self, order: bt.Order) -> None:
        if order.status in (order.Margin, order.Rejected):
            raise RuntimeError(f"portfolio order rejected ({order.getstatusname()})")
        if order.status != order.Completed:
            return
        i = int(order.info["asset"])
        size, price = float(order.executed.size), float(order.executed.price)
        fee = float(order.executed.comm)
        if size > 0:
            h = self.held.get(i)
            if h is None:
                self.seq += 1
                self.held[i] = _Held(self.seq, i, int(order.info["signal_bar"]), self.bar,
                                     size, price, fee, float(order.info["weight"]))
            else:  # a rebalancing purchase: average-cost
                h.size += size
                h.cost += size * price
                h.fees += fee
            return
        h = self.held[i]
        row = trade_row(self.p.inputs, h, self.bar, price, fee, order.info["reason"],
                        mark=False, size=-size)
        self.rows.append(row)
        if reduce_position(h, -size, row["entry_fee"]):
            del self.held[i]
            self.exits.pop(i, None)

    def next(self) -> None:
        cfg: PortfolioConfig = self.p.cfg
        for i, d in enumerate(self.datas):
            cl = float(d.close[0])
            if not math.isnan(cl):
                self.last_close[i] = cl
                h = self.held.get(i)
                if h is not None:
                    h.low = min(h.low, float(d.low[0]))
                    h.high = max(h.high, float(d.high[0]))
        cash = float(self.broker.get_cash())
        invested = 0.0
        for i, h in sorted(self.held.items()):
            invested += h.size * self.last_close[i]
        total = cash + invested
        self.eq.append((total, cash, len(self.held), invested / total if total > 0 else 0.0))
        if len(self) == self.datas[0].buflen():
            return
        exit_now = bool(self.datas[0].pf_exit[0])
        for i in sorted(self.held):
            if i in self.exits:
                continue
            h = self.held[i]
            cl = float(self.datas[i].close[0])
            why = None
            if math.isnan(cl):
                why = "exit_signal" if exit_now else None
            elif cfg.stop_loss > 0 and cl <= h.avg * (1.0 - cfg.stop_loss):
                why = "stop_loss"
            elif cfg.take_profit > 0 and cl >= h.avg * (1.0 + cfg.take_profit):
                why = "take_profit"
            elif cfg.hold_bars > 0 and self.bar - h.entry_bar + 1 >= cfg.hold_bars:
                why = "time"
            elif exit_now:
                why = "exit_signal"
            if why is not None:
                self.exits[i] = (why, self.bar)
        self.rebalance = rebalance_due(cfg, self.bar, self.datas[0].buflen()) and bool(
            self.held)
        if bool(self.datas[0].pf_entry[0]):
            self.entries = self._choose()

    def _choose(self) -> list[tuple[int, float, int]]:
        cfg: PortfolioConfig = self.p.cfg
        free = cfg.max_positions - len(self.held)
        if free <= 0:
            return []
        by_rsi = cfg.rank_by == "rsi"
        ranked = []
        for i, d in enumerate(self.datas):
            rsi, vol, cl = float(d.pf_rsi[0]), float(d.pf_vol[0]), float(d.close[0])
            if i in self.held or math.isnan(cl):
                continue
            if (by_rsi or cfg.allocation == "signal") and math.isnan(rsi):
                continue
            if cfg.allocation == "inverse_vol" and not (vol > 0):
                continue
            ranked.append((rsi if by_rsi else 0.0, i, vol, rsi))
        ranked.sort(key=lambda r: (r[0], r[1]))
        picked = ranked[:free]
        if not picked:
            return []
        part = cfg.fraction * len(picked) / cfg.max_positions
        if cfg.allocation == "equal":
            weights = [cfg.fraction / cfg.max_positions] * len(picked)
        else:
            score = [1.0 / v if cfg.allocation == "inverse_vol" else max(100.0 - r, 0.0)
                     for _, _, v, r in picked]
            tot = math.fsum(score)
            weights = ([part * x / tot for x in score] if tot > 0
                       else [part / len(picked)] * len(picked))
        return [(i, w, self.bar) for (_, i, _, _), w in zip(picked, weights, strict=True)]

    def stop(self) -> None:
        for i in sorted(self.held, key=lambda k: self.held[k].trade_id):
            h = self.held[i]
            self.rows.append(trade_row(self.p.inputs, h, self.bar, float(self.last_close[i]),
                                       0.0, "end_of_data", mark=True))


def run_portfolio_backtrader(inputs: PortfolioInputs, cfg: PortfolioConfig, *, cash: float,
                             commission: float = 0.0, slippage: float = 0.0) -> PortfolioResult:
    """The portfolio rules in backtrader (several data feeds, shared cash)."""
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True, preload=True, runonce=True,
                         quicknotify=False)
    cerebro.broker.set_coc(False)
    cerebro.broker.set_coo(True)
    cerebro.broker.set_cash(float(cash))
    cerebro.broker.set_slippage_perc(float(slippage), slip_open=True, slip_limit=True,
                                     slip_match=True, slip_out=True)
    cerebro.broker.addcommissioninfo(FractionCommission(commission=float(commission)))
    idx = inputs.index
    for i, sym in enumerate(inputs.symbols):
        bars = pd.DataFrame({"open": inputs.open[:, i], "high": inputs.high[:, i],
                             "low": inputs.low[:, i], "close": inputs.close[:, i],
                             "volume": np.zeros(len(idx))}, index=idx)
        extra = pd.DataFrame({"pf_rsi": inputs.rsi[:, i], "pf_vol": inputs.vol[:, i],
                              "pf_entry": inputs.entry.astype("float64"),
                              "pf_exit": inputs.exit.astype("float64")}, index=idx)
        cerebro.adddata(make_feed(bars, extra, validate=False), name=sym)
    cerebro.addstrategy(PortfolioStrategy, cfg=cfg, inputs=inputs, commission=commission,
                        slippage=slippage)
    strat = cerebro.run()[0]
    rows = sorted(strat.rows, key=lambda r: (r["trade_id"], r["exit_bar"]))
    return result_frames(inputs, rows, strat.eq)
