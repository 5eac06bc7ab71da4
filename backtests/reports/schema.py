"""The schema of ``report.json``: the single source of truth of a run.

Everything that shows a run (``report.html``, the Markdown summary, ``flushback compare``,
``flushback runs list``) reads ``report.json`` back through this module; nothing reads a
``BacktestResult`` directly.

Versioning
----------
Every document carries ``schema_version``. The current version is :data:`SCHEMA_VERSION`.
Older documents are upgraded on load by explicit, ordered migrations (:data:`MIGRATIONS`,
one function per step, each returning a new dict); a document newer than this code, or with an
unknown version, is refused with a :class:`~flushback.data.errors.DataError` that says to upgrade
flushback. A migration never guesses a number it does not have: fields that an older version
did not record become ``null`` / empty.

- ``0.9``: the draft layout used before the schema was frozen: benchmark metrics as a flat
  ``benchmark_metrics`` dict (no benchmark name), equity points with ``benchmark_equity``, no
  ``series``/``triggers``/``periods_per_year`` (the latter lived in ``config``).
- ``1.0``: the layout of the team contract (see ``Report`` below).
- ``1.1``: adds ``warmup`` (:func:`flushback.backtests.run.warmup.warmup_report`: the first bar at
  which every signal is valid and whether it falls inside the window); ``null`` in migrated
  1.0 documents, which did not record it.
- ``1.2``: the ``events``, ``optimization`` and ``audit`` sections are typed
  (:mod:`flushback.backtests.reports.schema_sections`) instead of free-form (their content is
  what their writers already wrote under 1.1); a report with many bars keeps its ``equity`` and
  ``series`` in ``bars.parquet`` beside ``report.json``, named by ``long_series``
  (:mod:`flushback.backtests.reports.long_series`; ``null`` when they are inline, as in every
  migrated 1.1 report).

Conventions
-----------
- Timestamps are ISO 8601 UTC strings ending in ``Z`` (``"2026-02-05T00:00:00Z"``). Inputs may
  be ``datetime``/``pd.Timestamp`` objects or strings with any explicit offset (converted to UTC)
  or plain dates (midnight UTC); a naive date-time is refused, since its zone is a guess.
- No NaN or infinity in JSON: they become ``null`` (metrics such as a profit factor without
  losing trades are undefined, not infinite).
- Sections owned by other parts of flushback (``events``, ``optimization``, ``audit``) are
  typed for reading in :mod:`flushback.backtests.reports.schema_sections`; their owners
  validate what they write with their own models.

Writers build a report with :func:`build_report` (accepts DataFrames and numpy scalars and
returns the JSON-ready dict) and write it with :func:`write_report_file` (atomic). Readers use
:func:`load_report_file` or :func:`validate_report` and get a :class:`Report`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from flushback.backtests.reports.schema_sections import (
    AuditSection,
    EventsSection,
    OptimizationSection,
)
from flushback.data.errors import DataError

__all__ = [
    "SCHEMA_VERSION",
    "SUPPORTED_VERSIONS",
    "MIGRATIONS",
    "Report",
    "DataSection",
    "Benchmark",
    "Trade",
    "EquityPoint",
    "Series",
    "EventsSection",
    "OptimizationSection",
    "AuditSection",
    "to_jsonable",
    "iso_utc",
    "build_report",
    "migrate_report",
    "validate_report",
    "load_report_file",
    "write_report_file",
    "write_text_atomic",
    "report_json_schema",
]

SCHEMA_VERSION = "1.2"


# --------------------------------------------------------------------------- value helpers
def iso_utc(value: Any) -> str:
    """Canonical ISO 8601 UTC string (``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``) for a time value.

    Accepts ``datetime``, ``pd.Timestamp``, ``np.datetime64`` (taken as UTC, numpy has no zone),
    ``date`` and strings. Naive ``datetime`` objects and naive date-time strings raise
    ``ValueError``: a report never guesses a time zone.
    """
    if value is None:
        raise ValueError("timestamp is missing")
    type_name = type(value).__name__
    if type_name == "datetime64":  # numpy: always UTC-less; numpy stores UTC by convention
        import pandas as pd

        value = pd.Timestamp(value).tz_localize("UTC").to_pydatetime()
    if hasattr(value, "to_pydatetime") and not isinstance(value, datetime):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        dt = value
        if dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None:
            raise ValueError(f"naive timestamp {dt.isoformat()!r}: give it a time zone (UTC)")
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) == 10 and text[4] == "-" and text[7] == "-":
            dt = datetime.fromisoformat(text).replace(tzinfo=UTC)
        else:
            try:
                dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
            except ValueError as exc:
                raise ValueError(f"not an ISO 8601 timestamp: {value!r}") from exc
            if dt.tzinfo is None:
                raise ValueError(
                    f"naive timestamp {value!r}: write it in UTC with a trailing 'Z'"
                )
    else:
        raise ValueError(f"not a timestamp: {value!r} ({type_name})")
    dt = dt.astimezone(UTC)
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if dt.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return dt.strftime(fmt)


def to_jsonable(obj: Any) -> Any:
    """Convert a nested structure to plain JSON types.

    numpy scalars/arrays -> Python numbers/lists, NaN/inf/NaT/pd.NA -> ``None``, timestamps ->
    ISO UTC strings, DataFrames -> list of records, Series -> list, tuples/sets -> lists, Paths ->
    strings, pydantic models -> their JSON dict.
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, BaseModel):
        return to_jsonable(obj.model_dump(mode="json"))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, datetime | date):
        return iso_utc(obj)
    module = type(obj).__module__ or ""
    if module.startswith("pandas"):
        import pandas as pd

        if obj is pd.NaT or (obj is pd.NA):
            return None
        if isinstance(obj, pd.Timestamp):
            return iso_utc(obj)
        if isinstance(obj, pd.Timedelta):
            return str(obj)
        if isinstance(obj, pd.DataFrame):
            return [to_jsonable(r) for r in obj.to_dict(orient="records")]
        if isinstance(obj, pd.Series | pd.Index):
            return [to_jsonable(v) for v in obj.tolist()]
    if module.startswith("numpy"):
        import numpy as np

        if isinstance(obj, np.ndarray):
            return [to_jsonable(v) for v in obj.tolist()]
        if isinstance(obj, np.bool_):
            return bool(obj)
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            value = float(obj)
            return value if math.isfinite(value) else None
        if isinstance(obj, np.datetime64):
            return None if np.isnat(obj) else iso_utc(obj)
    if hasattr(obj, "isoformat"):
        return iso_utc(obj)
    if hasattr(obj, "item"):
        return to_jsonable(obj.item())
    return str(obj)


def _ts(value: Any) -> str:
    return iso_utc(value)


def _opt_ts(value: Any) -> str | None:
    if value is None:
        return None
    try:
        import pandas as pd

        if value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return iso_utc(value)


def _finite_or_none(value: Any) -> Any:
    if value is None:
        return None
    value = to_jsonable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


Timestamp = Annotated[str, BeforeValidator(_ts)]
OptTimestamp = Annotated[str | None, BeforeValidator(_opt_ts)]
Num = Annotated[float | None, BeforeValidator(_finite_or_none)]
MetricValue = Annotated[float | int | bool | str | None, BeforeValidator(_finite_or_none)]


# --------------------------------------------------------------------------- models
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSection(_Model):
    """The data a run saw: symbol, bar interval, window and dataset fingerprints."""

    symbol: str
    interval: str
    start: Timestamp
    end: Timestamp
    fingerprints: dict[str, str] = Field(default_factory=dict)
    sources: dict[str, Any] | list[Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> DataSection:
        if self.end < self.start:
            raise ValueError(f"data.end {self.end} is before data.start {self.start}")
        return self


class Benchmark(_Model):
    """The benchmark (buy-and-hold of the same symbol unless named otherwise) and its metrics."""

    name: str = "buy_and_hold"
    metrics: dict[str, MetricValue] = Field(default_factory=dict)


class Trade(BaseModel):
    """One closed trade. Extra columns written by a strategy are kept."""

    model_config = ConfigDict(extra="allow", frozen=True)

    trade_id: int | str | None = None
    signal_time: OptTimestamp = None
    entry_time: Timestamp
    entry_price: Num
    exit_time: OptTimestamp = None
    exit_price: Num = None
    size: Num = None
    entry_fee: Num = None
    exit_fee: Num = None
    pnl: Num = None
    return_pct: Num = None
    bars_held: int | None = None
    exit_reason: str | None = None
    mae: Num = None
    mfe: Num = None


class EquityPoint(BaseModel):
    """Portfolio value at a bar, and the buy-and-hold benchmark's value at the same bar."""

    model_config = ConfigDict(extra="allow", frozen=True)

    timestamp: Timestamp
    equity: Num
    benchmark: Num = None


class Series(BaseModel):
    """Column arrays for the charts (same length as ``timestamp``); extra columns allowed."""

    model_config = ConfigDict(extra="allow", frozen=True)

    timestamp: list[Timestamp] = Field(default_factory=list)
    open: list[Num] = Field(default_factory=list)
    high: list[Num] = Field(default_factory=list)
    low: list[Num] = Field(default_factory=list)
    close: list[Num] = Field(default_factory=list)
    fng: list[Num] = Field(default_factory=list)
    liq_long_usd: list[Num] = Field(default_factory=list)
    liq_short_usd: list[Num] = Field(default_factory=list)

    @model_validator(mode="after")
    def _same_length(self) -> Series:
        n = len(self.timestamp)
        columns = {
            name: getattr(self, name)
            for name in ("open", "high", "low", "close", "fng", "liq_long_usd", "liq_short_usd")
        }
        for name, values in (self.model_extra or {}).items():
            if not isinstance(values, list):
                raise ValueError(f"series.{name} must be a list (one value per timestamp)")
            columns[name] = values
        for name, values in columns.items():
            if values and len(values) != n:
                raise ValueError(
                    f"series.{name} has {len(values)} values but series.timestamp has {n}"
                )
        if any(b <= a for a, b in zip(self.timestamp, self.timestamp[1:], strict=False)):
            raise ValueError("series.timestamp must be strictly increasing")
        return self

    def column(self, name: str) -> list[Any]:
        """A column by name (declared or extra); empty list when absent."""
        if name in type(self).model_fields:
            return list(getattr(self, name))
        return list((self.model_extra or {}).get(name, []))


class PortfolioAsset(_Model):
    """One asset of a portfolio run (see ``flushback.backtests.run.breakdown``)."""

    symbol: str
    first_bar: OptTimestamp = None
    trades: int = Field(ge=0)
    win_rate: Num = None
    pnl: float
    contribution: float
    exposure: float = Field(ge=0, le=1)
    asset_return: Num = None


class PortfolioSection(_Model):
    """Per-asset contributions and the correlation of the assets' bar returns."""

    assets: list[PortfolioAsset]
    correlation: dict[str, dict[str, Num]] = Field(default_factory=dict)


class Report(_Model):
    """A run's report (``report.json``), schema version :data:`SCHEMA_VERSION`."""

    schema_version: Literal["1.2"] = "1.2"  # SCHEMA_VERSION
    flushback_version: str
    kind: Literal["backtest", "optimization"] = "backtest"
    run_id: str = Field(min_length=1)
    created_at: Timestamp
    spec_name: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    data: DataSection
    periods_per_year: int = Field(gt=0)
    metrics: dict[str, MetricValue] = Field(default_factory=dict)
    benchmark: Benchmark = Field(default_factory=Benchmark)
    trades: list[Trade] = Field(default_factory=list)
    equity: list[EquityPoint] = Field(default_factory=list)
    series: Series = Field(default_factory=Series)
    triggers: dict[str, list[Timestamp]] = Field(default_factory=dict)
    events: EventsSection | None = None
    optimization: OptimizationSection | None = None
    audit: AuditSection | None = None
    # flushback.backtests.run.warmup.warmup_report: the first bar at which every signal is valid
    warmup: dict[str, Any] | None = None
    # flushback.backtests.reports.long_series: equity and series kept in a file beside
    # report.json ({file, bars, sha256, ...}); null when they are inline
    long_series: dict[str, Any] | None = None
    # a portfolio run's assets (flushback.backtests.run.breakdown); None for one asset
    portfolio: PortfolioSection | None = None
    # what a reader must know about the run (a leverage whose liquidation distance its worst
    # excursion reached...); absent when there is nothing to say
    warnings: list[str] | None = None

    @field_validator("equity")
    @classmethod
    def _equity_sorted(cls, points: list[EquityPoint]) -> list[EquityPoint]:
        stamps = [p.timestamp for p in points]
        if any(b <= a for a, b in zip(stamps, stamps[1:], strict=False)):
            raise ValueError("equity timestamps must be strictly increasing")
        return points

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict (what ``report.json`` holds); ``portfolio`` only in a
        portfolio run's report, ``warnings`` only when there are some."""
        doc = self.model_dump(mode="json", exclude_none=False)
        for key in ("portfolio", "warnings"):  # written only when there is something
            if not doc.get(key):
                doc.pop(key, None)
        return to_jsonable(doc)

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False, ensure_ascii=False)

    # Convenience accessors for readers (HTML, compare) ---------------------------------
    def trades_frame(self):  # -> pd.DataFrame
        import pandas as pd

        rows = [t.model_dump(mode="json") for t in self.trades]
        frame = pd.DataFrame(rows)
        for col in ("signal_time", "entry_time", "exit_time"):
            if col in frame:
                frame[col] = pd.to_datetime(frame[col], utc=True)
        return frame

    def equity_frame(self):  # -> pd.DataFrame indexed by timestamp
        import pandas as pd

        rows = [p.model_dump(mode="json") for p in self.equity]
        frame = pd.DataFrame(rows, columns=None if rows else ["timestamp", "equity", "benchmark"])
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        frame = frame.set_index("timestamp")
        for col in frame.columns:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
        return frame

    def series_frame(self):  # -> pd.DataFrame indexed by timestamp
        import pandas as pd

        data = self.series.model_dump(mode="json")
        stamps = data.pop("timestamp")
        columns = {k: v for k, v in data.items() if isinstance(v, list) and len(v) == len(stamps)}
        frame = pd.DataFrame(columns, index=pd.DatetimeIndex(pd.to_datetime(stamps, utc=True)))
        frame.index.name = "timestamp"
        for col in frame.columns:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
        return frame


# --------------------------------------------------------------------------- migrations
def _migrate_0_9_to_1_0(doc: dict[str, Any]) -> dict[str, Any]:
    """0.9 -> 1.0: benchmark gets a name; equity's ``benchmark_equity`` becomes ``benchmark``;
    ``periods_per_year`` moves from ``config`` to the top level; empty ``series``/``triggers``."""
    out = dict(doc)
    bench_metrics = out.pop("benchmark_metrics", None) or {}
    out["benchmark"] = {"name": "buy_and_hold", "metrics": bench_metrics}
    equity = []
    for point in out.get("equity") or []:
        point = dict(point)
        if "benchmark_equity" in point:
            point["benchmark"] = point.pop("benchmark_equity")
        equity.append(point)
    out["equity"] = equity
    config = dict(out.get("config") or {})
    if "periods_per_year" not in out:
        if "periods_per_year" not in config:
            raise ValueError("a 0.9 report must record config.periods_per_year")
        out["periods_per_year"] = config.pop("periods_per_year")
    out["config"] = config
    out.setdefault("series", {})
    out.setdefault("triggers", {})
    out["schema_version"] = "1.0"
    return out


def _migrate_1_0_to_1_1(doc: dict[str, Any]) -> dict[str, Any]:
    """1.0 -> 1.1: ``warmup`` is new; a 1.0 run did not record it, so it is ``null``."""
    out = dict(doc)
    out["warmup"] = None
    out["schema_version"] = "1.1"
    return out


def _migrate_1_1_to_1_2(doc: dict[str, Any]) -> dict[str, Any]:
    """1.1 -> 1.2: the events/optimization/audit sections become typed; their content is
    unchanged (1.1 writers already wrote these layouts); the series of a 1.1 report are inline
    (``long_series`` null)."""
    out = dict(doc)
    out["long_series"] = None
    out["schema_version"] = "1.2"
    return out


#: version -> (function upgrading a document of that version to the next, next version)
MIGRATIONS: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], str]] = {
    "0.9": (_migrate_0_9_to_1_0, "1.0"),
    "1.0": (_migrate_1_0_to_1_1, "1.1"),
    "1.1": (_migrate_1_1_to_1_2, "1.2"),
}
SUPPORTED_VERSIONS: tuple[str, ...] = (*MIGRATIONS.keys(), SCHEMA_VERSION)


def migrate_report(doc: Mapping[str, Any], *, file: str | None = None) -> dict[str, Any]:
    """Upgrade a report document to :data:`SCHEMA_VERSION` by chaining :data:`MIGRATIONS`."""
    if not isinstance(doc, Mapping):
        raise DataError(
            f"a report must be a JSON object, got {type(doc).__name__}",
            file=file,
            hint="is this a flushback report.json?",
        )
    out = dict(doc)
    version = out.get("schema_version")
    if version is None:
        raise DataError(
            "report has no schema_version",
            file=file,
            hint="is this a flushback report.json?",
        )
    version = str(version)
    steps = 0
    while version != SCHEMA_VERSION:
        if version not in MIGRATIONS:
            newer = _version_tuple(version) > _version_tuple(SCHEMA_VERSION)
            raise DataError(
                f"report schema_version {version!r} is "
                + ("newer than this flushback reads" if newer else "unknown")
                + f" (supported: {', '.join(SUPPORTED_VERSIONS)})",
                file=file,
                hint="upgrade flushback" if newer else "re-run the backtest to write a new report",
            )
        func, version = MIGRATIONS[version]
        try:
            out = func(out)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"cannot migrate report to schema {version}: {exc}", file=file
            ) from exc
        steps += 1
        if steps > 50:  # pragma: no cover - a cycle in MIGRATIONS
            raise RuntimeError("report migrations do not terminate")
    return out


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (0,)


# --------------------------------------------------------------------------- API
def _describe(exc: ValidationError, limit: int = 5) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(document)"
        parts.append(f"{loc}: {err['msg']}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)


def validate_report(doc: Mapping[str, Any], *, file: str | Path | None = None) -> Report:
    """Migrate (if older) and validate a report document; raise DataError naming each problem."""
    fname = None if file is None else str(file)
    migrated = migrate_report(to_jsonable(doc) if isinstance(doc, Mapping) else doc, file=fname)
    try:
        return Report.model_validate(migrated)
    except ValidationError as exc:
        raise DataError(
            f"invalid report (schema {SCHEMA_VERSION}): {_describe(exc)}",
            file=fname,
            hint="see flushback.backtests.reports.schema for the fields a report must hold",
        ) from None


def load_report_file(path: str | Path) -> Report:
    """Read ``report.json`` (a file, or a run folder holding one) and validate it."""
    p = Path(path)
    if p.is_dir():
        p = p / "report.json"
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(
            "report not found", file=str(p), hint="give a run folder or a report.json path"
        ) from None
    except OSError as exc:
        raise DataError(f"cannot read report: {exc}", file=str(p)) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"report is not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}",
            file=str(p),
            hint="the file is damaged; re-run the backtest",
        ) from None
    if isinstance(doc, dict):
        from flushback.backtests.reports.long_series import join

        doc = join(doc, p.parent)
    return validate_report(doc, file=p)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (temp file in the same folder, fsync,
    rename; usual permissions). Returns the path."""
    from flushback.data.errors import StoreError
    from flushback.data.store import atomic_write_bytes

    try:
        return atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as exc:  # a full disk or a read-only folder: one typed line, not a traceback
        raise StoreError(f"cannot write {Path(path).name} ({len(text.encode('utf-8')):,} bytes):"
                         f" {exc.strerror or exc}", file=str(path),
                         hint="free disk space or choose a writable folder") from None


def write_report_file(report: Report | Mapping[str, Any], path: str | Path) -> Path:
    """Validate and write ``report.json`` atomically (temp file + rename); a report with many
    bars keeps its equity and series in ``bars.parquet`` beside it (written first,
    atomically). Returns the path of report.json."""
    from flushback.backtests.reports.long_series import split

    model = report if isinstance(report, Report) else validate_report(report)
    doc, sidecar = split(model.to_dict())
    if sidecar is not None:
        from flushback.data.errors import StoreError
        from flushback.data.store import atomic_write_bytes

        target = Path(path).parent / doc["long_series"]["file"]
        try:
            atomic_write_bytes(target, sidecar)
        except OSError as exc:
            raise StoreError(f"cannot write {target.name} ({len(sidecar):,} bytes): "
                             f"{exc.strerror or exc}", file=str(target),
                             hint="free disk space or choose a writable folder") from None
    text = json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False)
    return write_text_atomic(path, text + "\n")


def _records(obj: Any) -> Any:
    """DataFrame -> list of records (the index becomes a column when it is named)."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        return obj
    if isinstance(obj, pd.DataFrame):
        frame = obj
        if frame.index.name is not None and frame.index.name not in frame.columns:
            frame = frame.reset_index()
        return to_jsonable(frame)
    return obj


def series_from_frame(frame: Any, columns: tuple[str, ...] | None = None) -> dict[str, list]:
    """The ``series`` section from an assembled frame (index = bar open time, UTC)."""
    wanted = columns or (
        "open", "high", "low", "close", "fng", "liq_long_usd", "liq_short_usd"
    )
    out: dict[str, list] = {"timestamp": [iso_utc(t) for t in frame.index]}
    for col in wanted:
        if col in frame.columns:
            out[col] = to_jsonable(frame[col].astype("float64"))
    return out


def equity_from_frame(equity: Any) -> list[dict[str, Any]]:
    """The ``equity`` section from a DataFrame indexed by timestamp with ``equity`` and
    ``benchmark_equity`` (or ``benchmark``) columns."""
    cols = list(equity.columns)
    bench = "benchmark_equity" if "benchmark_equity" in cols else "benchmark"
    out = []
    for ts, eq, bm in zip(
        equity.index,
        equity["equity"].tolist(),
        equity[bench].tolist() if bench in cols else [None] * len(equity),
        strict=True,
    ):
        out.append(
            {"timestamp": iso_utc(ts), "equity": to_jsonable(eq), "benchmark": to_jsonable(bm)}
        )
    return out


def triggers_from_frame(signals: Any) -> dict[str, list[str]]:
    """``triggers`` from a DataFrame of signal columns: timestamps where a bool column is True
    (float strength columns are skipped)."""
    out: dict[str, list[str]] = {}
    for col in signals.columns:
        s = signals[col]
        if str(s.dtype) in ("bool", "boolean"):
            out[str(col)] = [iso_utc(t) for t in s.index[s.fillna(False).astype(bool)]]
    return out


def build_report(
    *,
    run_id: str,
    data: Mapping[str, Any],
    periods_per_year: int,
    metrics: Mapping[str, Any],
    benchmark: Mapping[str, Any] | None = None,
    trades: Any = (),
    equity: Any = (),
    series: Any = None,
    triggers: Any = None,
    config: Mapping[str, Any] | None = None,
    spec_name: str | None = None,
    kind: str = "backtest",
    created_at: Any = None,
    flushback_version: str | None = None,
    events: Mapping[str, Any] | None = None,
    optimization: Mapping[str, Any] | None = None,
    audit: Mapping[str, Any] | None = None,
    warmup: Mapping[str, Any] | None = None,
    portfolio: Mapping[str, Any] | None = None,
    warnings: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Assemble, validate and return a JSON-ready report dict (schema :data:`SCHEMA_VERSION`).

    ``trades`` may be a DataFrame (one row per closed trade) or records; ``equity`` a DataFrame
    indexed by timestamp with ``equity`` and ``benchmark_equity`` columns, or records;
    ``series`` an assembled frame (DataFrame) or a dict of columns; ``triggers`` a DataFrame of
    signal columns or a dict name -> timestamps.
    """
    import pandas as pd

    if flushback_version is None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            flushback_version = version("flushback")
        except PackageNotFoundError:  # pragma: no cover
            flushback_version = "0+unknown"
    if isinstance(equity, pd.DataFrame):
        equity = equity_from_frame(equity)
    if isinstance(series, pd.DataFrame):
        series = series_from_frame(series)
    if isinstance(triggers, pd.DataFrame):
        triggers = triggers_from_frame(triggers)
    doc = {
        "schema_version": SCHEMA_VERSION,
        "flushback_version": flushback_version,
        "kind": kind,
        "run_id": run_id,
        "created_at": created_at if created_at is not None else datetime.now(UTC),
        "spec_name": spec_name,
        "config": dict(config or {}),
        "data": dict(data),
        "periods_per_year": periods_per_year,
        "metrics": dict(metrics),
        "benchmark": dict(benchmark or {}),
        "trades": _records(trades),
        "equity": list(equity),
        "series": dict(series or {}),
        "triggers": dict(triggers or {}),
        "events": None if events is None else dict(events),
        "optimization": None if optimization is None else dict(optimization),
        "audit": None if audit is None else dict(audit),
        "warmup": None if warmup is None else dict(warmup),
    }
    if portfolio is not None:
        doc["portfolio"] = dict(portfolio)
    if warnings:
        doc["warnings"] = list(warnings)
    return validate_report(doc).to_dict()


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema of the current report version (for docs and external tools)."""
    return Report.model_json_schema(mode="serialization")
