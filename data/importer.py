"""Folder import and file validation (``flushback data import`` / ``validate``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from flushback.data.datasets import (
    EXTERNAL_KINDS,
    INTERVALS,
    DatasetInfo,
    DatasetSpec,
    ns_values,
    spec_for,
    spec_for_path,
)
from flushback.data.errors import DataError
from flushback.data.parsers import PARSERS, parse_file, read_csv
from flushback.data.store import Store
from flushback.data.validate import ValidationReport, validate_dataset

__all__ = ["CATEGORIES", "ImportResult", "identify_file", "import_folder", "scan_folder",
           "validate_file"]

CATEGORIES = ("prices", "sentiment", "liquidations", "derivatives")


@dataclass
class ImportResult:
    id: str
    status: str  # new | updated | unchanged
    info: DatasetInfo
    report: ValidationReport


def scan_folder(root: str | Path) -> list[tuple[Path, DatasetSpec]]:
    """Every ``<category>/<name>.csv`` in a folder laid out like ``../shared/data``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError("not a folder", file=str(root),
                        hint="pass a folder laid out like ../shared/data")
    files = sorted(p for c in CATEGORIES for p in (root / c).glob("*.csv"))
    if not files:
        raise DataError("empty data: no CSV files under " + "/, ".join(CATEGORIES) + "/",
                        file=str(root), hint="lay the folder out like ../shared/data")
    return [(p, spec_for_path(p, root)) for p in files]


def _infer_interval(path: Path, frame_index: pd.DatetimeIndex) -> str:
    if len(frame_index) < 2:
        raise DataError("cannot infer the interval from fewer than two rows", file=str(path),
                        hint="name the file <SYMBOL>_<1h|4h|1d>.csv or pass --interval")
    d = np.diff(ns_values(frame_index))
    d = d[d > 0]
    vals, counts = np.unique(d, return_counts=True) if len(d) else (np.array([0]), [1])
    step = pd.Timedelta(int(vals[int(np.argmax(counts))]), unit="ns")
    for name, td in INTERVALS.items():
        if td == step:
            return name
    raise DataError(f"unsupported interval {step}", file=str(path), column="timestamp",
                    hint="flushback handles 1h, 4h and 1d bars")


def identify_file(path: str | Path, *, kind: str | None = None,
                  interval: str | None = None) -> DatasetSpec:
    """Which dataset a CSV file holds: by its place in a data folder, by its name
    (``<SYMBOL>_<interval>.csv``), by ``kind``/``interval``, or (bars) by its columns."""
    path = Path(path)
    stem = path.stem
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
                  ) -> list[ImportResult]:
    """Validate every file first, then write each dataset into the store (merge, atomic).

    Nothing is written when any file is bad: the error names the first bad file (and how many
    others failed). Re-importing the same folder changes nothing (same fingerprints).
    """
    store = store or Store()
    files = scan_folder(root)
    parsed = []
    errors: list[DataError] = []
    for path, spec in files:
        try:
            parsed.append(validate_file(path, spec=spec, strict=strict, max_gap=max_gap))
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
        info, status = store.write(spec.id, frame, origin=f"import:{path}", spec=spec)
        results.append(ImportResult(spec.id, status, info, report))
    return results
