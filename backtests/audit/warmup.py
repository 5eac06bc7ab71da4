"""The warm-up check (:func:`check_warmup`).

Each signal's values at evaluation bars are recomputed from only ``N`` bars of history for
``N`` = the declared ``warmup_for(interval)`` and multiples of it; the relative difference to
the full-history value must be within the signal's declared ``tolerance`` at ``N`` = that
warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from flushback.backtests.audit.base import (
    FAIL,
    PASS,
    SKIP,
    CheckResult,
    Finding,
    SignalLike,
    plain,
    relative_difference,
)
from flushback.backtests.run.timefmt import iso_z
from flushback.data.intervals import frame_step


def _eval_positions(values: pd.Series, points: int, need: int) -> list[int]:
    """Evaluation bars: the last ``points`` bars, plus for boolean signals the last ``points``
    trigger bars (a trigger is where a short warm-up flips a decision); all at positions with
    at least ``need`` bars of history before them."""
    n = len(values)
    pos = [p for p in range(max(need, n - points), n)]
    if pd.api.types.is_bool_dtype(values):
        trig = [int(p) for p in np.flatnonzero(values.fillna(False).to_numpy(dtype=bool))
                if p >= need]
        pos.extend(trig[-points:])
    return sorted(set(pos))


def _declared_warmup(signal: Any, interval: pd.Timedelta) -> int:
    return int(signal.warmup_for(interval) or 0)


def _abs_difference(full: Any, other: Any) -> float:
    rel = relative_difference(full, other)
    if rel in (0.0, math.inf):
        return rel
    return abs(float(other) - float(full))


def check_warmup(
    frame: pd.DataFrame,
    signals: Mapping[str, SignalLike],
    *,
    interval: pd.Timedelta | None = None,
    multiples: Sequence[float] = (1, 2, 4),
    points: int = 5,
    full_values: Mapping[str, pd.Series] | None = None,
) -> CheckResult:
    """Compare each signal's values from full history with values from only N bars of history.

    For each signal and each ``N = ceil(m * warmup)`` (``m`` in ``multiples``; ``warmup`` is
    ``signal.warmup_for(interval)``), the value at
    each evaluation bar ``t`` is recomputed on ``frame.iloc[t - N : t + 1]`` (``N`` bars of
    history before ``t``, plus ``t``) and compared with the full-history value. The table
    reports the largest relative difference per ``N``; a signal fails when, at ``N = warmup``,
    a value differs by more than its declared ``tolerance`` (the Signal contract's absolute
    difference, on the signal's own scale; a boolean flip counts as 1, a value against NaN as
    infinite).
    """
    if interval is None:
        interval = frame_step(frame)
    rows: list[dict[str, Any]] = []
    findings: list[Finding] = []
    mults = sorted({float(m) for m in multiples} | {1.0})
    for name, signal in signals.items():
        w = _declared_warmup(signal, interval)
        tol = float(getattr(signal, "tolerance", 0.0) or 0.0)
        if full_values and name in full_values:
            full = full_values[name]
        else:
            full = signal.compute(frame)
        full = full.reindex(frame.index)
        ns = {m: max(int(math.ceil(m * w)), 0) for m in mults}
        need = ns[1.0]
        positions = _eval_positions(full, points, need)
        row: dict[str, Any] = {"signal": name, "warmup_bars": w, "tolerance": tol,
                               "points": len(positions)}
        if not positions:
            row.update({"max_abs_diff": None, "verdict": SKIP,
                        "note": f"history shorter than {need + 1} bars"})
            rows.append(row)
            continue
        worst_abs = 0.0
        mine: list[Finding] = []
        abs_by_mult: dict[float, float] = {}
        for m, n in ns.items():
            worst_rel: float | None = 0.0
            usable = [p for p in positions if p >= n]
            if not usable:  # not enough history for this multiple
                row[f"rel_diff_x{m:g}"] = None
                continue
            for p in usable:
                sub = frame.iloc[p - n: p + 1]
                value = signal.compute(sub).iloc[-1]
                a = full.iloc[p]
                worst_rel = max(worst_rel or 0.0, relative_difference(a, value))
                d = _abs_difference(a, value)
                abs_by_mult[m] = max(abs_by_mult.get(m, 0.0), d)
                if m == 1.0:
                    if d > tol:
                        mine.append(Finding(
                            "warmup",
                            f"signal '{name}': with its declared warm-up of {w} bars the value "
                            f"at {iso_z(frame.index[p])} is {plain(value)!r}, {plain(a)!r} "
                            f"with full history (difference {d:.4g} > tolerance {tol:g}); "
                            "declare a longer warm-up",
                            bar=frame.index[p], column=name, full=a, truncated=value,
                        ))
                    worst_abs = max(worst_abs, d)
            row[f"rel_diff_x{m:g}"] = worst_rel
        row["max_abs_diff"] = worst_abs
        row["verdict"] = FAIL if worst_abs > tol else PASS
        top = max(abs_by_mult) if abs_by_mult else 1.0
        if (row["verdict"] == FAIL and top > 1.0
                and abs_by_mult[top] >= abs_by_mult.get(1.0, 0.0) > tol):
            # more history does not help: not a warm-up problem but a value that depends on
            # what the window cannot see (look-ahead, a full-sample statistic)
            row["note"] = f"no better with {top:g}x the declared warm-up"
            for f in mine:
                f.message = f.message.replace(
                    "declare a longer warm-up",
                    f"it still differs with {top:g}x that history: look for look-ahead or a "
                    "full-sample statistic rather than a short warm-up")
        findings.extend(mine)
        rows.append(row)
    failing = [r["signal"] for r in rows if r["verdict"] == FAIL]
    if failing:
        verdict = FAIL
    elif any(r["verdict"] == PASS for r in rows):
        verdict = PASS
    else:
        verdict = SKIP
    if failing:
        summary = f"declared warm-up too short for: {', '.join(failing)}"
    elif not rows:
        summary = "the spec has no signals: nothing to warm up"
    elif verdict == SKIP:
        summary = "not enough history to evaluate any signal"
    else:
        summary = f"{len(rows)} signal(s) converge within their tolerance at the declared warm-up"
    cols: list[str] = ["signal", "warmup_bars", "tolerance", "points"]
    for r in rows:
        for k in r:
            if k.startswith("rel_diff") and k not in cols:
                cols.append(k)
    cols += ["max_abs_diff", "verdict"]
    if any("note" in r for r in rows):
        cols.append("note")
    return CheckResult(
        name="warmup",
        title="Warm-up (full history vs N bars of history)",
        verdict=verdict,
        summary=summary,
        columns=cols,
        rows=rows,
        findings=findings[:200],
        params={"multiples": list(mults), "points": points},
    )
