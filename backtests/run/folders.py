"""Run folders: ``runs/<run_id>/report.json``, ``trades.csv``, ``equity.csv`` (+ report.html).

A run folder is written atomically: everything goes to a temporary sibling folder first
(``runs/.<run_id>.<random>``), which then replaces ``runs/<run_id>`` in one rename, so a reader
never sees half a run. A process killed mid-write leaves that hidden temporary folder behind;
:func:`gc_runs` removes it (and run folders whose report is unreadable), :func:`list_runs`
reads the runs back and :func:`remove_runs` deletes chosen ones.
The report follows :mod:`flushback.backtests.reports.schema` (validated on write).

CSV conventions: timestamps ISO 8601 UTC (``2026-02-05T00:00:00Z``), floats written with
full precision (they round-trip exactly), so metrics recomputed from the CSVs match the
report's to the last bit.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from flushback.data.errors import DataError, FlushbackError, StoreError

__all__ = ["write_run", "load_report", "report_dict", "run_dir_for", "trades_csv", "equity_csv",
           "RunInfo", "list_runs", "remove_runs", "gc_runs", "TEMP_DIR_RE"]

_TS_FMT = "%Y-%m-%dT%H:%M:%SZ"


def _iso(series: pd.Series) -> pd.Series:
    s = pd.to_datetime(series, utc=True)
    return s.dt.strftime(_TS_FMT).where(s.notna(), "")


def trades_csv(trades: pd.DataFrame) -> str:
    t = trades.copy()
    for col in ("signal_time", "entry_time", "exit_time"):
        if col in t:
            t[col] = _iso(t[col])
    return t.to_csv(index=False, float_format="%.17g", lineterminator="\n")


def equity_csv(equity: pd.DataFrame) -> str:
    e = equity.copy()
    e.index = pd.DatetimeIndex(e.index).strftime(_TS_FMT)
    e.index.name = "timestamp"
    return e.to_csv(float_format="%.17g", lineterminator="\n")


def _with_provenance(sources: dict[str, Any], externals: Mapping[str, Any]) -> dict[str, Any]:
    """Each external dataset's entry also says which columns it fed, under which named source
    (``data.sources`` of the spec, e.g. liquidations from ``binance`` or
    ``binance-okx-bybit``), its venue and how many bars of the loaded frame it supplied."""
    out = copy.deepcopy(sources)
    for kind, entry in externals.items():
        for rank, d in enumerate(entry.get("datasets", [])):
            if d["id"] not in out:
                continue
            out[d["id"]].update({
                "kind": entry.get("kind", kind), "columns": list(entry.get("columns", [])),
                "named_source": entry.get("source", ""), "venue": d.get("venue", ""),
                "priority": rank, "bars_supplied": int(d.get("bars", 0)),
            })
    return out


def report_dict(result: Any, *, sections: Mapping[str, Any] | None = None,
                created_at: Any = None) -> dict[str, Any]:
    """The ``report.json`` document of a :class:`~flushback.backtests.run.runner.BacktestResult`."""
    from flushback.backtests.reports.schema import build_report, series_from_frame

    frame = result.frame
    spec = result.spec
    sources = {}
    for k, info in (result.datasets or {}).items():
        d = info.to_dict() if hasattr(info, "to_dict") else dict(info)
        d.pop("location", None)  # machine-specific path: not part of the evidence
        sources[k] = d
    data = {
        "symbol": frame.attrs.get("symbol", spec.data.symbol),
        "interval": spec.data.interval,
        "start": frame.index[0],
        "end": frame.index[-1],
        "fingerprints": dict(result.fingerprints),
        "sources": _with_provenance(sources, getattr(result, "external_sources", None) or {}),
    }
    series_cols = [c for c in ("open", "high", "low", "close", "fng", "liq_long_usd",
                               "liq_short_usd") if c in frame.columns]
    series = frame[series_cols].astype("float64")
    levels = getattr(result, "levels", None)
    if levels is not None and not levels.empty and len(result.trades):
        # the take-profit/stop levels each close was tested against during a trade
        from flushback.strategies.levels import levels_in_force

        force = levels_in_force(levels, result.trades, spec.strategy.params["level_update"])
        for col, name in (("level_tp", "level_take_profit"), ("level_sl", "level_stop")):
            if col in force and force[col].notna().any():
                series[name] = force[col].to_numpy()
    triggers = result.signals.copy()
    extra = dict(sections or {})
    config = dict(result.config or spec.to_dict())
    if extra.get("overrides"):  # the --set values, so runs of one spec can be told apart
        config["overrides"] = list(extra.pop("overrides"))
    extra.pop("overrides", None)
    return build_report(
        run_id=result.run_id,
        data=data,
        periods_per_year=result.periods_per_year,
        metrics=result.metrics,
        benchmark={"name": spec.benchmark.type, "metrics": result.benchmark_metrics},
        trades=result.trades,
        equity=result.equity,
        series=series_from_frame(series, tuple(series.columns)),
        triggers=triggers,
        config=config,
        spec_name=spec.name,
        kind=extra.pop("kind", "backtest"),
        created_at=created_at,
        events=extra.pop("events", None),
        optimization=extra.pop("optimization", None),
        audit=extra.pop("audit", None),
        warmup=extra.pop("warmup", getattr(result, "warmup", None)),
        portfolio=getattr(result, "portfolio", None),
        warnings=list(getattr(result, "warnings", None) or []),
    )


def run_dir_for(run_id: str, runs_dir: str | Path | None = None) -> Path:
    from flushback.data.paths import runs_dir as _runs_dir

    return _runs_dir(runs_dir) / run_id


def write_run(result: Any, runs_dir: str | Path | None = None,
              sections: Mapping[str, Any] | None = None) -> Path:
    """Write ``<runs_dir>/<run_id>/`` atomically and return its path.

    ``sections``: optional report sections owned by other modules (``events``,
    ``optimization``, ``audit``), and ``overrides`` (the ``--set`` values, recorded in the
    report's ``config``). ``report.html`` is rendered when the report module exists.
    """
    from flushback.backtests.reports.html import render_report_html
    from flushback.backtests.reports.schema import write_report_file
    from flushback.data.paths import runs_dir as _runs_dir
    from flushback.data.store import default_mode

    root = _runs_dir(runs_dir)
    doc = report_dict(result, sections=sections)
    target = root / result.run_id
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{result.run_id}.", dir=root))
        os.chmod(tmp, default_mode(directory=True))
    except OSError as exc:
        raise StoreError(f"cannot create the run folder: {exc}", file=str(root),
                         hint="check permissions, or point --runs-dir / FLUSHBACK_RUNS_DIR / "
                         "FLUSHBACK_HOME at a writable folder") from None
    try:
        write_report_file(doc, tmp / "report.json")
        (tmp / "trades.csv").write_text(trades_csv(result.trades), encoding="utf-8")
        (tmp / "equity.csv").write_text(equity_csv(result.equity), encoding="utf-8")
        try:
            render_report_html(doc, tmp / "report.html")
        except (OSError, FlushbackError):  # a full disk or an unwritable folder: fail the run
            raise
        except Exception as exc:  # the evidence (json/csv) must not depend on the charts
            import warnings

            warnings.warn(f"report.html not rendered: {type(exc).__name__}: {exc}",
                          RuntimeWarning, stacklevel=2)
        if target.exists():
            old = root / f".{result.run_id}.old.{os.getpid()}"
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StoreError(f"cannot write the run folder: {exc}", file=str(target)) from None
    except StoreError as exc:  # named after the run folder, not its temporary sibling
        shutil.rmtree(tmp, ignore_errors=True)
        name = Path(exc.file).name if exc.file else ""
        raise StoreError(f"run not written: {exc.message}", file=str(target / name),
                         hint=exc.hint) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_report(run_id_or_path: str | Path, runs_dir: str | Path | None = None) -> dict[str, Any]:
    """Read a run's ``report.json`` (a run id, a run folder or a report.json path) as a dict,
    validated (and migrated) by the report schema."""
    from flushback.backtests.reports.schema import load_report_file

    p = Path(run_id_or_path)
    if not p.exists():
        p = run_dir_for(str(run_id_or_path), runs_dir)
    return load_report_file(p).to_dict()


# --------------------------------------------------------------------------- housekeeping
#: a run folder's temporary sibling (``.<run_id>.<random>``) or a replaced one being deleted
#: (``.<run_id>.old.<pid>``); run ids are 16 hex digits
TEMP_DIR_RE = re.compile(r"^\.[0-9a-f]{16}\.")
_RUN_DIR_RE = re.compile(r"^[0-9a-f]{16}$")


@dataclass
class RunInfo:
    """What ``runs list`` / ``runs show`` say about a stored run."""

    run_id: str
    path: Path
    kind: str = ""
    spec: str | None = None
    description: str = ""
    created_at: str = ""
    symbol: str = ""
    interval: str = ""
    start: str = ""
    end: str = ""
    overrides: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_report(cls, rep: Any, path: Path) -> RunInfo:
        cfg = rep.config or {}
        window = cfg.get("window") or {}
        return cls(run_id=rep.run_id, path=path, kind=rep.kind, spec=rep.spec_name,
                   description=str(cfg.get("description") or ""), created_at=rep.created_at,
                   symbol=rep.data.symbol, interval=rep.data.interval,
                   start=str(window.get("start") or rep.data.start),
                   end=str(window.get("end") or rep.data.end),
                   overrides=[str(o) for o in cfg.get("overrides") or []],
                   metrics=dict(rep.metrics))

    def to_dict(self) -> dict[str, Any]:
        m = self.metrics
        return {"run_id": self.run_id, "path": str(self.path), "kind": self.kind,
                "spec": self.spec, "created_at": self.created_at, "symbol": self.symbol,
                "interval": self.interval, "start": self.start, "end": self.end,
                "overrides": list(self.overrides),
                **{k: m.get(k) for k in ("total_return", "sharpe", "max_drawdown", "n_trades")}}


def list_runs(runs_dir: str | Path | None = None) -> tuple[list[RunInfo], list[str]]:
    """The readable runs, newest first, and one line per unreadable run folder."""
    from flushback.backtests.reports.schema import load_report_file

    root = run_dir_for("x", runs_dir).parent
    runs, bad = [], []
    for path in sorted(root.glob("*/report.json")) if root.is_dir() else []:
        if path.parent.name.startswith("."):
            continue
        try:
            runs.append(RunInfo.from_report(load_report_file(path), path.parent))
        except DataError as exc:
            bad.append(f"{path.parent.name}: {exc}")
    runs.sort(key=lambda r: r.created_at, reverse=True)
    return runs, bad


def remove_runs(refs: Sequence[str], runs_dir: str | Path | None = None) -> list[Path]:
    """Delete run folders named by run id (or unique prefix); all names are resolved before
    anything is deleted, so one unknown name deletes nothing. Returns the removed folders."""
    from flushback.backtests.reports.compare import resolve_report_path

    root = run_dir_for("x", runs_dir).parent.resolve()
    targets = []
    for ref in refs:
        folder = resolve_report_path(ref, runs_dir).parent.resolve()
        if folder.parent != root:
            raise DataError(f"{ref!r} is not a run folder of {root}", file=str(folder),
                            hint="give run ids from `flushback runs list`")
        if folder not in targets:
            targets.append(folder)
    for folder in targets:
        _rmtree(folder)
    return targets


def gc_runs(runs_dir: str | Path | None = None, *, grace_seconds: float = 600.0,
            dry_run: bool = False) -> list[tuple[Path, str]]:
    """Remove what killed or failed writes left in the runs folder: hidden temporary folders
    (``.<run_id>.*``) not modified for ``grace_seconds`` (a write in progress is younger), and
    run folders whose ``report.json`` is missing or unreadable. Returns (path, reason) pairs;
    ``dry_run`` only lists them."""
    from flushback.backtests.reports.schema import load_report_file

    root = run_dir_for("x", runs_dir).parent
    found: list[tuple[Path, str]] = []
    now = time.time()
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        if not entry.is_dir() or entry.is_symlink():
            continue
        if TEMP_DIR_RE.match(entry.name):
            age = now - _newest_mtime(entry)
            if age >= grace_seconds:
                found.append((entry, f"temporary folder of an interrupted write "
                                     f"({age / 60:.0f} min old)"))
        elif _RUN_DIR_RE.match(entry.name):
            try:
                load_report_file(entry / "report.json")
            except DataError as exc:
                found.append((entry, f"unreadable run: {exc.message}"))
    if not dry_run:
        for path, _ in found:
            _rmtree(path)
    return found


def _newest_mtime(folder: Path) -> float:
    stamps = [folder.stat().st_mtime]
    for p in folder.rglob("*"):
        try:
            stamps.append(p.lstat().st_mtime)
        except OSError:
            continue
    return max(stamps)


def _rmtree(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except OSError as exc:
        raise StoreError(f"cannot remove {path.name}: {exc.strerror or exc}", file=str(path),
                         hint="check the runs folder's permissions") from None
