"""The local Parquet store.

Layout under :func:`flushback.data.paths.store_dir` (``$FLUSHBACK_HOME/store`` when set)::

    datasets/<dataset id>.parquet     e.g. datasets/prices/BTC-USD_1d.parquet
    manifest.json                     id -> coverage, rows, gaps, sha256 fingerprint, origin

Guarantees:

- every write goes to a temporary file in the same folder, is flushed and ``os.replace``-d
  into place (atomic on POSIX), Parquet first, manifest second;
- updates are incremental: new rows are merged into the stored ones (new wins on overlap);
  unchanged content (same fingerprint) is not rewritten at all;
- nothing is written unless the merged frame passes validation, so a failed or partial fetch
  never replaces the last good copy;
- reads check the Parquet content against the manifest fingerprint (a corrupt or hand-edited
  file is a :class:`StoreError`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from flushback.data import paths
from flushback.data.datasets import DatasetInfo, DatasetSpec, fingerprint, spec_for
from flushback.data.errors import DataError, SourceUnavailable, StoreError
from flushback.data.validate import validate_dataset

__all__ = ["Store", "StoreRepository", "atomic_write_bytes", "default_mode", "merge_frames"]

MANIFEST_VERSION = 1


def default_mode(directory: bool = False) -> int:
    """The permissions a plainly created file (0666) or folder (0777) gets under the umask;
    temp files and folders (0600/0700) are given these before they are renamed into place."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


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

    def parquet_path(self, dataset_id: str) -> Path:
        return self.root / "datasets" / f"{dataset_id}.parquet"

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
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX
            yield
            return
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- queries
    def ids(self) -> list[str]:
        return sorted(self.manifest()["datasets"])

    def has(self, dataset_id: str) -> bool:
        return dataset_id in self.manifest()["datasets"] and self.parquet_path(
            dataset_id).is_file()

    def info(self, dataset_id: str) -> DatasetInfo:
        entry = self.manifest()["datasets"].get(dataset_id)
        if entry is None:
            raise DataError(f"dataset {dataset_id!r} is not in the store", file=str(self.root),
                            hint="run `flushback data import DIR` or `flushback data fetch`")
        return _info_from_entry(entry)

    def infos(self) -> list[DatasetInfo]:
        return [_info_from_entry(e) for _, e in sorted(self.manifest()["datasets"].items())]

    def read(self, dataset_id: str, *, verify: bool = True) -> tuple[pd.DataFrame, DatasetInfo]:
        info = self.info(dataset_id)
        path = self.parquet_path(dataset_id)
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
              merge: bool = True, spec: DatasetSpec | None = None) -> tuple[DatasetInfo, str]:
        """Validate, merge with the stored rows and write atomically.

        Returns (info, status) with status ``"new" | "updated" | "unchanged"``.
        """
        from flushback.data.load import make_info

        spec = spec or spec_for(dataset_id)
        with self._lock():
            old = None
            if merge and self.has(dataset_id):
                old, _ = self.read(dataset_id, verify=False)
            merged = merge_frames(old, frame) if merge else frame.sort_index()
            validate_dataset(merged, spec, file=f"{origin} -> store:{dataset_id}")
            fp = fingerprint(merged)
            manifest = self.manifest()
            entry = manifest["datasets"].get(dataset_id)
            if entry is not None and entry.get("fingerprint") == fp and self.has(dataset_id):
                return _info_from_entry(entry), "unchanged"
            path = self.parquet_path(dataset_id)
            try:
                import io

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
            new_entry["origin"] = origin
            new_entry["updated_at"] = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            manifest["datasets"][dataset_id] = new_entry
            manifest["version"] = MANIFEST_VERSION
            self._write_manifest(manifest)
            return info, ("updated" if entry is not None else "new")


def _info_from_entry(entry: dict[str, Any]) -> DatasetInfo:
    fields = {k: entry.get(k) for k in DatasetInfo.__dataclass_fields__}
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
