"""The catalog of historical liquidation flushes: loader and validation.

The catalog is a versioned data file, ``flush_events.toml``, shipped next to this module (package
data of ``flushback.data``). Each event has an id, a name, a UTC window (``start`` .. ``end``) and
facts (liquidations, long share, Fear & Greed, BTC low...), every fact with its source named.

Time rule: ``start`` is the event's anchor day. A flush dated D is known at the close of the daily
bar D, so anything that trades on it (the event study, a strategy) acts at the open of D + 1.

Nothing here looks forward: the catalog is a list of dates and reported facts. Event outcomes
(forward returns) are computed by the event study in ``backtests/events/study.py``.

Errors: a malformed catalog raises :class:`~flushback.data.errors.DataError` naming the file, the
event and the key, with a did-you-mean for unknown keys.
"""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from flushback.data.errors import DataError
from flushback.data.suggest import closest

__all__ = [
    "FACT_KINDS",
    "CATALOG_PATH",
    "Fact",
    "FlushEvent",
    "FlushCatalog",
    "load_catalog",
]

CATALOG_PATH = Path(__file__).with_name("flush_events.toml")

#: fact kind -> (unit, allowed closed range)
FACT_KINDS: dict[str, tuple[str, float, float]] = {
    "fng": ("index 0-100", 0.0, 100.0),
    "btc_low_usd": ("USD", 0.0, math.inf),
    "btc_price_usd": ("USD", 0.0, math.inf),
    "liq_24h_usd": ("USD", 0.0, math.inf),
    "liq_1h_usd": ("USD", 0.0, math.inf),
    "liq_long_usd": ("USD", 0.0, math.inf),
    "liq_short_usd": ("USD", 0.0, math.inf),
    "liq_reported_usd": ("USD", 0.0, math.inf),
    "long_share": ("fraction", 0.0, 1.0),
    "long_share_1h": ("fraction", 0.0, 1.0),
}
SOURCE_TYPES = ("data_file", "article", "public")
QUALIFIERS = ("exact", "approx", "more_than", "less_than")

_EVENT_KEYS = {"id", "name", "start", "end", "tags", "summary", "facts"}
_EVENT_REQUIRED = {"id", "name", "start"}
_FACT_KEYS = {
    "kind", "value", "on", "scope", "source_type", "source", "published", "qualifier", "note",
}
_FACT_REQUIRED = {"kind", "value", "on", "scope", "source_type", "source"}


@dataclass(frozen=True)
class Fact:
    """One reported quantity about an event, with its source."""

    kind: str
    value: float
    on: dt.date
    scope: str
    source_type: str
    source: str
    published: dt.date | None = None
    qualifier: str = "exact"
    note: str | None = None

    @property
    def unit(self) -> str:
        return FACT_KINDS[self.kind][0]

    def cite(self) -> str:
        """A short citation: the outlet and date, or the data file."""
        if self.source_type == "article":
            return f"{self.source}, {self.published.isoformat() if self.published else '?'}"
        if self.source_type == "data_file":
            return f"data file {self.source}"
        return self.source

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "on": self.on.isoformat(),
            "scope": self.scope,
            "source_type": self.source_type,
            "source": self.source,
            "published": None if self.published is None else self.published.isoformat(),
            "qualifier": self.qualifier,
            "note": self.note,
        }


@dataclass(frozen=True)
class FlushEvent:
    """A historical flush: anchor day ``start`` (UTC), window end ``end``, sourced facts."""

    id: str
    name: str
    start: dt.date
    end: dt.date
    tags: tuple[str, ...] = ()
    summary: str = ""
    facts: tuple[Fact, ...] = field(default_factory=tuple)

    @property
    def anchor(self) -> pd.Timestamp:
        """The anchor bar's open time (UTC midnight of ``start``)."""
        return pd.Timestamp(self.start, tz="UTC")

    @property
    def window(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """(start 00:00 UTC, end 00:00 UTC) as bar-open timestamps of the first/last day."""
        return pd.Timestamp(self.start, tz="UTC"), pd.Timestamp(self.end, tz="UTC")

    def facts_of(self, kind: str) -> list[Fact]:
        return [f for f in self.facts if f.kind == kind]

    def headline(self, kind: str) -> Fact | None:
        """The fact of ``kind`` to show in a one-line summary.

        Prefers market-wide article figures for liquidations (largest value), the lowest F&G and
        the lowest BTC low.
        """
        facts = self.facts_of(kind)
        if not facts:
            return None
        if kind in ("fng", "btc_low_usd"):
            return min(facts, key=lambda f: f.value)
        return max(facts, key=lambda f: f.value)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "tags": list(self.tags),
            "summary": self.summary,
            "facts": [f.as_dict() for f in self.facts],
        }


@dataclass(frozen=True)
class FlushCatalog:
    """The validated catalog: events sorted by anchor day."""

    version: str
    events: tuple[FlushEvent, ...]
    path: Path | None = None

    def __iter__(self) -> Iterator[FlushEvent]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def get(self, event_id: str) -> FlushEvent:
        for ev in self.events:
            if ev.id == event_id:
                return ev
        raise DataError(
            f"no event with id {event_id!r} in the flush catalog",
            file=None if self.path is None else str(self.path),
            hint=_did_you_mean(event_id, [e.id for e in self.events])
            or "see `flushback events list`",
        )

    def between(self, start: Any = None, end: Any = None) -> FlushCatalog:
        """Events whose anchor day lies in [start, end] (inclusive; None = open)."""
        lo = None if start is None else pd.Timestamp(start).date()
        hi = None if end is None else pd.Timestamp(end).date()
        keep = tuple(
            e for e in self.events
            if (lo is None or e.start >= lo) and (hi is None or e.start <= hi)
        )
        return FlushCatalog(self.version, keep, self.path)

    def anchors(self) -> pd.DatetimeIndex:
        """Anchor bar-open times (UTC), one per event, sorted."""
        return pd.DatetimeIndex([e.anchor for e in self.events], name="timestamp")


def _did_you_mean(word: str, choices: Any) -> str | None:
    close = closest(word, choices)
    return f"did you mean {close!r}?" if close is not None else None


def _as_date(value: Any, *, file: str, where: str, key: str) -> dt.date:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None and value.utcoffset() != dt.timedelta(0):
            raise DataError(
                f"{where}: {key} = {value.isoformat()} is not in UTC",
                file=file,
                hint="write UTC calendar dates as YYYY-MM-DD",
            )
        return value.date()
    if isinstance(value, dt.date):
        return value
    raise DataError(
        f"{where}: {key} must be a TOML date (YYYY-MM-DD, UTC), got {value!r}",
        file=file,
        hint="write dates unquoted, e.g. start = 2026-02-05",
    )


def _check_keys(
    table: Mapping[str, Any], allowed: set[str], required: set[str], *, file: str, where: str
) -> None:
    for key in table:
        if key not in allowed:
            hint = _did_you_mean(key, sorted(allowed)) or (
                f"allowed keys: {', '.join(sorted(allowed))}"
            )
            raise DataError(f"{where}: unknown key {key!r}", file=file, hint=hint)
    missing = sorted(required - set(table))
    if missing:
        raise DataError(
            f"{where}: missing required key(s) {', '.join(missing)}",
            file=file,
            hint="every event needs id, name and start; every fact kind, value, on, scope, "
            "source_type and source",
        )


def _parse_fact(raw: Any, *, file: str, where: str) -> Fact:
    if not isinstance(raw, Mapping):
        raise DataError(f"{where}: a fact must be a table ([[events.facts]])", file=file)
    _check_keys(raw, _FACT_KEYS, _FACT_REQUIRED, file=file, where=where)
    kind = raw["kind"]
    if kind not in FACT_KINDS:
        raise DataError(
            f"{where}: unknown fact kind {kind!r}",
            file=file,
            hint=_did_you_mean(kind, FACT_KINDS) or f"kinds: {', '.join(FACT_KINDS)}",
        )
    value = raw["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(f"{where}: value must be a finite number, got {value!r}", file=file)
    unit, lo, hi = FACT_KINDS[kind]
    if not (lo <= float(value) <= hi):
        raise DataError(
            f"{where}: {kind} = {value} is outside its range [{lo}, {hi}] ({unit})",
            file=file,
            hint="shares are fractions (0.82, not 82); USD amounts are plain dollars",
        )
    source_type = raw["source_type"]
    if source_type not in SOURCE_TYPES:
        raise DataError(
            f"{where}: source_type {source_type!r} is not one of {', '.join(SOURCE_TYPES)}",
            file=file,
            hint=_did_you_mean(source_type, SOURCE_TYPES),
        )
    source = str(raw["source"]).strip()
    if not source:
        raise DataError(f"{where}: source is empty; every fact names its source", file=file)
    published = None
    if "published" in raw:
        published = _as_date(raw["published"], file=file, where=where, key="published")
    if source_type == "article" and published is None:
        raise DataError(
            f"{where}: an article fact needs its publication date",
            file=file,
            hint="add published = YYYY-MM-DD",
        )
    qualifier = raw.get("qualifier", "exact")
    if qualifier not in QUALIFIERS:
        raise DataError(
            f"{where}: qualifier {qualifier!r} is not one of {', '.join(QUALIFIERS)}",
            file=file,
            hint=_did_you_mean(qualifier, QUALIFIERS),
        )
    return Fact(
        kind=kind,
        value=float(value) if isinstance(value, float) else int(value),
        on=_as_date(raw["on"], file=file, where=where, key="on"),
        scope=str(raw["scope"]),
        source_type=source_type,
        source=source,
        published=published,
        qualifier=qualifier,
        note=None if raw.get("note") is None else str(raw["note"]),
    )


def parse_catalog(doc: Mapping[str, Any], *, file: str = "<catalog>") -> FlushCatalog:
    """Validate a parsed TOML document and build the catalog."""
    for key in doc:
        if key not in ("version", "events"):
            raise DataError(
                f"unknown top-level key {key!r}",
                file=file,
                hint=_did_you_mean(key, ["version", "events"]) or "allowed: version, events",
            )
    version = doc.get("version")
    if not isinstance(version, str) or not version:
        raise DataError("missing or empty 'version'", file=file, hint='add version = "1.0.0"')
    raw_events = doc.get("events")
    if not isinstance(raw_events, list) or not raw_events:
        raise DataError("the catalog holds no events", file=file, hint="add [[events]] tables")
    events: list[FlushEvent] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_events):
        where = f"event #{i + 1}"
        if not isinstance(raw, Mapping):
            raise DataError(f"{where} is not a table", file=file)
        if "id" in raw:
            where = f"event {raw['id']!r}"
        _check_keys(raw, _EVENT_KEYS, _EVENT_REQUIRED, file=file, where=where)
        event_id = str(raw["id"])
        if event_id in seen:
            raise DataError(f"{where}: duplicate id", file=file, hint="ids must be unique")
        seen.add(event_id)
        start = _as_date(raw["start"], file=file, where=where, key="start")
        end = _as_date(raw.get("end", start), file=file, where=where, key="end")
        if end < start:
            raise DataError(
                f"{where}: end {end} is before start {start}",
                file=file,
                timestamps=[start, end],
                hint="start is the anchor (first) day; end the last day of the window",
            )
        tags = raw.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise DataError(f"{where}: tags must be a list of strings", file=file)
        raw_facts = raw.get("facts", [])
        if not isinstance(raw_facts, list):
            raise DataError(f"{where}: facts must be an array of tables", file=file)
        facts = tuple(
            _parse_fact(f, file=file, where=f"{where}, fact #{j + 1}")
            for j, f in enumerate(raw_facts)
        )
        events.append(
            FlushEvent(
                id=event_id,
                name=str(raw["name"]),
                start=start,
                end=end,
                tags=tuple(tags),
                summary=str(raw.get("summary", "")),
                facts=facts,
            )
        )
    events.sort(key=lambda e: (e.start, e.id))
    return FlushCatalog(version=version, events=tuple(events))


def load_catalog(path: str | Path | None = None) -> FlushCatalog:
    """Load and validate the flush catalog (the shipped one by default).

    Raises :class:`DataError` (exit code 3) when the file is missing, is not valid TOML, or breaks
    the schema (unknown keys, bad dates, facts without a source, out-of-range values).
    """
    p = CATALOG_PATH if path is None else Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise DataError(
            "flush catalog not found", file=str(p), hint="pass an existing catalog TOML file"
        ) from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"not a valid TOML file: {exc}", file=str(p), hint="fix the syntax at that line"
        ) from None
    cat = parse_catalog(doc, file=str(p))
    return FlushCatalog(cat.version, cat.events, p)
