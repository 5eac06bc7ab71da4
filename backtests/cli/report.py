"""``flushback report RUN``, ``flushback compare RUN...`` and ``flushback runs list|show|rm|gc``.

All three read stored ``report.json`` files (a run id, a unique run-id prefix, a run folder or a
report.json path); none re-runs a backtest.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from flushback.backtests.cli._common import OutputFormat, console, console_err, print_json

runs_app = typer.Typer(help="List, show and delete the stored runs.", no_args_is_help=True)


class ReportFormat(StrEnum):
    html = "html"
    md = "md"


_RUNS_DIR_OPT = typer.Option(
    None, "--runs-dir", envvar="FLUSHBACK_RUNS_DIR", help="Folder holding the runs."
)


def report(
    run: str = typer.Argument(..., help="Run id (or unique prefix), run folder or report.json."),
    fmt: ReportFormat = typer.Option(ReportFormat.html, "--format", help="html or md."),
    output: str = typer.Option(
        None, "--output", "-o",
        help="Where to write (default: report.html next to report.json; md prints to stdout).",
    ),
    open_: bool = typer.Option(False, "--open", help="Open the HTML report in a browser."),
    runs_dir: str = _RUNS_DIR_OPT,
) -> None:
    """Render a run's report from its report.json: a self-contained HTML page or Markdown."""
    from flushback.backtests.reports.compare import resolve_report_path
    from flushback.backtests.reports.html import render_report_html, render_report_markdown
    from flushback.backtests.reports.schema import load_report_file

    path = resolve_report_path(run, runs_dir)
    rep = load_report_file(path)
    if fmt is ReportFormat.md:
        text = render_report_markdown(rep)
        if output:
            from flushback.backtests.reports.html import write_text_atomic

            write_text_atomic(output, text)
            console_err.print(f"wrote {output}", markup=False, highlight=False, soft_wrap=True)
        else:
            import sys

            sys.stdout.write(text)
        return
    target = Path(output) if output else path.with_name("report.html")
    render_report_html(rep, target)
    console.print(f"report {rep.run_id} -> {target}", markup=False, highlight=False, soft_wrap=True)
    if open_:
        import webbrowser

        webbrowser.open(target.resolve().as_uri())


def compare(
    runs: list[str] = typer.Argument(
        ..., help="Two or more run ids (or prefixes), run folders or report.json files."
    ),
    html: str = typer.Option(None, "--html", help="Also write the comparison as an HTML page."),
    metric: list[str] = typer.Option(
        None, "--metric", "-m", help="Metric to show (repeatable; default: the headline set)."
    ),
    allow_mismatch: bool = typer.Option(
        False, "--allow-mismatch",
        help="Compare runs over different symbols, intervals or data windows anyway.",
    ),
    resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples for the CI."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
    runs_dir: str = _RUNS_DIR_OPT,
) -> None:
    """Put runs side by side: metrics, equity, per-flush outcomes, pairwise Sharpe difference
    (bootstrap CI) and a paired test on per-event returns."""
    from flushback.backtests.reports.compare import (
        compare_reports,
        load_reports,
        print_comparison,
        render_compare_html,
    )

    reports = load_reports(runs, runs_dir)
    comp = compare_reports(reports, allow_mismatch=allow_mismatch, metrics=metric or None,
                           n_resamples=resamples, seed=seed)
    if fmt is OutputFormat.json:
        print_json(comp.to_dict())
    else:
        print_comparison(comp, console)
    if html:
        render_compare_html(comp, html)
        console_err.print(f"wrote {html}", markup=False, highlight=False, soft_wrap=True)


def _wide(con):
    """Piped or captured output: print tables whole instead of squeezing them to 80 columns."""
    if con.is_terminal:
        return con
    from rich.console import Console

    return Console(width=max(con.width, 160), highlight=False, color_system=None)


def _when(stamp: str) -> str:
    return stamp[:16].replace("T", " ") if stamp else "-"


def _window(r) -> str:
    return f"{r.symbol} {r.interval} {r.start[:10]}→{r.end[:10]}"


@runs_app.command("list")
def runs_list(
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
    runs_dir: str = _RUNS_DIR_OPT,
) -> None:
    """The stored runs, newest first: id, created, kind, spec, window, --set overrides and
    headline metrics."""
    from rich.table import Table

    from flushback.backtests.reports.html import fmt as fmt_num
    from flushback.backtests.reports.html import fmt_metric
    from flushback.backtests.run.folders import list_runs
    from flushback.data.paths import runs_dir as default_runs_dir

    root = default_runs_dir(runs_dir)
    runs, bad = list_runs(runs_dir)
    if fmt is OutputFormat.json:
        print_json({"runs_dir": str(root), "runs": [r.to_dict() for r in runs],
                    "unreadable": bad})
        return
    if not runs:
        console.print(f"no runs in {root}", markup=False, highlight=False, soft_wrap=True)
    else:
        from rich.markup import escape

        t = Table(title=f"Runs in {root}", title_justify="left")
        t.add_column("run_id", no_wrap=True, min_width=16)
        t.add_column("created (UTC)", no_wrap=True)
        t.add_column("kind", no_wrap=True)
        t.add_column("spec, --set overrides", overflow="fold")
        t.add_column("window", no_wrap=True)
        for col in ("return", "Sharpe", "max DD", "trades"):
            t.add_column(col, justify="right", no_wrap=True)
        for r in runs:
            m = r.metrics
            what = (r.spec or "-") + "".join(f"\n--set {o}" for o in r.overrides)
            t.add_row(r.run_id, _when(r.created_at), r.kind, escape(what),
                      f"{r.interval} {r.start[:10]}→{r.end[:10]}",
                      fmt_metric("total_return", m.get("total_return")),
                      fmt_num(m.get("sharpe"), 3),
                      fmt_metric("max_drawdown", m.get("max_drawdown")),
                      fmt_metric("n_trades", m.get("n_trades")))
        _wide(console).print(t)
    for line in bad:
        console_err.print(f"skipped unreadable run {line} (`flushback runs gc` removes it)",
                          markup=False, highlight=False, soft_wrap=True)


@runs_app.command("show")
def runs_show(
    run: str = typer.Argument(..., help="Run id (or unique prefix), run folder or report.json."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
    runs_dir: str = _RUNS_DIR_OPT,
) -> None:
    """One run: what was run (spec, window, overrides, data), its headline metrics and files."""
    from rich.table import Table

    from flushback.backtests.reports.compare import resolve_report_path
    from flushback.backtests.reports.html import fmt_metric
    from flushback.backtests.reports.schema import load_report_file
    from flushback.backtests.run.folders import RunInfo

    path = resolve_report_path(run, runs_dir)
    rep = load_report_file(path)
    info = RunInfo.from_report(rep, path.parent)
    files = {p.name: p.stat().st_size for p in sorted(path.parent.iterdir()) if p.is_file()}
    if fmt is OutputFormat.json:
        print_json({**info.to_dict(), "description": info.description,
                    "fingerprints": dict(rep.data.fingerprints), "metrics": rep.metrics,
                    "benchmark": {"name": rep.benchmark.name, "metrics": rep.benchmark.metrics},
                    "files": files})
        return
    t = Table(title=f"run {info.run_id}", title_justify="left", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for label, value in (
        ("created (UTC)", _when(info.created_at)), ("kind", info.kind),
        ("spec", info.spec or "-"), ("description", info.description or "-"),
        ("window", _window(info)), ("overrides (--set)", " ".join(info.overrides) or "-"),
        ("data", ", ".join(f"{k} {v[:12]}" for k, v in sorted(rep.data.fingerprints.items()))
         or "-"),
        ("folder", str(path.parent)),
        ("files", ", ".join(f"{k} ({v / 1e6:.1f} MB)" if v >= 1e5 else f"{k} ({v:,} B)"
                            for k, v in files.items())),
    ):
        t.add_row(label, value)
    console.print(t)
    m = Table(title=f"headline metrics vs {rep.benchmark.name}", title_justify="left")
    for col in ("metric", "strategy", rep.benchmark.name):
        m.add_column(col, justify="left" if col == "metric" else "right")
    for key in ("total_return", "cagr", "sharpe", "max_drawdown", "exposure", "n_trades",
                "n_legs", "win_rate", "profit_factor", "expectancy_pct", "end_equity"):
        if key in rep.metrics:
            m.add_row(key, fmt_metric(key, rep.metrics.get(key)),
                      fmt_metric(key, rep.benchmark.metrics.get(key)))
    console.print(m)
    html = path.parent / "report.html"
    if html.is_file():
        console.print(f"report: {html} (`flushback report {info.run_id} --open`)",
                      markup=False, highlight=False, soft_wrap=True)


@runs_app.command("rm")
def runs_rm(
    runs: list[str] = typer.Argument(..., help="Run ids (or unique prefixes) to delete."),
    runs_dir: str = _RUNS_DIR_OPT,
) -> None:
    """Delete run folders (every name is checked before anything is deleted)."""
    from flushback.backtests.run.folders import remove_runs

    for folder in remove_runs(runs, runs_dir):
        console.print(f"removed {folder}", markup=False, highlight=False, soft_wrap=True)


@runs_app.command("gc")
def runs_gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would go; delete nothing."),
    grace: float = typer.Option(
        10.0, "--grace", help="Keep temporary folders younger than this many minutes (a "
        "backtest may still be writing them)."),
    runs_dir: str = _RUNS_DIR_OPT,
) -> None:
    """Remove what interrupted runs left behind: hidden temporary folders (.<run_id>.*) of
    killed backtests and run folders whose report.json is missing or unreadable."""
    from flushback.backtests.run.folders import gc_runs
    from flushback.data.paths import runs_dir as default_runs_dir

    found = gc_runs(runs_dir, grace_seconds=grace * 60.0, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for path, reason in found:
        console.print(f"{verb} {path}: {reason}", markup=False, highlight=False, soft_wrap=True)
    if not found:
        console.print(f"nothing to clean in {default_runs_dir(runs_dir)}", markup=False,
                      highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``report``, ``compare`` and ``runs`` to the root app (one line in ``_register``)."""
    app.command("report")(report)
    app.command("compare")(compare)
    app.add_typer(runs_app, name="runs", help="List, show, delete and clean up the stored runs.")
