"""``flushback audit SPEC``: look-ahead, warm-up and external-timing checks of a spec.

Prints one table per check with its verdict (or the audit as JSON), stores the audit in the
run's ``report.json`` (section ``audit``) and exits 0 only when every check passes; otherwise
the tables are still printed and the command exits with BiasDetected's code (6).
"""

from __future__ import annotations

from typing import Any

import typer

from flushback.backtests.cli._common import STATE, OutputFormat, console, console_err, print_json

_VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "skip": "yellow"}


def audit(
    spec: str = typer.Argument(..., help="A spec file (.toml) or a shipped spec name."),
    trades: int = typer.Option(
        20, "--trades",
        help="Check every trade when there are at most N, else a seeded sample of N "
             "(N >= 20; 0 = all trades).",
    ),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
    set_: list[str] = typer.Option(
        None, "--set", help="Override a spec value: --set strategy.take_profit=0.2 (repeatable)."
    ),
    since: str = typer.Option(None, "--since", help="Start of the window (YYYY-MM-DD)."),
    until: str = typer.Option(None, "--until", help="End of the window, inclusive."),
    seed: int = typer.Option(0, "--seed", help="Seed of the trade and bar samples."),
    save: bool = typer.Option(
        True, "--save/--no-save", help="Store the audit with the run (report.json 'audit')."
    ),
    runs_dir: str = typer.Option(
        None, "--runs-dir", envvar="FLUSHBACK_RUNS_DIR", help="Where run folders are written."
    ),
) -> None:
    """Audit a spec for look-ahead, too-short warm-up and premature external data."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from flushback.backtests.audit.run import audit_spec, raise_if_biased, save_audit
    from flushback.backtests.run.spec import load_spec

    spec_obj = load_spec(spec, overrides=list(set_ or []))
    progress = Progress(
        TextColumn("truncated re-runs"), BarColumn(), MofNCompleteColumn(),
        console=console_err, transient=True,
        disable=fmt == OutputFormat.json or not console_err.is_terminal,
    )
    with progress:
        task = progress.add_task("audit", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        report = audit_spec(spec_obj, data_dir=STATE.data_dir, since=since, until=until,
                            trades=trades, seed=seed, progress=on_progress)
    run_dir = save_audit(report, runs_dir=runs_dir) if save else None
    doc = report.to_dict()
    warm = getattr(report.result, "warmup", None) or {}
    if warm.get("inside_window"):
        # not a bias (the checks above pass or fail on their own), but every number of the run
        # is qualified by it: said here, and stored in the run's report.json (warmup)
        console_err.print(f"warning: {warm['message']}", markup=False, highlight=False,
                          soft_wrap=True)
    if fmt == OutputFormat.json:
        print_json({**doc, "run_dir": None if run_dir is None else str(run_dir)})
    else:
        _print_tables(doc)
        verdict = doc["verdict"]
        console.print(f"audit: [{_VERDICT_STYLE[verdict]}]{verdict.upper()}[/]"
                      + (f"  run {doc['run_id']} -> {run_dir}" if run_dir else ""),
                      highlight=False, soft_wrap=True)
    raise_if_biased(report)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1e5 or abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:,.4g}"
    return str(value)


def _print_tables(doc: dict[str, Any]) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    out = console
    if not console.is_terminal and console.width < 140:
        out = Console(file=sys.stdout, width=160, color_system=None)
    w = doc.get("window", {})
    out.print(f"audit of {doc['spec_name']} ({doc['settings'].get('symbol')} "
              f"{doc['settings'].get('interval')}, {w.get('start')} .. {w.get('end')}, "
              f"{doc['bars']:,} bars)", markup=False, highlight=False)
    for check in doc["checks"]:
        verdict = check["verdict"]
        table = Table(
            title=f"{check['title']}: [{_VERDICT_STYLE[verdict]}]{verdict.upper()}[/]",
            caption=check["summary"], caption_justify="left",
        )
        for col in check["columns"]:
            table.add_column(col, overflow="fold")
        rows = check["rows"]
        if check["name"] == "lookahead":
            rows = _lookahead_rows(rows)
        for row in rows:
            cells = []
            for col in check["columns"]:
                text = _cell(row.get(col))
                if col == "verdict":
                    text = f"[{_VERDICT_STYLE.get(text, '')}]{text}[/]"
                cells.append(text)
            table.add_row(*cells)
        out.print(table)
        for f in check["findings"][:5]:
            out.print(f"  - {f['message']}", markup=False, highlight=False, soft_wrap=True)
        if len(check["findings"]) > 5:
            out.print(f"  ({len(check['findings']) - 5} more findings in --format json and "
                      "the run's report.json)", markup=False, highlight=False)


def _lookahead_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failing items one per row; items that reproduced exactly folded into one row per kind
    (every item is listed in --format json and in report.json)."""
    out = [r for r in rows if r.get("verdict") == "fail"]
    for kind, label in (("signal ", "signal/indicator columns"), ("frame ", "frame columns")):
        ok = [r for r in rows if r.get("verdict") != "fail" and str(r["item"]).startswith(kind)]
        if ok:
            names = ", ".join(str(r["item"])[len(kind):] for r in ok)
            out.append({"item": f"{len(ok)} {label}: {names}", "cuts": ok[0]["cuts"],
                        "biased": 0, "verdict": "pass"})
    out += [r for r in rows if r.get("verdict") != "fail" and str(r["item"]).startswith("trades")]
    return out
