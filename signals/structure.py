"""Market structure, point in time: swings, Fibonacci levels, fair value gaps, liquidity levels.

This module owns the per-bar *level* computations that chart readers draw by hand (swing
highs and lows, the 0.618 retracement of the last swing, a fair value gap left by a crash,
the "liquidity" under a row of equal lows) -- computed so that the value at bar ``t`` uses
only bars ``<= t``. Every drawn level is a classic place for look-ahead: a swing low is only
known ``k`` bars after it printed. The signals built on these tables live at the bottom of
this module; :func:`structure_table` is also what the contrarian strategy's level exits
read (this module knows nothing of them).

Definitions (``k`` = ``swing_bars``, ``L`` = ``lookback``; bars are positions ``0..n-1``):

- **Pivot** at centre bar ``c``: a swing high when ``high[c] > max(high[c-k..c-1])`` and
  ``high[c] >= max(high[c+1..c+k])`` (the first of equal highs wins); a swing low likewise with
  ``low`` and ``<``/``<=``. It needs the ``k`` bars after ``c``, so it is **confirmed at bar
  c + k** and appears in the per-bar columns from that bar on, never before.
- **Last confirmed swing** at bar ``t``: the latest pivot confirmed by ``t`` whose centre is at
  most ``L`` bars old (``c >= t - L``); NaN otherwise. ``swing_high`` / ``swing_low`` hold its
  price, ``swing_high_at`` / ``swing_low_at`` its centre bar's open time.
- **Leg** (the Fibonacci base): the up-leg ending at the last confirmed swing high ``H``,
  starting at the last pivot low ``Lo`` before ``H``'s centre (``leg_low``; also at most ``L``
  bars old, and below ``H``). Levels ``H - x * (H - Lo)``: retracements ``fib_236`` ..
  ``fib_786`` (x = 0.236, 0.382, 0.5, 0.618, 0.786) and extensions ``ext_1272``, ``ext_1618``
  (x = 1.272, 1.618, below the leg's low).
- **Drop**: ``drop_low`` = lowest low from ``H``'s centre bar through ``t`` (known at ``t``'s
  close; it needs no confirmation). A retracement ``r`` of the drop is
  ``drop_low + r * (H - drop_low)``.
- **Fair value gap** (three-candle imbalance) created at bar ``g`` (known at its close):
  bullish when ``low[g] > high[g-2]`` (zone ``[high[g-2], low[g]]``, below the price), bearish
  when ``high[g] < low[g-2]`` (zone ``[high[g], low[g-2]]``, above), kept when the zone is at
  least ``min_gap`` x ``close[g]`` tall. A bearish gap is **filled** at the first bar ``j > g``
  whose high reaches ``bottom + fill_ratio * (top - bottom)``; a bullish one when a low reaches
  ``top - fill_ratio * (top - bottom)``. A gap is *open* on bars ``g .. j-1`` and at most ``L``
  bars after ``g``. ``gap_above`` (``_top``, ``_at``) is the open gap with the lowest bottom
  above the close, ``gap_below`` (``_bottom``, ``_at``) the one with the highest top below it;
  ``bull_gap_filled`` / ``bear_gap_filled`` mark the bar that fills one.
- **Liquidity level**: confirmed swing lows (highs) in the window, sorted, chained while each
  is within ``tolerance`` (relative) of the previous one; a chain of at least two pivots is
  one level at its lowest low (highest high) -- "equal lows", where stops rest.
  ``liq_below`` is the highest such level below the close (``liq_below_n`` pivots),
  ``liq_above`` the lowest equal-highs level above it.
- ``support_below``: the highest confirmed swing low in the window below the close;
  ``next_level_below``: the higher of ``support_below`` and the highest Fibonacci level of the
  leg below the close.

Finite memory: every column at bar ``t`` depends on bars ``t - L - max(k, 2) .. t`` only
(:func:`structure_warmup`), so a signal built on them is exact after its warm-up. The
computations are numpy, with plain Python loops over gaps and over the bars where the set of
swings changes (documented at each loop); 50k hourly bars take about half a second
(``benchmarks/README.md``).
"""

from __future__ import annotations

import bisect
import math

import numpy as np
import pandas as pd

from flushback.signals.base import Param, Signal, cached_part
from flushback.signals.registry import register

__all__ = [
    "FIB_LEVELS",
    "EXT_LEVELS",
    "STRUCTURE_COLUMNS",
    "pivots",
    "structure_table",
    "structure_warmup",
    "FibRetracement",
    "GapFill",
    "SwingLowBreak",
    "LiquiditySweep",
]

#: retracement ratios of the leg, as column suffixes -> ratio
FIB_LEVELS = {"fib_236": 0.236, "fib_382": 0.382, "fib_500": 0.5, "fib_618": 0.618,
              "fib_786": 0.786}
#: extensions of the leg below its low
EXT_LEVELS = {"ext_1272": 1.272, "ext_1618": 1.618}

STRUCTURE_COLUMNS = (
    "swing_high", "swing_high_at", "swing_low", "swing_low_at", "leg_low", "leg_low_at",
    *FIB_LEVELS, *EXT_LEVELS, "drop_low",
    "gap_above", "gap_above_top", "gap_above_at", "gap_below", "gap_below_bottom",
    "gap_below_at", "gaps_open", "bull_gap_filled", "bear_gap_filled",
    "liq_below", "liq_below_n", "liq_above", "liq_above_n", "support_below", "next_level_below",
)


def structure_warmup(swing_bars: int, lookback: int) -> int:
    """Bars of history a structure column needs: the window plus the pivot test's (or the
    three-candle gap's) bars before it."""
    return int(lookback) + max(int(swing_bars), 2)


def pivots(high: np.ndarray, low: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Swing highs and lows by CENTRE bar (bool arrays). A pivot at ``c`` reads bars
    ``c-k .. c+k``: it may only be used from bar ``c + k`` on (see the module docstring)."""
    h = pd.Series(np.asarray(high, dtype="float64"))
    lo = pd.Series(np.asarray(low, dtype="float64"))
    left_h = h.shift(1).rolling(k, min_periods=k).max()
    left_l = lo.shift(1).rolling(k, min_periods=k).min()
    # the k bars AFTER each centre: a reversed trailing window (shifted to the confirmation
    # bar by the callers, never read at the centre)
    right_h = h[::-1].shift(1).rolling(k, min_periods=k).max()[::-1]
    right_l = lo[::-1].shift(1).rolling(k, min_periods=k).min()[::-1]
    is_high = ((h > left_h) & (h >= right_h)).to_numpy()
    is_low = ((lo < left_l) & (lo <= right_l)).to_numpy()
    return is_high, is_low


def _last_confirmed(pivot: np.ndarray, k: int, lookback: int) -> np.ndarray:
    """Per bar: the centre of the latest pivot confirmed by the bar (centre + k <= t) and at
    most ``lookback`` bars old, else -1."""
    n = len(pivot)
    centres = np.flatnonzero(pivot)
    conf = centres + k
    ok = conf < n
    last = np.full(n, -1, dtype=np.int64)
    last[conf[ok]] = centres[ok]
    last = np.maximum.accumulate(last)
    t = np.arange(n)
    last[(last >= 0) & (t - last > lookback)] = -1
    return last


def _take(values: np.ndarray, pos: np.ndarray) -> np.ndarray:
    out = np.full(len(pos), np.nan)
    ok = pos >= 0
    out[ok] = values[pos[ok]]
    return out


def _drop_low(low: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Lowest low from ``centre[t]`` through ``t``. A loop over bars (O(n) amortised: the
    running minimum restarts only when the swing high changes)."""
    n = len(low)
    out = np.full(n, np.nan)
    cur, run = -1, np.nan
    for t in range(n):
        c = centre[t]
        if c < 0:
            cur = -1
            continue
        if c != cur:
            seg = low[c:t + 1]
            run = np.nanmin(seg) if np.isfinite(seg).any() else np.nan
            cur = c
        elif low[t] < run or run != run:
            run = low[t] if low[t] == low[t] else run
        out[t] = run
    return out


def _gaps(high, low, close, lookback, min_gap, fill_ratio):
    """Fair value gaps: (created bar, bottom, top, bullish?, fill bar or n) arrays."""
    n = len(high)
    out = []
    for bullish in (True, False):
        g = np.arange(2, n)
        if bullish:
            bottom, top = high[:-2], low[2:]
        else:
            bottom, top = high[2:], low[:-2]
        with np.errstate(invalid="ignore"):
            size_ok = (top - bottom) >= min_gap * close[2:]
            ok = (top > bottom) & size_ok
        g, bottom, top = g[ok], bottom[ok], top[ok]
        fill = np.full(len(g), n, dtype=np.int64)
        # one numpy search per gap over the next ``lookback`` bars (a loop over gaps)
        for i in range(len(g)):
            start, stop = g[i] + 1, min(n, g[i] + lookback + 1)
            if start >= stop:
                continue
            if bullish:
                hit = low[start:stop] <= top[i] - fill_ratio * (top[i] - bottom[i])
            else:
                hit = high[start:stop] >= bottom[i] + fill_ratio * (top[i] - bottom[i])
            if hit.any():
                fill[i] = start + int(np.argmax(hit))
        out.append((g, bottom, top, np.full(len(g), bullish), fill))
    return tuple(np.concatenate(parts) for parts in zip(*out, strict=True))


def _gap_columns(high, low, close, lookback, min_gap, fill_ratio) -> dict[str, np.ndarray]:
    n = len(close)
    g, bottom, top, bull, fill = _gaps(high, low, close, lookback, min_gap, fill_ratio)
    above = np.full(n, np.inf)
    above_top = np.full(n, np.nan)
    above_at = np.full(n, -1, dtype=np.int64)
    below = np.full(n, -np.inf)
    below_bottom = np.full(n, np.nan)
    below_at = np.full(n, -1, dtype=np.int64)
    n_open = np.zeros(n)
    bull_filled = np.zeros(n, dtype=bool)
    bear_filled = np.zeros(n, dtype=bool)
    # a loop over gaps, each updating its open span [g, end) with numpy
    for i in range(len(g)):
        end = min(int(fill[i]), int(g[i]) + lookback + 1, n)
        if fill[i] < n and fill[i] <= g[i] + lookback:
            (bull_filled if bull[i] else bear_filled)[fill[i]] = True
        seg = slice(int(g[i]), end)
        n_open[seg] += 1
        c = close[seg]
        if bull[i]:
            better = (top[i] < c) & (top[i] > below[seg])
            below[seg] = np.where(better, top[i], below[seg])
            below_bottom[seg] = np.where(better, bottom[i], below_bottom[seg])
            below_at[seg] = np.where(better, g[i], below_at[seg])
        else:
            better = (bottom[i] > c) & (bottom[i] < above[seg])
            above[seg] = np.where(better, bottom[i], above[seg])
            above_top[seg] = np.where(better, top[i], above_top[seg])
            above_at[seg] = np.where(better, g[i], above_at[seg])
    above[~np.isfinite(above)] = np.nan
    below[~np.isfinite(below)] = np.nan
    return {"gap_above": above, "gap_above_top": above_top, "gap_above_at": above_at,
            "gap_below": below, "gap_below_bottom": below_bottom, "gap_below_at": below_at,
            "gaps_open": n_open, "bull_gap_filled": bull_filled, "bear_gap_filled": bear_filled}


def _clusters(p: list[float], tolerance: float, lows: bool) -> tuple[list[float], list[float]]:
    """Equal lows (highs) among the sorted prices ``p``: chains each within ``tolerance`` of
    the previous; chains of >= 2 give a level at their lowest low (highest high).
    (levels ascending, counts). A plain loop: the window holds a few dozen pivots at most."""
    levels: list[float] = []
    counts: list[float] = []
    first = 0
    for i in range(1, len(p) + 1):
        if i == len(p) or p[i] > p[i - 1] * (1.0 + tolerance):
            if i - first >= 2:
                levels.append(p[first] if lows else p[i - 1])
                counts.append(float(i - first))
            first = i
    return levels, counts


def _window_levels(close, pivot, prices, k, lookback, *, below, cluster, tolerance):
    """Per bar, the nearest level below (or above) the close among the confirmed pivots in the
    window -- each pivot (``cluster=False``) or each equal-pivot level (``cluster=True``).

    A plain loop over the bars where the set of confirmed pivots in the window changes (a
    pivot enters it at ``c + k`` and leaves it at ``c + lookback + 1``), keeping that set as a
    sorted list; between two such bars the levels are fixed and each bar's nearest level is
    a bisection.
    """
    n = len(close)
    level = np.full(n, np.nan)
    count = np.full(n, np.nan)
    centres = np.flatnonzero(pivot)
    centres = centres[centres + k < n]
    if len(centres) == 0 or lookback < k:  # (a pivot would leave before it is confirmed)
        return level, count
    changes: dict[int, list[tuple[int, float]]] = {}
    for c in centres.tolist():
        px = float(prices[c])
        changes.setdefault(c + k, []).append((1, px))
        if c + lookback + 1 < n:
            changes.setdefault(c + lookback + 1, []).append((-1, px))
    bars = sorted(changes) + [n]
    closes = close.tolist()
    live: list[float] = []
    lv_out = [math.nan] * n
    cnt_out = [math.nan] * n
    for a, b in zip(bars[:-1], bars[1:], strict=True):
        for sign, px in sorted(changes[a]):  # removals first
            if sign < 0:
                live.pop(bisect.bisect_left(live, px))
            else:
                bisect.insort(live, px)
        if cluster:
            lv, cnt = _clusters(live, tolerance, lows=below)
        else:
            lv, cnt = live, [1.0] * len(live)
        if not lv:
            continue
        for t in range(a, b):
            c = closes[t]
            if below:  # highest level strictly below the close
                j = bisect.bisect_left(lv, c) - 1
                if j >= 0:
                    lv_out[t], cnt_out[t] = lv[j], cnt[j]
            else:  # lowest level strictly above the close
                j = bisect.bisect_right(lv, c)
                if j < len(lv):
                    lv_out[t], cnt_out[t] = lv[j], cnt[j]
    return np.array(lv_out, dtype="float64"), np.array(cnt_out, dtype="float64")


def structure_table(frame: pd.DataFrame, swing_bars: int = 3, lookback: int = 120, *,
                    min_gap: float = 0.0, fill_ratio: float = 1.0,
                    tolerance: float = 0.002) -> pd.DataFrame:
    """Every structure column of the module docstring, one row per bar of ``frame`` (needs
    ``high``, ``low``, ``close``). Values at bar ``t`` use bars ``<= t`` only; NaN (or -1/NaT
    for positions and times) where no swing, gap or level exists. Not masked for warm-up:
    the signals and the level exits mask the first :func:`structure_warmup` bars."""
    k, lookback = int(swing_bars), int(lookback)
    high = frame["high"].to_numpy(dtype="float64", na_value=np.nan)
    low = frame["low"].to_numpy(dtype="float64", na_value=np.nan)
    close = frame["close"].to_numpy(dtype="float64", na_value=np.nan)
    n = len(close)
    is_high, is_low = pivots(high, low, k)
    sh = _last_confirmed(is_high, k, lookback)
    sl = _last_confirmed(is_low, k, lookback)
    # the last pivot low strictly before the swing high's centre (confirmed before it)
    low_centres = np.maximum.accumulate(np.where(is_low, np.arange(n), -1)) if n else np.empty(0)
    leg = np.full(n, -1, dtype=np.int64)
    has = sh > 0
    leg[has] = low_centres[sh[has] - 1]
    t = np.arange(n)
    leg[(leg >= 0) & (t - leg > lookback)] = -1
    swing_high = _take(high, sh)
    leg_low = _take(low, leg)
    bad_leg = ~(leg_low < swing_high)
    leg[bad_leg] = -1
    leg_low[bad_leg] = np.nan
    cols: dict[str, np.ndarray] = {
        "swing_high": swing_high, "swing_high_at": sh, "swing_low": _take(low, sl),
        "swing_low_at": sl, "leg_low": leg_low, "leg_low_at": leg,
    }
    span = swing_high - leg_low
    for name, x in {**FIB_LEVELS, **EXT_LEVELS}.items():
        cols[name] = swing_high - x * span
    cols["drop_low"] = _drop_low(low, sh)
    cols.update(_gap_columns(high, low, close, lookback, float(min_gap), float(fill_ratio)))
    cols["liq_below"], cols["liq_below_n"] = _window_levels(
        close, is_low, low, k, lookback, below=True, cluster=True, tolerance=tolerance)
    cols["liq_above"], cols["liq_above_n"] = _window_levels(
        close, is_high, high, k, lookback, below=False, cluster=True, tolerance=tolerance)
    support, _ = _window_levels(close, is_low, low, k, lookback, below=True, cluster=False,
                                tolerance=tolerance)
    cols["support_below"] = support
    fibs = np.column_stack([cols[c] for c in (*FIB_LEVELS, *EXT_LEVELS)])
    with np.errstate(invalid="ignore"):
        fib_below = np.where(fibs < close[:, None], fibs, -np.inf).max(axis=1)
    nxt = np.fmax(np.where(np.isfinite(fib_below), fib_below, np.nan), support)
    cols["next_level_below"] = nxt
    idx = frame.index
    if isinstance(idx, pd.DatetimeIndex):  # bar positions -> the bars' open times (NaT: none)
        for name in ("swing_high_at", "swing_low_at", "leg_low_at", "gap_above_at",
                     "gap_below_at"):
            pos = cols[name]
            cols[name] = idx[np.clip(pos, 0, None)].where(pos >= 0) if n else idx
    return pd.DataFrame(cols, index=idx)[list(STRUCTURE_COLUMNS)]


# --------------------------------------------------------------------------- signals
_COMMON = {
    "swing_bars": Param(int, 3, 1, 20, step=1, doc="bars on each side of a pivot; a swing is "
                        "confirmed this many bars after it", units="bars"),
    "lookback": Param(int, 120, 10, 1000, step=10, doc="swings, gaps and levels older than "
                      "this are forgotten", units="bars"),
}


class _StructureSignal(Signal):
    """Base of the structure signals: the table of :func:`structure_table` per parameters."""

    inputs = ("high", "low", "close")
    table_kwargs: tuple[str, ...] = ()
    explain_columns: tuple[str, ...] = ()

    def warmup_for(self, interval: pd.Timedelta) -> int:
        return structure_warmup(self.params["swing_bars"], self.params["lookback"]) + 1

    def table(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = self.params
        kw = {key: p[key] for key in self.table_kwargs}
        key = ("structure", p["swing_bars"], p["lookback"], *sorted(kw.items()))
        return cached_part(frame, key, lambda: structure_table(
            frame, p["swing_bars"], p["lookback"], **kw))

    def parts(self, frame: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def _compute(self, frame: pd.DataFrame) -> pd.Series:
        return self.parts(frame)["trigger"]

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.parts(frame).drop(columns=["trigger"])

    def _base(self, frame: pd.DataFrame) -> pd.DataFrame:
        tab = self.table(frame)
        out = pd.DataFrame({"close": frame["close"].astype("float64")}, index=frame.index)
        for c in self.explain_columns:
            out[c] = tab[c]
        return out


@register("fib_retracement")
class FibRetracement(_StructureSignal):
    """Close at or below the ``ratio`` retracement of the last confirmed up-leg:
    ``close_t <= H - ratio * (H - Lo)``, ``H`` the last confirmed swing high and ``Lo`` the
    pivot low before it (see :mod:`flushback.signals.structure`). Ratios above 1 are
    extensions below the leg's low. No leg, no trigger."""

    summary = "close <= the ratio retracement of the last confirmed swing (H - r (H - Lo))"
    param_specs = {
        **_COMMON,
        "ratio": Param(float, 0.618, 0.236, 1.618, doc="retracement (0.618) or extension "
                       "(1.272) of the leg, measured down from its high", units="fraction"),
    }
    explain_columns = ("swing_high", "swing_high_at", "leg_low", "leg_low_at", "fib_382",
                       "fib_500", "fib_618", "fib_786", "drop_low", "gap_above",
                       "gap_above_top", "gap_above_at", "liq_below")

    def parts(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = self._base(frame)
        tab = self.table(frame)
        level = tab["swing_high"] - self.params["ratio"] * (tab["swing_high"] - tab["leg_low"])
        out.insert(1, "level", level)
        out["trigger"] = (out["close"] <= level).fillna(False)
        return out


@register("gap_fill")
class GapFill(_StructureSignal):
    """A fair value gap is filled on this bar: ``direction = "bullish"`` a gap below the price
    (``low[g] > high[g-2]``) that the bar's low traded back through (the dip into an
    imbalance), ``"bearish"`` a gap above the price that the high reached. ``fill_ratio`` of
    the gap must be covered (1 = the whole gap, 0.5 = its midpoint)."""

    summary = "a fair value gap (three-candle imbalance) filled on this bar"
    param_specs = {
        **_COMMON,
        "direction": Param(str, "bullish", choices=("bullish", "bearish"),
                           doc="bullish: a gap below the price, filled by a drop"),
        "min_gap": Param(float, 0.002, 0.0, 0.05, doc="smallest gap kept",
                         units="fraction of the close"),
        "fill_ratio": Param(float, 1.0, 0.1, 1.0, doc="part of the gap that must be covered",
                            units="fraction"),
    }
    table_kwargs = ("min_gap", "fill_ratio")
    explain_columns = ("gap_below", "gap_below_bottom", "gap_below_at", "gap_above",
                       "gap_above_top", "gap_above_at", "gaps_open", "swing_high",
                       "swing_low", "fib_618")

    def parts(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = self._base(frame)
        col = "bull_gap_filled" if self.params["direction"] == "bullish" else "bear_gap_filled"
        out["trigger"] = self.table(frame)[col].astype(bool)
        return out


@register("swing_low_break")
class SwingLowBreak(_StructureSignal):
    """The first close below the last confirmed swing low: ``close_t < S_t * (1 - buffer)``
    and ``close_{t-1} >= S_t * (1 - buffer)``, ``S_t`` the swing low confirmed by bar ``t``
    (the break of structure a flush starts with)."""

    summary = "first close below the last confirmed swing low"
    param_specs = {
        **_COMMON,
        "buffer": Param(float, 0.0, 0.0, 0.1, doc="close this far below the swing low",
                        units="fraction"),
    }
    explain_columns = ("swing_low", "swing_low_at", "swing_high", "swing_high_at", "fib_618",
                       "liq_below", "gap_above", "gap_above_at")

    def parts(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = self._base(frame)
        level = self.table(frame)["swing_low"] * (1.0 - self.params["buffer"])
        out.insert(1, "level", level)
        prev = out["close"].shift(1)
        out["trigger"] = ((out["close"] < level) & (prev >= level)).fillna(False)
        return out


@register("liquidity_sweep")
class LiquiditySweep(_StructureSignal):
    """A sweep of equal lows: the bar's low trades below the liquidity level that was under
    the previous close (``liq_below_{t-1}``, a chain of >= 2 swing lows within ``tolerance``)
    and the bar closes back above it -- the stops under the lows taken, the level reclaimed."""

    summary = "low below the equal-lows level under the last close, close back above it"
    param_specs = {
        **_COMMON,
        "tolerance": Param(float, 0.002, 0.0, 0.02, doc="lows within this of each other are "
                           "equal", units="fraction"),
    }
    table_kwargs = ("tolerance",)
    explain_columns = ("liq_below_n", "swing_low", "swing_low_at", "swing_high", "fib_618",
                       "gap_above")

    def parts(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = self._base(frame)
        level = self.table(frame)["liq_below"].shift(1)
        out.insert(1, "level", level)
        low = frame["low"].astype("float64")
        out["trigger"] = ((low < level) & (out["close"] > level)).fillna(False)
        return out
