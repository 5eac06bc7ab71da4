"""``flushback data ...``: import, fetch, list and validate datasets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from flushback.backtests.cli._common import STATE, OutputFormat, console, console_err, print_json

app = typer.Typer(no_args_is_help=True, help="Import, fetch, list and validate datasets.")

_STORE_OPT = typer.Option(None, "--store", envvar="FLUSHBACK_STORE",
                          help="Store folder (default: $FLUSHBACK_HOME/store or the user cache).")
_FORMAT_OPT = typer.Option(OutputFormat.table, "--format", "-f", help="table or json.")


def _max_gap(value: str | None) -> Any:
    if value is None:
        return None
    import pandas as pd

    from flushback.data.errors import ConfigError

    try:
        return pd.Timedelta(value)
    except ValueError:
        raise ConfigError(f"--max-gap {value!r} is not a duration", hint="e.g. 48h or 3d"
                          ) from None


def _offline() -> bool:
    return STATE.offline or os.environ.get("FLUSHBACK_OFFLINE", "").lower() in ("1", "true",
                                                                                 "yes")


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for c in columns:
        table.add_column(c, justify="right" if c in ("rows", "gaps") else "left",
                         overflow="fold")
    for r in rows:
        table.add_row(*["" if v is None else str(v) for v in r])
    if console.is_terminal:
        console.print(table)
    else:  # piped or captured: do not fold rows at 80 columns
        import sys

        from rich.console import Console

        Console(file=sys.stdout, width=220, highlight=False).print(table)


@app.command("import")
def import_(
    path: Path = typer.Argument(..., help="A folder laid out like ../shared/data, or one CSV "
                                "file with --as NAME (your own series)."),
    as_name: str = typer.Option(None, "--as", help="Import FILE as your own series NAME "
                                "(joined as-of on known_at like every external)."),
    interval: str = typer.Option("1d", "--interval", help="--as: the period each row "
                                 "describes (1h, 4h, 8h, 1d)."),
    lag: str = typer.Option("0h", "--lag", help="--as: publication lag after the period ends "
                            "(e.g. 12h)."),
    column: str = typer.Option("", "--column", help="--as: the value column (default: the "
                               "only non-time column)."),
    label: str = typer.Option("start", "--label", help="--as: a row's timestamp is its "
                              "period's start or end."),
    aggregate: str = typer.Option("last", "--aggregate", help="--as: on coarser bars take the "
                                  "last, sum or mean."),
    strict: bool = typer.Option(False, "--strict", help="Refuse any gap, stale span or "
                                "unknown file."),
    max_gap: str = typer.Option(None, "--max-gap", help="Longest tolerated gap in bars."),
    accept_flagged: bool = typer.Option(False, "--accept-flagged", help="Import suspicious "
                                        "values (outliers, unit slips); they are recorded in "
                                        "the dataset's metadata."),
    assume_utc: bool = typer.Option(False, "--assume-utc", help="--as: read naive timestamps "
                                    "as UTC."),
    store: str = _STORE_OPT,
    fmt: OutputFormat = _FORMAT_OPT,
) -> None:
    """Validate every CSV in a folder (or one series file with --as), then merge it into the
    local Parquet store. Unknown files are skipped and listed."""
    from flushback.data.importer import ImportResults, import_folder, import_series
    from flushback.data.store import Store

    st = Store(store)
    gap = _max_gap(max_gap)
    if as_name and path.is_dir():
        from flushback.data.errors import ConfigError

        raise ConfigError(f"--as {as_name} imports one CSV file, not a folder",
                          hint="pass the series' CSV file, or drop --as to import a folder")
    if as_name:
        one = import_series(path, as_name, st, interval=interval, lag=lag, column=column,
                            label=label, aggregate=aggregate, assume_utc=assume_utc,
                            accept_flagged=accept_flagged)
        results = ImportResults([one], [])
    elif console_err.is_terminal:
        from rich.progress import Progress

        from flushback.data.importer import scan_folder

        total = len(scan_folder(path)[0])
        with Progress(console=console_err, transient=True) as bar:
            task = bar.add_task("validating", total=total)
            results = import_folder(path, st, strict=strict, max_gap=gap,
                                    accept_flagged=accept_flagged,
                                    progress=lambda _p: bar.advance(task))
    else:
        results = import_folder(path, st, strict=strict, max_gap=gap,
                                accept_flagged=accept_flagged)
    if fmt is OutputFormat.json:
        print_json({"store": str(st.root), "datasets": [
            {"id": r.id, "status": r.status, **r.info.to_dict(),
             "warnings": r.report.warnings, "flags": [f.to_dict() for f in r.report.flags]}
            for r in results], "skipped": [s.to_dict() for s in results.skipped]})
        return
    _table(f"imported into {st.root}", ["dataset", "status", "rows", "gaps", "flags",
                                        "fingerprint"],
           [[r.id, r.status, r.info.rows, r.info.gaps, len(r.report.flags) or "",
             r.info.fingerprint[:12]] for r in results])
    counts = {s: sum(r.status == s for r in results) for s in ("new", "updated", "unchanged")}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()), highlight=False)
    if results.skipped:
        console.print(f"skipped {len(results.skipped)} file(s) flushback cannot identify:",
                      highlight=False)
        for sk in results.skipped:
            console.print(f"  {sk.path}: {sk.reason}", highlight=False, markup=False,
                          soft_wrap=True)
        console.print(f"  to import it: {results.skipped[0].hint}", highlight=False,
                      markup=False, soft_wrap=True)


@app.command("fetch")
def fetch(
    source: str = typer.Argument(..., help="yfinance | alternative.me | coinglass"),
    symbols: list[str] = typer.Argument(None, help="e.g. BTC-USD (yfinance), BTC (coinglass)."),
    interval: str = typer.Option("1d", "--interval", "-i", help="1d or 1h (coinglass: 1d, 4h)."),
    start: str = typer.Option(None, "--start", help="First date to fetch (YYYY-MM-DD)."),
    store: str = _STORE_OPT,
    fmt: OutputFormat = _FORMAT_OPT,
) -> None:
    """Fetch datasets from a live source and merge them into the store (atomically)."""
    from flushback.backtests.run.timefmt import iso_z
    from flushback.data.errors import SourceUnavailable
    from flushback.data.sources import plan_fetch
    from flushback.data.store import Store

    st = Store(store)
    # incremental: re-fetch from two periods before the last stored row (picks up revisions)
    from flushback.data.intervals import INTERVALS

    since = {}
    for info in st.infos():
        if info.last is not None and info.interval in INTERVALS:
            since[info.id] = info.last - 2 * INTERVALS[info.interval]
    plan = plan_fetch(source, symbols or [], interval=interval, start=start, since=since)
    if _offline():
        raise SourceUnavailable(
            f"offline: not fetching {', '.join(d for d, _ in plan)} from {source}",
            hint="drop --offline / FLUSHBACK_OFFLINE, or import files with "
            "`flushback data import DIR`",
        )
    done = []
    for dataset_id, run in plan:
        frame = run()  # raises SourceUnavailable/DataError before anything is written
        info, status = st.write(dataset_id, frame, origin=f"fetch:{run.__name__}")
        done.append((dataset_id, status, info))
    if fmt is OutputFormat.json:
        print_json([{"id": d, "status": s, **i.to_dict()} for d, s, i in done])
        return
    _table(f"fetched into {st.root}", ["dataset", "status", "rows", "last", "fingerprint"],
           [[d, s, i.rows, iso_z(i.last), i.fingerprint[:12]] for d, s, i in done])


def _folder_infos(folder: str) -> list[Any]:
    from flushback.data.assemble import FolderRepository

    repo = FolderRepository(folder)
    return [repo.read(i)[1] for i in repo.ids()]


@app.command("list")
def list_(
    store: str = _STORE_OPT,
    fmt: OutputFormat = _FORMAT_OPT,
) -> None:
    """Every dataset: source, interval, first/last timestamp, rows, gaps, fingerprint.

    Lists the local store, or the folder given with --data-dir / FLUSHBACK_DATA_DIR.
    """
    from flushback.backtests.run.timefmt import iso_z
    from flushback.data.store import Store

    if STATE.data_dir and not store:
        where, infos = STATE.data_dir, _folder_infos(STATE.data_dir)
    else:
        st = Store(store)
        where, infos = str(st.root), st.infos()
    if fmt is OutputFormat.json:
        print_json({"location": where, "datasets": [i.to_dict() for i in infos]})
        return
    if not infos:
        console.print(f"no datasets in {where} (run `flushback data import DIR`)",
                      highlight=False)
        return
    from flushback.data.datasets import spec_for

    def _what(i: Any) -> str:
        try:
            spec = spec_for(i.id)
        except Exception:
            return i.kind
        extra = spec.instrument or spec.venue
        return f"{i.kind} ({extra})" if extra else i.kind

    _table(f"datasets in {where}",
           ["dataset", "kind", "source", "interval", "first", "last", "rows", "gaps",
            "fingerprint"],
           [[i.id, _what(i), i.source, i.interval, iso_z(i.first), iso_z(i.last), i.rows,
             i.gaps, i.fingerprint[:12]] for i in infos])


def _expand(paths: list[Path]) -> list[Path]:
    from flushback.data.errors import DataError
    from flushback.data.importer import CATEGORIES

    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(q for c in CATEGORIES for q in (p / c).glob("*.csv")) or sorted(
                p.glob("*.csv"))
            if not found:
                raise DataError("empty data: no CSV files in the folder", file=str(p),
                                hint="pass CSV files or a folder laid out like ../shared/data")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise DataError("file not found", file=str(p), hint="check the path")
    return out


@app.command("validate")
def validate(
    paths: list[Path] = typer.Argument(None, help="CSV files or folders (default: the store)."),
    strict: bool = typer.Option(False, "--strict", help="Refuse any gap or stale span."),
    max_gap: str = typer.Option(None, "--max-gap", help="Longest tolerated gap in bars."),
    assume_utc: bool = typer.Option(False, "--assume-utc",
                                    help="Read naive timestamps as UTC."),
    kind: str = typer.Option(None, "--kind",
                             help="bars | fng | liquidations | funding | open_interest"),
    interval: str = typer.Option(None, "--interval", help="1h | 4h | 1d (when not in the name)."),
    store: str = _STORE_OPT,
    fmt: OutputFormat = _FORMAT_OPT,
) -> None:
    """Check files (or the store, or --data-dir) against every data rule; exit non-zero on the
    first bad one."""
    from flushback.data.errors import FlushbackError
    from flushback.data.importer import validate_file
    from flushback.data.store import Store
    from flushback.data.validate import validate_dataset

    gap = _max_gap(max_gap)
    results: list[dict[str, Any]] = []
    errors: list[FlushbackError] = []

    def record(name: str, dataset: str, fn: Any) -> None:
        try:
            report = fn()
        except FlushbackError as exc:
            errors.append(exc)
            results.append({"file": name, "dataset": dataset, "ok": False, "error": str(exc)})
            return
        results.append({"file": name, "dataset": dataset, "ok": True, **report.to_dict()})

    if not paths and STATE.data_dir and not store:
        paths = [Path(STATE.data_dir)]  # validate what load_frame would read
    if paths:
        for p in _expand(paths):
            record(str(p), "", lambda p=p: validate_file(
                p, strict=strict, max_gap=gap, assume_utc=assume_utc, kind=kind,
                interval=interval)[2])
    else:
        st = Store(store)
        if not st.ids():
            console.print(f"no datasets in {st.root} to validate", highlight=False)
        for did in st.ids():
            def check(did: str = did) -> Any:
                frame, _ = st.read(did)  # also verifies the fingerprint
                from flushback.data.datasets import spec_for

                return validate_dataset(frame, spec_for(did), file=f"store:{did}",
                                        strict=strict, max_gap=gap)

            record(f"store:{did}", did, check)
    if fmt is OutputFormat.json:
        print_json({"ok": not errors, "files": results})
    else:
        rows = []
        for r in results:
            if r["ok"]:
                note = "; ".join(r.get("warnings") or []) or "ok"
                rows.append([r["file"], r.get("rows"), r.get("first"), r.get("last"),
                             r.get("gaps"), note])
            else:
                rows.append([r["file"], "", "", "", "", "ERROR (see stderr)"])
        if rows:
            _table("validation", ["file", "rows", "first", "last", "gaps", "result"], rows)
    if errors:
        first = errors[0]
        if len(errors) > 1:
            first.message += f" (and {len(errors) - 1} more file(s) failed)"
        raise first
