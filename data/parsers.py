"""File parsers: CSV files in the shapes of ``../shared/data`` -> canonical frames.

Canonical shapes (all float64 unless noted, index ``timestamp`` UTC):

- bars: index = bar open; ``open, high, low, close, volume`` (+ ``quality_flag`` str when the
  file has one).
- external series: index = the source's row label (bucket start; for Fear & Greed the
  publication date), value columns (``fng`` | ``liq_long_usd, liq_short_usd, liq_regime`` |
  ``funding_rate`` (fraction per 8h) | ``oi_usd``), plus ``period_end`` and ``known_at``
  (datetime64[ns, UTC]).

Parsers check the *shape* (readable CSV, required columns, timestamps, numbers); the semantic
rules (sorted, unique, positive prices, high >= low, gaps) live in :mod:`flushback.data.validate`.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flushback.data.datasets import BINANCE_LIQ_BREAK, DatasetSpec
from flushback.data.errors import DataError
from flushback.data.series import parse_series

__all__ = [
    "PARSERS",
    "add_known_at",
    "binance_regime",
    "parse_file",
    "parse_timestamps",
    "read_csv",
]

_TS_NAMES = ("timestamp", "date", "datetime", "time", "open_time")


def read_csv(source: str | Path | io.IOBase, *, file: str | None = None) -> pd.DataFrame:
    """Read a CSV (path or buffer) into a frame of raw columns; malformed input -> DataError."""
    name = file or (str(source) if isinstance(source, (str, Path)) else "<buffer>")
    try:
        with warnings.catch_warnings():
            # rows longer than the header would silently become an index or be cut off
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(source, dtype=str, keep_default_na=False, na_values=[""],
                             index_col=False)
    except FileNotFoundError:
        raise DataError("file not found", file=name, hint="check the path") from None
    except pd.errors.EmptyDataError:
        raise DataError("empty file (no header, no rows)", file=name,
                        hint="re-export or re-fetch the dataset") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, UnicodeDecodeError,
            ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"unreadable or malformed CSV ({first})",
            file=name,
            hint="fix the file so every row has the header's number of comma-separated fields",
        ) from None
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) == 0:
        raise DataError("empty data: the file has a header but no rows", file=name,
                        hint="re-export or re-fetch the dataset")
    return df


def _timestamp_column(df: pd.DataFrame, file: str) -> str:
    lower = {c.lower(): c for c in df.columns}
    for cand in _TS_NAMES:
        if cand in lower:
            return lower[cand]
    raise DataError(
        "missing required column 'timestamp'",
        file=file,
        column="timestamp",
        hint=f"the file has {list(df.columns)}; name the time column 'timestamp' (UTC, bar open)",
    )


def parse_timestamps(
    values: pd.Series, *, file: str, column: str = "timestamp", assume_utc: bool = False
) -> pd.DatetimeIndex:
    """Strings -> UTC DatetimeIndex.

    ``YYYY-MM-DD`` dates are UTC calendar dates. Times must carry a zone (``Z`` or an offset)
    unless ``assume_utc``; a file mixing zoned and naive times is refused. Unix seconds or
    milliseconds (all-digit columns) are accepted.
    """
    s = values.astype("string").str.strip()
    missing = s.isna() | (s == "")
    if missing.any():
        rows = list(np.flatnonzero(missing.to_numpy())[:5] + 2)
        raise DataError(
            f"empty timestamp on CSV line(s) {rows}", file=file, column=column,
            hint="remove or fix those rows",
        )
    if s.str.fullmatch(r"\d{9,13}").all():
        num = s.astype("int64")
        unit = "ms" if (num > 10**11).any() else "s"
        return pd.DatetimeIndex(pd.to_datetime(num, unit=unit, utc=True), name="timestamp")
    zoned = s.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
    timed = s.str.contains(r"\d[T ]\d", regex=True)
    naive_timed = timed & ~zoned
    if zoned.any() and (~zoned).any():
        raise DataError(
            "naive and timezone-aware timestamps are mixed",
            file=file, column=column, timestamps=list(s[~zoned][:5]),
            hint="write every timestamp in UTC with a trailing 'Z'",
        )
    if naive_timed.any() and not assume_utc:
        raise DataError(
            "naive timestamps (no timezone)",
            file=file, column=column, timestamps=list(s[naive_timed][:5]),
            hint="write them in UTC with a trailing 'Z' (e.g. 2024-05-07T00:00:00Z), "
            "or pass assume_utc=True / --assume-utc",
        )
    parsed = pd.to_datetime(s, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna()
    if bad.any():
        raise DataError(
            "unparseable timestamps",
            file=file, column=column, timestamps=list(s[bad][:5]),
            hint="use ISO 8601: YYYY-MM-DD for daily rows, YYYY-MM-DDTHH:MM:SSZ intraday",
        )
    return pd.DatetimeIndex(parsed, name="timestamp").as_unit("ns")


def _numeric(df: pd.DataFrame, col: str, *, file: str, index: pd.DatetimeIndex,
             allow_nan: bool = True) -> np.ndarray:
    raw = df[col]
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna() & raw.notna()
    if bad.any():
        where = index[bad.to_numpy()]
        raise DataError(
            f"non-numeric values {list(raw[bad][:3])}", file=file, column=col,
            timestamps=list(where[:5]), hint="fix or remove those rows",
        )
    arr = num.to_numpy(dtype="float64", na_value=np.nan)
    if not allow_nan and np.isnan(arr).any():
        where = index[np.isnan(arr)]
        raise DataError(
            f"{int(np.isnan(arr).sum())} missing (NaN) values", file=file, column=col,
            timestamps=list(where[:5]),
            hint="fill them from the source or drop those rows (flushback never invents prices)",
        )
    return arr


def _require(df: pd.DataFrame, cols: tuple[str, ...] | list[str], file: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(
            f"missing required column(s) {missing}", file=file, column=missing[0],
            hint=f"the file has {list(df.columns)}",
        )


def _lower_columns(df: pd.DataFrame) -> pd.DataFrame:
    ren = {c: c.strip().lower().replace(" ", "_") for c in df.columns}
    ren = {k: ("adj_close" if v == "adj_close" else v) for k, v in ren.items()}
    return df.rename(columns=ren)


def _read_table(df: pd.DataFrame, file: str, columns: Mapping[str, str], *,
                assume_utc: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What every parser does first: lower-case the column names, find the time column,
    require ``columns`` (output name -> source column), parse the UTC timestamps and read those
    columns as float64. Returns the lower-cased input and the new frame on the parsed index."""
    df = _lower_columns(df)
    ts_col = _timestamp_column(df, file)
    _require(df, list(columns.values()), file)
    idx = parse_timestamps(df[ts_col], file=file, column=ts_col, assume_utc=assume_utc)
    out = pd.DataFrame(index=idx)
    for name, col in columns.items():
        out[name] = _numeric(df, col, file=file, index=idx)
    return df, out


def parse_bars(df: pd.DataFrame, spec: DatasetSpec | None, *, file: str,
               assume_utc: bool = False) -> pd.DataFrame:
    """OHLCV bars. Column names are case-insensitive (Yahoo's ``Open`` etc. are accepted)."""
    df, out = _read_table(df, file, {c: c for c in ("open", "high", "low", "close")},
                          assume_utc=assume_utc)
    idx = out.index
    if "volume" in df.columns:
        out["volume"] = _numeric(df, "volume", file=file, index=idx)
    else:
        out["volume"] = np.nan
    if "quality_flag" in df.columns:
        out["quality_flag"] = df["quality_flag"].astype("string").to_numpy()
    return out


def add_known_at(frame: pd.DataFrame, period: pd.Timedelta, lag: pd.Timedelta,
                 *, label_is_end: bool = False) -> pd.DataFrame:
    """Add ``period_end`` and ``known_at`` for rows labelled by period start (or end)."""
    idx = pd.DatetimeIndex(frame.index)
    end = idx if label_is_end else idx + period
    frame["period_end"] = end
    frame["known_at"] = end + lag
    return frame


def parse_fng(df: pd.DataFrame, spec: DatasetSpec, *, file: str, **_: Any) -> pd.DataFrame:
    """alternative.me export: ``date,value[,classification]``; value dated D published D 00:00."""
    _, out = _read_table(df, file, {"fng": "value"})
    idx = out.index
    bad = (out["fng"] < 0) | (out["fng"] > 100)
    if bad.any():
        raise DataError("Fear & Greed values outside 0..100", file=file, column="value",
                        timestamps=list(idx[bad.to_numpy()][:5]), hint="check the export")
    # The value dated D describes the day that ends at D 00:00 (its label is the period end).
    return add_known_at(out, spec.period, spec.publication_lag, label_is_end=True)


_FEEDS = ("full", "throttled")
# venue -> the prefix of its ``liq_regime`` values: levels of different venues never share a
# baseline (the aggregate's Binance part has the same 2021-04-27 break)
_VENUE_PREFIX = {"": "binance", "binance": "binance", "binance+okx+bybit": "binance_okx_bybit"}


def binance_regime(index: pd.DatetimeIndex, venue: str = "binance") -> np.ndarray:
    """The reporting regime of buckets starting at ``index`` (by Binance's break date)."""
    prefix = _VENUE_PREFIX.get(venue, "binance")
    return np.where(index < BINANCE_LIQ_BREAK, f"{prefix}_full",
                    f"{prefix}_throttled").astype(object)
_LIQ_COLUMNS = {"liq_long_usd": "long_usd", "liq_short_usd": "short_usd"}


def parse_coinglass_liquidations(df: pd.DataFrame, spec: DatasetSpec, *, file: str,
                                 **_: Any) -> pd.DataFrame:
    """Coinglass export: ``timestamp,long_usd,short_usd,...,binance_feed``."""
    df, out = _read_table(df, file, _LIQ_COLUMNS)
    idx = out.index
    if "binance_feed" in df.columns:
        feed = df["binance_feed"].astype("string").str.strip().str.lower()
        unknown = ~feed.isin(list(_FEEDS)) & feed.notna()
        if unknown.any():
            raise DataError(
                f"unknown binance_feed values {sorted(set(feed[unknown]))}", file=file,
                column="binance_feed", timestamps=list(idx[unknown.to_numpy()][:5]),
                hint="expected 'full' (before 2021-04-27) or 'throttled'",
            )
        prefix = _VENUE_PREFIX.get(spec.venue if spec is not None else "", "binance")
        out["liq_regime"] = (prefix + "_" + feed).to_numpy(dtype=object)
    else:
        # Without the column, derive the regime from Binance's documented break date.
        out["liq_regime"] = binance_regime(idx, spec.venue if spec is not None else "")
    return add_known_at(out, spec.period, spec.publication_lag)


def parse_coinalyze_liquidations(df: pd.DataFrame, spec: DatasetSpec, *, file: str,
                                 **_: Any) -> pd.DataFrame:
    """Coinalyze export: ``timestamp,long_usd,short_usd,n_markets_reporting,<market>_...``."""
    _, out = _read_table(df, file, _LIQ_COLUMNS)
    out["liq_regime"] = np.full(len(out), "coinalyze_multi", dtype=object)
    return add_known_at(out, spec.period, spec.publication_lag)


def parse_funding_fraction(df: pd.DataFrame, spec: DatasetSpec, *, file: str,
                           **_: Any) -> pd.DataFrame:
    """Daily mean of 8h funding as a fraction: ``funding_rate_mean_8h_fraction``."""
    df = _lower_columns(df)
    col = next((c for c in ("funding_rate_mean_8h_fraction", "funding_rate_8h_fraction",
                             "funding_rate") if c in df.columns), "funding_rate_mean_8h_fraction")
    _, out = _read_table(df, file, {"funding_rate": col})
    _check_fraction(out["funding_rate"], file=file, column=col)
    # raw settlements are stamped with their settlement time: the end of the 8h they price
    return add_known_at(out, spec.period, spec.publication_lag,
                        label_is_end=spec.interval == "8h" and spec.source == "binance")


def _check_fraction(rate: pd.Series, *, file: str, column: str) -> None:
    """A fraction per 8h beyond +-5 % has never happened: the file is almost surely in percent."""
    bad = rate.abs() > 0.05
    if bad.any():
        raise DataError(
            "funding rate beyond +-5 % per 8h: the file looks like it is in percent, "
            "not a fraction", file=file, column=column,
            timestamps=list(rate.index[bad.to_numpy()][:5]),
            hint="divide by 100, or name the column funding_pct_* so it is read as percent",
        )


def parse_funding_percent_ohlc(df: pd.DataFrame, spec: DatasetSpec, *, file: str,
                               **_: Any) -> pd.DataFrame:
    """Coinglass funding OHLC in **percent** per 8h; the close is converted to a fraction."""
    _, out = _read_table(df, file, {"funding_rate": "funding_pct_close"})
    out["funding_rate"] = out["funding_rate"] / 100.0
    return add_known_at(out, spec.period, spec.publication_lag)


def parse_coinalyze_funding(df: pd.DataFrame, spec: DatasetSpec, *, file: str,
                            market: str = "binance_btcusdt", **_: Any) -> pd.DataFrame:
    """Coinalyze per-market funding in percent; one market (default Binance BTCUSDT)."""
    _, out = _read_table(df, file, {"funding_rate": f"{market}_funding_pct"})
    out["funding_rate"] = out["funding_rate"] / 100.0
    return add_known_at(out, spec.period, spec.publication_lag)


def parse_oi_ohlc(df: pd.DataFrame, spec: DatasetSpec, *, file: str, **_: Any) -> pd.DataFrame:
    """Coinglass aggregated OI OHLC in USD; the bucket close is the level at its end."""
    _, out = _read_table(df, file, {"oi_usd": "oi_usd_close"})
    return add_known_at(out, spec.period, spec.publication_lag)


def parse_coinalyze_open_interest(df: pd.DataFrame, spec: DatasetSpec, *, file: str,
                                  **_: Any) -> pd.DataFrame:
    """Coinalyze per-market OI in USD, summed over the markets as a chain-linked panel.

    Markets join and stop reporting (20 columns, 14 with every day), and a plain sum would show
    each change of the panel as an OI jump (e.g. -7.7 % on 2024-01-23 when four markets went
    quiet). ``oi_usd`` therefore moves day to day by the change of the markets that reported on
    both days: ``oi_t = oi_{t-1} * sum_common(t) / sum_common(t-1)``, starting (and restarting
    after a day with no data) at that day's plain sum. It uses only days t-1 and t, so it stays
    point-in-time. ``oi_usd_reported_sum`` keeps the plain sum, ``n_markets_reporting`` the count.
    """
    df = _lower_columns(df)
    ts_col = _timestamp_column(df, file)
    cols = [c for c in df.columns if c.endswith("_oi_usd")]
    if not cols:
        raise DataError("missing required columns '<market>_oi_usd'", file=file,
                        column="<market>_oi_usd", hint=f"the file has {list(df.columns)}")
    idx = parse_timestamps(df[ts_col], file=file, column=ts_col)
    vals = np.column_stack([_numeric(df, c, file=file, index=idx) for c in cols])
    out = pd.DataFrame(index=idx)
    n = (~np.isnan(vals)).sum(axis=1)
    reported = np.where(n > 0, np.nansum(vals, axis=1), np.nan)
    out["oi_usd"] = _chain_linked_sum(vals, reported)
    out["oi_usd_reported_sum"] = reported
    out["n_markets_reporting"] = n.astype("float64")
    return add_known_at(out, spec.period, spec.publication_lag)


def parse_oi_snapshot(df: pd.DataFrame, spec: DatasetSpec, *, file: str,
                      **_: Any) -> pd.DataFrame:
    """Binance ``openInterestHist``: a snapshot of open interest AT the timestamp (not an OHLC
    over a bucket), so the row is known at its own timestamp (period end = timestamp)."""
    _, out = _read_table(df, file, {"oi_usd": "open_interest_usd"})
    return add_known_at(out, spec.period, spec.publication_lag, label_is_end=True)


def _chain_linked_sum(vals: np.ndarray, reported: np.ndarray) -> np.ndarray:
    """The panel sum linked across changes of the reporting markets (see the OI parser)."""
    level = reported.copy()
    have = ~np.isnan(vals)
    for t in range(1, len(level)):
        if np.isnan(level[t]) or np.isnan(level[t - 1]):
            continue  # no data today, or a restart at today's plain sum
        common = have[t] & have[t - 1]
        before = vals[t - 1, common].sum()
        if common.any() and before > 0:
            level[t] = level[t - 1] * vals[t, common].sum() / before
    return level


PARSERS: dict[str, Callable[..., pd.DataFrame]] = {
    "bars": parse_bars,
    "fng": parse_fng,
    "coinglass_liquidations": parse_coinglass_liquidations,
    "coinalyze_liquidations": parse_coinalyze_liquidations,
    "funding_fraction": parse_funding_fraction,
    "funding_percent_ohlc": parse_funding_percent_ohlc,
    "coinalyze_funding": parse_coinalyze_funding,
    "oi_ohlc": parse_oi_ohlc,
    "coinalyze_open_interest": parse_coinalyze_open_interest,
    "oi_snapshot": parse_oi_snapshot,
    "series": parse_series,
}


def parse_file(path: str | Path, spec: DatasetSpec, *, assume_utc: bool = False) -> pd.DataFrame:
    """Read and parse one CSV file with the parser its spec names."""
    file = str(path)
    raw = read_csv(path, file=file)
    frame = PARSERS[spec.parser](raw, spec, file=file, assume_utc=assume_utc)
    frame.index.name = "timestamp"
    return frame
