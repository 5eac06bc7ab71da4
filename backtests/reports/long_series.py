"""The long per-bar series of a report, kept in a Parquet file beside ``report.json``.

A run's ``equity`` points and chart ``series`` hold one value per bar: tens of thousands of
rows for an hourly run, most of ``report.json``'s size. When a report has at least
:data:`LONG_SERIES_BARS` bars, :func:`split` moves both into ``bars.parquet`` (one row per
bar: ``timestamp`` and the columns ``equity.<field>`` and ``series.<column>``, float64, exact)
and leaves in ``report.json`` empty ``equity`` / ``series`` and a ``long_series`` reference
(file name, number of bars, sha256 of the file). :func:`join` puts them back when the report
is loaded, so every reader (report.html, compare, runs) sees the whole report. Reports with
fewer bars, or whose series are not plain numbers on the equity's own timestamps, stay inline.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from flushback.data.errors import DataError

__all__ = ["LONG_SERIES_BARS", "FILE_NAME", "split", "join"]

#: reports with at least this many bars keep their series beside report.json
LONG_SERIES_BARS = 1000
FILE_NAME = "bars.parquet"


def _numeric(values: list[Any]) -> bool:
    return all(v is None or (isinstance(v, int | float) and not isinstance(v, bool))
               for v in values)


def split(doc: dict[str, Any]) -> tuple[dict[str, Any], bytes | None]:
    """(the document to write as report.json, the Parquet bytes to write beside it or None
    when the series stay inline)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    equity = doc.get("equity") or []
    series = dict(doc.get("series") or {})
    stamps = [p["timestamp"] for p in equity]
    if len(stamps) < LONG_SERIES_BARS:
        return doc, None
    series_stamps = series.pop("timestamp", []) or []
    if series_stamps and series_stamps != stamps:
        return doc, None
    columns: dict[str, list[Any]] = {}
    fields = [k for k in equity[0] if k != "timestamp"]
    if any(set(p) != set(equity[0]) for p in equity):
        return doc, None
    for field in fields:
        columns[f"equity.{field}"] = [p[field] for p in equity]
    for name, values in series.items():
        if not isinstance(values, list) or (values and len(values) != len(stamps)):
            return doc, None
        columns[f"series.{name}"] = values
    if not all(_numeric(v) for v in columns.values()):
        return doc, None
    index = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True))
    table = pa.table({"timestamp": pa.array(index.as_unit("ns"), pa.timestamp("ns", "UTC")),
                      **{k: pa.array([float("nan") if x is None else float(x) for x in v]
                                     if v else [], pa.float64())
                         for k, v in columns.items() if v},
                      })
    empty = [k for k, v in columns.items() if not v]
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    data = buf.getvalue()
    out = dict(doc)
    out["equity"] = []
    out["series"] = {}
    out["long_series"] = {
        "file": FILE_NAME, "bars": len(stamps), "sha256": hashlib.sha256(data).hexdigest(),
        "empty_columns": empty, "series_timestamps": bool(series_stamps),
    }
    return out, data


def _iso(index: Any) -> list[str]:
    from flushback.backtests.reports.schema import iso_utc

    if bool((index.microsecond == 0).all()) and bool((index.nanosecond == 0).all()):
        return list(index.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return [iso_utc(t) for t in index]


def join(doc: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The document with its equity and series read back from the file its ``long_series``
    names (in ``folder``); unchanged when it has none or already carries them."""
    import math

    import pandas as pd
    import pyarrow.parquet as pq

    ref = doc.get("long_series")
    if not isinstance(ref, dict) or doc.get("equity"):
        return doc
    path = folder / str(ref.get("file") or FILE_NAME)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"report.json keeps its per-bar series in {path.name} beside it, which "
                        f"cannot be read ({exc.strerror or exc})", file=str(path),
                        hint="copy the whole run folder, not report.json alone") from None
    if hashlib.sha256(data).hexdigest() != ref.get("sha256"):
        raise DataError(f"{path.name} does not match the sha256 that report.json recorded",
                        file=str(path), hint="the run folder was changed; re-run the backtest")
    table = pq.read_table(io.BytesIO(data))
    frame = table.to_pandas()
    index = pd.DatetimeIndex(frame.pop("timestamp"))
    stamps = _iso(index)

    def values(col: str) -> list[Any]:
        return [None if math.isnan(v) else v for v in frame[col].tolist()]

    eq_fields = [c.removeprefix("equity.") for c in frame.columns if c.startswith("equity.")]
    eq_cols = {f: values(f"equity.{f}") for f in eq_fields}
    for col in ref.get("empty_columns") or []:
        if col.startswith("equity."):
            eq_cols[col.removeprefix("equity.")] = [None] * len(stamps)
    out = dict(doc)
    out["equity"] = [{"timestamp": t, **{f: v[i] for f, v in eq_cols.items()}}
                     for i, t in enumerate(stamps)]
    series: dict[str, list[Any]] = {"timestamp": stamps if ref.get("series_timestamps")
                                    else []}
    for col in frame.columns:
        if col.startswith("series."):
            series[col.removeprefix("series.")] = values(col)
    for col in ref.get("empty_columns") or []:
        if col.startswith("series."):
            series[col.removeprefix("series.")] = []
    out["series"] = series
    return out
