"""The fast engine's compiled kernel: one bar loop (numba) over numpy arrays.

This module owns the arithmetic only; :mod:`flushback.strategies.fast` turns frames and
configs into the arrays below and the arrays back into an ``EngineResult``. It implements,
bar for bar and float operation for float operation, what the backtrader reference
(:mod:`flushback.strategies.adapter` + the strategy classes, on backtrader's ``BackBroker``)
does, so that trades agree exactly and equity to the last bits. Any change to trading lands
in both engines with its parity test (tests/test_fast_parity.py).

Semantics, per bar ``i`` (the reference's order of events):

1. **Open** (backtrader ``next_open`` with ``cheat_on_open``): the decisions taken at the
   previous close become market orders. Sells first: an exit sells the whole position, a
   partial sell ``held * min(f, 1)`` (the whole position when less than 1e-12 would stay).
   Then buys, sized at the fill price: ``enter(f)`` spends ``min(equity * f, cash)`` with
   equity valued at this open, ``buy_cash(f)`` spends ``cash * min(f, 1)``; the size is
   ``alloc * (1 - 1e-12) / (open * (1 + slippage) * (1 + commission))``. The cash used here
   is the broker's, plus the expected proceeds of this open's sells.
2. **Broker**: market orders fill at ``open * (1 -/+ slippage)`` (sells/buys). Resting exit
   orders (``exit_mode = "intrabar"``: one stop and/or one take-profit limit, one cancels the
   other, the stop tried first) then fill: the stop at ``open * (1 - s)`` when the bar opens
   at or below it, else at ``stop * (1 - s)`` when the low reaches it; the limit at
   ``open * (1 - s)`` when the bar opens at or above it, else at the limit price itself when
   the high reaches it. The broker's cash and average price follow backtrader's formulas
   (``cash += size * avg + size * (price - avg)`` on a sell, minus ``size * c * price``).
   Commission is ``size * commission * price`` per fill.
3. **Close** (``next``): the open position's low/high/highest close are updated, perpetual
   funding ``size * close * rate * bar_hours / 8`` is paid (received when negative), equity
   ``cash + size * close`` is recorded, then the strategy decides (see the strategy modules
   for the rules: contrarian exits stop-loss > trailing > level stop > take-profit > level
   take-profit > exit signal > time (the structure levels ``level_tp``/``level_sl`` of the
   entry signal bar, or of the previous bar when ``level_update = "moving"``; always
   close-based),
   entries with cooldown and scale-in tranches; buy-and-hold at bar 0; fear/greed buys and
   sells).
4. After the last bar an open position is marked to the last close (``end_of_data``, no fee).

Perpetuals (``CFG_SIDE``, ``CFG_LEVERAGE``, ``CFG_MAINTENANCE``; the arithmetic of
:mod:`flushback.strategies.margin`): for a short the closing side buys and the opening side
sells, the exits are mirrored. A long's opening fill takes ``size * price / leverage`` from
the cash (a closing one gives it back plus the pnl); a short's sale proceeds are cash
(backtrader's ``shortcash``). Sizing: ``alloc * (1 - 1e-12) / (price * (1/leverage +
commission))``. At each open where the position grows, its liquidation price is set from
the average price after this open's fills; if the bar's low (long) / high (short) reaches it,
the position is liquidated in the broker step after the market orders and BEFORE the resting
exits (which are cancelled): at the liquidation price, with the commission there as fee, the
margin lost. Funding is signed (a short receives what a long pays); ``CFG_FUNDING = 2`` reads
the funding line as the rates settled during each bar, charged ``size * close * rate``.
A 1x long keeps the spot arithmetic bit for bit.

Trades use average-cost bookkeeping: every sell closes a trade row with the share of the
entry fees and funding it carries; MAE/MFE are measured from the entry bar's low/high to
the bar before the exit, plus the exit price, relative to the average entry price.

Inputs: ``ohlc`` (n x 4), signal arrays of length n or 0 (absent), and ``cfg`` (float64,
laid out by the ``CFG_*`` indices). Outputs go into preallocated arrays (an empty
``cash_out``: the cash per bar is not written); the kernel returns
``(n_trades, n_fills, status)``, ``status`` 0 or ``STATUS_MARGIN`` (a buy would overdraw the
cash: the reference raises there too). Kernels are compiled with ``cache=True``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from flushback.strategies.nb_runs import (
    R_BUY_AND_HOLD,
    R_ENTRY,
    R_EOD,
    R_EXIT_SIGNAL,
    R_FEAR_BUY,
    R_GREED,
    R_LEVEL_STOP,
    R_LEVEL_TP,
    R_LIQUIDATION,
    R_SCALE_IN,
    R_STOP,
    R_TIME,
    R_TP,
    R_TRAIL,
    REASONS,
    _fires,
    _idle_run,
    _next_fire,
    _position_run,
)
from flushback.strategies.nb_stats import _track

__all__ = [
    "KIND_CONTRARIAN",
    "KIND_BUY_AND_HOLD",
    "KIND_FEAR_GREED",
    "REASONS",
    "TRADE_FIELDS",
    "CFG_SIZE",
    "CFG_CLOSES_FINITE",
    "simulate",
    "simulate_returns",
]

KIND_CONTRARIAN, KIND_BUY_AND_HOLD, KIND_FEAR_GREED = 0, 1, 2

# cfg layout
CFG_KIND, CFG_CASH, CFG_COMMISSION, CFG_SLIPPAGE, CFG_FUNDING, CFG_BAR_HOURS = 0, 1, 2, 3, 4, 5
CFG_FRACTION, CFG_VOL_SIZING, CFG_VOL_TARGET, CFG_HOLD, CFG_TP, CFG_SL = 6, 7, 8, 9, 10, 11
CFG_TRAIL, CFG_INTRABAR, CFG_EXIT_ON_SIGNAL, CFG_COOLDOWN, CFG_TRANCHES, CFG_SPACING = (
    12, 13, 14, 15, 16, 17)
CFG_BUY_BELOW, CFG_SELL_ABOVE, CFG_BUY_FRACTION, CFG_SELL_FRACTION = 18, 19, 20, 21
CFG_LEVEL_MOVING = 22
# perpetuals: side (+1 long / -1 short; 0 reads as long), leverage (0 reads as 1), the
# maintenance-margin rate; CFG_FUNDING is 0 off, 1 accrued per bar, 2 at the settlements
CFG_SIDE, CFG_LEVERAGE, CFG_MAINTENANCE = 23, 24, 25
# how the entry / exit line is read: CMP 0 (the default) a trigger that fires where the line is
# > 0; CMP 1..4 a level that fires where ``line < <= > >= THR`` (NaN never), from bar FROM on
# (the signal's warm-up before it)
CFG_ENTRY_CMP, CFG_ENTRY_THR, CFG_ENTRY_FROM = 26, 27, 28
CFG_EXIT_CMP, CFG_EXIT_THR, CFG_EXIT_FROM = 29, 30, 31
# 1: every close is a finite number (checked by the caller), so a flat bar's equity, cash +
# 0 * close, is the cash without reading the close; 0 (the default): read it
CFG_CLOSES_FINITE = 32
CFG_SIZE = 33
#: the CMP codes of the comparisons
LEVEL_COMPARISONS = {"<": 1, "<=": 2, ">": 3, ">=": 4}

#: columns of the trades array
TRADE_FIELDS = ("trade_id", "signal_bar", "entry_bar", "entry_price", "exit_bar", "exit_price",
                "size", "entry_fee", "exit_fee", "funding", "pnl", "return_pct", "bars_held",
                "exit_reason", "tranches", "mae", "mfe")
_T = {name: i for i, name in enumerate(TRADE_FIELDS)}
STATUS_MARGIN = 1

EPS_SIZE = 1e-12
CASH_SAFETY = 1.0 - 1e-12


@njit(cache=True)
def _slip_down(price, s):
    return price * (1.0 - s) if s != 0.0 else price


@njit(cache=True)
def _slip_up(price, s):
    return price * (1.0 + s) if s != 0.0 else price


@njit(cache=True)
def simulate(ohlc, entry, exit_, vol, fng, funding_rate, level_tp, level_sl, cfg, equity,
             cash_out, pos_out, trades, fills, path_out):
    """Run one backtest (see the module docstring); returns (n_trades, n_fills, status).

    ``trades`` needs ``n + 1`` rows of ``len(TRADE_FIELDS)``, ``fills`` ``2 * n + 1`` rows of
    (bar, signed size, price, fee, reason). ``path_out`` (4 values, or empty to skip) gets
    ``nb_stats.path_stats`` of the equity and position as they are written (the same values for
    a curve of positive numbers, one pass fewer)."""
    n = ohlc.shape[0]
    kind = int(cfg[CFG_KIND])
    cash = cfg[CFG_CASH]
    c = cfg[CFG_COMMISSION]
    s = cfg[CFG_SLIPPAGE]
    pay_funding = cfg[CFG_FUNDING] != 0.0 and funding_rate.shape[0] == n
    bar_hours = cfg[CFG_BAR_HOURS]
    fraction = cfg[CFG_FRACTION]
    vol_sizing = cfg[CFG_VOL_SIZING] != 0.0
    vol_target = cfg[CFG_VOL_TARGET]
    hold = int(cfg[CFG_HOLD])
    tp = cfg[CFG_TP]
    sl = cfg[CFG_SL]
    trail = cfg[CFG_TRAIL]
    intrabar = cfg[CFG_INTRABAR] != 0.0
    cooldown = int(cfg[CFG_COOLDOWN])
    k = int(cfg[CFG_TRANCHES])
    spacing = int(cfg[CFG_SPACING])
    has_entry = entry.shape[0] == n
    has_exit = exit_.shape[0] == n and cfg[CFG_EXIT_ON_SIGNAL] != 0.0
    has_vol = vol.shape[0] == n
    has_fng = fng.shape[0] == n
    has_ltp = level_tp.shape[0] == n
    has_lsl = level_sl.shape[0] == n
    level_moving = cfg[CFG_LEVEL_MOVING] != 0.0
    side = -1 if cfg[CFG_SIDE] < 0.0 else 1
    lev = cfg[CFG_LEVERAGE] if cfg[CFG_LEVERAGE] > 0.0 else 1.0
    mm = cfg[CFG_MAINTENANCE]
    # a 1x long keeps the spot arithmetic (equity = cash + size * price) bit for bit
    plain = side == 1 and lev == 1.0
    settle_funding = cfg[CFG_FUNDING] == 2.0
    # the liquidation price of the open (or opening) position; 0 = none
    liq_px = 0.0
    # the structure levels of the entry signal bar (level_update = "fixed")
    entry_ltp = math.nan
    entry_lsl = math.nan

    # backtrader's position (size, average price)
    bt_size = 0.0
    bt_price = 0.0
    # the strategy's open lot
    in_lot = False
    lot_id = 0
    lot_signal = 0
    lot_entry = 0
    lot_size = 0.0
    lot_cost = 0.0
    lot_fees = 0.0
    lot_funding = 0.0
    lot_tranches = 0
    lot_low = math.inf
    lot_high = -math.inf
    lot_peak = -math.inf
    trade_seq = 0
    last_exit = -1
    has_last_exit = False
    last_tranche = -(10**9)
    # decisions waiting for the next open: 0 none; sells 1 exit / 2 fraction; buys 1 enter /
    # 2 cash fraction
    sell_kind = 0
    sell_val = 0.0
    sell_reason = 0
    buy_kind = 0
    buy_val = 0.0
    buy_reason = 0
    buy_signal = 0
    # resting exit orders (intrabar mode)
    st_on = False
    st_px = 0.0
    st_size = 0.0
    st_reason = R_STOP
    lm_on = False
    lm_px = 0.0
    lm_size = 0.0
    nt = 0
    nf = 0

    contrarian = kind == KIND_CONTRARIAN
    e_cmp = int(cfg[CFG_ENTRY_CMP])
    e_thr = cfg[CFG_ENTRY_THR]
    e_from = int(cfg[CFG_ENTRY_FROM])
    x_cmp = int(cfg[CFG_EXIT_CMP])
    x_thr = cfg[CFG_EXIT_THR]
    x_from = int(cfg[CFG_EXIT_FROM])
    keep_cash = cash_out.shape[0] == n  # an empty cash_out: the cash per bar is not kept
    finite_closes = cfg.shape[0] > CFG_CLOSES_FINITE and cfg[CFG_CLOSES_FINITE] != 0.0
    # positions whose held bars :func:`_position_run` steps through
    simple_hold = (contrarian and plain and not intrabar and not pay_funding and not has_ltp
                   and not has_lsl)
    track = path_out.shape[0] >= 4
    t_peak = -math.inf
    t_worst = math.inf
    t_run = 0
    t_longest = 0
    t_held = 0
    t_bad = 0
    i = -1
    while True:  # over the bars; a run of idle bars is one step
        i += 1
        if i >= n:
            break
        # a contrarian strategy is flat most of the time: a flat bar with nothing pending, no
        # resting order and no entry signal only records the cash (the same values the full
        # step below writes for it). Nothing changes until the entry fires, so the whole run
        # of such bars [i, idle_to) is written at once.
        if (contrarian and not in_lot and sell_kind == 0 and buy_kind == 0 and not st_on
                and not lm_on and not (has_entry and _fires(entry, i, e_cmp, e_thr, e_from))):
            idle_to = _next_fire(entry, i + 1, e_cmp, e_thr, e_from) if has_entry else n
            t_peak, t_worst, t_run, t_longest, t_held, t_bad = _idle_run(
                ohlc, cash, side, i, idle_to, equity, cash_out, keep_cash, pos_out, track,
                t_peak, t_worst, t_run, t_longest, t_held, t_bad, finite_closes)
            i = idle_to - 1
            continue
        # a plain long held with nothing pending, exits judged at the close and no tranche
        # left to add: the bars until an exit is decided are a run of the same step
        if (simple_hold and in_lot and sell_kind == 0 and buy_kind == 0 and not st_on
                and not lm_on and lot_tranches >= k):
            (i, lot_low, lot_high, lot_peak, reason, t_peak, t_worst, t_run, t_longest,
             t_held, t_bad) = _position_run(
                ohlc, exit_, i, cash, lot_size, lot_cost, lot_entry, lot_low, lot_high,
                lot_peak, sl, trail, tp, has_exit, x_cmp, x_thr, x_from, hold, equity,
                cash_out, keep_cash, pos_out, track, t_peak, t_worst, t_run, t_longest,
                t_held, t_bad)
            if reason >= 0:  # decided at bar i's close: sold at the next open
                sell_kind = 1
                sell_reason = reason
            continue
        o = ohlc[i, 0]
        h = ohlc[i, 1]
        lo = ohlc[i, 2]
        cl = ohlc[i, 3]

        # ---- 1. open: decisions become market orders -----------------------------------
        # "sell" is the closing side (a buy to cover for a short), "buy" the opening side
        ms_size = 0.0
        ms_reason = 0
        mb_size = 0.0
        mb_reason = 0
        mb_signal = 0
        if (sell_kind != 0 or buy_kind != 0) and o > 0:
            buy_px = o * (1.0 + s)
            sell_px = o * (1.0 - s)
            open_px = buy_px if side > 0 else sell_px
            close_px = sell_px if side > 0 else buy_px
            est_cash = cash
            held = lot_size if in_lot else 0.0
            if sell_kind != 0 and held > EPS_SIZE:
                sz = held if sell_kind == 1 else held * min(sell_val, 1.0)
                if held - sz < EPS_SIZE:
                    sz = held
                ms_size = sz
                ms_reason = sell_reason
                held -= sz
                if plain:
                    est_cash += sz * sell_px * (1.0 - c)
                else:
                    est_cash += _pos_value(sz, lot_cost / lot_size, close_px, lev, side) \
                        - sz * c * close_px
            if buy_kind != 0:
                if buy_kind == 1:
                    if plain:
                        eq_open = est_cash + held * o
                    elif held > 0.0:
                        eq_open = est_cash + _pos_value(held, lot_cost / lot_size, o, lev,
                                                        side)
                    else:
                        eq_open = est_cash
                    alloc = eq_open * buy_val
                    if est_cash < alloc:
                        alloc = est_cash
                else:
                    alloc = est_cash * min(buy_val, 1.0)
                sz = alloc * CASH_SAFETY / (open_px * (1.0 / lev + c))
                if sz > EPS_SIZE:
                    mb_size = sz
                    mb_reason = buy_reason
                    mb_signal = buy_signal
            if mb_size > 0.0 and kind == KIND_CONTRARIAN:
                # the position after this open's buy: its resting exits are re-placed so that
                # they guard the entry bar too, and its liquidation price is set
                r_size = mb_size
                r_cost = mb_size * open_px
                r_peak = open_px
                if in_lot:
                    r_size = r_size + lot_size
                    r_cost = r_cost + lot_cost
                    if side * lot_peak > side * r_peak:
                        r_peak = lot_peak
                r_avg = r_cost / r_size
                if not plain:
                    liq_px = _liq_price(r_avg, lev, mm, side)
                if intrabar:
                    st_on, st_px, st_reason, lm_on, lm_px = _resting(
                        r_avg, r_peak, sl, trail, tp, st_on, st_px, st_reason, lm_on, lm_px,
                        side)
                    st_size = r_size
                    lm_size = r_size
        sell_kind = 0
        buy_kind = 0
        # a liquidation on this bar (the position after this open's orders) comes first:
        # no resting exit is tried
        liquidate = False
        if liq_px > 0.0 and ((in_lot and ms_size == 0.0) or mb_size > 0.0):
            if (side > 0 and lo <= liq_px) or (side < 0 and h >= liq_px):
                liquidate = True
                st_on = False
                lm_on = False

        # ---- 2. broker: market orders, a liquidation, then resting exits ----------------
        # (a bar without a market order, a liquidation or a resting exit fills nothing)
        busy = ms_size > 0.0 or mb_size > 0.0 or liquidate or st_on or lm_on
        for leg in range(5 if busy else 0):
            x = 0.0
            p = 0.0
            reason = 0
            if leg == 0 and ms_size > 0.0:
                x = -side * ms_size
                p = _slip_down(o, s) if side > 0 else _slip_up(o, s)
                reason = ms_reason
            elif leg == 1 and mb_size > 0.0:
                x = side * mb_size
                p = _slip_up(o, s) if side > 0 else _slip_down(o, s)
                reason = mb_reason
            elif leg == 2 and liquidate and in_lot:
                # filled at the liquidation price with its fee; the margin is lost
                y = lot_size
                fee = y * c * liq_px
                avg = lot_cost / lot_size
                loss = _liq_loss(y, avg, lev, liq_px, fee)
                if side > 0:  # the margin comes back, less the loss
                    cash = cash + ((abs(bt_size) * bt_price) / lev - loss)
                else:  # the short's sale proceeds go to buy it back, and the loss
                    cash = cash - (abs(bt_size) * bt_price + loss)
                bt_size = 0.0
                bt_price = 0.0
                fills[nf, 0] = i
                fills[nf, 1] = -side * y
                fills[nf, 2] = liq_px
                fills[nf, 3] = fee
                fills[nf, 4] = R_LIQUIDATION
                nf += 1
                forfeit = loss - y * abs(avg - liq_px) - fee
                nt, closed = _close_trade(trades, nt, i, y, liq_px, fee, R_LIQUIDATION, False,
                                          lot_id, lot_signal, lot_entry, lot_size, lot_cost,
                                          lot_fees, lot_funding, lot_tranches, lot_low,
                                          lot_high, side, lev, forfeit)
                in_lot = False
                last_exit = i
                has_last_exit = True
                liq_px = 0.0
                continue
            elif leg == 3 and st_on:
                if side > 0:
                    if o <= st_px:
                        p = _slip_down(o, s)
                    elif lo <= st_px:
                        p = _slip_down(st_px, s)
                else:
                    if o >= st_px:
                        p = _slip_up(o, s)
                    elif h >= st_px:
                        p = _slip_up(st_px, s)
                if p > 0.0:
                    x = -side * st_size
                    reason = st_reason
                    st_on = False
                    lm_on = False  # one cancels the other
            elif leg == 4 and lm_on:
                if side > 0:
                    if lm_px <= o:
                        p = _slip_down(o, s)
                    elif lm_px <= h:
                        p = lm_px
                else:
                    if lm_px >= o:
                        p = _slip_up(o, s)
                    elif lm_px >= lo:
                        p = lm_px
                if p > 0.0:
                    x = -side * lm_size
                    reason = R_TP
                    lm_on = False
                    st_on = False
            if x == 0.0:
                continue
            ax = abs(x)
            if x * side > 0.0:  # opening: backtrader's cash and average price, then the lot
                old = bt_size
                bt_size = bt_size + x
                if old == 0.0:
                    bt_price = p
                else:
                    bt_price = (bt_price * old + x * p) / bt_size
                if side > 0:
                    cash = cash - (ax * p) / lev
                else:  # shortcash: a short sale's proceeds are cash
                    cash = cash - x * p
                fee = ax * c * p
                cash = cash - fee
                if cash < 0.0:
                    return nt, nf, STATUS_MARGIN
                xp = (x * p) / x
                if not in_lot:
                    trade_seq += 1
                    in_lot = True
                    lot_id = trade_seq
                    lot_signal = mb_signal
                    lot_entry = i
                    lot_size = 0.0
                    lot_cost = 0.0
                    lot_fees = 0.0
                    lot_funding = 0.0
                    lot_tranches = 0
                    lot_low = math.inf
                    lot_high = -math.inf
                    lot_peak = xp
                lot_size += ax
                lot_cost += ax * xp
                lot_fees += fee
                lot_tranches += 1
                fills[nf, 0] = i
                fills[nf, 1] = x
                fills[nf, 2] = xp
                fills[nf, 3] = 0.0 + fee
                fills[nf, 4] = reason
                nf += 1
            else:
                y = ax
                pnl_bt = -x * (p - bt_price)
                if side > 0:
                    cash = cash + ((y * bt_price) / lev + pnl_bt)
                else:
                    cash = cash + (-y * bt_price + pnl_bt)
                fee = y * c * p
                cash = cash - fee
                bt_size = bt_size + x
                if bt_size == 0.0:
                    bt_price = 0.0
                xp = (x * p) / x
                fills[nf, 0] = i
                fills[nf, 1] = x
                fills[nf, 2] = xp
                fills[nf, 3] = fee + 0.0
                fills[nf, 4] = reason
                nf += 1
                if in_lot:
                    nt, closed = _close_trade(trades, nt, i, y, xp, fee + 0.0, reason, False,
                                              lot_id, lot_signal, lot_entry, lot_size,
                                              lot_cost, lot_fees, lot_funding, lot_tranches,
                                              lot_low, lot_high, side, lev, 0.0)
                    if closed:
                        in_lot = False
                        last_exit = i
                        has_last_exit = True
                        liq_px = 0.0
                    else:
                        share = y / lot_size
                        avg = lot_cost / lot_size
                        lot_fees_part = lot_fees * share
                        lot_fund_part = lot_funding * share
                        lot_size -= y
                        lot_cost -= y * avg
                        lot_fees -= lot_fees_part
                        lot_funding -= lot_fund_part

        # ---- 3. close: record, then decide ------------------------------------------------
        if in_lot:
            if lo < lot_low:
                lot_low = lo
            if h > lot_high:
                lot_high = h
            if side * cl > side * lot_peak:  # the best close: highest long, lowest short
                lot_peak = cl
            if pay_funding:
                rate = funding_rate[i]
                if rate == rate:
                    if settle_funding:  # the settlements of this bar, summed
                        fcost = lot_size * cl * rate
                    else:
                        fcost = lot_size * cl * rate * bar_hours / 8.0
                    if side < 0:  # a short receives what a long pays
                        fcost = -fcost
                    lot_funding += fcost
                    cash = cash - fcost
        pos = lot_size if in_lot else 0.0
        if plain or not in_lot:
            equity[i] = cash + pos * cl
        else:
            equity[i] = cash + _pos_value(lot_size, lot_cost / lot_size, cl, lev, side)
        if keep_cash:
            cash_out[i] = cash
        pos_out[i] = side * pos
        if track:
            t_peak, t_worst, t_run, t_longest, t_held, t_bad = _track(
                equity[i], pos_out[i], t_peak, t_worst, t_run, t_longest, t_held, t_bad)

        if kind == KIND_CONTRARIAN:
            if in_lot:
                avg = lot_cost / lot_size
                reason = -1
                # the structure levels in force: the entry signal bar's, or the previous
                # bar's (moving); NaN never exits
                if level_moving:
                    ltp = level_tp[i - 1] if has_ltp and i >= 1 else math.nan
                    lsl = level_sl[i - 1] if has_lsl and i >= 1 else math.nan
                else:
                    ltp = entry_ltp
                    lsl = entry_lsl
                if side < 0:  # the mirrored exits of a short (no level exits)
                    if not intrabar and sl != 0.0 and cl >= avg * (1.0 + sl):
                        reason = R_STOP
                    elif not intrabar and trail != 0.0 and cl >= lot_peak * (1.0 + trail):
                        reason = R_TRAIL
                    elif not intrabar and tp != 0.0 and cl <= avg * (1.0 - tp):
                        reason = R_TP
                elif not intrabar and sl != 0.0 and cl <= avg * (1.0 - sl):
                    reason = R_STOP
                elif not intrabar and trail != 0.0 and cl <= lot_peak * (1.0 - trail):
                    reason = R_TRAIL
                elif cl <= lsl:  # level exits stay close-based in both exit modes
                    reason = R_LEVEL_STOP
                elif not intrabar and tp != 0.0 and cl >= avg * (1.0 + tp):
                    reason = R_TP
                elif cl >= ltp and ltp > avg:  # a target at or below the entry is none
                    reason = R_LEVEL_TP
                if reason < 0 and has_exit and _fires(exit_, i, x_cmp, x_thr, x_from):
                    reason = R_EXIT_SIGNAL
                elif reason < 0 and hold != 0 and i - lot_entry + 1 >= hold:
                    reason = R_TIME
                if reason >= 0:
                    st_on = False
                    lm_on = False
                    sell_kind = 1
                    sell_reason = reason
                    continue
                if intrabar:
                    st_on, st_px, st_reason, lm_on, lm_px = _resting(
                        avg, lot_peak, sl, trail, tp, st_on, st_px, st_reason, lm_on, lm_px,
                        side)
                    st_size = lot_size
                    lm_size = lot_size
            if not has_entry or not _fires(entry, i, e_cmp, e_thr, e_from):
                continue
            if not in_lot:
                if has_last_exit and i - last_exit < cooldown:
                    continue
                scale = False
            elif lot_tranches < k and i - last_tranche >= spacing:
                scale = True
            else:
                continue
            frac = fraction
            if vol_sizing:
                v = vol[i] if has_vol else math.nan
                if not (v > 0):
                    frac = 0.0
                else:
                    vf = vol_target / v
                    if vf < frac:
                        frac = vf
            frac = frac / k
            if frac > 0:
                buy_kind = 1
                buy_val = frac
                buy_reason = R_SCALE_IN if scale else R_ENTRY
                buy_signal = i
                last_tranche = i
                if not scale:
                    entry_ltp = level_tp[i] if has_ltp else math.nan
                    entry_lsl = level_sl[i] if has_lsl else math.nan
        elif kind == KIND_BUY_AND_HOLD:
            if i == 0 and fraction > 0:
                buy_kind = 1
                buy_val = fraction
                buy_reason = R_BUY_AND_HOLD
                buy_signal = i
        else:
            g = fng[i] if has_fng else math.nan
            if g != g:
                continue
            if g <= cfg[CFG_BUY_BELOW]:
                if cfg[CFG_BUY_FRACTION] > 0:
                    buy_kind = 2
                    buy_val = cfg[CFG_BUY_FRACTION]
                    buy_reason = R_FEAR_BUY
                    buy_signal = i
            elif g >= cfg[CFG_SELL_ABOVE] and in_lot:
                if cfg[CFG_SELL_FRACTION] > 0:
                    sell_kind = 2
                    sell_val = cfg[CFG_SELL_FRACTION]
                    sell_reason = R_GREED

    if track:
        path_out[0] = t_worst
        path_out[1] = t_longest
        path_out[2] = t_held
        path_out[3] = t_bad
    if in_lot and n > 0:
        nt, _ = _close_trade(trades, nt, n - 1, lot_size, ohlc[n - 1, 3], 0.0, R_EOD, True,
                             lot_id, lot_signal, lot_entry, lot_size, lot_cost, lot_fees,
                             lot_funding, lot_tranches, lot_low, lot_high, side, lev, 0.0)
    return nt, nf, 0


@njit(cache=True)
def _resting(avg, peak, sl, trail, tp, st_on, st_px, st_reason, lm_on, lm_px, side):
    """The resting exits for a position: (stop on, stop price, stop reason, limit on, limit
    price); a short's mirrored (stop above, take-profit below, trailing the lowest close).
    Unchanged when no exit level is configured (the reference leaves them alone)."""
    have_stop = False
    stop = 0.0
    reason = R_STOP
    if sl != 0.0:
        stop = avg * (1.0 - sl) if side > 0 else avg * (1.0 + sl)
        have_stop = True
    if trail != 0.0:
        t = peak * (1.0 - trail) if side > 0 else peak * (1.0 + trail)
        if not have_stop or side * t > side * stop:
            stop = t
            reason = R_TRAIL
            have_stop = True
    have_limit = tp != 0.0
    limit = (avg * (1.0 + tp) if side > 0 else avg * (1.0 - tp)) if have_limit else 0.0
    if not have_stop and not have_limit:
        return st_on, st_px, st_reason, lm_on, lm_px
    return have_stop and stop > 0, stop, reason, have_limit and limit > 0, limit


@njit(cache=True)
def _pos_value(size, avg, price, lev, side):
    """What a position adds to the broker's cash to make the equity at ``price``: a long's
    margin plus its unrealised pnl; for a short (whose sale proceeds are in the cash, as
    backtrader's ``shortcash`` books them) minus its value."""
    if side < 0:
        return -size * price
    return size * avg / lev + size * (price - avg)


@njit(cache=True)
def _liq_price(avg, lev, mm, side):
    """The isolated liquidation price (flushback.strategies.margin.liquidation_price)."""
    if side > 0:
        return avg * (1.0 - 1.0 / lev) / (1.0 - mm)
    return avg * (1.0 + 1.0 / lev) / (1.0 + mm)


@njit(cache=True)
def _liq_loss(size, avg, lev, liq, fee):
    """The margin lost (flushback.strategies.margin.liquidation_loss)."""
    margin = size * avg / lev
    price_loss = size * abs(avg - liq)
    return max(margin, price_loss + fee)


@njit(cache=True)
def _close_trade(trades, nt, bar, size, price, fee, reason, mark, lot_id, lot_signal, lot_entry,
                 lot_size, lot_cost, lot_fees, lot_funding, lot_tranches, lot_low, lot_high,
                 side, lev, forfeit):
    """Write the trade row of closing ``size`` of the lot at ``price`` (``forfeit``: what a
    liquidation takes beyond the price loss and its fee); returns (rows, whether the lot is
    closed)."""
    share = size / lot_size
    if share > 1.0:
        share = 1.0
    avg = lot_cost / lot_size
    entry_fee = lot_fees * share
    funding = lot_funding * share
    low = price if price < lot_low else lot_low
    high = price if price > lot_high else lot_high
    if side > 0:
        pnl = size * (price - avg) - entry_fee - fee - funding
    else:
        pnl = size * (avg - price) - entry_fee - fee - funding
    if forfeit != 0.0:
        pnl = pnl - forfeit
    basis = size * avg / lev + entry_fee
    row = trades[nt]
    row[0] = lot_id
    row[1] = lot_signal
    row[2] = lot_entry
    row[3] = avg
    row[4] = bar
    row[5] = price
    row[6] = size
    row[7] = entry_fee
    row[8] = fee
    row[9] = funding
    row[10] = pnl
    row[11] = pnl / basis if basis > 0 else math.nan
    row[12] = bar - lot_entry + (1 if mark else 0)
    row[13] = reason
    row[14] = lot_tranches
    if side > 0:
        row[15] = low / avg - 1.0
        row[16] = high / avg - 1.0
    else:  # a short's adverse excursion is the high
        row[15] = 1.0 - high / avg
        row[16] = 1.0 - low / avg
    closed = share >= 1.0 or lot_size - size < EPS_SIZE
    return nt + 1, closed


@njit(cache=True)
def simulate_returns(ohlc, entry, exit_, vol, fng, funding_rate, level_tp, level_sl, cfgs,
                     equity_out, ntrades_out, status_out):
    """Run every row of ``cfgs`` (one parameter set each) over the same bars and signals;
    writes each run's equity curve into ``equity_out[j]`` and its trade count (the
    end-of-data mark included) into ``ntrades_out[j]``. One compiled call for a batch."""
    n = ohlc.shape[0]
    cash_tmp = np.empty(n)
    pos_tmp = np.empty(n)
    trades = np.empty((n + 1, len(TRADE_FIELDS)))
    fills = np.empty((2 * n + 1, 5))
    finite = 1.0  # CFG_CLOSES_FINITE, checked once for the batch
    for i in range(n):
        if not np.isfinite(ohlc[i, 3]):
            finite = 0.0
            break
    cfg = np.zeros(CFG_SIZE)
    for j in range(cfgs.shape[0]):
        cfg[:cfgs.shape[1]] = cfgs[j]
        cfg[CFG_CLOSES_FINITE] = finite
        nt, _, status = simulate(ohlc, entry, exit_, vol, fng, funding_rate, level_tp,
                                 level_sl, cfg, equity_out[j], cash_tmp, pos_tmp, trades,
                                 fills, np.empty(0))
        ntrades_out[j] = nt
        status_out[j] = status
