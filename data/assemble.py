"""``load_frame``: the one function that assembles the aligned frame a backtest needs."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from flushback.data import paths
from flushback.data.datasets import (
    DEFAULT_SOURCES,
    EXTERNAL_KINDS,
    LIQ_REGIMES,
    DatasetInfo,
    DatasetSpec,
    count_gaps,
    default_externals,
    fingerprint,
    spec_for,
    spec_for_path,
)
from flushback.data.errors import ConfigError, DataError, StaleDataError
from flushback.data.frames import (
    AssembledFrame,
    asof_join,
    conform_external,
    resample_bars,
    splice_externals,
)
from flushback.data.frames import (
    fill_gaps as _fill_gaps,
)
from flushback.data.intervals import (
    INTERVALS,
    fmt_td,
    interval_name,
    nonnegative_duration,
    parse_interval,
)
from flushback.data.parsers import parse_file
from flushback.data.suggest import did_you_mean
from flushback.data.validate import validate_dataset

__all__ = ["DEFAULT_EXTERNALS", "AsOfRepository", "FolderRepository", "Repository", "load",
           "load_dataset", "load_frame"]

DEFAULT_EXTERNALS = ("fng", "liquidations", "funding", "open_interest")


class Repository(Protocol):
    """Where datasets come from: a CSV folder or the Parquet store."""

    location: str

    def has(self, dataset_id: str) -> bool: ...

    def read(self, dataset_id: str) -> tuple[pd.DataFrame, DatasetInfo]: ...

    def ids(self) -> list[str]: ...


def make_info(spec: DatasetSpec, frame: pd.DataFrame, fp: str, location: str) -> DatasetInfo:
    idx = pd.DatetimeIndex(frame.index)
    return DatasetInfo(
        id=spec.id, kind=spec.kind, source=spec.source, symbol=spec.symbol,
        interval=spec.interval, rows=len(frame),
        first=idx[0] if len(idx) else None, last=idx[-1] if len(idx) else None,
        gaps=count_gaps(idx, spec.period), fingerprint=fp,
        publication_lag=fmt_td(spec.publication_lag), units=spec.units, location=location,
        notes=spec.notes,
    )


_CACHE: dict[tuple[str, int, int], tuple[pd.DataFrame, DatasetInfo]] = {}
_CACHE_LOCK = threading.Lock()


class FolderRepository:
    """A folder laid out like ``../shared/data``: ``<dataset id>.csv`` files, read in place.

    Each file is parsed and validated on first use and cached in memory by (path, mtime, size).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.location = str(self.root)
        if not self.root.is_dir():
            raise DataError("data folder not found", file=str(self.root),
                            hint="pass a folder laid out like ../shared/data (prices/, "
                            "sentiment/, liquidations/, derivatives/)")

    def path(self, dataset_id: str) -> Path:
        return self.root / f"{dataset_id}.csv"

    def has(self, dataset_id: str) -> bool:
        return self.path(dataset_id).is_file()

    def ids(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix()[:-4]
                      for p in self.root.glob("*/*.csv"))

    def read(self, dataset_id: str) -> tuple[pd.DataFrame, DatasetInfo]:
        path = self.path(dataset_id)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise DataError("dataset file not found", file=str(path),
                            hint=f"available: {', '.join(self.ids()) or 'none'}") from None
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        with _CACHE_LOCK:
            hit = _CACHE.get(key)
        if hit is None:
            spec = None
            if dataset_id.startswith("series/"):
                from flushback.data.series import spec_from_sidecar

                spec = spec_from_sidecar(path)
            spec = spec or spec_for_path(path, self.root)
            frame = parse_file(path, spec)
            # flags are acted on where data enters the store; `data validate DIR` lists them
            validate_dataset(frame, spec, file=str(path), scan=False)
            hit = (frame, make_info(spec, frame, fingerprint(frame), str(path)))
            with _CACHE_LOCK:
                _CACHE[key] = hit
        frame, info = hit
        return frame.copy(), info


class AsOfRepository:
    """Another repository's datasets as they were known at ``as_of`` (a UTC moment).

    Every dataset is cut as it is read: bars keep the rows whose bar had closed by ``as_of``
    (open + the dataset's interval <= ``as_of``), so a coarser bar resampled from finer ones is
    never built from a partial bucket; external series keep the rows with
    ``known_at <= as_of``. A dataset with nothing known yet reads as an empty frame. The
    :class:`DatasetInfo` (and its fingerprint) is the stored dataset's: the cut is applied on
    top of it. This is what ``load_frame(..., as_of=...)`` reads through (the look-ahead audit
    re-runs a backtest on data cut this way).
    """

    def __init__(self, inner: Repository, as_of: Any) -> None:
        cut = _utc(as_of, "as_of")
        if cut is None:
            raise ConfigError("as_of is required", hint="pass a UTC timestamp")
        self.inner = inner
        self.as_of = cut
        self.location = inner.location
        self._cache: dict[str, tuple[pd.DataFrame, DatasetInfo]] = {}

    @property
    def errors(self) -> dict[str, Any]:
        """Fetch errors of the inner repository (dataset id -> SourceUnavailable)."""
        return getattr(self.inner, "errors", {})

    def has(self, dataset_id: str) -> bool:
        return self.inner.has(dataset_id)

    def ids(self) -> list[str]:
        return self.inner.ids()

    def read(self, dataset_id: str) -> tuple[pd.DataFrame, DatasetInfo]:
        hit = self._cache.get(dataset_id)
        if hit is None:
            frame, info = self.inner.read(dataset_id)
            if "known_at" in frame.columns:
                keep = pd.to_datetime(frame["known_at"], utc=True) <= self.as_of
            else:
                keep = (pd.DatetimeIndex(frame.index) + spec_for(dataset_id).period) <= self.as_of
            out = frame.loc[np.asarray(keep, dtype=bool)]
            out.attrs = dict(frame.attrs)
            hit = self._cache[dataset_id] = (out, info)
        frame, info = hit
        return frame.copy(), info


def _repository(data_dir: str | Path | None, offline: bool | None,
                as_of: Any = None) -> Repository:
    folder = paths.data_dir(data_dir)
    repo: Repository
    if folder is not None:
        repo = FolderRepository(folder)
    else:
        from flushback.data.store import StoreRepository

        repo = StoreRepository(paths.store_dir(), offline=_offline(offline))
    return repo if as_of is None else AsOfRepository(repo, as_of)


def _offline(offline: bool | None) -> bool:
    if offline is not None:
        return bool(offline)
    return os.environ.get("FLUSHBACK_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def load_dataset(dataset_id: str, *, data_dir: str | Path | None = None,
                 offline: bool | None = None, as_of: Any = None,
                 ) -> tuple[pd.DataFrame, DatasetInfo]:
    """One canonical dataset (bars or external series) and its info; with ``as_of``, only
    what was known at that moment (see :class:`AsOfRepository`)."""
    return _repository(data_dir, offline, as_of).read(dataset_id)


def _utc(ts: Any, name: str) -> pd.Timestamp | None:
    if ts is None:
        return None
    try:
        t = pd.Timestamp(ts)
    except (ValueError, TypeError):
        raise ConfigError(f"{name}={ts!r} is not a date", hint="use YYYY-MM-DD") from None
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def _load_bars(repo: Repository, symbol: str, interval: str,
               ) -> tuple[pd.DataFrame, list[DatasetInfo]]:
    target = parse_interval(interval)
    did = f"prices/{symbol}_{interval}"
    if repo.has(did):
        bars, info = repo.read(did)
        return bars, [info]
    # Not stored at this interval: derive from the coarsest finer interval that divides it.
    for name, td in sorted(INTERVALS.items(), key=lambda kv: -kv[1]):
        if td < target and target.value % td.value == 0 and repo.has(f"prices/{symbol}_{name}"):
            fine, info = repo.read(f"prices/{symbol}_{name}")
            return resample_bars(fine, interval, source_interval=name), [info]
    fetch_error = getattr(repo, "errors", {}).get(did)
    if fetch_error is not None:
        raise fetch_error
    avail = sorted(i[len("prices/"):] for i in repo.ids() if i.startswith("prices/"))
    symbols = sorted({a.rsplit("_", 1)[0] for a in avail})
    if symbol not in symbols:
        raise DataError(
            f"unknown symbol {symbol!r}" + did_you_mean(symbol, symbols),
            file=repo.location,
            hint=f"available: {', '.join(symbols) or 'none'}; import or fetch it first",
        )
    raise DataError(
        f"no {interval} bars for {symbol} (and none finer to resample from)",
        file=repo.location,
        hint=f"available: {', '.join(a for a in avail if a.startswith(symbol + '_'))}",
    )


def _resolve_externals(
    externals: Sequence[str] | Mapping[str, str | Sequence[str]] | None,
    symbol: str, interval: str, sources: Mapping[str, str] | None = None,
) -> tuple[dict[str, tuple[str, ...]], set[str]]:
    """kind -> dataset ids, and the set of kinds the caller named explicitly (must exist)."""
    try:
        defaults = default_externals(symbol, interval, sources)
    except DataError as exc:
        raise ConfigError(exc.message, hint=exc.hint) from None
    if externals is None:
        return {}, set()
    if isinstance(externals, str):
        externals = (externals,)
    explicit: set[str] = set()
    out: dict[str, tuple[str, ...]] = {}
    items: list[tuple[str, Any]]
    if isinstance(externals, Mapping):
        items = list(externals.items())
    else:
        items = [(k, None) for k in externals]
    aliases = {"liq": "liquidations", "oi": "open_interest", "funding_rate": "funding",
               "fear_greed": "fng"}
    for kind, ids in items:
        kind = aliases.get(kind, kind)
        if kind not in EXTERNAL_KINDS:
            raise ConfigError(
                f"unknown external {kind!r}" + did_you_mean(kind, EXTERNAL_KINDS),
                hint=f"use any of {', '.join(EXTERNAL_KINDS)}",
            )
        if ids is None:
            out[kind] = defaults.get(kind, ())
        else:
            out[kind] = (ids,) if isinstance(ids, str) else tuple(ids)
            explicit.add(kind)
            for i in out[kind]:
                s = spec_for(i)
                if s.kind != kind:
                    raise ConfigError(f"dataset {i!r} holds {s.kind}, not {kind}",
                                      hint="map each external kind to a dataset of that kind")
    return out, explicit


def _staleness_for(kind: str, spec: DatasetSpec, max_staleness: Any) -> pd.Timedelta:
    value = max_staleness
    if isinstance(max_staleness, Mapping):
        value = max_staleness.get(kind, max_staleness.get(spec.id))
    if value is None:
        return spec.staleness
    return nonnegative_duration(value, "max_staleness")


def load_frame(
    symbol: str = "BTC-USD",
    interval: str = "1d",
    *,
    externals: Sequence[str] | Mapping[str, str | Sequence[str]] | None = DEFAULT_EXTERNALS,
    start: Any = None,
    end: Any = None,
    data_dir: str | Path | None = None,
    offline: bool | None = None,
    max_staleness: Any = None,
    fill_gaps: bool = False,
    as_of: Any = None,
    sources: Mapping[str, str] | None = None,
    series: Mapping[str, Any] | Sequence[str] | None = None,
) -> AssembledFrame:
    """Bars for ``symbol``/``interval`` plus point-in-time external columns.

    - ``externals``: kinds (``"fng", "liquidations", "funding", "open_interest"``) using the
      defaults for the symbol (docs/data.md), or a dict kind -> dataset id (or a list of ids,
      first has priority). A kind without a dataset for this symbol yields an all-NaN column;
      a dataset named explicitly must exist.
    - ``start``/``end``: inclusive bounds on the bar open time (UTC).
    - ``data_dir``: a folder laid out like ``../shared/data`` (default ``FLUSHBACK_DATA_DIR``);
      without one the local store is used.
    - ``max_staleness``: a duration for every external, or a dict kind -> duration; default per
      dataset (F&G 48 h, liquidations until the next bucket is due, funding/OI two periods).
    - ``fill_gaps``: insert missing bars, flagged in a ``filled`` column (never by default).
    - ``as_of``: a UTC moment; every dataset is read as it was known then
      (:class:`AsOfRepository`: bars that had closed by ``as_of``, external rows with
      ``known_at <= as_of``). An external with nothing known yet gives an all-NaN column, and
      a dataset named explicitly is not refused for having no fresh value before the cut
      (it may not have begun yet). ``fingerprints`` and ``datasets`` describe the stored
      datasets the cut was applied to.
    - ``sources``: kind -> a named source (``flushback.data.datasets.SOURCES``), e.g.
      ``{"liquidations": "binance-okx-bybit"}``; unnamed kinds use ``DEFAULT_SOURCES``. A
      perpetual (``BTCUSDT-PERP``) joins its coin's liquidations, funding and open interest.
    - ``series``: user series (``flushback.data.series``): names of stored series, or a dict
      name -> stored name / :class:`~flushback.data.series.SeriesDef`; each becomes a float
      column of that name, joined by the same as-of rule on ``known_at``.

    Every external value at bar t satisfies ``known_at <= t + interval`` (``.known_at``).
    ``frame.attrs`` holds ``interval``, ``symbol``, ``gaps`` (missing bars, not filled),
    ``resampled_from`` when derived from finer bars, and ``missing_externals`` (kind -> reason)
    when a requested kind had no dataset.
    """
    if interval not in INTERVALS or interval == "8h":
        raise DataError(f"unknown interval {interval!r}", hint="use one of 1h, 4h, 1d")
    repo = _repository(data_dir, offline, as_of)
    bar_iv = parse_interval(interval)
    bars, bar_infos = _load_bars(repo, symbol, interval)
    t0, t1 = _utc(start, "start"), _utc(end, "end")
    if t0 is not None or t1 is not None:
        bars = bars.loc[t0:t1]
    if len(bars) == 0:
        cut = "" if as_of is None else f" closed by as_of={_utc(as_of, 'as_of')}"
        span = (f"between {t0} and {t1}" if t0 is not None and t1 is not None
                else f"from {t0}" if t0 is not None else f"up to {t1}")
        err = DataError(f"empty data: no {interval} bars for {symbol} {span}" + cut,
                        file=bar_infos[0].location,
                        hint=f"the dataset covers {bar_infos[0].first} .. {bar_infos[0].last}")
        # what the data covers, for callers that restate the error for their own window
        err.coverage = (_utc(bar_infos[0].first, "first"), _utc(bar_infos[0].last, "last"))
        raise err
    frame = bars[["open", "high", "low", "close", "volume"]].astype("float64")
    if fill_gaps:
        frame = _fill_gaps(frame, bar_iv)
    frame.index.name = "timestamp"
    infos: dict[str, DatasetInfo] = {i.id: i for i in bar_infos}

    kinds, explicit = _resolve_externals(externals, symbol, interval, sources)
    chosen = {**DEFAULT_SOURCES, **dict(sources or {})}
    if isinstance(externals, Mapping):
        chosen.update({k: "explicit datasets" for k in externals if externals[k] is not None})
    provenance: dict[str, Any] = {}
    column_intervals: dict[str, str] = {}
    column_datasets: dict[str, list[str]] = {}
    idx = pd.DatetimeIndex(frame.index)
    known_cols: dict[str, np.ndarray] = {}
    pend_cols: dict[str, np.ndarray] = {}
    missing: dict[str, str] = {}
    for kind, ids in kinds.items():
        cols = EXTERNAL_KINDS[kind]
        pieces = []
        stale: dict[str, pd.Timedelta] = {}
        reasons = [] if ids else [f"no {kind} dataset for {symbol}"]
        for did in ids:
            if not repo.has(did):
                err = getattr(repo, "errors", {}).get(did)
                if kind in explicit:
                    if err is not None:
                        raise err
                    raise DataError(f"external dataset {did!r} not found", file=repo.location,
                                    hint="import or fetch it, or choose another dataset")
                reasons.append(f"{did} not available" + (f" ({err.message})" if err else ""))
                continue
            spec = spec_for(did)
            ext, info = repo.read(did)
            infos[did] = info
            stale[did] = _staleness_for(kind, spec, max_staleness)
            pieces.append((spec, conform_external(ext, spec, bar_iv)))
        if as_of is not None and pieces and not any(len(p) for _, p in pieces):
            reasons.append(f"nothing known by {_utc(as_of, 'as_of')}")
            pieces = []
        if not pieces:
            missing[kind] = "; ".join(reasons) + " -- the column is NaN"
        joined = splice_externals(pieces, stale) if pieces else None
        vals, known, pend = asof_join(idx, bar_iv, joined, cols)
        if (kind in explicit and as_of is None and len(idx)
                and np.all(known == np.iinfo(np.int64).min)):
            used = [infos[i] for i in ids if i in infos]
            cover = "; ".join(f"{i.id} covers {i.first} .. {i.last}" for i in used)
            raise StaleDataError(
                f"no {kind} value is fresh on any bar between {idx[0]} and {idx[-1]}",
                file=used[0].location if used else repo.location, column=cols[0],
                timestamps=[idx[0], idx[-1]],
                hint=f"{cover}; choose a range inside it, another dataset, or raise "
                "max_staleness",
            )
        for c in cols:
            frame[c] = vals[c]
            known_cols[c] = known
            pend_cols[c] = pend
        provenance[kind] = _provenance(kind, chosen.get(kind, ""), ids, infos,
                                       vals.get("_dataset"), cols, missing.get(kind))
        used_ivs = [spec_for(d["id"]).period for d in provenance[kind]["datasets"]
                    if d["bars"] > 0] or [spec_for(i).period for i in ids if i in infos]
        if used_ivs:
            for c in cols:
                column_intervals[c] = _interval_label(max(used_ivs))
                column_datasets[c] = [d["id"] for d in provenance[kind]["datasets"]
                                      if d["bars"] > 0]
    for name, definition in _series_items(series):
        from flushback.data.series import join_series

        values, known, pend, info, prov = join_series(repo, name, definition, idx, bar_iv,
                                                      max_staleness=max_staleness,
                                                      as_of=as_of)
        frame[name] = values
        known_cols[name] = known
        pend_cols[name] = pend
        infos[info.id] = info
        provenance[name] = prov
        column_intervals[name] = info.interval
        column_datasets[name] = [info.id]
    if "liq_regime" in frame.columns:
        frame["liq_regime"] = pd.Categorical(
            frame["liq_regime"],
            categories=list(LIQ_REGIMES),
        )

    def _times(cols: dict[str, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame(
            {c: pd.DatetimeIndex(v.astype("int64").view("datetime64[ns]")).tz_localize("UTC")
             for c, v in cols.items()},
            index=frame.index,
        )

    frame.attrs = {"interval": interval, "symbol": symbol}
    if bars.attrs.get("resampled_from"):
        frame.attrs["resampled_from"] = bars.attrs["resampled_from"]
    frame.attrs["gaps"] = count_gaps(idx, bar_iv) if not fill_gaps else 0
    if missing:
        frame.attrs["missing_externals"] = missing
    # the coarsest dataset interval behind each external column: a signal whose window is finer
    # than its data refuses to run instead of summing coarser totals (signals.base)
    frame.attrs["column_intervals"] = column_intervals
    frame.attrs["column_datasets"] = column_datasets
    return AssembledFrame(
        frame=frame,
        fingerprints={k: v.fingerprint for k, v in infos.items()},
        datasets=infos,
        known_at=_times(known_cols),
        period_end=_times(pend_cols),
        sources=provenance,
    )


def _interval_label(td: pd.Timedelta) -> str:
    return interval_name(td) or fmt_td(td)


def _series_items(series: Mapping[str, Any] | Sequence[str] | None) -> list[tuple[str, Any]]:
    if not series:
        return []
    if isinstance(series, str):
        return [(series, series)]
    if isinstance(series, Mapping):
        return [(str(k), v) for k, v in series.items()]
    return [(str(k), str(k)) for k in series]


def _provenance(kind: str, source: str, ids: Sequence[str], infos: Mapping[str, DatasetInfo],
                used: np.ndarray | None, cols: Sequence[str], missing: str | None,
                ) -> dict[str, Any]:
    """Where one external kind's columns came from, for reports: the named source and, per
    dataset in priority order, its venue, interval and the bars it supplied."""
    counts: dict[str, int] = {}
    if used is not None:
        vals, n = np.unique(np.asarray([u for u in used if u is not None], dtype=object)
                            .astype(str), return_counts=True)
        counts = dict(zip(vals.tolist(), n.tolist(), strict=True))
    datasets = []
    for did in ids:
        spec = spec_for(did)
        info = infos.get(did)
        datasets.append({
            "id": did, "source": spec.source, "venue": spec.venue, "interval": spec.interval,
            "units": spec.units, "available": info is not None,
            "covers": None if info is None or info.first is None else
            [info.first.strftime("%Y-%m-%dT%H:%M:%SZ"),
             info.last.strftime("%Y-%m-%dT%H:%M:%SZ") if info.last is not None else None],
            "bars": int(counts.get(did, 0)),
        })
    return {"kind": kind, "columns": list(cols), "source": source, "datasets": datasets,
            "bars_with_value": int(sum(counts.values())), "note": missing}


#: ``flushback.data.load(...)`` (``fb.data.load`` in a notebook) is :func:`load_frame`
load = load_frame
