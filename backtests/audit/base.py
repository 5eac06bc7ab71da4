"""What the bias checks of ``flushback audit`` work on and return: the :class:`Pipeline` and
signal-like interfaces, :class:`Finding` / :class:`CheckResult`, and the column comparisons the
checks share (:func:`compare_columns`, :func:`relative_difference`).

The checks (:mod:`~flushback.backtests.audit.lookahead`, :mod:`~flushback.backtests.audit.warmup`,
:mod:`~flushback.backtests.audit.external_timing`) are written over these small interfaces.

The checks never import the runner, backtrader or the data layer's loaders (only its pure
interval helpers, :mod:`flushback.data.intervals`): they work on a
:class:`Pipeline` (anything that recomputes frame, signal columns and trades from the raw inputs
as they were known at a given bar close) and on signal-like objects (``compute(frame)``,
``warmup_for(interval)``, ``tolerance``). :mod:`flushback.backtests.audit.run` wires them to a
spec, the data layer and the runner; the tests drive the same functions with planted biases.

Time conventions (DESIGN.md, "Time"): bars are indexed by their OPEN time, a bar's values are
known at its close (open + interval), and an order decided at the close of bar ``s`` fills at the
open of bar ``s + 1``. So the data a fill at bar ``e`` may depend on is exactly the bars up to
``e - 1`` and the external rows with ``known_at <= close(e - 1) = open(e)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from flushback.backtests.run.timefmt import iso_z

PASS = "pass"
FAIL = "fail"
SKIP = "skip"


@dataclass(frozen=True)
class PipelineOutput:
    """What one (possibly truncated) pipeline run produced.

    ``frame``: the assembled frame (index = bar open times). ``signals``: signal/indicator
    columns on the same index. ``trades``: one row per trade with at least ``entry_time``,
    ``entry_price``, ``exit_time``, ``exit_price`` (a position still open at the end of the data
    has ``exit_time`` NaT, not an artificial end-of-data exit), or None when trades were not
    requested. ``known_at`` / ``period_end``: per external column, the known_at / period end of
    the value used at each bar (optional). ``equity``: per bar account state (e.g. ``equity``,
    ``cash``, ``position``; optional) -- compared bar by bar, it pins every fill, including
    scale-ins whose average entry price legitimately changes after the cut.
    """

    frame: pd.DataFrame
    signals: pd.DataFrame
    trades: pd.DataFrame | None = None
    known_at: pd.DataFrame | None = None
    period_end: pd.DataFrame | None = None
    equity: pd.DataFrame | None = None


@runtime_checkable
class Pipeline(Protocol):
    """Recomputes the whole strategy from raw inputs known at a given moment.

    ``run(until)`` must truncate the RAW inputs before anything is derived from them: the bars
    whose open time is ``<= until`` and the external rows whose ``known_at`` is ``<= until +
    interval`` (the close of bar ``until``); then assemble, compute signals and (when
    ``trades``) run the backtest. ``until=None`` means all data.

    ``open_only=True``: the data as known at the OPEN of bar ``until`` (the moment an order
    decided at the previous close fills): the last bar keeps its open only (high = low = close =
    open, volume 0) and its external values are those known at its open (the previous bar's).
    """

    @property
    def index(self) -> pd.DatetimeIndex: ...

    @property
    def interval(self) -> pd.Timedelta: ...

    def run(self, until: pd.Timestamp | None = None, *, trades: bool = True,
            open_only: bool = False) -> PipelineOutput: ...


@runtime_checkable
class SignalLike(Protocol):
    tolerance: float

    def warmup_for(self, interval: pd.Timedelta) -> int: ...

    def compute(self, frame: pd.DataFrame) -> pd.Series: ...


@dataclass
class Finding:
    """One piece of evidence of bias: where (bar, column), what (both values), found how."""

    kind: str
    message: str
    bar: pd.Timestamp | None = None
    column: str | None = None
    full: Any = None
    truncated: Any = None
    cut: pd.Timestamp | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "bar": iso_z(self.bar),
            "column": self.column,
            "full": plain(self.full),
            "truncated": plain(self.truncated),
            "cut": iso_z(self.cut),
        }


@dataclass
class CheckResult:
    """A check's verdict, a one-line summary, table rows and the findings behind a failure."""

    name: str
    title: str
    verdict: str
    summary: str
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict != FAIL

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "verdict": self.verdict,
            "summary": self.summary,
            "params": {k: plain(v) for k, v in self.params.items()},
            "columns": list(self.columns),
            "rows": [{k: plain(v) for k, v in row.items()} for row in self.rows],
            "findings": [f.to_dict() for f in self.findings],
        }


def plain(value: Any) -> Any:
    """JSON-friendly scalar: numpy -> python, NaN/inf -> None, timestamps -> ISO UTC."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, pd.Timestamp | np.datetime64):
        return iso_z(value)
    if isinstance(value, pd.Timedelta):
        return value.total_seconds() / 3600.0
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series)


def _differs(a: pd.Series, b: pd.Series, rtol: float, atol: float) -> np.ndarray:
    """Element-wise "not the same value" (both missing counts as the same)."""
    if _is_numeric(a) and _is_numeric(b):
        x = a.astype("float64").to_numpy()
        y = b.astype("float64").to_numpy()
        both_nan = np.isnan(x) & np.isnan(y)
        with np.errstate(invalid="ignore"):
            close = np.isclose(x, y, rtol=rtol, atol=atol)
        return ~(close | both_nan)
    xa = a.astype(object).to_numpy()
    ya = b.astype(object).to_numpy()
    na_x = pd.isna(a).to_numpy()
    na_y = pd.isna(b).to_numpy()
    same = (xa == ya) | (na_x & na_y)
    return ~same.astype(bool)


def compare_columns(
    full: pd.DataFrame,
    truncated: pd.DataFrame,
    index: pd.DatetimeIndex,
    *,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    columns: Iterable[str] | None = None,
) -> list[tuple[str, pd.Timestamp, Any, Any, int]]:
    """Columns whose values differ on ``index`` between two runs.

    Returns ``(column, first differing bar, full value, truncated value, number of differing
    bars)`` per differing column. A column missing from ``truncated`` differs everywhere.
    """
    out: list[tuple[str, pd.Timestamp, Any, Any, int]] = []
    n = len(index)
    full_aligned = full.index[:n].equals(index)
    trunc_aligned = truncated.index.equals(index)
    for col in columns if columns is not None else full.columns:
        a = full[col].iloc[:n] if full_aligned else full[col].reindex(index)
        if col not in truncated.columns:
            b = pd.Series(np.nan, index=index, dtype="float64")
        else:
            b = truncated[col] if trunc_aligned else truncated[col].reindex(index)
        mask = _differs(a, b, rtol, atol)
        if mask.any():
            pos = int(np.argmax(mask))
            out.append((str(col), index[pos], a.iloc[pos], b.iloc[pos], int(mask.sum())))
    return out


def relative_difference(full: Any, other: Any, *, floor: float = 1e-12) -> float:
    """|other - full| / max(|full|, floor); booleans compare as 0/1; NaN vs NaN is 0,
    NaN vs a number is infinite."""
    def _f(v: Any) -> float:
        if v is None:
            return math.nan
        try:
            if pd.isna(v):
                return math.nan
        except (TypeError, ValueError):
            pass
        return float(v)

    x, y = _f(full), _f(other)
    if math.isnan(x) and math.isnan(y):
        return 0.0
    if math.isnan(x) or math.isnan(y):
        return math.inf
    return abs(y - x) / max(abs(x), floor)
