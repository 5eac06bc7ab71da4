"""The kernel's runs of bars stepped as one (:mod:`flushback.strategies.nb`): a run of idle
flat bars (:func:`_idle_run`, its end found by :func:`_next_fire`) and a run of held bars of a
plain long (:func:`_position_run`), each the per-bar step of ``nb.simulate`` written as one
tight loop and inlined into the kernel; how an entry / exit line fires (:func:`_fires`); and
the reason codes fills and trades are booked with (a run decides exits), which ``nb``
re-exports."""

from __future__ import annotations

from numba import njit

from flushback.strategies.nb_stats import _track

#: reason codes (index into this tuple) for fills and trade exits
REASONS = ("entry", "scale_in", "buy_and_hold", "fear_buy", "stop_loss", "trailing_stop",
           "take_profit", "exit_signal", "time", "end_of_data", "greed_sell", "level_stop",
           "level_take_profit", "liquidation")
R_ENTRY, R_SCALE_IN, R_BUY_AND_HOLD, R_FEAR_BUY = 0, 1, 2, 3
R_STOP, R_TRAIL, R_TP, R_EXIT_SIGNAL, R_TIME, R_EOD, R_GREED = 4, 5, 6, 7, 8, 9, 10
R_LEVEL_STOP, R_LEVEL_TP, R_LIQUIDATION = 11, 12, 13


@njit(cache=True)
def _fires(line, i, cmp, thr, start):
    """Whether an entry / exit line fires at bar ``i`` (see ``nb.CFG_ENTRY_CMP``)."""
    if cmp == 0:
        return line[i] > 0
    if i < start:
        return False
    v = line[i]
    if cmp == 1:
        return v < thr
    if cmp == 2:
        return v <= thr
    if cmp == 3:
        return v > thr
    return v >= thr


@njit(cache=True, inline="always")
def _next_fire(line, i, cmp, thr, start):
    """The first bar from ``i`` (at most the line's length) on where ``line`` fires
    (``_fires``), or the line's length: one loop per comparison, so that the scan is a
    tight loop over the line."""
    n = line.shape[0]
    if cmp != 0 and i < start:
        i = min(start, n)
    if cmp == 0:
        while i < n and not line[i] > 0:
            i += 1
    elif cmp == 1:
        while i < n and not line[i] < thr:
            i += 1
    elif cmp == 2:
        while i < n and not line[i] <= thr:
            i += 1
    elif cmp == 3:
        while i < n and not line[i] > thr:
            i += 1
    else:
        while i < n and not line[i] >= thr:
            i += 1
    return i


@njit(cache=True, inline="always")
def _position_run(ohlc, exit_, i, cash, size, cost, entry, low, high, peak, sl, trail, tp,
                  has_exit, x_cmp, x_thr, x_from, hold, equity, cash_out, keep_cash, pos_out,
                  track, t_peak, t_worst, t_run, t_longest, t_held, t_bad):
    """Bars from ``i`` on of a plain long (1x, no funding, no structure levels) held with
    nothing pending and exits judged at the close: ``nb.simulate``'s step for such a bar
    (the lot's low, high and best close; the equity; the exit rules in their order), bar
    after bar until one decides an exit or the data ends. Returns (the last bar stepped,
    the lot's low, high and best close, the exit reason or -1, the path state)."""
    n = ohlc.shape[0]
    avg = cost / size
    stop_px = avg * (1.0 - sl)
    tp_px = avg * (1.0 + tp)
    reason = -1
    t = i
    while t < n:
        lo = ohlc[t, 2]
        h = ohlc[t, 1]
        cl = ohlc[t, 3]
        if lo < low:
            low = lo
        if h > high:
            high = h
        if cl > peak:
            peak = cl
        equity[t] = cash + size * cl
        if keep_cash:
            cash_out[t] = cash
        pos_out[t] = size
        if track:
            t_peak, t_worst, t_run, t_longest, t_held, t_bad = _track(
                equity[t], size, t_peak, t_worst, t_run, t_longest, t_held, t_bad)
        if sl != 0.0 and cl <= stop_px:
            reason = R_STOP
        elif trail != 0.0 and cl <= peak * (1.0 - trail):
            reason = R_TRAIL
        elif tp != 0.0 and cl >= tp_px:
            reason = R_TP
        elif has_exit and _fires(exit_, t, x_cmp, x_thr, x_from):
            reason = R_EXIT_SIGNAL
        elif hold != 0 and t - entry + 1 >= hold:
            reason = R_TIME
        if reason >= 0:
            return t, low, high, peak, reason, t_peak, t_worst, t_run, t_longest, t_held, t_bad
        t += 1
    return n - 1, low, high, peak, -1, t_peak, t_worst, t_run, t_longest, t_held, t_bad


@njit(cache=True, inline="always")
def _idle_run(ohlc, cash, side, i, j, equity, cash_out, keep_cash, pos_out, track,
              peak, worst, run, longest, held, bad, finite):
    """Bars ``i .. j-1`` of a flat strategy with nothing pending: each holds the cash (the
    idle step of ``nb.simulate``, bar by bar; ``finite``: the closes are finite numbers,
    so that is the cash itself, written without reading them). Their path statistics:
    ``_track`` on the first bar; when every bar's equity is that same number (a finite
    close), each later bar leaves the peak and the worst drawdown as they are and only
    extends the counts, so they are added at once (the values ``_track`` bar by bar gives,
    tested); otherwise bar by bar."""
    e0 = cash + 0.0 * ohlc[i, 3]
    same = True
    if finite:  # cash + 0 * close is the cash (for a finite close: +-0 added)
        equity[i:j] = e0
        pos_out[i:j] = side * 0.0
        if keep_cash:
            cash_out[i:j] = cash
    else:
        for t in range(i, j):
            e = cash + 0.0 * ohlc[t, 3]
            equity[t] = e
            if e != e0:
                same = False
            if keep_cash:
                cash_out[t] = cash
            pos_out[t] = side * 0.0
    if not track:
        return peak, worst, run, longest, held, bad
    if not same:
        for t in range(i, j):
            peak, worst, run, longest, held, bad = _track(equity[t], 0.0, peak, worst, run,
                                                          longest, held, bad)
        return peak, worst, run, longest, held, bad
    peak, worst, run, longest, held, bad = _track(e0, 0.0, peak, worst, run, longest, held,
                                                  bad)
    m = j - i - 1
    if e0 < peak:
        run += m
        if run > longest:
            longest = run
    if not e0 > 0.0:
        bad += m
    return peak, worst, run, longest, held, bad
