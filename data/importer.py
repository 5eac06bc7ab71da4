"""Folder import and file validation (``flushback data import`` / ``validate``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flushback.data.datasets import (
    EXTERNAL_KINDS,
    DatasetInfo,
    DatasetSpec,
    spec_for,
    spec_for_path,
)
from flushback.data.errors import DataError
from flushback.data.intervals import interval_name, ns_values
from flushback.data.parsers import PARSERS, parse_file, read_csv
from flushback.data.store import Store
from flushback.data.validate import ValidationReport, validate_dataset

__all__ = ["CATEGORIES", "ImportResult", "ImportResults", "Skipped", "identify_file",
           "import_folder", "import_series", "scan_folder", "validate_file"]

CATEGORIES = ("prices", "sentiment", "liquidations", "derivatives", "series")


@dataclass
class ImportResult:
    id: str
    status: str  # new | updated | unchanged
    info: DatasetInfo
    report: ValidationReport


@dataclass(frozen=True)
class Skipped:
    """A file in a data folder that flushback cannot identify (not imported)."""

    path: str
    reason: str
    hint: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason, "hint": self.hint}


class ImportResults(list[ImportResult]):
    """The datasets an import wrote (a list of :class:`ImportResult`) and the files it
    ``skipped`` because it could not tell what they hold."""

    def __init__(self, results: list[ImportResult], skipped: list[Skipped]) -> None:
        super().__init__(results)
        self.skipped = skipped


_NAMING_HINT = (
    "name it like the files in ../shared/data (prices/<SYMBOL>_<1h|4h|1d>.csv, or a dataset "
    "listed in docs/data.md), or import it as your own series with `flushback data import "
    "FILE --as NAME --interval 1d --lag 0h` (or series/NAME.csv beside series/NAME.toml)"
)


def scan_folder(root: str | Path, *, strict: bool = False,
                ) -> tuple[list[tuple[Path, DatasetSpec]], list[Skipped]]:
    """Every ``<category>/<name>.csv`` in a folder laid out like ``../shared/data``: the files
    flushback can identify, and those it cannot (an error instead with ``strict``)."""
    from flushback.data.series import spec_from_sidecar

    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError("not a folder", file=str(root),
                        hint="pass a folder laid out like ../shared/data, or import one file "
                        "as your own series with --as NAME --interval 1d --lag 0h")
    files = sorted(p for c in CATEGORIES for p in (root / c).glob("*.csv"))
    if not files:
        raise DataError("empty data: no CSV files under " + "/, ".join(CATEGORIES) + "/",
                        file=str(root), hint="lay the folder out like ../shared/data")
    known: list[tuple[Path, DatasetSpec]] = []
    skipped: list[Skipped] = []
    for p in files:
        try:
            if p.parent.name == "series":
                spec = spec_from_sidecar(p)
                if spec is None:
                    raise DataError("a series file without its declaration", file=str(p),
                                    hint=f"write {p.with_suffix('.toml').name} beside it with "
                                    "interval = '1d' and lag = '0h' (and column, label)")
            else:
                spec = spec_for_path(p, root)
        except DataError as exc:
            if strict:
                raise DataError(exc.message + " (--strict refuses unknown files)",
                                file=str(p), hint=_NAMING_HINT) from None
            skipped.append(Skipped(str(p), exc.message, _NAMING_HINT))
            continue
        known.append((p, spec))
    if not known:
        first = skipped[0]
        raise DataError(f"no file flushback can identify ({len(skipped)} skipped: "
                        + ", ".join(Path(x.path).name for x in skipped[:5]) + f"): {first.reason}",
                        file=first.path, hint=first.hint)
    return known, skipped


def _infer_interval(path: Path, frame_index: pd.DatetimeIndex) -> str:
    if len(frame_index) < 2:
        raise DataError("cannot infer the interval from fewer than two rows", file=str(path),
                        hint="name the file <SYMBOL>_<1h|4h|1d>.csv or pass --interval")
    d = np.diff(ns_values(frame_index))
    d = d[d > 0]
    vals, counts = np.unique(d, return_counts=True) if len(d) else (np.array([0]), [1])
    step = pd.Timedelta(int(vals[int(np.argmax(counts))]), unit="ns")
    name = interval_name(step)
    if name is not None:
        return name
    raise DataError(f"unsupported interval {step}", file=str(path), column="timestamp",
                    hint="flushback handles 1h, 4h and 1d bars")


def identify_file(path: str | Path, *, kind: str | None = None,
                  interval: str | None = None) -> DatasetSpec:
    """Which dataset a CSV file holds: by its place in a data folder, by its name
    (``<SYMBOL>_<interval>.csv``), by ``kind``/``interval``, or (bars) by its columns."""
    path = Path(path)
    stem = path.stem
    if kind is None and path.parent.name == "series":
        from flushback.data.series import spec_from_sidecar

        sidecar = spec_from_sidecar(path)
        if sidecar is not None:
            return sidecar
    if kind is None and path.parent.name in CATEGORIES:
        try:
            return spec_for(f"{path.parent.name}/{stem}")
        except DataError:
            if path.parent.name != "prices":
                raise DataError("unknown dataset file", file=str(path),
                                hint="name it like the files in ../shared/data, or pass --kind",
                                ) from None
    if kind in (None, "bars"):
        try:
            spec = spec_for(f"prices/{stem}")
            if interval and spec.interval != interval:
                raise DataError(f"the file name says {spec.interval}, --interval says "
                                f"{interval}", file=str(path), hint="rename the file")
            return spec
        except DataError as exc:
            if "the file name says" in exc.message:
                raise
    if kind is not None and kind != "bars":
        if kind not in EXTERNAL_KINDS:
            raise DataError(f"unknown kind {kind!r}", file=str(path),
                            hint=f"use bars or {', '.join(EXTERNAL_KINDS)}")
        parser = {"fng": "fng", "liquidations": "coinglass_liquidations",
                  "funding": "funding_fraction", "open_interest": "oi_ohlc"}[kind]
        return DatasetSpec(f"file/{stem}", kind, "file", "", interval or "1d", parser)
    raw = read_csv(path)
    cols = {c.strip().lower() for c in raw.columns}
    if kind == "bars" or {"open", "high", "low", "close"} <= cols:
        bars = PARSERS["bars"](raw, None, file=str(path))
        iv = interval or _infer_interval(path, pd.DatetimeIndex(bars.index))
        sym = stem.split("_")[0]
        return DatasetSpec(f"prices/{sym}_{iv}", "bars", "file", sym, iv, "bars")
    raise DataError("cannot tell what this file holds", file=str(path),
                    hint="name it <SYMBOL>_<1h|4h|1d>.csv, put it in a folder laid out like "
                    "../shared/data, or pass --kind and --interval")


def validate_file(path: str | Path, *, spec: DatasetSpec | None = None, strict: bool = False,
                  max_gap: pd.Timedelta | None = None, assume_utc: bool = False,
                  kind: str | None = None, interval: str | None = None,
                  ) -> tuple[DatasetSpec, pd.DataFrame, ValidationReport]:
    """Parse and validate one file; raises the first problem as a typed error."""
    spec = spec or identify_file(path, kind=kind, interval=interval)
    frame = parse_file(path, spec, assume_utc=assume_utc)
    report = validate_dataset(frame, spec, file=str(path), strict=strict, max_gap=max_gap)
    return spec, frame, report


def import_folder(root: str | Path, store: Store | None = None, *, strict: bool = False,
                  max_gap: pd.Timedelta | None = None, progress: Any = None,
                  accept_flagged: bool = False) -> ImportResults:
    """Validate every known file first, then write each dataset into the store.

    Files flushback cannot identify are skipped and listed (``strict``: an error). Nothing is
    written when any known file is bad or holds suspicious values that were not accepted: the
    error names the first bad file (and how many others failed). Re-importing the same folder
    changes nothing (same fingerprints).
    """
    from flushback.data.store import flagged_error

    store = store or Store()
    files, skipped = scan_folder(root, strict=strict)
    parsed = []
    errors: list[DataError] = []
    for path, spec in files:
        try:
            item = validate_file(path, spec=spec, strict=strict, max_gap=max_gap)
            if item[2].flags and not accept_flagged:
                accepted = set()
                if store.has(spec.id):  # flags accepted by an earlier import stay accepted
                    accepted = {(f["column"], f["timestamp"]) for f in store.flags(spec.id)}
                new = [f for f in item[2].flags if (f.column, f.timestamp) not in accepted]
                if new:
                    raise flagged_error(new, str(path))
            parsed.append(item)
        except DataError as exc:
            errors.append(exc)
        if progress is not None:
            progress(path)
    if errors:
        first = errors[0]
        if len(errors) > 1:
            first.message += f" (and {len(errors) - 1} more bad file(s); nothing was imported)"
        else:
            first.message += " (nothing was imported)"
        raise first
    results = []
    for (path, _), (spec, frame, report) in zip(files, parsed, strict=True):
        info, status = store.write(spec.id, frame, origin=f"import:{path}", spec=spec,
                                   accept_flagged=accept_flagged)
        results.append(ImportResult(spec.id, status, info, report))
    return ImportResults(results, skipped)


def import_series(path: str | Path, name: str, store: Store | None = None, *,
                  interval: str = "1d", lag: str = "0h", column: str = "",
                  label: str = "start", aggregate: str = "last", units: str = "",
                  assume_utc: bool = False, accept_flagged: bool = False) -> ImportResult:
    """Register the user's own series (``flushback data import FILE --as NAME``) and store it;
    the declaration (interval, lag, label) is kept with it in the manifest."""
    from flushback.data.series import SeriesDef

    sdef = SeriesDef(name=name, interval=interval, lag=lag, column=column, label=label,
                     aggregate=aggregate, units=units)
    from flushback.data.datasets import register_user_spec

    spec = register_user_spec(sdef.to_spec())
    store = store or Store()
    spec, frame, report = validate_file(path, spec=spec, assume_utc=assume_utc)
    info, status = store.write(spec.id, frame, origin=f"import:{path}", spec=spec,
                               accept_flagged=accept_flagged)
    return ImportResult(spec.id, status, info, report)
