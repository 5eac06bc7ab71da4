"""Funding at the settlements: the per-bar line the engines charge with ``funding =
"settlements"`` (no backtrader import; both engines read the same line).

A perpetual's funding is exchanged at fixed settlement moments (Binance USDT-M: 00:00, 08:00
and 16:00 UTC) between the longs and the shorts open at that moment, on their notional at
the perpetual's price. Bars are stamped by their open and known at their close, so a
settlement at ``T`` belongs to the bar with ``open < T <= open + interval``: the one whose
close is ``T`` on 1h/4h/8h bars, and on daily bars the day that contains it (its 08:00 and
16:00 settlements and the next day's 00:00). :func:`settled_funding` sums the rates of the
settlements of each bar (NaN for a bar without one); the engines charge a position held at
that bar's close ``size * close * rate`` (a long pays a positive rate, a short receives
it), i.e. at the close price, the bar's last price, which is the settlement price on bars
that end at the settlement.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from flushback.data.errors import DataError

__all__ = ["settled_funding"]


def settled_funding(index: pd.DatetimeIndex, interval: pd.Timedelta,
                    settlements: pd.Series) -> np.ndarray:
    """The summed rate of the settlements that fall in each bar ``(open, open + interval]``.

    ``settlements``: rates (fractions per funding interval) indexed by their settlement time
    (UTC). Raises :class:`DataError` when the bars begin before the first settlement or end
    after the last one's next settlement is due (the series does not cover them: no funding
    would be charged there, silently).
    """
    s = settlements.dropna().sort_index()
    if len(index) == 0:
        return np.empty(0)
    if s.empty:
        raise DataError("no funding settlements to charge",
                        hint="choose a funding dataset with settlement rows")
    times = pd.DatetimeIndex(s.index)
    first_close, last_close = index[0] + interval, index[-1] + interval
    step = times.to_series().diff().median() if len(times) > 1 else pd.Timedelta(hours=8)
    if times[0] > first_close + step or times[-1] + step < last_close:
        raise DataError(
            f"the funding settlements cover {times[0]} .. {times[-1]}, not the bars "
            f"{index[0]} .. {index[-1]}", timestamps=[index[0], index[-1]],
            hint="narrow the window to the settlements' coverage, or use costs.funding = true "
            "(the rate known at each bar, accrued per bar)")
    out = np.full(len(index), np.nan)
    keep = (times > index[0]) & (times <= last_close)
    times, rates = times[keep], s.to_numpy(dtype=np.float64)[keep]
    # the bar whose (open, close] holds T: the last open strictly before T
    pos = index.searchsorted(times, side="left") - 1
    inside = (pos >= 0) & (times <= index[np.clip(pos, 0, None)] + interval)
    for p, r in zip(pos[inside], rates[inside], strict=True):
        out[p] = r if np.isnan(out[p]) else out[p] + r
    return out
