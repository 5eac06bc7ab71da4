"""The external-data timing check (:func:`check_external_timing`).

From the ``known_at`` / ``period_end`` frames of the assembled data: for each external column,
the lag between each value's period end and the close of the first bar that used it. Fails
when a value was used at a bar closing before its ``known_at``, when a value is declared known
before its period ended, or when a value has no ``known_at`` at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from flushback.backtests.audit.base import (
    FAIL,
    PASS,
    SKIP,
    CheckResult,
    Finding,
)
from flushback.backtests.run.timefmt import iso_z


def check_external_timing(
    index: pd.DatetimeIndex,
    interval: pd.Timedelta,
    known_at: pd.DataFrame | None,
    period_end: pd.DataFrame | None,
    *,
    frame: pd.DataFrame | None = None,
    columns: Iterable[str] | None = None,
) -> CheckResult:
    """Lag between each external value's period end and its first use (the bar close).

    A value counts as *used* at bar ``t`` from that bar's close, ``t + interval``. Fails when a
    value is used before its ``known_at``, when ``known_at`` precedes ``period_end`` (nothing is
    known before its period ended), or when ``frame`` holds a value without a ``known_at``.
    """
    if known_at is None or period_end is None or known_at.shape[1] == 0:
        return CheckResult(
            name="external_timing", title="External data timing", verdict=SKIP,
            summary="the spec uses no external series", columns=[], rows=[],
        )
    cols = list(columns) if columns is not None else list(known_at.columns)
    close = pd.Series(index + interval, index=index)
    rows: list[dict[str, Any]] = []
    findings: list[Finding] = []
    for col in cols:
        if col not in known_at.columns:
            continue
        ka = pd.to_datetime(known_at[col].reindex(index), utc=True)
        pe = pd.to_datetime(period_end[col].reindex(index), utc=True) if (
            col in period_end.columns) else pd.Series(pd.NaT, index=index, dtype=ka.dtype)
        used = ka.notna()
        early = used & (ka > close)
        before_end = used & pe.notna() & (ka < pe)
        orphan = pd.Series(False, index=index)
        if frame is not None and col in frame.columns:
            orphan = frame[col].reindex(index).notna() & ~used
        row: dict[str, Any] = {"column": col, "values_used": 0, "bars_used": int(used.sum())}
        if used.any():
            d = pd.DataFrame({"pe": pe[used], "ka": ka[used], "close": close[used]})
            first = d.groupby(["ka", "pe"], dropna=False)["close"].min().reset_index()
            lag = (first["close"] - first["pe"]).dropna()
            pub = (first["ka"] - first["pe"]).dropna()
            hours = lag.dt.total_seconds() / 3600.0
            row.update({
                "values_used": len(first),
                "lag_h_min": float(hours.min()) if len(hours) else None,
                "lag_h_median": float(hours.median()) if len(hours) else None,
                "lag_h_max": float(hours.max()) if len(hours) else None,
                "publication_lag_h": (float(pub.dt.total_seconds().min() / 3600.0)
                                          if len(pub) else None),
            })
        row["early_uses"] = int(early.sum())
        row["known_before_end"] = int(before_end.sum())
        row["no_known_at"] = int(orphan.sum())
        bad = row["early_uses"] or row["known_before_end"] or row["no_known_at"]
        row["verdict"] = FAIL if bad else PASS
        rows.append(row)
        if early.any():
            t = early.idxmax()
            findings.append(Finding(
                "early_use",
                f"column '{col}': a value known at {iso_z(ka[t])} was used at the close of bar "
                f"{iso_z(t)} ({iso_z(close[t])}), {int(early.sum())} bar(s) in all",
                bar=t, column=col, full=ka[t], truncated=close[t],
            ))
        if before_end.any():
            t = before_end.idxmax()
            findings.append(Finding(
                "known_before_end",
                f"column '{col}': known_at {iso_z(ka[t])} precedes the end of the period it "
                f"describes ({iso_z(pe[t])}) at bar {iso_z(t)}",
                bar=t, column=col, full=pe[t], truncated=ka[t],
            ))
        if orphan.any():
            t = orphan.idxmax()
            findings.append(Finding(
                "no_known_at",
                f"column '{col}': value at bar {iso_z(t)} has no known_at",
                bar=t, column=col,
            ))
    failing = [r["column"] for r in rows if r["verdict"] == FAIL]
    verdict = FAIL if failing else (PASS if rows else SKIP)
    if failing:
        summary = f"values used before they were known in: {', '.join(failing)}"
    elif rows:
        summary = f"{len(rows)} external column(s): every value used at or after its known_at"
    else:
        summary = "no external column to check"
    return CheckResult(
        name="external_timing",
        title="External data timing (period end -> first use at bar close)",
        verdict=verdict,
        summary=summary,
        columns=["column", "values_used", "bars_used", "publication_lag_h",
                 "lag_h_min", "lag_h_median", "lag_h_max",
                 "early_uses", "known_before_end", "no_known_at", "verdict"],
        rows=rows,
        findings=findings,
    )
