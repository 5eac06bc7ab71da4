"""Validation: bad input is refused before it reaches an engine.

Every rule raises a typed error that names the file, the column, the offending timestamps and
what to do. Gaps are *reported* (counts and spans) and only refused beyond a tolerance (or with
``strict=True``); flushback never fills a gap silently (``load_frame(fill_gaps=True)`` inserts
flagged bars on request).

Rules for bars: empty data; naive (timezone-less) index; duplicated timestamps; unsorted
timestamps; timestamps off the interval grid; NaN in OHLC; zero or negative prices; negative
volume; high < low; open or close outside [low, high]; gaps longer than ``max_gap``.
Rules for external series: empty; naive; duplicated; unsorted; NaN values; negative
liquidations/open interest; F&G outside 0..100; spans longer than the maximum staleness
(reported; refused with ``strict``, as :class:`StaleDataError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flushback.data.datasets import (
    DatasetSpec,
)
from flushback.data.errors import DataError, StaleDataError
from flushback.data.intervals import (
    fmt_td,
    ns_values,
    parse_interval,
)

__all__ = [
    "ValidationReport",
    "default_max_gap",
    "find_gaps",
    "validate_bars",
    "validate_dataset",
    "validate_external",
]


@dataclass
class ValidationReport:
    """What validation found that is not an error: coverage, gap counts and spans, warnings."""

    file: str | None
    rows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    gaps: int = 0
    gap_spans: list[tuple[pd.Timestamp, pd.Timestamp, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    flags: list[Any] = field(default_factory=list)  # suspicious.Flag

    def to_dict(self) -> dict[str, Any]:
        def iso(t: Any) -> str | None:
            return None if t is None else pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ")

        return {
            "file": self.file,
            "rows": self.rows,
            "first": iso(self.first),
            "last": iso(self.last),
            "gaps": self.gaps,
            "gap_spans": [
                {"after": iso(a), "before": iso(b), "missing": n} for a, b, n in self.gap_spans
            ],
            "warnings": list(self.warnings),
            "flags": [f.to_dict() for f in self.flags],
        }


def default_max_gap(interval: pd.Timedelta) -> pd.Timedelta:
    """Longest tolerated hole in bars: 3 days for daily bars, 48 h for intraday."""
    return max(3 * interval, pd.Timedelta(hours=48)) if interval < pd.Timedelta(days=1) else (
        3 * interval
    )


def find_gaps(index: pd.DatetimeIndex, period: pd.Timedelta
              ) -> list[tuple[pd.Timestamp, pd.Timestamp, int]]:
    """Spans ``(last present, next present, n missing)`` of a regular, sorted index."""
    if len(index) < 2:
        return []
    i8 = ns_values(index)
    steps = np.diff(i8) // period.value
    where = np.flatnonzero(steps > 1)
    return [(index[k], index[k + 1], int(steps[k] - 1)) for k in where]


def _common(frame: pd.DataFrame, file: str | None, what: str) -> pd.DatetimeIndex:
    if frame is None or len(frame) == 0:
        raise DataError(f"empty data: no {what}", file=file,
                        hint="check the date range, the symbol and the source")
    idx = frame.index
    if not isinstance(idx, pd.DatetimeIndex):
        raise DataError("the index is not a DatetimeIndex", file=file, column="timestamp",
                        hint="index the frame by the UTC timestamp of each row")
    if idx.tz is None:
        raise DataError("naive timestamps (no timezone)", file=file, column="timestamp",
                        timestamps=list(idx[:3]),
                        hint="localize to UTC (frame.tz_localize('UTC')) if they are UTC")
    if str(idx.tz) not in ("UTC", "utc"):
        raise DataError(f"timestamps in {idx.tz}, not UTC", file=file, column="timestamp",
                        timestamps=list(idx[:3]), hint="convert with frame.tz_convert('UTC')")
    dup = idx.duplicated(keep=False)
    if dup.any():
        raise DataError(
            f"{int(idx.duplicated().sum())} duplicated timestamps", file=file,
            column="timestamp", timestamps=list(pd.unique(idx[dup])[:5]),
            hint="keep one row per timestamp (the newest source revision)",
        )
    if not idx.is_monotonic_increasing:
        pos = np.flatnonzero(np.diff(ns_values(idx)) < 0)
        raise DataError(
            f"unsorted timestamps ({len(pos)} place(s) go backwards)", file=file,
            column="timestamp", timestamps=[idx[p + 1] for p in pos[:5]],
            hint="sort the rows by timestamp, ascending",
        )
    return idx


def _refuse_future(idx: pd.DatetimeIndex, file: str | None,
                   now: pd.Timestamp | None) -> None:
    """A row stamped after the present cannot be real (a wrong clock, zone or unit)."""
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    future = np.asarray(idx > now)
    if future.any():
        raise DataError(
            f"{int(future.sum())} row(s) stamped in the future (after {now:%Y-%m-%dT%H:%M}Z)",
            file=file, column="timestamp", timestamps=list(idx[future][:5]),
            hint="check the source's clock, time zone and units (seconds vs milliseconds); "
            "flushback never keeps rows from the future",
        )


def _fail_rows(mask: np.ndarray, idx: pd.DatetimeIndex, msg: str, file: str | None,
               column: str, hint: str) -> None:
    if mask.any():
        raise DataError(f"{int(mask.sum())} row(s) with {msg}", file=file, column=column,
                        timestamps=list(idx[mask][:5]), hint=hint)


def validate_bars(
    frame: pd.DataFrame,
    *,
    interval: str | pd.Timedelta | None = None,
    file: str | None = None,
    max_gap: pd.Timedelta | None = None,
    strict: bool = False,
    known_gaps: tuple[tuple[str, str], ...] = (),
    now: pd.Timestamp | None = None,
) -> ValidationReport:
    """Check OHLCV bars; raise :class:`DataError` on the first violated rule.

    ``known_gaps``: (first, last) missing bar opens that the source is documented to lack;
    a gap inside one is reported but not refused for its length (``strict`` still refuses).
    ``now`` (default: the clock): bars stamped after it cannot be real and are refused.
    """
    idx = _common(frame, file, "bars")
    missing = [c for c in ("open", "high", "low", "close") if c not in frame.columns]
    if missing:
        raise DataError(f"missing required column(s) {missing}", file=file, column=missing[0],
                        hint="bars need open, high, low, close (and volume)")
    period = parse_interval(interval, file=file) if interval is not None else None
    if period is not None:
        off = (ns_values(idx) % period.value) != 0 if period <= pd.Timedelta(days=1) else None
        if off is not None and off.any():
            _fail_rows(off, idx, f"timestamps not on the {interval} grid (bar open times)", file,
                       "timestamp", "index bars by their UTC open time (e.g. 00:00, 04:00 for 4h)")
    _refuse_future(idx, file, now)
    o, h, lo, c = (frame[k].to_numpy(dtype="float64", na_value=np.nan)
                   for k in ("open", "high", "low", "close"))
    for name, arr in (("open", o), ("high", h), ("low", lo), ("close", c)):
        _fail_rows(np.isnan(arr), idx, "NaN prices", file, name,
                   "fill them from the source or drop those rows (never interpolated)")
    for name, arr in (("open", o), ("high", h), ("low", lo), ("close", c)):
        _fail_rows(arr <= 0, idx, "zero or negative prices", file, name,
                   "re-fetch the bars; prices must be > 0")
    if "volume" in frame.columns:
        v = frame["volume"].to_numpy(dtype="float64", na_value=np.nan)
        _fail_rows(v < 0, idx, "negative volume", file, "volume", "re-fetch the bars")
    _fail_rows(h < lo, idx, "high < low", file, "high", "the bar is corrupt; re-fetch it")
    _fail_rows((c < lo) | (c > h), idx, "close outside [low, high]", file, "close",
               "the bar is corrupt; re-fetch it")
    _fail_rows((o < lo) | (o > h), idx, "open outside [low, high]", file, "open",
               "the bar is corrupt; re-fetch it")
    report = ValidationReport(file, len(frame), idx[0], idx[-1])
    if period is not None:
        spans = find_gaps(idx, period)
        report.gap_spans = spans
        report.gaps = sum(n for _, _, n in spans)
        if spans:
            limit = pd.Timedelta(0) if strict else (max_gap or default_max_gap(period))
            documented = [(pd.Timestamp(x), pd.Timestamp(y)) for x, y in known_gaps]

            def _known(a: pd.Timestamp, b: pd.Timestamp) -> bool:
                return not strict and any(a + period >= x and b - period <= y
                                          for x, y in documented)

            too_long = [(a, b, n) for a, b, n in spans
                        if (n * period) > limit and not _known(a, b)]
            if too_long:
                a, b, n = max(too_long, key=lambda t: t[2])
                raise DataError(
                    f"gaps in the bars: {report.gaps} missing {interval} bar(s) in "
                    f"{len(spans)} gap(s); the longest, {n} bar(s) after {a}, exceeds "
                    f"{fmt_td(limit)}", file=file, column="timestamp",
                    timestamps=[a + period * (k + 1) for k in range(min(n, 5))],
                    hint="re-fetch the missing bars, raise --max-gap, or load with "
                    "fill_gaps=True (filled bars are flagged)",
                )
            report.warnings.append(
                f"{report.gaps} missing bar(s) in {len(spans)} gap(s) (not filled)")
    return report


def validate_external(
    frame: pd.DataFrame,
    spec: DatasetSpec,
    *,
    file: str | None = None,
    strict: bool = False,
    now: pd.Timestamp | None = None,
) -> ValidationReport:
    """Check a canonical external series (output of a parser)."""
    idx = _common(frame, file, f"{spec.kind} rows")
    _refuse_future(idx, file, now)
    value_cols = [c for c in frame.columns
                  if c not in ("period_end", "known_at", "liq_regime", "n_markets_reporting")]
    for col in value_cols:
        arr = frame[col].to_numpy(dtype="float64", na_value=np.nan)
        _fail_rows(np.isnan(arr), idx, "missing (NaN) values", file, col,
                   "drop those rows: an absent value is a gap, not a NaN")
        if spec.kind in ("liquidations", "open_interest"):
            _fail_rows(arr < 0, idx, "negative values", file, col, "the source is corrupt")
    for col in ("period_end", "known_at"):
        if col not in frame.columns:
            raise DataError(f"missing column '{col}'", file=file, column=col,
                            hint="external series must carry when each value became known")
    early = (pd.DatetimeIndex(frame["known_at"]) < pd.DatetimeIndex(frame["period_end"]))
    _fail_rows(np.asarray(early), idx, "known_at before the end of the period they describe",
               file, "known_at", "declare a publication lag >= 0")
    report = ValidationReport(file, len(frame), idx[0], idx[-1])
    spans = find_gaps(idx, spec.period)
    report.gap_spans = spans
    report.gaps = sum(n for _, _, n in spans)
    if spans:
        report.warnings.append(f"{report.gaps} missing period(s) in {len(spans)} gap(s)")
    stale = [(a, b, n) for a, b, n in spans if (n + 1) * spec.period > spec.staleness]
    if stale:
        msg = (f"{len(stale)} span(s) where the value would be older than the maximum "
               f"staleness {fmt_td(spec.staleness)} (NaN on those bars)")
        if strict:
            a, b, n = stale[0]
            raise StaleDataError(msg, file=file, column=value_cols[0] if value_cols else None,
                                 timestamps=[a + spec.period * (k + 1) for k in range(min(n, 5))],
                                 hint="re-fetch the missing periods or raise max_staleness")
        report.warnings.append(msg)
    return report


def validate_dataset(frame: pd.DataFrame, spec: DatasetSpec, *, file: str | None = None,
                     strict: bool = False, max_gap: pd.Timedelta | None = None,
                     now: pd.Timestamp | None = None, scan: bool = True) -> ValidationReport:
    """Every hard rule for the dataset's kind, then (``scan``) the suspicious-value scan: the
    report's ``flags`` lists what looks wrong (:mod:`flushback.data.suspicious`) without
    refusing it. Readers that never act on flags (a folder read in place) skip the scan."""
    from flushback.data.suspicious import find_suspicious

    if spec.kind == "bars":
        report = validate_bars(frame, interval=spec.interval, file=file, max_gap=max_gap,
                               strict=strict, known_gaps=spec.known_gaps, now=now)
    else:
        report = validate_external(frame, spec, file=file, strict=strict, now=now)
    report.flags = find_suspicious(frame, spec) if scan else []
    if report.flags:
        report.warnings.append(f"{len(report.flags)} suspicious value(s): "
                               + "; ".join(f.describe() for f in report.flags[:3]))
    return report
