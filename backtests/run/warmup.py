"""Warm-up honesty: the first bar at which every signal of a run is valid, and whether that
bar falls inside the backtest window.

A signal is *valid* at bar t when its declared warm-up (``Signal.warmup_for``: Wilder's RSI(14)
needs 202 bars, a 90-day liquidation z-score 90 days) has elapsed since the first bar at which
its inputs exist. Two things delay it:

- the loaded history: the base class masks the first ``warmup`` bars of the frame;
- the inputs: a column that begins later than the bars (liquidations from 2020-12-23, funding,
  open interest) starts its own warm-up on its first non-missing value.

So for a leaf signal with warm-up ``w`` whose required inputs are first all present at
position ``p`` of the frame, the first valid position is ``p + w``. A composite is valid when
all its children are (``max`` over the children, the conservative reading: an ``any`` of a
warmed-up and a cold child can fire, but not as designed) plus its own extra warm-up
(``first_of_cluster``'s gap). A run is fully valid at the latest of its signals.

Not covered: a baseline that restarts inside the data (``liquidation_spike`` with
``regime_aware`` restarts at Binance's 2021-04-27 reporting break) and inputs with holes after
they begin (liquidations stop at 2025-11-13); ``flushback today`` reports those per bar.

This module imports only pandas/numpy and ``flushback.signals``; it looks at inputs and
declared warm-ups, never at future values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from flushback.backtests.run.timefmt import iso_z

__all__ = ["first_valid_position", "warmup_report", "warmup_message"]


def _inputs_from(sig: Any, frame: pd.DataFrame) -> int | None:
    """First position where every required input column of a leaf signal is present."""
    cols = [c for c in sig.required_columns() if c in frame.columns]
    if len(cols) < len(sig.required_columns()):
        return None
    if not cols:
        return 0
    have = frame[cols].notna().all(axis=1).to_numpy()
    hits = np.flatnonzero(have)
    return int(hits[0]) if hits.size else None


def first_valid_position(sig: Any, frame: pd.DataFrame, interval: pd.Timedelta,
                         *, complete: bool = False) -> int | None:
    """Position in ``frame`` of the first bar at which ``sig`` is valid (None: never).

    See the module docstring: ``inputs_from + warmup`` for a leaf; for a composite, when it
    can trigger as its logic reads (``all``: every child; ``any``: the first child; ``k_of_n``:
    the k-th child; one-child composites: the child) plus its own extra warm-up, and never
    before its declared ``warmup_for`` bars from the frame's start (the base class masks them).
    ``complete=True``: when every leaf is valid (``max`` over all children).
    """
    children = getattr(sig, "children", None)
    if children:
        parts = [first_valid_position(c, frame, interval, complete=complete) for c in children]
        known = sorted(int(p) for p in parts if p is not None)
        if complete or sig.name == "all":
            need = len(parts)
        elif sig.name == "k_of_n":
            need = int(sig.own_params["k"])
        elif sig.name == "any":
            need = 1
        else:  # not / cooldown / first_of_cluster / custom: every child
            need = len(parts)
        if len(known) < need:
            return None
        extra = int(getattr(sig, "_extra_warmup", lambda: 0)())
        # the base class masks a composite's first warmup_for bars (its slowest leg's) too
        pos = max(known[need - 1] + extra, int(sig.warmup_for(interval)))
    else:
        start = _inputs_from(sig, frame)
        if start is None:
            return None
        pos = start + int(sig.warmup_for(interval))
    return pos if pos < len(frame) else None


def warmup_report(
    signals: Mapping[str, Any],
    frame: pd.DataFrame,
    window_start: pd.Timestamp | None,
    interval: pd.Timedelta,
    window_end: pd.Timestamp | None = None,
) -> dict[str, Any]:
    """The ``warmup`` section of report.json for signals (name -> Signal) on the loaded
    ``frame`` (the whole history, warm-up included) and the trading window's first bar.

    Keys: ``first_valid_bar`` (every signal valid, i.e. able to trigger as its logic reads;
    None when one never is), ``first_complete_bar`` (every leg of every composite warmed up:
    an ``any`` may trigger earlier on its warm legs), ``window_start``,
    ``inside_window`` (True when the first valid bar is after the window's first bar),
    ``bars_in_window_before_valid`` and ``days_in_window_before_valid`` (how much of the window
    the warm-up eats), ``signals`` (per signal: type, warm-up bars, first bar with its inputs,
    first valid bar) and ``message`` (one sentence, also printed by ``flushback backtest``).
    """
    idx = frame.index
    w0 = idx[0] if window_start is None else window_start
    i0 = int(idx.searchsorted(w0, side="left"))
    i1 = len(idx) - 1 if window_end is None else int(idx.searchsorted(window_end, "right")) - 1
    rows = []
    worst: int | None = 0
    complete_all: int | None = 0
    for name, sig in signals.items():
        pos = first_valid_position(sig, frame, interval)
        full = first_valid_position(sig, frame, interval, complete=True)
        starts = [_inputs_from(s, frame) for s in _leaves(sig)]
        known = [s for s in starts if s is not None]
        rows.append({
            "name": name,
            "type": sig.name,
            "warmup_bars": int(sig.warmup_for(interval)),
            "inputs_from": iso_z(idx[min(known)]) if known else None,
            "valid_from": None if pos is None else iso_z(idx[pos]),
            "complete_from": None if full is None else iso_z(idx[full]),
        })
        worst = None if pos is None or worst is None else max(worst, pos)
        complete_all = None if full is None or complete_all is None else max(complete_all, full)
    first_valid = worst
    n_window = max(0, i1 - i0 + 1)
    if first_valid is None:
        lost = n_window
        inside = True
    else:
        lost = int(min(n_window, max(0, first_valid - i0)))
        inside = first_valid > i0
    days = float(lost * interval / pd.Timedelta(days=1))
    out = {
        "first_valid_bar": None if first_valid is None else iso_z(idx[first_valid]),
        "first_complete_bar": None if complete_all is None else iso_z(idx[complete_all]),
        "window_start": iso_z(idx[i0]) if i0 < len(idx) else None,
        "inside_window": bool(inside),
        "bars_in_window_before_valid": lost,
        "days_in_window_before_valid": days,
        "window_bars": n_window,
        "signals": rows,
    }
    out["message"] = warmup_message(out)
    return out


def _leaves(sig: Any) -> list[Any]:
    children = getattr(sig, "children", None)
    if not children:
        return [sig]
    return [leaf for c in children for leaf in _leaves(c)]


def warmup_message(section: Mapping[str, Any]) -> str:
    """One sentence on the warm-up: a warning when it reaches into the window."""
    if not section.get("inside_window"):
        fv, fc, ws = (section.get(k) for k in ("first_valid_bar", "first_complete_bar",
                                               "window_start"))
        text = ("every signal is warmed up before the window starts"
                + (f" (valid from {str(fv)[:10]})" if fv else ""))
        if fc is None or (ws is not None and fc > ws):
            text += ("; some legs of a composite are not: "
                     + ("one never is" if fc is None else f"all legs only from {fc[:10]}")
                     + " (the composite triggers on its other legs until then)")
        return text
    lost = section.get("bars_in_window_before_valid", 0)
    days = section.get("days_in_window_before_valid", 0.0)
    ws = section.get("window_start")
    late = [r for r in section.get("signals", [])
            if r.get("valid_from") is None or (ws is not None and r["valid_from"] > ws)]
    who = "; ".join(
        f"{r['name']} ({r['type']}, warm-up {r['warmup_bars']} bars"
        + (f", inputs from {r['inputs_from'][:10]}" if r.get("inputs_from") else ", no inputs")
        + ")" for r in late)
    if section.get("first_valid_bar") is None:
        return (f"warm-up: a signal is never valid in this window ({lost} bars); {who}. "
                "No trade it needs can happen: load more history or drop the signal.")
    return (f"warm-up reaches into the window: every signal is valid only from "
            f"{section['first_valid_bar'][:10]}, {lost} bar{'s' * (lost != 1)} ({days:g} "
            f"day{'s' * (days != 1)}) after the window "
            f"starts on {str(section['window_start'])[:10]}; {who}. The strategy cannot trigger "
            "on those bars: start the window later or load earlier data.")
