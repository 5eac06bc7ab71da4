"""Frame shapes and time arithmetic: bar intervals, resampling, point-in-time joins.

Time rules (DESIGN.md, "Time"): bars are indexed at their UTC *open*; a bar's values are known
at its close (open + interval). External values carry ``known_at`` and are joined with an
as-of join on ``known_at <= bar close``; a value older than the maximum staleness is NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flushback.data.datasets import (
    AGGREGATION,
    BAR_COLUMNS,
    EXTERNAL_KINDS,
    DatasetInfo,
    DatasetSpec,
)
from flushback.data.errors import DataError
from flushback.data.intervals import bar_interval, interval_name, ns_values, parse_interval

__all__ = [
    "AssembledFrame",
    "ExternalPiece",
    "asof_join",
    "bar_interval",
    "conform_external",
    "fill_gaps",
    "resample_bars",
    "splice_externals",
]


def _interval_name(td: pd.Timedelta) -> str:
    return interval_name(td) or f"{int(td.total_seconds())}s"


def resample_bars(
    bars: pd.DataFrame,
    rule: str | pd.Timedelta,
    *,
    source_interval: str | pd.Timedelta | None = None,
    incomplete: str = "drop",
) -> pd.DataFrame:
    """Aggregate bars to a coarser interval, e.g. 1h -> 4h -> 1d.

    Right-closed and right-labelled in pandas terms on the bars' *close* times (a 4h bar holds
    the hourly bars closing in (00:00, 04:00]), then re-indexed at the coarse bar's open, so the
    result follows the same convention as its input. A coarse bar is complete when it holds
    every source bar; ``incomplete`` decides what happens otherwise: ``"drop"`` (default; the
    count is in ``attrs["incomplete_dropped"]``), ``"keep"`` (kept, column ``complete`` False) or
    ``"raise"`` (:class:`DataError` listing them).
    """
    src = parse_interval(source_interval) if source_interval is not None else bar_interval(bars)
    target = parse_interval(rule)
    if target < src or target.value % src.value != 0:
        raise DataError(f"cannot resample {_interval_name(src)} bars to {rule}",
                        hint="the target interval must be a whole multiple of the source's")
    if incomplete not in ("drop", "keep", "raise"):
        raise DataError(f"incomplete={incomplete!r}", hint="use 'drop', 'keep' or 'raise'")
    expected = target.value // src.value
    num = bars[[c for c in BAR_COLUMNS if c in bars.columns]]
    closes = num.set_axis(pd.DatetimeIndex(bars.index) + src)
    res = closes.resample(target, closed="right", label="right", origin="epoch")
    agg = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    out = res.agg({c: agg[c] for c in num.columns})
    count = res["close"].count()
    out = out[count > 0]
    count = count[count > 0]
    out.index = pd.DatetimeIndex(out.index - target, name="timestamp")
    complete = (count.to_numpy() == expected)
    attrs = dict(bars.attrs)
    attrs["interval"] = _interval_name(target)
    attrs["resampled_from"] = _interval_name(src)
    bad = out.index[~complete]
    if incomplete == "raise" and len(bad):
        raise DataError(
            f"{len(bad)} incomplete {attrs['interval']} bar(s) (fewer than {expected} "
            f"{_interval_name(src)} bars)", column="timestamp", timestamps=list(bad[:5]),
            hint="fetch the missing source bars or resample with incomplete='drop'",
        )
    if incomplete == "drop":
        out = out[complete]
    else:
        out["complete"] = complete
    out.attrs = attrs
    out.attrs["incomplete_dropped" if incomplete == "drop" else "incomplete"] = int(len(bad))
    return out


def fill_gaps(bars: pd.DataFrame, interval: str | pd.Timedelta | None = None) -> pd.DataFrame:
    """Insert the missing bars of a regular series, **flagged** in a boolean ``filled`` column:
    OHLC = previous close, volume 0. Never done implicitly."""
    period = parse_interval(interval) if interval is not None else bar_interval(bars)
    idx = pd.DatetimeIndex(bars.index)
    full = pd.date_range(idx[0], idx[-1], freq=period, name="timestamp")
    out = bars.reindex(full)
    filled = out["close"].isna().to_numpy()
    prev_close = out["close"].ffill()
    for col in ("open", "high", "low", "close"):
        out[col] = out[col].where(~filled, prev_close)
    if "volume" in out.columns:
        out["volume"] = out["volume"].where(~filled, 0.0)
    out["filled"] = filled
    out.attrs = dict(bars.attrs)
    out.attrs["filled_bars"] = int(filled.sum())
    return out


@dataclass
class ExternalPiece:
    """One external dataset conformed for a join: values plus per-row timing."""

    spec: DatasetSpec
    frame: pd.DataFrame  # value columns + period_end + known_at (+ staleness as Timedelta)


def conform_external(ext: pd.DataFrame, spec: DatasetSpec,
                     bar_iv: pd.Timedelta,
                     aggregation: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Make an external series usable on bars of ``bar_iv``.

    A source at least as coarse as the bars is returned as is (the as-of join picks the bucket
    that ended most recently). A finer source is combined per bar: flows summed, rates averaged,
    levels last, over the source buckets inside each bar; a bar's value is known when its last
    bucket is, and a flow bar with a missing bucket is dropped (never under-counted).
    """
    period = spec.period
    if period >= bar_iv:
        return ext
    if bar_iv.value % period.value != 0:
        raise DataError(f"cannot combine {spec.interval} buckets of {spec.id} into "
                        f"{_interval_name(bar_iv)} bars", hint="use a compatible dataset")
    expected = bar_iv.value // period.value
    starts = pd.DatetimeIndex(ext["period_end"]) - period
    bins = pd.DatetimeIndex((ns_values(starts) // bar_iv.value) * bar_iv.value, tz="UTC")
    how = dict(aggregation or AGGREGATION)
    cols = [c for c in ext.columns if c in how]
    g = ext[cols].groupby(bins.to_numpy())
    out = g.agg({c: how[c] for c in cols})
    count = g.size()
    known = ext["known_at"].groupby(bins.to_numpy()).max()
    idx = pd.DatetimeIndex(out.index)  # an empty group index comes back untyped
    out.index = idx.tz_localize("UTC") if idx.tz is None else idx
    out.index.name = "timestamp"
    out["period_end"] = out.index + bar_iv
    out["known_at"] = known.array  # keeps the datetime dtype, also when empty
    flows = any(how[c] == "sum" for c in cols)
    if flows:
        out = out[count.to_numpy() == expected]
    return out


def splice_externals(pieces: Sequence[tuple[DatasetSpec, pd.DataFrame]],
                     staleness: Mapping[str, pd.Timedelta]) -> pd.DataFrame:
    """Combine several datasets of one kind: the first covers its range, each next one only
    the periods outside the ranges already covered. Adds a per-row ``_staleness`` (ns)."""
    parts = []
    covered: list[tuple[int, int]] = []
    for spec, df in pieces:
        if df is None or len(df) == 0:
            continue
        end = ns_values(df["period_end"])
        period_ns = end - ns_values(df.index)
        start = end - np.where(period_ns > 0, period_ns, spec.period.value)
        keep = np.ones(len(df), dtype=bool)
        for lo, hi in covered:
            keep &= (end <= lo) | (start >= hi)
        part = df[keep].copy()
        part["_staleness"] = staleness[spec.id].value
        part["_dataset"] = spec.id
        parts.append(part)
        covered.append((int(start.min()), int(end.max())))
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts)
    return out.sort_values("known_at", kind="stable")


def asof_join(
    bar_open: pd.DatetimeIndex,
    bar_iv: pd.Timedelta,
    ext: pd.DataFrame,
    columns: Sequence[str],
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """For each bar, the latest row with ``known_at <= bar close`` that is not stale.

    ``ext`` must be sorted by ``known_at`` and carry ``_staleness`` (ns). Returns
    (values per column, known_at per bar as int64 ns with NaT, period_end likewise).
    """
    n = len(bar_open)
    nat = np.iinfo(np.int64).min
    if ext is None or len(ext) == 0:
        empty = {c: np.full(n, np.nan, dtype=object if c == "liq_regime" else "float64")
                 for c in columns}
        return empty, np.full(n, nat, dtype="int64"), np.full(n, nat, dtype="int64")
    close = ns_values(bar_open) + bar_iv.value
    known = ns_values(ext["known_at"])
    pos = np.searchsorted(known, close, side="right") - 1
    ok = pos >= 0
    safe = np.where(ok, pos, 0)
    age = close - known[safe]
    ok &= age <= ext["_staleness"].to_numpy()[safe]
    vals: dict[str, np.ndarray] = {}
    for c in columns:
        if c not in ext.columns:
            vals[c] = np.full(n, np.nan, dtype=object if c == "liq_regime" else "float64")
            continue
        src = ext[c].to_numpy()
        if c == "liq_regime":
            v = np.asarray(src, dtype=object)[safe].copy()
            v[~ok] = None
            vals[c] = v
        else:
            v = src.astype("float64")[safe]
            vals[c] = np.where(ok, v, np.nan)
    pend = ns_values(ext["period_end"])
    if "_dataset" in ext.columns:
        used = np.asarray(ext["_dataset"].to_numpy(), dtype=object)[safe].copy()
        used[~ok] = None
        vals["_dataset"] = used
    return vals, np.where(ok, known[safe], nat), np.where(ok, pend[safe], nat)


@dataclass
class AssembledFrame:
    """Bars plus point-in-time external columns, with provenance.

    - ``frame``: index ``timestamp`` (UTC, bar open), float64 ``open, high, low, close,
      volume``, external columns ``fng, liq_long_usd, liq_short_usd, liq_regime,
      funding_rate, oi_usd`` (those requested; NaN when absent or stale);
      ``attrs["interval"]`` and ``attrs["symbol"]``.
    - ``fingerprints``: dataset id -> sha256 content fingerprint of every dataset used.
    - ``datasets``: dataset id -> :class:`DatasetInfo`.
    - ``known_at`` / ``period_end``: same index; for each external column the ``known_at`` of
      the value used at that bar (always <= the bar's close) and the end of the period it
      describes; NaT where the column is NaN.
    - ``sources``: kind (or user series name) -> where its columns came from: the named
      source, the datasets in priority order with venue, interval and the number of bars each
      supplied (report.json names the source of every external column from this).
    """

    frame: pd.DataFrame
    fingerprints: dict[str, str] = field(default_factory=dict)
    datasets: dict[str, DatasetInfo] = field(default_factory=dict)
    known_at: pd.DataFrame = field(default_factory=pd.DataFrame)
    period_end: pd.DataFrame = field(default_factory=pd.DataFrame)
    sources: dict[str, Any] = field(default_factory=dict)

    @property
    def symbol(self) -> str:
        return str(self.frame.attrs.get("symbol", ""))

    @property
    def interval(self) -> str:
        return str(self.frame.attrs.get("interval", ""))

    def __len__(self) -> int:
        return len(self.frame)

    def external_columns(self) -> list[str]:
        return [c for cols in EXTERNAL_KINDS.values() for c in cols if c in self.frame.columns]

    def summary(self) -> dict[str, Any]:
        """Coverage of each external column (first/last non-NaN bar, share of bars filled)."""
        out: dict[str, Any] = {}
        for c in self.external_columns():
            s = self.frame[c]
            nn = s.notna()
            out[c] = {
                "bars_with_value": int(nn.sum()),
                "first": None if not nn.any() else s.index[nn.to_numpy()][0],
                "last": None if not nn.any() else s.index[nn.to_numpy()][-1],
            }
        return out
