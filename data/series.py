"""User series: the user's own timestamped values, joined onto bars by the time rule.

Any CSV with a time column and a numeric column (an on-chain metric, ETF flows, another
sentiment index) becomes a float column of the assembled frame once it is declared with a
``name``, the ``interval`` each row describes and a ``publication_lag``:

- a row stamped ``T`` describes ``[T, T + interval)`` (``label = "start"``, the default, as bars
  and exchange buckets are stamped) or ``(T - interval, T]`` (``label = "end"``, as a daily
  index published "as of" a date is);
- it becomes known at ``known_at = period_end + publication_lag`` and is joined onto the bars
  as of ``known_at <= bar close``, like every other external (DESIGN.md, "Time");
- a source finer than the bars is combined per bar (``aggregate``: ``last`` for levels, ``sum``
  for flows, ``mean`` for rates), known when its last row is.

A series is declared either in the store (``flushback data import FILE --as NAME --interval 1d
--lag 12h``), in a data folder (``series/NAME.csv`` beside ``series/NAME.toml`` holding the
same keys), or inline in a spec (``[data.series.NAME]`` with ``path``). Its dataset id is
``series/NAME``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flushback.data.datasets import (
    BAR_COLUMNS,
    EXTERNAL_KINDS,
    DatasetInfo,
    DatasetSpec,
    fingerprint,
    register_user_spec,
    spec_for,
)
from flushback.data.errors import ConfigError, DataError
from flushback.data.intervals import (
    INTERVALS,
    fmt_td,
    nonnegative_duration,
)

__all__ = ["SeriesDef", "declaration", "join_series", "parse_series", "register_declaration",
           "series_def", "spec_from_sidecar"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_RESERVED = set(BAR_COLUMNS) | {c for cols in EXTERNAL_KINDS.values() for c in cols} | {
    "filled", "quality_flag", "known_at", "period_end", "value"}
_KEYS = ("path", "interval", "lag", "column", "label", "aggregate", "units", "max_staleness")


@dataclass(frozen=True)
class SeriesDef:
    """The declaration of one user series (see the module docstring)."""

    name: str
    interval: str = "1d"
    lag: str = "0h"
    column: str = ""
    label: str = "start"
    aggregate: str = "last"
    units: str = ""
    path: str | None = None
    max_staleness: str | None = None

    def __post_init__(self) -> None:
        where = f"series {self.name!r}"
        if not _NAME.match(self.name):
            raise ConfigError(f"{where}: the name must be a lower-case identifier",
                              hint="e.g. etf_flows, mvrv, sopr_7d (letters, digits, _)")
        if self.name in _RESERVED:
            raise ConfigError(f"{where}: the name is taken by a built-in column",
                              hint=f"choose a name other than {', '.join(sorted(_RESERVED))}")
        if self.interval not in INTERVALS:
            raise ConfigError(f"{where}: unknown interval {self.interval!r}",
                              hint=f"use one of {', '.join(INTERVALS)}")
        for key, allowed in (("label", ("start", "end")),
                             ("aggregate", ("last", "sum", "mean"))):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{where}: {key} = {getattr(self, key)!r}",
                                  hint=f"use one of {', '.join(allowed)}")
        for key in ("lag", "max_staleness"):
            if getattr(self, key) is not None:
                nonnegative_duration(getattr(self, key), f"{where}: {key}")

    @property
    def id(self) -> str:
        return f"series/{self.name}"

    def to_spec(self) -> DatasetSpec:
        return DatasetSpec(
            self.id, "series", "user", "", self.interval, "series",
            publication_lag=pd.Timedelta(self.lag),
            max_staleness=None if self.max_staleness is None else pd.Timedelta(
                self.max_staleness),
            units=self.units, notes=f"user series; rows stamped at the period {self.label}",
            column=self.column, label=self.label, aggregate=self.aggregate,
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("name", *_KEYS) if getattr(self, k) is not None}


def series_def(name: str, definition: Any, *, base: Path | None = None) -> SeriesDef:
    """A :class:`SeriesDef` from a spec's ``[data.series.NAME]`` table (or an instance)."""
    if isinstance(definition, SeriesDef):
        return definition
    if not isinstance(definition, Mapping):
        raise ConfigError(f"data.series.{name} must be a table or a stored series name",
                          hint="e.g. [data.series.etf_flows] path = 'etf.csv', interval = '1d'")
    unknown = sorted(set(definition) - set(_KEYS))
    if unknown:
        raise ConfigError(f"data.series.{name}: unknown key(s) {unknown}",
                          hint=f"keys: {', '.join(_KEYS)}")
    values = {k: (str(v) if k != "path" else v) for k, v in definition.items()}
    path = values.get("path")
    if path is not None and base is not None and not Path(path).is_absolute():
        values["path"] = str(base / path)
    return SeriesDef(name=name, **values)


def spec_from_sidecar(csv_path: Path) -> DatasetSpec | None:
    """A data folder's ``series/NAME.csv`` is declared by ``series/NAME.toml`` beside it."""
    side = csv_path.with_suffix(".toml")
    if not side.is_file():
        return None
    try:
        table = tomllib.loads(side.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"unreadable series declaration ({exc})", file=str(side),
                        hint="write interval = '1d', lag = '0h' (and column, label)") from None
    table.pop("path", None)
    try:
        sdef = series_def(csv_path.stem, table)
    except ConfigError as exc:
        raise DataError(exc.message, file=str(side), hint=exc.hint) from None
    return register_user_spec(sdef.to_spec())


def parse_series(df: pd.DataFrame, spec: DatasetSpec, *, file: str,
                 assume_utc: bool = False, **_: Any) -> pd.DataFrame:
    """A user series file: a time column plus the value column (``spec.column``, or the only
    other column) -> ``value``, ``period_end``, ``known_at``."""
    from flushback.data.parsers import _lower_columns, _read_table, _timestamp_column, add_known_at

    low = _lower_columns(df)
    ts = _timestamp_column(low, file)
    column = spec.column.strip().lower().replace(" ", "_") if spec.column else ""
    if not column:
        others = [c for c in low.columns if c != ts]
        if len(others) != 1:
            raise DataError(
                f"the file has {len(others)} value columns {others}; which one is the series?",
                file=file, column=others[0] if others else None,
                hint="name it with --column (or column = '...' in the declaration)")
        column = others[0]
    _, out = _read_table(low, file, {"value": column}, assume_utc=assume_utc)
    return add_known_at(out, spec.period, spec.publication_lag,
                        label_is_end=spec.label == "end")


def _read(repo: Any, name: str, definition: Any,
          as_of: pd.Timestamp | None) -> tuple[DatasetSpec, pd.DataFrame, DatasetInfo]:
    from flushback.data.assemble import make_info
    from flushback.data.parsers import parse_file
    from flushback.data.validate import validate_dataset

    if isinstance(definition, str) or definition is None:
        did = f"series/{definition or name}"
        if not repo.has(did):
            raise DataError(
                f"user series {did.split('/', 1)[1]!r} not found", file=repo.location,
                hint=f"import it with `flushback data import FILE --as {name} --interval 1d "
                "--lag 0h`, or declare it in the spec with a path",
            )
        frame, info = repo.read(did)
        return spec_for(did), frame, info
    sdef = series_def(name, definition)
    if sdef.path is None:
        return _read(repo, name, sdef.name, as_of)
    spec = register_user_spec(sdef.to_spec())
    frame = parse_file(sdef.path, spec)
    validate_dataset(frame, spec, file=sdef.path)
    info = make_info(spec, frame, fingerprint(frame), str(sdef.path))
    if as_of is not None:  # the repository cuts stored series; a file named inline is cut here
        frame = frame.loc[pd.to_datetime(frame["known_at"], utc=True) <= as_of]
    return spec, frame, info


def join_series(repo: Any, name: str, definition: Any, bar_open: pd.DatetimeIndex,
                bar_iv: pd.Timedelta, *, max_staleness: Any = None, as_of: Any = None,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, DatasetInfo, dict[str, Any]]:
    """One user series on the bars: (values, known_at ns, period_end ns, info, provenance)."""
    from flushback.data.assemble import _staleness_for, _utc
    from flushback.data.frames import asof_join, conform_external, splice_externals

    spec, frame, info = _read(repo, name, definition, _utc(as_of, "as_of"))
    stale = _staleness_for(name, spec, max_staleness)
    part = conform_external(frame, spec, bar_iv, aggregation={"value": spec.aggregate})
    joined = splice_externals([(spec, part)], {spec.id: stale})
    vals, known, pend = asof_join(bar_open, bar_iv, joined, ["value"])
    n = int(np.isfinite(vals["value"]).sum())
    prov = {
        "kind": "series", "columns": [name], "source": "user",
        "datasets": [{"id": spec.id, "source": "user", "venue": "", "interval": spec.interval,
                      "units": spec.units, "available": True,
                      "covers": None if info.first is None else [
                          info.first.strftime("%Y-%m-%dT%H:%M:%SZ"),
                          info.last.strftime("%Y-%m-%dT%H:%M:%SZ") if info.last else None],
                      "bars": n, "publication_lag": fmt_td(spec.publication_lag),
                      "label": spec.label, "location": info.location}],
        "bars_with_value": n, "note": None if n else "no value known on any bar",
    }
    return vals["value"], known, pend, info, prov


def declaration(spec: DatasetSpec) -> dict[str, Any]:
    """What the store keeps of a series' spec (so a later process knows how to join it)."""
    return {
        "name": spec.id.split("/", 1)[1], "interval": spec.interval,
        "lag": fmt_td(spec.publication_lag), "column": spec.column, "label": spec.label,
        "aggregate": spec.aggregate, "units": spec.units,
        **({"max_staleness": fmt_td(spec.max_staleness)}
           if spec.max_staleness is not None else {}),
    }


def register_declaration(decl: Mapping[str, Any]) -> DatasetSpec:
    """Register a stored series' declaration (the inverse of :func:`declaration`)."""
    values = {k: v for k, v in decl.items() if k in ("name", *_KEYS) and k != "path"}
    return register_user_spec(SeriesDef(**values).to_spec())
