"""The local Parquet store.

Layout under :func:`flushback.data.paths.store_dir` (``$FLUSHBACK_HOME/store`` when set)::

    datasets/<dataset id>.<version>.parquet   e.g. datasets/prices/BTC-USD_1d.3f9a0c21d4e7.parquet
    manifest.json                             id -> file, coverage, rows, gaps, fingerprint,
                                              origin, accepted flags

Guarantees:

- a kill at any moment leaves the store readable at its last good state. A new version is
  written under a **new** file name (temp file, fsync, ``os.replace``), then the manifest is
  swapped atomically to name it, and only then is the old version deleted: before the swap
  the manifest names the old version (still on disk), after it the new one. Files that no
  manifest entry names (a version written just before a kill, a temp file) are orphans,
  removed by the next write or by :meth:`Store.gc`;
- updates are incremental: new rows are merged into the stored ones (new wins on overlap);
  unchanged content (same fingerprint) is not rewritten at all;
- nothing is written unless the merged frame passes validation, so a failed or partial fetch
  never replaces the last good copy;
- suspicious values (:mod:`flushback.data.suspicious`) are refused unless accepted
  (``accept_flagged=True``, ``--accept-flagged``); accepted flags are kept in the manifest;
- reads check the Parquet content against the manifest fingerprint (a corrupt or hand-edited
  file is a :class:`StoreError`);
- locations are derived from where the store is now: a moved store names its new place.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from flushback.data import paths
from flushback.data.datasets import DatasetInfo, DatasetSpec, fingerprint, spec_for
from flushback.data.errors import DataError, SourceUnavailable, StoreError
from flushback.data.validate import validate_dataset

__all__ = ["Store", "StoreRepository", "atomic_write_bytes", "default_mode", "flagged_error",
           "merge_frames"]

MANIFEST_VERSION = 2


def default_mode(directory: bool = False) -> int:
    """The permissions a plainly created file (0666) or folder (0777) gets under the umask;
    temp files and folders (0600/0700) are given these before they are renamed into place."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX); a no-op where directories cannot be
    opened."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync and ``os.replace``,
    with the usual permissions (not mkstemp's 0600). Returns the path. Every file flushback
    writes for later (store, manifest, reports) goes through here."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def merge_frames(old: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """Incremental update: rows of ``new`` replace rows of ``old`` with the same timestamp."""
    if old is None or len(old) == 0:
        return new.sort_index()
    keep_old = old[~old.index.isin(new.index)]
    cols = list(dict.fromkeys([*old.columns, *new.columns]))
    merged = pd.concat([keep_old.reindex(columns=cols), new.reindex(columns=cols)])
    return merged.sort_index(kind="stable")


class Store:
    """Parquet files plus a JSON manifest; see the module docstring for the guarantees."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = paths.store_dir(root)

    # -- paths
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def parquet_path(self, dataset_id: str, entry: dict[str, Any] | None = None) -> Path:
        """The file holding a dataset's current version, as the manifest names it (stores
        written before versioned names keep ``datasets/<id>.parquet``)."""
        if entry is None:
            entry = self.manifest()["datasets"].get(dataset_id) or {}
        rel = entry.get("file") or f"datasets/{dataset_id}.parquet"
        return self.root / rel

    def _new_version_path(self, dataset_id: str) -> Path:
        return self.root / "datasets" / f"{dataset_id}.{uuid.uuid4().hex[:12]}.parquet"

    # -- manifest
    def manifest(self) -> dict[str, Any]:
        try:
            text = self.manifest_path.read_text()
        except FileNotFoundError:
            return {"version": MANIFEST_VERSION, "datasets": {}}
        except OSError as exc:
            raise StoreError(f"cannot read the store manifest ({exc.strerror})",
                             file=str(self.manifest_path), hint="check permissions") from None
        try:
            data = json.loads(text)
            assert isinstance(data.get("datasets"), dict)
        except (ValueError, AssertionError, AttributeError):
            raise StoreError("the store manifest is corrupt", file=str(self.manifest_path),
                             hint="delete the store folder and run `flushback data import` "
                             "again") from None
        for entry in data["datasets"].values():
            if entry.get("series"):  # a user series carries its own declaration
                from flushback.data.series import register_declaration

                register_declaration(entry["series"])
        return data

    def _write_manifest(self, data: dict[str, Any]) -> None:
        text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False)
        try:
            atomic_write_bytes(self.manifest_path, text.encode())
        except OSError as exc:
            raise StoreError(f"cannot write the store manifest ({exc.strerror})",
                             file=str(self.manifest_path), hint="check permissions") from None

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """An exclusive advisory lock so two processes never interleave manifest updates."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store folder ({exc.strerror})",
                             file=str(self.root), hint="check permissions, or set "
                             "FLUSHBACK_HOME / --store to a writable folder") from None
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX
            yield
            return
        try:
            fh = open(self.root / ".lock", "w")
        except OSError as exc:
            raise StoreError(f"cannot lock the store ({exc.strerror})", file=str(self.root),
                             hint="check permissions, or set FLUSHBACK_HOME / --store to a "
                             "writable folder") from None
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- queries
    def ids(self) -> list[str]:
        return sorted(self.manifest()["datasets"])

    def has(self, dataset_id: str) -> bool:
        entry = self.manifest()["datasets"].get(dataset_id)
        return entry is not None and self.parquet_path(dataset_id, entry).is_file()

    def entry(self, dataset_id: str) -> dict[str, Any]:
        """The manifest entry of a dataset (a copy)."""
        entry = self.manifest()["datasets"].get(dataset_id)
        if entry is None:
            raise DataError(f"dataset {dataset_id!r} is not in the store", file=str(self.root),
                            hint="run `flushback data import DIR` or `flushback data fetch`")
        return dict(entry)

    def info(self, dataset_id: str) -> DatasetInfo:
        entry = self.entry(dataset_id)
        return _info_from_entry(entry, self.parquet_path(dataset_id, entry))

    def infos(self) -> list[DatasetInfo]:
        return [_info_from_entry(e, self.parquet_path(i, e))
                for i, e in sorted(self.manifest()["datasets"].items())]

    def flags(self, dataset_id: str) -> list[dict[str, Any]]:
        """The suspicious values accepted into a dataset (column, timestamp, value, why)."""
        return list(self.entry(dataset_id).get("flags") or [])

    def gc(self) -> list[Path]:
        """Remove orphans: dataset versions the manifest does not name and temp files left by
        a killed write. Takes the store lock; returns what it removed."""
        with self._lock():
            return self._gc()

    def _gc(self) -> list[Path]:
        keep = {self.parquet_path(i, e).resolve()
                for i, e in self.manifest()["datasets"].items()}
        removed: list[Path] = []
        candidates = list(self.root.glob(".manifest.json.*.tmp"))
        folder = self.root / "datasets"
        if folder.is_dir():
            candidates += [p for p in folder.rglob("*") if p.is_file()]
        for p in candidates:
            temp = p.name.startswith(".") and p.name.endswith(".tmp")
            orphan = p.suffix == ".parquet" and p.resolve() not in keep
            if temp or orphan:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
                    removed.append(p)
        return removed

    def read(self, dataset_id: str, *, verify: bool = True) -> tuple[pd.DataFrame, DatasetInfo]:
        info = self.info(dataset_id)
        path = Path(info.location)
        try:
            frame = pd.read_parquet(path)
        except FileNotFoundError:
            raise StoreError("a dataset listed in the manifest has no file", file=str(path),
                             hint=f"re-import or re-fetch {dataset_id}") from None
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise StoreError(f"unreadable Parquet file ({type(exc).__name__})", file=str(path),
                             hint=f"re-import or re-fetch {dataset_id}") from None
        frame.index.name = "timestamp"
        if verify:
            fp = fingerprint(frame)
            if fp != info.fingerprint:
                raise StoreError(
                    f"content fingerprint {fp[:12]} does not match the manifest "
                    f"({info.fingerprint[:12]}): the file was changed outside flushback",
                    file=str(path), hint=f"re-import or re-fetch {dataset_id}",
                )
        return frame, info

    # -- writes
    def write(self, dataset_id: str, frame: pd.DataFrame, *, origin: str,
              merge: bool = True, spec: DatasetSpec | None = None,
              accept_flagged: bool = False) -> tuple[DatasetInfo, str]:
        """Validate, merge with the stored rows and write a new version (the module docstring
        says what a kill at any point leaves behind).

        Suspicious values not accepted before raise :class:`DataError` naming each, unless
        ``accept_flagged``. Returns (info, status), status ``"new" | "updated" | "unchanged"``.
        """
        from flushback.data.assemble import make_info

        spec = spec or spec_for(dataset_id)
        with self._lock():
            self._gc()
            old = None
            if merge and self.has(dataset_id):
                old, _ = self.read(dataset_id, verify=False)
            merged = merge_frames(old, frame) if merge else frame.sort_index()
            report = validate_dataset(merged, spec, file=f"{origin} -> store:{dataset_id}")
            manifest = self.manifest()
            entry = manifest["datasets"].get(dataset_id)
            accepted = {(f["column"], f["timestamp"]) for f in (entry or {}).get("flags") or []}
            new_flags = [f for f in report.flags if (f.column, f.timestamp) not in accepted]
            if new_flags and not accept_flagged:
                raise flagged_error(new_flags, origin)
            fp = fingerprint(merged)
            if entry is not None and entry.get("fingerprint") == fp and self.has(dataset_id):
                return self.info(dataset_id), "unchanged"
            path = self._new_version_path(dataset_id)
            try:
                buf = io.BytesIO()
                merged.to_parquet(buf, engine="pyarrow", index=True)
                atomic_write_bytes(path, buf.getvalue())
            except OSError as exc:
                raise StoreError(f"cannot write the dataset ({exc.strerror})", file=str(path),
                                 hint="check permissions and free space") from None
            # the fingerprint of what is on disk (read back: what later runs will see)
            stored = pd.read_parquet(path)
            stored.index.name = "timestamp"
            fp = fingerprint(stored)
            info = make_info(spec, stored, fp, str(path))
            new_entry = info.to_dict()
            new_entry.pop("location", None)  # derived from where the store is when read
            new_entry["file"] = path.relative_to(self.root).as_posix()
            new_entry["origin"] = origin
            new_entry["updated_at"] = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            if report.flags:
                new_entry["flags"] = [f.to_dict() for f in report.flags]
            if spec.kind == "series":
                from flushback.data.series import declaration

                new_entry["series"] = declaration(spec)
            old_path = None if entry is None else self.parquet_path(dataset_id, entry)
            manifest["datasets"][dataset_id] = new_entry
            manifest["version"] = MANIFEST_VERSION
            self._write_manifest(manifest)
            if old_path is not None and old_path != path:
                with contextlib.suppress(FileNotFoundError):
                    old_path.unlink()
            return info, ("updated" if entry is not None else "new")


def flagged_error(flags: list[Any], file: str) -> DataError:
    """The refusal of suspicious values: names each (column, timestamp, value, why)."""
    shown = "; ".join(f.describe() for f in flags[:5])
    more = f" (and {len(flags) - 5} more)" if len(flags) > 5 else ""
    return DataError(
        f"{len(flags)} suspicious value(s): {shown}{more}", file=file, column=flags[0].column,
        timestamps=list(dict.fromkeys(pd.Timestamp(f.timestamp) for f in flags))[:5],
        hint="fix those rows at the source, or accept them with --accept-flagged "
        "(accept_flagged=True); accepted flags are recorded in the dataset's metadata",
    )


def _info_from_entry(entry: dict[str, Any], path: Path | None = None) -> DatasetInfo:
    fields = {k: entry.get(k) for k in DatasetInfo.__dataclass_fields__}
    if path is not None:
        fields["location"] = str(path)
    for k in ("first", "last"):
        fields[k] = None if fields[k] is None else pd.Timestamp(fields[k])
    fields["rows"] = int(fields["rows"] or 0)
    fields["gaps"] = int(fields["gaps"] or 0)
    for k in ("publication_lag", "units", "location", "notes"):
        fields[k] = fields[k] or ""
    return DatasetInfo(**fields)


class StoreRepository:
    """Serves datasets from the store; when online, fetches a missing one from its live source
    first (and stores it). Offline it never touches the network."""

    def __init__(self, root: str | Path | None = None, *, offline: bool = False) -> None:
        self.store = Store(root)
        self.location = str(self.store.root)
        self.offline = offline
        self.errors: dict[str, SourceUnavailable] = {}

    def ids(self) -> list[str]:
        return self.store.ids()

    def has(self, dataset_id: str) -> bool:
        if self.store.has(dataset_id):
            return True
        if self.offline:
            return False
        from flushback.data.sources import fetcher_for

        fetch = fetcher_for(dataset_id)
        if fetch is None:
            return False
        try:
            frame = fetch()
        except SourceUnavailable as exc:
            self.errors[dataset_id] = exc
            return False
        self.store.write(dataset_id, frame, origin=f"fetch:{fetch.__name__}")
        return True

    def read(self, dataset_id: str) -> tuple[pd.DataFrame, DatasetInfo]:
        return self.store.read(dataset_id)
